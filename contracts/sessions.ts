import { Type, type Static } from 'typebox'
import { CompanyId, MAX_MESSAGE_ID_LENGTH } from './common.ts'
import { HistoryLinkSettings, HistorySyncState } from './history.ts'
import { OutboundMedia } from './media.ts'
import { ContactCard, Location } from './content.ts'
import { ScheduleFields } from './scheduled.ts'

/** The old system's limit, kept. */
export const MAX_MESSAGE_LENGTH = 4096

export { MAX_MESSAGE_ID_LENGTH } from './common.ts'
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200

export const IdempotencyKey = Type.String({
  minLength: 1,
  maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
  description: 'A repeat with the same key within 24 h returns the first result instead of sending again' +
    ' (over NATS, the Nats-Msg-Id header works too)'
})

export const SendRequest = Type.Object({
  phone: Type.String({
    minLength: 1, maxLength: 64, description: 'The chat: a phone (any notation), a phone or LID JID, or a group\'s JID (`…@g.us`)'
  }),
  mentions: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
    minItems: 1,
    maxItems: 1024,
    uniqueItems: true,
    description: 'Phones (or LID JIDs) to mention, as WhatsApp mentions: write `@<digits>` in the text where each shows;' +
      ' `@all` mentions every participant of the group'
  })),
  message: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_MESSAGE_LENGTH, description: 'The text (or `media`)' })),
  media: Type.Optional(OutboundMedia),
  location: Type.Optional(Location),
  contact: Type.Optional(ContactCard),
  quotedMessageId: Type.Optional(Type.String({
    minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH, description: 'Reply to this message (one the gateway has seen in this chat)'
  })),
  idempotencyKey: Type.Optional(IdempotencyKey),
  ...ScheduleFields,
  options: Type.Optional(Type.Object({
    quoted: Type.Optional(Type.String({
      minLength: 1,
      maxLength: MAX_MESSAGE_ID_LENGTH,
      description: 'The same as `quotedMessageId` (kept)'
    }))
  }))
})
export type SendRequest = Static<typeof SendRequest>

const DeliveryFields = {
  success: Type.Literal(true),
  companyId: CompanyId,
  phone: Type.String({ description: 'E.164 digits the message went to (the LID JID for a contact known only by LID, a group\'s JID)' }),
  messageId: Type.String(),
  timestamp: Type.String(),
  accepted: Type.Literal(true, { description: 'WhatsApp took the message (Baileys wrote it to the connection)' }),
  duplicate: Type.Optional(Type.Literal(true, {
    description: 'A repeat of an idempotency key: this is the first result, nothing was sent again'
  })),
  queuedMs: Type.Optional(Type.Number({ description: 'Time spent in the company\'s pacing queue' }))
}

export const SendReply = Type.Object(DeliveryFields)
export type SendReply = Static<typeof SendReply>

/** Exactly one emoji; an empty string removes our reaction. */
const Emoji = Type.String({ maxLength: 64, description: 'One emoji (❤️, 👍🏽, 👨‍👩‍👧, 🇷🇺); "" removes the reaction' })

export const ReactionRequest = Type.Object({
  phone: Type.String({ minLength: 1, maxLength: 64, description: 'The chat: the contact\'s phone (any notation)' }),
  emoji: Emoji,
  messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH, description: 'The message reacted to' }),
  fromMe: Type.Optional(Type.Boolean({ description: 'React to a message we sent (default: one the contact sent)' })),
  idempotencyKey: Type.Optional(IdempotencyKey)
})
export type ReactionRequest = Static<typeof ReactionRequest>

/** The old system's `POST /api/whatsapp/reaction` body. */
export const LegacyReactionRequest = Type.Object({
  companyId: Type.Optional(CompanyId),
  phone: ReactionRequest.properties.phone,
  emoji: Emoji,
  messageId: ReactionRequest.properties.messageId
})
export type LegacyReactionRequest = Static<typeof LegacyReactionRequest>

export const ReactionReply = Type.Object({ ...DeliveryFields, emoji: Type.String(), reactedTo: Type.String() })
export type ReactionReply = Static<typeof ReactionReply>

export const AutoReactionRules = Type.Object({
  enabled: Type.Boolean({ description: 'React to inbound thanks' }),
  emoji: Type.Optional(Emoji),
  patterns: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
    maxItems: 100,
    description: 'Words or phrases that express thanks (replace the defaults)'
  })),
  exclusions: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
    maxItems: 100,
    description: 'Phrases that mean it is not thanks (replace the defaults)'
  }))
})
export type AutoReactionRules = Static<typeof AutoReactionRules>

export const AutoReactionRulesReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  rules: Type.Object({
    enabled: Type.Boolean(),
    emoji: Type.String(),
    patterns: Type.Array(Type.String()),
    exclusions: Type.Array(Type.String())
  })
})
export type AutoReactionRulesReply = Static<typeof AutoReactionRulesReply>

/** The last thing that went wrong with a company's connection. */
export const SessionProblem = Type.Object({
  reason: Type.String({
    description: 'an error reason (forbidden, qr_expired, circuit_open, …), disconnected, reconnect_failed, connection_replaced or logout'
  }),
  code: Type.Union([Type.Number(), Type.Null()], { description: "WhatsApp's close code, when there was one" }),
  at: Type.String()
})
export type SessionProblem = Static<typeof SessionProblem>

export const SessionStatus = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  connected: Type.Boolean(),
  status: Type.String({ description: 'connecting | qr | pairing | open | reconnecting | breaker_open | stopped | disconnected' }),
  reconnectAttempts: Type.Number(),
  holder: Type.Union([Type.String(), Type.Null()]),
  epoch: Type.Union([Type.Number(), Type.Null()]),
  health: Type.Object({
    healthy: Type.Boolean(),
    phoneNumber: Type.Union([Type.String(), Type.Null()]),
    lastActivity: Type.Union([Type.String(), Type.Null()])
  }),
  lastError: Type.Optional(Type.Union([SessionProblem, Type.Null()], { description: 'Since the holder took the company' })),
  historySync: Type.Optional(HistorySyncState)
})
export type SessionStatus = Static<typeof SessionStatus>

/** A session's passive health check: 200 with `healthy: true`, else 503 with the same body and `error`. */
export const SessionHealth = Type.Object({
  success: Type.Boolean(),
  companyId: CompanyId,
  healthy: Type.Boolean(),
  phoneNumber: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  lease: Type.Object({ holder: Type.Union([Type.String(), Type.Null()]), epoch: Type.Union([Type.Number(), Type.Null()]) }),
  replica: Type.Object({
    id: Type.String({ description: 'The replica that answered' }),
    ready: Type.Boolean(),
    checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean(), reason: Type.Optional(Type.String()) }))
  }),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() }))
})
export type SessionHealth = Static<typeof SessionHealth>

export const InitializeRequest = Type.Object({
  phoneNumber: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 64,
    description: 'Link with a pairing code for this number instead of a QR'
  })),
  history: Type.Optional(HistoryLinkSettings),
  proxy: Type.Optional(Type.String({
    minLength: 8, maxLength: 512, description: 'The company\'s proxy, as PUT …/proxy sets it (http://, https://, socks5://, socks5h://)'
  }))
})
export type InitializeRequest = Static<typeof InitializeRequest>

export const InitializeReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  status: Type.Union([Type.Literal('qr'), Type.Literal('pairing_code'), Type.Literal('connected')]),
  qr: Type.Optional(Type.String()),
  qrDataUrl: Type.Optional(Type.String()),
  qrTerminal: Type.Optional(Type.String()),
  pairingCode: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  message: Type.String()
})
export type InitializeReply = Static<typeof InitializeReply>

export const LogoutReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, message: Type.String() })
export type LogoutReply = Static<typeof LogoutReply>

export const SessionsList = Type.Object({
  success: Type.Literal(true),
  count: Type.Number(),
  sessions: Type.Array(Type.Object({
    companyId: CompanyId,
    desired: Type.String(),
    connected: Type.Boolean(),
    status: Type.String(),
    holder: Type.Union([Type.String(), Type.Null()]),
    epoch: Type.Union([Type.Number(), Type.Null()]),
    health: Type.String({ description: 'healthy | unhealthy | unknown' }),
    phoneNumber: Type.Union([Type.String(), Type.Null()], { description: 'The linked phone, as the holder knows it' }),
    lastActivity: Type.Union([Type.String(), Type.Null()]),
    lastError: Type.Union([SessionProblem, Type.Null()])
  })),
  metrics: Type.Object({ totalSessions: Type.Number(), activeConnections: Type.Number() }),
  next: Type.Union([CompanyId, Type.Null()], { description: 'Pass as `after` for the next page; null on the last one' })
})
export type SessionsList = Static<typeof SessionsList>

export const BudgetReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  messages: Type.Object({
    left: Type.Integer({ description: 'Messages (of any kind, reactions included) the company may send now' }),
    perMinute: Type.Integer({ description: 'The budget, refilled evenly over a minute' })
  }),
  reactionsPerMinutePerRecipient: Type.Integer()
})
export type BudgetReply = Static<typeof BudgetReply>

/** A page of the session list: up to `limit` companies (100 by default) after the company `after`. */
export const SessionsListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  after: Type.Optional(CompanyId)
})
export type SessionsListQuery = Static<typeof SessionsListQuery>

export const EventsQuery = Type.Object({
  companyId: CompanyId,
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Replay every event after this stream sequence' })),
  ticket: Type.Optional(Type.String({ maxLength: 128, description: 'A ticket from POST /api/whatsapp/events/ticket (browsers)' }))
})
export type EventsQuery = Static<typeof EventsQuery>
