import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'
import { OutboundMedia } from './media.ts'
import { QuietHoursChoice, ZonedTime } from './scheduled.ts'

export const MAX_CAMPAIGN_RECIPIENTS = 100_000
/** A CSV of 100,000 recipients with a few variables each. */
export const MAX_CAMPAIGN_CSV_BYTES = 16 * 1024 * 1024
export const MAX_TEMPLATE_LENGTH = 4096
const MAX_VARIABLES = 20

const VariableName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' })
const Variables = Type.Record(VariableName, Type.String({ maxLength: 1024 }), {
  maxProperties: MAX_VARIABLES, description: 'What the template\'s `{{name}}` placeholders become for this recipient'
})

export const CampaignRecipient = Type.Object({
  phone: Type.String({ minLength: 1, maxLength: 64, description: 'A phone in any notation' }),
  variables: Type.Optional(Variables)
}, { additionalProperties: false })
export type CampaignRecipient = Static<typeof CampaignRecipient>

export const CampaignTemplate = Type.Object({
  text: Type.Optional(Type.String({
    minLength: 1,
    maxLength: MAX_TEMPLATE_LENGTH,
    description: 'The text, with `{{variable}}` placeholders (`{{phone}}` is the recipient\'s phone); with media, its caption'
  })),
  media: Type.Optional(OutboundMedia)
}, { additionalProperties: false, description: 'What each recipient gets: a text, a file, or a file with the text as its caption' })
export type CampaignTemplate = Static<typeof CampaignTemplate>

export const CampaignPacing = Type.Object({
  messagesPerMinute: Type.Optional(Type.Integer({
    minimum: 1, maximum: 100_000, description: 'At most this many per minute (default: half the company\'s MESSAGES_PER_MINUTE)'
  })),
  jitter: Type.Optional(Type.Number({
    minimum: 0, maximum: 1, description: 'Each gap between two sends varies by up to this share of the mean gap (default 0.5)'
  })),
  typingMs: Type.Optional(Type.Integer({
    minimum: 0, maximum: 20_000, description: 'Show "typing…" to the recipient this long before each message (default 0)'
  }))
}, { additionalProperties: false })
export type CampaignPacing = Static<typeof CampaignPacing>

export const CampaignAutoPause = Type.Object({
  failureRate: Type.Optional(Type.Number({
    minimum: 0, maximum: 1, description: 'Pause when this share of the latest sends failed or WhatsApp refused them, e.g. 463 (default 0.2)'
  })),
  notOnWhatsAppRate: Type.Optional(Type.Number({
    minimum: 0, maximum: 1, description: 'Pause when this share of the latest recipients is not on WhatsApp (default 0.5)'
  })),
  window: Type.Optional(Type.Integer({
    minimum: 10, maximum: 1000, description: 'How many of the latest recipients the rates are taken over (default 50)'
  }))
}, { additionalProperties: false, description: 'How a campaign stops itself before the number gets banned' })
export type CampaignAutoPause = Static<typeof CampaignAutoPause>

export const CampaignCreateRequest = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  template: CampaignTemplate,
  recipients: Type.Optional(Type.Array(CampaignRecipient, { minItems: 1, maxItems: MAX_CAMPAIGN_RECIPIENTS })),
  csv: Type.Optional(Type.String({
    minLength: 1,
    maxLength: MAX_CAMPAIGN_CSV_BYTES,
    description: 'Instead of `recipients`: CSV with a header row; the `phone` column is the recipient, every other column a variable'
  })),
  startAt: Type.Optional(ZonedTime('Start at this time (default: now)')),
  pacing: Type.Optional(CampaignPacing),
  quietHours: Type.Optional(QuietHoursChoice),
  autoPause: Type.Optional(CampaignAutoPause)
}, { additionalProperties: false })
export type CampaignCreateRequest = Static<typeof CampaignCreateRequest>

export const CampaignStateSchema = Type.Union([
  Type.Literal('scheduled'), Type.Literal('running'), Type.Literal('paused'), Type.Literal('cancelled'), Type.Literal('finished')
])
export type CampaignState = Static<typeof CampaignStateSchema>
export const PauseReasonSchema = Type.Union([Type.Literal('manual'), Type.Literal('failures'), Type.Literal('not_on_whatsapp')])
export type PauseReason = Static<typeof PauseReasonSchema>

export const CampaignCounts = Type.Object({
  queued: Type.Integer({ minimum: 0, description: 'Not sent yet' }),
  sent: Type.Integer({ minimum: 0, description: 'WhatsApp took them (delivered and read ones included)' }),
  delivered: Type.Integer({ minimum: 0, description: 'Reached the recipient\'s phone (read ones included)' }),
  read: Type.Integer({ minimum: 0 }),
  failed: Type.Integer({ minimum: 0, description: 'Refused or failed, and not tried again' }),
  skipped: Type.Integer({ minimum: 0, description: 'Not on WhatsApp, an invalid phone, a repeat of a phone, or cancelled' })
})
export type CampaignCounts = Static<typeof CampaignCounts>

export const Campaign = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: CampaignStateSchema,
  pausedReason: Type.Union([PauseReasonSchema, Type.Null()], {
    description: '`manual`, or why it paused itself: `failures` (sends failing or refused), `not_on_whatsapp`'
  }),
  template: Type.Object({
    text: Type.Union([Type.String(), Type.Null()]),
    media: Type.Union([Type.Object({ kind: Type.String(), objectId: Type.String(), mimetype: Type.String() }), Type.Null()])
  }),
  startAt: Type.String({ format: 'date-time' }),
  pacing: Type.Object({ messagesPerMinute: Type.Integer(), jitter: Type.Number(), typingMs: Type.Integer() }),
  quietHours: QuietHoursChoice,
  autoPause: Type.Object({ failureRate: Type.Number(), notOnWhatsAppRate: Type.Number(), window: Type.Integer() }),
  total: Type.Integer({ minimum: 0 }),
  counts: CampaignCounts,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
})
export type Campaign = Static<typeof Campaign>

export const CampaignReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, campaign: Campaign })
export type CampaignReply = Static<typeof CampaignReply>

export const CampaignsReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  campaigns: Type.Array(Campaign, { description: 'Newest first (the latest 100)' })
})
export type CampaignsReply = Static<typeof CampaignsReply>

export const CampaignRef = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export type CampaignRef = Static<typeof CampaignRef>

export const CampaignActions = ['pause', 'resume', 'cancel'] as const
export type CampaignAction = (typeof CampaignActions)[number]

/** Recipients per page of the report over NATS (a NATS message holds 1 MB); over HTTP the whole file comes at once. */
export const CAMPAIGN_REPORT_PAGE = 5_000

export const CampaignReportRequest = Type.Object({
  id: Type.String({ format: 'uuid' }),
  after: Type.Optional(Type.Integer({ minimum: -1, description: 'The `next` of the previous page (default: from the first recipient)' }))
}, { additionalProperties: false })
export type CampaignReportRequest = Static<typeof CampaignReportRequest>

export const CampaignReportReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  campaignId: Type.String(),
  csv: Type.String({
    description: 'A header line, then one line per recipient in order: seq,phone,status,message_id,error,sent_at,delivered_at,read_at'
  }),
  next: Type.Union([Type.Integer(), Type.Null()], { description: 'Pass as `after` for the next page; null: the last page' })
})
export type CampaignReportReply = Static<typeof CampaignReportReply>

export const CampaignProgressEventData = Type.Object({
  campaignId: Type.String(),
  name: Type.String(),
  status: Campaign.properties.status,
  pausedReason: Campaign.properties.pausedReason,
  total: Type.Integer({ minimum: 0 }),
  counts: CampaignCounts
}, { description: 'A campaign\'s progress: on every change of state, and every few seconds while it sends' })
export type CampaignProgressEventData = Static<typeof CampaignProgressEventData>
