import { Type, type Static, type TSchema } from 'typebox'
import { CompanyId } from './common.ts'
import { InboundMedia, MAX_CAPTION_LENGTH, ObjectId, UnavailableMedia } from './media.ts'
import { IdempotencyKey } from './sessions.ts'

/** The most contacts one status post goes to (each of their devices gets the sender key with every post). */
export const MAX_STATUS_RECIPIENTS = 1024
/** WhatsApp's limit on a text status. */
export const MAX_STATUS_TEXT_LENGTH = 700

/**
 * The fonts of a text status, as Baileys 7.0.0-rc14's protobuf numbers them
 * (`ExtendedTextMessage.FontType`): the numbers, or these names.
 */
export const STATUS_FONTS = {
  system: 0,
  system_text: 1,
  fb_script: 2,
  system_bold: 6,
  morningbreeze_regular: 7,
  calistoga_regular: 8,
  exo2_extrabold: 9,
  courierprime_bold: 10
} as const
export type StatusFontName = keyof typeof STATUS_FONTS
export type StatusFontNumber = (typeof STATUS_FONTS)[StatusFontName]

// JSON Schema's `enum` (one error for a bad font, not one per allowed value), typed as the values it allows.
const FontNumber = Type.Integer({ enum: Object.values(STATUS_FONTS) }) as unknown as TSchema & { static: StatusFontNumber }
const FontName = Type.String({ enum: Object.keys(STATUS_FONTS) }) as unknown as TSchema & { static: StatusFontName }
export const StatusFont = Type.Union([FontNumber, FontName], {
  description: `A text status's font: ${Object.entries(STATUS_FONTS).map(([name, font]) => `${font} (${name})`).join(', ')}`
})

export const StatusColor = Type.String({
  pattern: '^#?([0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$',
  description: 'A text status\'s background: `#RRGGBB` (opaque) or `#AARRGGBB`'
})

/** An image or video to post: the send's media (a URL, base64 data or a file in the media bucket) of those two kinds. */
export const StatusMedia = Type.Object({
  kind: Type.Union([Type.Literal('image'), Type.Literal('video')]),
  url: Type.Optional(Type.String({
    minLength: 8, maxLength: 2048, description: 'An http(s) URL the gateway fetches (public addresses only)'
  })),
  data: Type.Optional(Type.String({ minLength: 1, description: 'The file, base64 (small files: a NATS message holds 1 MB)' })),
  objectId: Type.Optional(ObjectId),
  mimetype: Type.Optional(Type.String({ minLength: 3, maxLength: 255, description: 'Checked against the file\'s content' })),
  caption: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_CAPTION_LENGTH }))
})
export type StatusMedia = Static<typeof StatusMedia>

export const StatusPostRequest = Type.Object({
  text: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_STATUS_TEXT_LENGTH, description: 'A text status (or `media`)' })),
  backgroundColor: Type.Optional(StatusColor),
  font: Type.Optional(StatusFont),
  media: Type.Optional(StatusMedia),
  recipients: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
    minItems: 1,
    maxItems: MAX_STATUS_RECIPIENTS,
    uniqueItems: true,
    description: 'The contacts who see it: phones in any notation (or `audience`)'
  })),
  audience: Type.Optional(Type.Literal('contacts', {
    description: '`contacts`: every contact the company has a chat with in the history (the most recently active first,' +
      ` at most ${MAX_STATUS_RECIPIENTS})`
  })),
  idempotencyKey: Type.Optional(IdempotencyKey)
}, { additionalProperties: false })
export type StatusPostRequest = Static<typeof StatusPostRequest>

export const StatusPostReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  messageId: Type.String({ description: 'The post\'s id, the same in every batch' }),
  timestamp: Type.String(),
  kind: Type.Union([Type.Literal('text'), Type.Literal('image'), Type.Literal('video')]),
  recipients: Type.Integer({ minimum: 1, description: 'Contacts it went to (the company\'s own number besides)' }),
  batches: Type.Integer({ minimum: 1, description: 'Sends it took: WhatsApp takes a status to a few contacts at a time' }),
  batchSize: Type.Integer({ minimum: 1 }),
  duplicate: Type.Optional(Type.Literal(true, {
    description: 'A repeat of an idempotency key: this is the first result, nothing was posted again'
  })),
  queuedMs: Type.Optional(Type.Number({ description: 'Time spent in the company\'s pacing queue' }))
})
export type StatusPostReply = Static<typeof StatusPostReply>

export const StatusEventData = Type.Object({
  statusId: Type.String({ description: 'WhatsApp\'s id of the post' }),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'The poster\'s E.164 digits, when known' }),
  lid: Type.Union([Type.String(), Type.Null()], { description: 'The poster\'s LID JID, when known' }),
  pushName: Type.Union([Type.String(), Type.Null()]),
  kind: Type.Union([Type.Literal('text'), Type.Literal('media')]),
  text: Type.Union([Type.String(), Type.Null()], { description: 'A text post\'s text, or a media post\'s caption' }),
  backgroundColor: Type.Optional(Type.String({ description: 'A text post\'s background, `#AARRGGBB`' })),
  font: Type.Optional(Type.Integer({ description: 'A text post\'s font (see the status request\'s `font`)' })),
  media: Type.Optional(Type.Union([InboundMedia, UnavailableMedia], {
    description: 'A media post: its file in the media bucket (`objectId`), or why it could not be fetched (`error`)'
  })),
  timestamp: Type.String({ format: 'date-time', description: 'When the contact posted it (seconds)' }),
  offline: Type.Boolean({ description: 'WhatsApp kept it while the company was not connected' })
}, { description: 'A contact posted a status (a story) the company\'s number may see' })
export type StatusEventData = Static<typeof StatusEventData>
