import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, ChatDeletedReply, ChatParams, ChatRequest, ChatsPage, ChatsQuery, ChatStateReply, ChatUpdateRequest, CompanyParams,
  CONTROL_SCOPES, ErrorCode, type ChatUpdateRequest as ChatUpdate
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import {
  chatOf, declareHolderCommand, WhatsAppRefusal, type ChatChange, type ChatEvent, type LastMessageRef, type WaSocket
} from '../session-pool/index.ts'
import { ChatStateStore, chatMigrations, ChatStateSchema, stateOf, type StateChange } from './store.ts'
import { chatKeyOf, listChats } from './list.ts'
import { eventDataOf } from './events.ts'

export const entities = [ChatStateSchema]
export const migrations = chatMigrations

const TAGS = ['chats']
const BASE = '/api/whatsapp/sessions/:companyId/chats'

/**
 * Chat state: archive, pin, mute, read or unread, delete and the disappearing timer, through the
 * company's connection (WhatsApp's app-state sync, so every device of the number sees it); changes
 * other devices make become `chat_update` events. The state is kept in PostgreSQL, and the chat list
 * joins it with the conversations plugin's history (last message, unread count).
 */
export default fp(async (app) => {
  const store = new ChatStateStore(() => app.orm.em.fork())

  const connection = (companyId: string) => {
    const socket = app.sessionPool.get(companyId)?.socket
    if (!socket) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`)
    return socket
  }
  /** The chat a command names: where WhatsApp takes the change, and the history's name for it. */
  const resolve = async (companyId: string, name: string) => {
    const chat = await chatOf(app, companyId, name)
    return { jid: chat.jid, key: chatKeyOf(chat) }
  }
  /** What app-state actions name as the chat's latest message (the range they cover), from the history. */
  const lastMessageOf = async (companyId: string, key: string): Promise<LastMessageRef | undefined> => {
    const last = await app.conversations.latestIn(companyId, key)
    if (!last) return undefined
    // An inbound group message is named with its writer.
    const writer = last.lid ?? (last.phone ? app.phone.toJid(last.phone) : undefined)
    const participant = last.groupId && last.direction === 'in' ? writer : undefined
    return { id: last.messageId, fromMe: last.direction === 'out', timestamp: Math.floor(Date.parse(last.timestamp) / 1000), participant }
  }
  const changing = async (socket: WaSocket, jid: string, change: ChatChange, last?: LastMessageRef) => {
    try {
      await socket.chats.modify(jid, change, last)
    } catch (err) {
      if (!(err instanceof WhatsAppRefusal)) throw err
      throw new GatewayError(ErrorCode.WHATSAPP_REFUSED, `WhatsApp refused (${err.code}): ${err.message}`)
    }
  }

  declareHolderCommand(app, {
    name: 'chat-update',
    request: ChatUpdateRequest,
    reply: ChatStateReply,
    http: {
      method: 'PATCH',
      url: `${BASE}/:chat`,
      params: ChatParams,
      operationId: 'updateChat',
      tags: TAGS,
      summary: 'Archive or unarchive, pin or unpin, mute until a time or unmute, mark read or unread, set the disappearing' +
        ' timer: every device of the number sees it; answers the chat\'s state then',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const changes = changesOf(request)
      const socket = connection(companyId)
      const { jid, key } = await resolve(companyId, request.chat)
      const needsRange = changes.some(({ change }) => change?.kind === 'archive' || change?.kind === 'read')
      const last = needsRange ? await lastMessageOf(companyId, key) : undefined
      let stored
      for (const { change, stored: apply } of changes) {
        if (change) await changing(socket, jid, change, last)
        else await socket.chats.setDisappearing(jid, apply.disappearingSeconds!)
        stored = await store.apply(companyId, key, apply)
      }
      return { success: true as const, state: stateOf(key, stored) }
    }
  })

  declareHolderCommand(app, {
    name: 'chat-delete',
    request: ChatRequest,
    reply: ChatDeletedReply,
    http: {
      method: 'DELETE',
      url: `${BASE}/:chat`,
      params: ChatParams,
      operationId: 'deleteChat',
      tags: TAGS,
      summary: 'Delete the chat on every device of the number (the gateway\'s history keeps its messages; the chat list shows' +
        ' it again when a new message comes)',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const socket = connection(companyId)
      const { jid, key } = await resolve(companyId, request.chat)
      await changing(socket, jid, { kind: 'delete' }, await lastMessageOf(companyId, key))
      await store.apply(companyId, key, { deleted: true })
      return { success: true as const, chat: key }
    }
  })

  const list = (companyId: string, query: ChatsQuery) => listChats(app, store, companyId, query)
  app.withTypeProvider<TypeBoxTypeProvider>().get(BASE, {
    config: { access: { scope: CONTROL_SCOPES['chats.list'], company: 'params' } },
    schema: {
      operationId: 'chats',
      tags: TAGS,
      summary: 'The chats, latest activity first: archived, pinned, muted until, marked unread, disappearing timer, the last' +
        ' message and how many came in since the chat was last read',
      params: CompanyParams,
      querystring: ChatsQuery,
      response: { 200: ChatsPage }
    }
  }, async (request) => list(request.params.companyId, request.query))
  const listing = app.bus.handle(app.subjects.chats('*'),
    { request: ChatsQuery, reply: ChatsPage, queue: ANY_REPLICA_QUEUE },
    (query, context) => list(context.companyId, query))
  app.addHook('onClose', async () => { await listing.close() })

  // What another device of the number did (or a contact's timer) is stored, then published, under the
  // session's lease; one batch after the other, so a chat's changes land and are told in their order.
  app.sessionPool.onSocket((socket, { companyId, emit }) => {
    let applying = Promise.resolve()
    const apply = async (event: ChatEvent) => {
      const phone = event.jid.endsWith('@lid') ? await app.conversations.phoneOfLid(companyId, event.jid) : undefined
      const key = phone ? app.phone.toJid(phone) : event.jid
      const { data, change } = eventDataOf(key, event)
      // A database outage loses the stored state of this change, not its event.
      await store.apply(companyId, key, change)
        .catch((err: unknown) => app.log.error({ err, companyId }, 'chat state change not stored'))
      emit('chat_update', data)
    }
    socket.on('chats', (events) => {
      applying = applying.then(async () => { for (const event of events) await apply(event) })
        .catch((err: unknown) => app.log.error({ err, companyId }, 'chat state change not published'))
    })
  })
}, { name: 'chats', dependencies: ['config', 'bus', 'db', 'events', 'phone', 'ownership', 'session-pool', 'conversations'] })

/** The request's changes in WhatsApp's order, each with what it stores; at least one. */
function changesOf (request: ChatUpdate): { change?: ChatChange, stored: StateChange }[] {
  const changes: { change?: ChatChange, stored: StateChange }[] = []
  if (request.archived !== undefined) {
    changes.push({ change: { kind: 'archive', archived: request.archived }, stored: { archived: request.archived } })
  }
  if (request.pinned !== undefined) changes.push({ change: { kind: 'pin', pinned: request.pinned }, stored: { pinned: request.pinned } })
  if (request.mutedUntil !== undefined) {
    const until = request.mutedUntil === null ? null : Date.parse(request.mutedUntil)
    if (until !== null && until <= Date.now()) throw new GatewayError(ErrorCode.VALIDATION_ERROR, '`mutedUntil` is a time to come')
    changes.push({ change: { kind: 'mute', until }, stored: { mutedUntil: until === null ? null : new Date(until) } })
  }
  if (request.read !== undefined) changes.push({ change: { kind: 'read', read: request.read }, stored: { read: request.read } })
  if (request.disappearingSeconds !== undefined) changes.push({ stored: { disappearingSeconds: request.disappearingSeconds } })
  if (changes.length === 0) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'name at least one of archived, pinned, mutedUntil, read, disappearingSeconds')
  }
  return changes
}
