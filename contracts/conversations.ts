import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'
import { IdempotencyKey, MAX_MESSAGE_ID_LENGTH, MAX_MESSAGE_LENGTH } from './sessions.ts'
import { InboundMedia, MediaKind, UnavailableMedia } from './media.ts'
import { ContactCard, Location } from './content.ts'
import { HistoryMedia } from './history.ts'

const Phone = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The chat: a phone (any notation), a phone JID, a LID JID (`…@lid`), or a group\'s JID (`…@g.us`)'
})
const MessageId = Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH })

/**
 * Where an outbound message is. It only moves forward: accepted → server_ack → delivered → read
 * (→ played, for voice), or to `failed` while WhatsApp has not delivered it.
 */
export const DELIVERY_STATES = ['accepted', 'server_ack', 'delivered', 'read', 'played', 'failed'] as const
export type DeliveryState = (typeof DELIVERY_STATES)[number]
export const DeliveryState = Type.Union([
  Type.Literal('accepted'), Type.Literal('server_ack'), Type.Literal('delivered'), Type.Literal('read'), Type.Literal('played'),
  Type.Literal('failed')
])

const ORDER: Record<DeliveryState, number> = { accepted: 0, server_ack: 1, delivered: 2, read: 3, played: 4, failed: 5 }

/** Whether a message in state `from` may move to `to`: forward only, and a failure only before delivery. */
export function advances (from: DeliveryState | undefined, to: DeliveryState): boolean {
  if (from === undefined) return true
  if (from === 'failed') return false
  if (to === 'failed') return ORDER[from] < ORDER.delivered
  return ORDER[to] > ORDER[from]
}

export const ReadRequest = Type.Object({
  phone: Phone,
  messageIds: Type.Array(MessageId, { minItems: 1, maxItems: 100, description: 'Messages of that chat to mark read (read receipts)' })
})
export type ReadRequest = Static<typeof ReadRequest>

export const PRESENCES = ['composing', 'recording', 'paused', 'available', 'unavailable'] as const
export const PresenceRequest = Type.Object({
  presence: Type.Union([
    Type.Literal('composing'), Type.Literal('recording'), Type.Literal('paused'), Type.Literal('available'), Type.Literal('unavailable')
  ], { description: '`composing`, `recording`, `paused` in a chat (`phone`); `available`, `unavailable` for the account' }),
  phone: Type.Optional(Phone)
})
export type PresenceRequest = Static<typeof PresenceRequest>

export const MAX_NUMBER_CHECKS = 50
export const NumberCheckRequest = Type.Object({
  phones: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: MAX_NUMBER_CHECKS })
})
export type NumberCheckRequest = Static<typeof NumberCheckRequest>

export const NumberCheckReply = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  results: Type.Array(Type.Object({
    input: Type.String(),
    phone: Type.String({ description: 'E.164 digits' }),
    exists: Type.Boolean(),
    jid: Type.Union([Type.String(), Type.Null()]),
    lid: Type.Union([Type.String(), Type.Null()]),
    cached: Type.Boolean()
  }))
})
export type NumberCheckReply = Static<typeof NumberCheckReply>

export const EditRequest = Type.Object({
  phone: Phone,
  messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH, description: 'A text this company sent' }),
  text: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_LENGTH }),
  idempotencyKey: Type.Optional(IdempotencyKey)
})
export type EditRequest = Static<typeof EditRequest>

export const DeleteRequest = Type.Object({
  phone: Phone,
  messageId: Type.String({ minLength: 1, maxLength: MAX_MESSAGE_ID_LENGTH, description: 'A message this company sent' }),
  idempotencyKey: Type.Optional(IdempotencyKey)
})
export type DeleteRequest = Static<typeof DeleteRequest>

export const MESSAGE_KINDS = ['text', 'media', 'location', 'contact', 'reaction', 'edit', 'delete', 'poll', 'other'] as const
export type MessageKind = (typeof MESSAGE_KINDS)[number]

/** A message as the history keeps it. */
export const MessageRecord = Type.Object({
  messageId: Type.String(),
  direction: Type.Union([Type.Literal('in'), Type.Literal('out')]),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'E.164 digits, when known' }),
  lid: Type.Union([Type.String(), Type.Null()], { description: 'The contact\'s LID JID, when known' }),
  groupId: Type.Optional(Type.String({
    description: 'In a group: its JID; `phone` and `lid` are the participant who wrote (null: the company)'
  })),
  kind: Type.String({ description: MESSAGE_KINDS.join(' | ') }),
  text: Type.Union([Type.String(), Type.Null()]),
  media: Type.Optional(Type.Union([
    InboundMedia, UnavailableMedia, HistoryMedia, Type.Object({ kind: MediaKind, objectId: Type.String() })
  ])),
  location: Type.Optional(Location),
  contact: Type.Optional(ContactCard),
  poll: Type.Optional(Type.Object({
    question: Type.String(), options: Type.Array(Type.String()), multipleAnswers: Type.Boolean()
  }, { description: 'A poll the company sent (its tally: GET …/messages/{messageId}/poll)' })),
  quotedMessageId: Type.Union([Type.String(), Type.Null()]),
  state: Type.Union([DeliveryState, Type.Null()], { description: 'Outbound messages only' }),
  failure: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  edited: Type.Boolean(),
  deleted: Type.Boolean(),
  timestamp: Type.String(),
  updatedAt: Type.String()
})
export type MessageRecord = Static<typeof MessageRecord>

export const MessagesQuery = Type.Object({
  chat: Type.Optional(Phone),
  before: Type.Optional(Type.String({ maxLength: 200, description: 'The `next` of the previous page' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 }))
})
export type MessagesQuery = Static<typeof MessagesQuery>

export const MessagesPage = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  messages: Type.Array(MessageRecord),
  next: Type.Union([Type.String(), Type.Null()])
})
export type MessagesPage = Static<typeof MessagesPage>

export const MessageReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId, message: MessageRecord })
export type MessageReply = Static<typeof MessageReply>

export const MessageParams = Type.Object({ companyId: CompanyId, messageId: MessageId })
export type MessageParams = Static<typeof MessageParams>

export const MessageRequest = Type.Object({ messageId: MessageId })
export type MessageRequest = Static<typeof MessageRequest>

export const ChatReply = Type.Object({ success: Type.Literal(true), companyId: CompanyId })
export type ChatReply = Static<typeof ChatReply>
