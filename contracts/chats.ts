import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'
import { MessageRecord } from './conversations.ts'

/** The disappearing-messages timers WhatsApp offers: off, 24 hours, 7 days, 90 days. */
export const DISAPPEARING_TIMERS = [0, 86_400, 604_800, 7_776_000] as const

const ChatName = Type.String({
  minLength: 1,
  maxLength: 80,
  description: 'The chat: a phone in any notation, a phone JID, a LID JID (`…@lid`) or a group JID (`…@g.us`)'
})
const ChatJid = Type.String({ description: 'The chat\'s JID: `<digits>@s.whatsapp.net`, `<lid>@lid` or `<group>@g.us`' })
const MutedUntil = Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
  description: 'Muted until this time (ISO 8601); null: not muted'
})
const DisappearingSeconds = Type.Union(DISAPPEARING_TIMERS.map((seconds) => Type.Literal(seconds)), {
  description: 'Disappearing messages timer in seconds: 0 (off), 86400 (24 h), 604800 (7 days), 7776000 (90 days)'
})

export const ChatParams = Type.Object({ companyId: CompanyId, chat: ChatName })
export type ChatParams = Static<typeof ChatParams>

/** A holder command's body names the chat; over HTTP it comes from the path. */
export const ChatUpdateRequest = Type.Object({
  chat: ChatName,
  archived: Type.Optional(Type.Boolean({ description: 'Archive (true) or unarchive (false)' })),
  pinned: Type.Optional(Type.Boolean({ description: 'Pin to the top (true) or unpin (false); WhatsApp pins 3 chats at most' })),
  mutedUntil: Type.Optional(MutedUntil),
  read: Type.Optional(Type.Boolean({ description: 'Mark read (true) or unread (false), on every device of the number' })),
  disappearingSeconds: Type.Optional(DisappearingSeconds)
}, { additionalProperties: false })
export type ChatUpdateRequest = Static<typeof ChatUpdateRequest>

export const ChatRequest = Type.Object({ chat: ChatName }, { additionalProperties: false })
export type ChatRequest = Static<typeof ChatRequest>

/** A chat's state as the company's number shares it between its devices. */
export const ChatState = Type.Object({
  chat: ChatJid,
  archived: Type.Boolean(),
  pinned: Type.Boolean(),
  mutedUntil: MutedUntil,
  markedUnread: Type.Boolean({ description: 'Marked unread by hand (WhatsApp shows a dot without a count)' }),
  disappearingSeconds: Type.Integer({ minimum: 0, description: 'Disappearing messages timer; 0: off' })
})
export type ChatState = Static<typeof ChatState>

export const ChatStateReply = Type.Object({ success: Type.Literal(true), state: ChatState })
export type ChatStateReply = Static<typeof ChatStateReply>

export const ChatDeletedReply = Type.Object({ success: Type.Literal(true), chat: ChatJid })
export type ChatDeletedReply = Static<typeof ChatDeletedReply>

export const ChatsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Chats per page (default 20)' })),
  before: Type.Optional(Type.String({ maxLength: 200, description: 'The `next` of the previous page' }))
}, { additionalProperties: false })
export type ChatsQuery = Static<typeof ChatsQuery>

export const ChatSummary = Type.Object({
  ...ChatState.properties,
  name: Type.Union([Type.String(), Type.Null()], {
    description: 'The contact\'s name as the phone saved it (else as they gave it), or the group\'s subject, when known'
  }),
  lastMessage: MessageRecord,
  unreadCount: Type.Integer({ minimum: 0, description: 'Messages received after the chat was last read (or last written in)' })
})
export type ChatSummary = Static<typeof ChatSummary>

export const ChatsPage = Type.Object({
  success: Type.Literal(true),
  companyId: CompanyId,
  chats: Type.Array(ChatSummary),
  next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last' })
})
export type ChatsPage = Static<typeof ChatsPage>

export const ChatUpdateEventData = Type.Object({
  chat: ChatJid,
  archived: Type.Optional(Type.Boolean()),
  pinned: Type.Optional(Type.Boolean()),
  mutedUntil: Type.Optional(MutedUntil),
  read: Type.Optional(Type.Boolean({ description: 'Marked read (true) or unread (false)' })),
  deleted: Type.Optional(Type.Literal(true, { description: 'The chat was deleted' })),
  disappearingSeconds: Type.Optional(Type.Integer({ minimum: 0, description: 'The disappearing timer changed (0: off)' }))
}, {
  description: 'A chat changed on another device of the number (its phone, WhatsApp Web) or by the contact (its timer): only what changed'
})
export type ChatUpdateEventData = Static<typeof ChatUpdateEventData>
