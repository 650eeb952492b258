import type { FastifyInstance } from 'fastify'
import { ErrorCode, type ChatsPage, type ChatsQuery } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { Chat } from '../session-pool/index.ts'
import { stateOf, type ChatStateStore } from './store.ts'

const DEFAULT_LIMIT = 20

/** How the history names a chat (conversations' chat list): a group by its JID, a person by phone JID when known, else by LID. */
export function chatKeyOf (chat: Chat): string {
  if (chat.group) return chat.jid
  return chat.phone ? `${chat.phone}@s.whatsapp.net` : chat.jid
}

/**
 * A page of the company's chats: those of the history (each with a message within its retention),
 * latest message first, each with its stored state and how many messages came in since it was last
 * read, marked read, written in or deleted. A deleted chat shows again once a message comes after.
 */
export async function listChats (app: FastifyInstance, store: ChatStateStore, companyId: string, query: ChatsQuery): Promise<ChatsPage> {
  const limit = query.limit ?? DEFAULT_LIMIT
  const chats = await app.conversations.chats(companyId, {
    limit: limit + 1, before: cursorOf(query.before), hidden: await store.cleared(companyId)
  })
  const shown = chats.slice(0, limit)
  const stored = new Map((await store.get(companyId, shown.map(({ chat }) => chat))).map((state) => [state.chat, state]))
  const latest = (...times: (Date | null | undefined)[]) =>
    times.reduce<Date | null>((max, time) => (time && (!max || time > max) ? time : max), null)
  const unread = await app.conversations.receivedAfter(companyId, shown.map(({ chat, lastOutboundAt }) => ({
    chat, after: latest(stored.get(chat)?.readAt, stored.get(chat)?.clearedAt, lastOutboundAt)
  })))
  const names = await app.conversations.namesOf(companyId, shown.map(({ chat }) => chat))
  const last = shown.at(-1)
  return {
    success: true,
    companyId,
    chats: shown.map(({ chat, lastMessage }) => ({
      ...stateOf(chat, stored.get(chat)),
      name: names.get(chat) ?? null,
      lastMessage,
      unreadCount: unread.get(chat) ?? 0
    })),
    next: chats.length > limit && last ? `${Date.parse(last.lastMessage.timestamp)}:${last.lastMessage.messageId}` : null
  }
}

/** `before`: the `next` of a page (`<ms>:<messageId>` of its last chat's latest message). */
function cursorOf (before: string | undefined): { at: Date, id: string } | undefined {
  if (!before) return undefined
  const [ms, ...id] = before.split(':')
  if (!/^\d+$/.test(ms) || id.length === 0) throw new GatewayError(ErrorCode.VALIDATION_ERROR, '`before` is the `next` of a page')
  return { at: new Date(Number(ms)), id: id.join(':') }
}
