import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, CompanyParams, CONTROL_SCOPES, ErrorCode, isGroupJid, MessageParams, MessageReply, MessageRequest,
  MessagesPage, MessagesQuery, type DeliveryState, type MessageRecord
} from '../../contracts/index.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { GatewayError } from '../../core/errors.ts'
import { TokenBucket, type BucketState } from '../../core/token-bucket.ts'
import type { ConversationsOptions } from './settings.ts'
import { detailsOf, kindOf, LiveHistoryWriter } from './writer.ts'
import { ChatListQueries, type HistoryChat } from './chat-list.ts'
import { ContactIdentitySchema, conversationMigrations, MessageSchema } from './schema.ts'
import { ConversationStore, type HistoryColumns } from './store.ts'

export { settings, type ConversationsOptions } from './settings.ts'
export const entities = [MessageSchema, ContactIdentitySchema]
export const migrations = conversationMigrations

/** What the history knows of a message a send quotes, edits or deletes. */
export interface KnownMessage {
  messageId: string
  direction: 'in' | 'out'
  kind: string
  text: string | null
  sentAt: number
}

/** A message of the phone's history, as the history plugin imports it. */
export interface HistoryRecord {
  messageId: string
  direction: 'in' | 'out'
  phone: string | null
  lid: string | null
  groupId: string | null
  /** What it says, shaped as a `message` event's data: text, media, location, contact, quotedMessageId. */
  data: Record<string, unknown>
  state: DeliveryState | null
  sentAt: Date
  /** A file not fetched yet: what fetching it takes (kept until it is). */
  mediaRef?: unknown
}

/** The conversations plugin's public face. */
export interface Conversations {
  message: (companyId: string, messageId: string) => Promise<MessageRecord | undefined>
  /** Who a contact is: their phone (E.164 digits) for a LID JID, learned from WhatsApp. */
  phoneOfLid: (companyId: string, lid: string) => Promise<string | undefined>
  lidOfPhone: (companyId: string, phone: string) => Promise<string | undefined>
  learnLid: (companyId: string, lid: string, phone: string) => Promise<void>
  /** A number check's cached answer, if fresh. */
  cachedCheck: (companyId: string, phone: string) => { exists: boolean, lid: string | null } | undefined
  rememberCheck: (companyId: string, phone: string, answer: { exists: boolean, lid: string | null }) => void
  /** Takes `count` checks from the company's budget (NUMBER_CHECKS_PER_MINUTE), or throws RATE_LIMITED. */
  admitChecks: (companyId: string, count: number) => void
  markEdited: (companyId: string, messageId: string, text: string) => Promise<void>
  markDeleted: (companyId: string, messageId: string) => Promise<void>
  /**
   * The history's chats (for the chats plugin's list), latest message first, after `before` (the
   * latest message's time and id of the previous page's last chat); chats with nothing after their
   * `hidden` time (deleted then) are left out.
   */
  chats: (companyId: string, options: { limit: number, before?: { at: Date, id: string }, hidden: { chat: string, at: Date }[] }) =>
  Promise<HistoryChat[]>
  /** A chat's latest message (`chat`: its JID as the history names it, see HistoryChat). */
  latestIn: (companyId: string, chat: string) => Promise<MessageRecord | undefined>
  /** How many messages each chat received after a time (its read mark; all for null). */
  receivedAfter: (companyId: string, marks: { chat: string, after: Date | null }[]) => Promise<Map<string, number>>
  /** Many LID-phone pairs at once (a history chunk's map), as learnLid. */
  learnLids: (companyId: string, pairs: { lid: string, phone: string }[]) => Promise<void>
  /**
   * Names chats (`chat`: its JID as the chat list names it): `replace` for a name the phone saved or
   * a group's subject; otherwise (a push name) only where none is known.
   */
  nameChats: (companyId: string, names: { chat: string, name: string }[], options: { replace: boolean }) => Promise<void>
  namesOf: (companyId: string, chats: string[]) => Promise<Map<string, string>>
  /** The chat's oldest message in the history. */
  oldestIn: (companyId: string, chat: string) => Promise<MessageRecord | undefined>
  /**
   * Adds messages of the phone's history; one stored already (received live, imported before) is
   * left as it is, and one older than MESSAGE_RETENTION_DAYS is not kept. Returns how many were added.
   */
  importHistory: (companyId: string, records: HistoryRecord[]) => Promise<number>
  /** A history message's file not fetched yet: what fetching it takes. */
  historyMediaRef: (companyId: string, messageId: string) => Promise<unknown>
  /** The file of a history message was fetched: its description replaces the reference. */
  fetchedMedia: (companyId: string, messageId: string, media: Record<string, unknown>) => Promise<void>
  /** Waits until what was published so far is in the history (tests, shutdown). */
  flush: () => Promise<void>
  /** The phones (E.164 digits) of the company's chats with people in the history, the most recently active first. */
  contactPhones: (companyId: string, limit: number) => Promise<string[]>
}
export type { HistoryChat } from './chat-list.ts'

declare module 'fastify' {
  interface FastifyInstance {
    conversations: Conversations
  }
}

/**
 * Messages imported (a phone's history) after which PostgreSQL is asked to analyze the table: before
 * autovacuum gets to it, its plans for the chat list assume the table as small as before the import.
 */
const ANALYZE_AFTER_IMPORTED = 20_000
const RETENTION_SWEEP_MS = 3_600_000
const CHECK_CACHE_ENTRIES = 50_000
const MINUTE_MS = 60_000
/** A phone with no LID known is looked up in PostgreSQL again after this (another replica may have learned it). */
const NO_LID_RECHECK_MS = 60_000

/**
 * Recent messages in and out, in PostgreSQL: their text and details, what they reply to, their
 * delivery state (forward only), and who each contact is by phone and by LID. The holder writes
 * what it publishes (batched); any replica reads.
 */
export default fp<ConversationsOptions>(async (app, options) => {
  // Both run SQL of their own and nothing else: the root EntityManager's connection serves them. A fork
  // per statement (an EntityManager with its unit of work) was most of what a history import allocated.
  const store = new ConversationStore(() => app.orm.em)
  const chatList = new ChatListQueries(() => app.orm.em)
  const checks = new BoundedMap<string, { exists: boolean, lid: string | null, at: number }>(CHECK_CACHE_ENTRIES)
  const checkBudget = new TokenBucket(options.numberChecksPerMinute, MINUTE_MS)
  const budgets = new BoundedMap<string, BucketState>(CHECK_CACHE_ENTRIES)
  /** Edits and deletions sent lately, whose receipts are not about a message of the history. */
  const protocolMessages = new BoundedMap<string, true>(CHECK_CACHE_ENTRIES)
  /** `<companyId>/<chat>` → the contact's push name, as last stored: the same name again writes nothing. */
  const pushNames = new BoundedMap<string, string>(CHECK_CACHE_ENTRIES)
  /** `<companyId>/<lid>` → phone, as last stored: the same mapping again writes nothing. */
  const lids = new BoundedMap<string, string>(CHECK_CACHE_ENTRIES)
  /**
   * `<companyId>/<phone>` → its LID, or null for none known when it was looked up: every send to a
   * phone asks, and PostgreSQL is asked again for an unknown one only after NO_LID_RECHECK_MS.
   */
  const lidsByPhone = new BoundedMap<string, { lid: string | null, at: number }>(CHECK_CACHE_ENTRIES)
  const remember = (companyId: string, lid: string, phone: string) => {
    lids.set(`${companyId}/${lid}`, phone)
    lidsByPhone.set(`${companyId}/${phone}`, { lid, at: Date.now() })
  }

  const writer = new LiveHistoryWriter(store, app.log, { protocolMessages, pushNames, lids, remember })
  const flush = () => writer.flush()
  const sweep = setInterval(() => {
    store.forgetOlderThan(options.messageRetentionDays)
      .catch((err: unknown) => app.log.warn({ err }, 'old messages not deleted'))
  }, RETENTION_SWEEP_MS)
  sweep.unref()
  app.addHook('onClose', async () => {
    clearInterval(sweep)
    await writer.close()
  })

  app.events.onPublished((event) => { writer.take(event) })

  const retentionMs = options.messageRetentionDays * 24 * 60 * 60 * 1000
  let importedSinceAnalyze = 0
  const conversations: Conversations = {
    oldestIn: (companyId, chat) => chatList.oldest(companyId, chat),
    nameChats: (companyId, names, nameOptions) => store.name(companyId, names, nameOptions),
    namesOf: (companyId, chats) => store.namesOf(companyId, chats),
    learnLids: async (companyId, pairs) => {
      const fresh = pairs.filter(({ lid, phone }) => lids.get(`${companyId}/${lid}`) !== phone)
      await store.learnLids(companyId, fresh)
      for (const { lid, phone } of fresh) remember(companyId, lid, phone)
    },
    importHistory: async (companyId, records) => {
      // What this replica received live is written first: a message in both is then counted once, as live.
      await flush()
      const keptSince = Date.now() - retentionMs
      const columns: HistoryColumns = {
        messageIds: [],
        directions: [],
        phones: [],
        lids: [],
        groupIds: [],
        kinds: [],
        texts: [],
        details: [],
        quotedMessageIds: [],
        states: [],
        sentAtSeconds: [],
        mediaRefs: []
      }
      for (const record of records) {
        const sentAt = record.sentAt.getTime()
        if (sentAt < keptSince) continue
        const details = detailsOf(record.data)
        columns.messageIds.push(record.messageId)
        columns.directions.push(record.direction)
        columns.phones.push(record.phone)
        columns.lids.push(record.lid)
        columns.groupIds.push(record.groupId)
        columns.kinds.push(kindOf(record.data))
        columns.texts.push(typeof record.data.text === 'string' ? record.data.text : null)
        columns.details.push(details === null ? null : JSON.stringify(details))
        columns.quotedMessageIds.push(typeof record.data.quotedMessageId === 'string' ? record.data.quotedMessageId : null)
        columns.states.push(record.state)
        columns.sentAtSeconds.push(sentAt / 1000)
        columns.mediaRefs.push(record.mediaRef === undefined ? null : JSON.stringify(record.mediaRef))
      }
      const added = await store.importHistory(companyId, columns)
      importedSinceAnalyze += added
      if (importedSinceAnalyze >= ANALYZE_AFTER_IMPORTED) {
        importedSinceAnalyze = 0
        store.analyze().catch((err: unknown) => app.log.warn({ err }, 'the message history was not analyzed after an import'))
      }
      return added
    },
    historyMediaRef: (companyId, messageId) => store.mediaRefOf(companyId, messageId),
    fetchedMedia: (companyId, messageId, media) => store.fetchedMedia(companyId, messageId, media),
    // What this replica published so far is in the history first: a reply may quote a message just received.
    message: async (companyId, messageId) => {
      await flush()
      return store.get(companyId, messageId)
    },
    phoneOfLid: async (companyId, lid) => lids.get(`${companyId}/${lid}`) ?? await store.phoneOfLid(companyId, lid),
    lidOfPhone: async (companyId, phone) => {
      const key = `${companyId}/${phone}`
      const known = lidsByPhone.get(key)
      if (known && (known.lid !== null || Date.now() - known.at < NO_LID_RECHECK_MS)) return known.lid ?? undefined
      const lid = await store.lidOfPhone(companyId, phone) ?? null
      lidsByPhone.set(key, { lid, at: Date.now() })
      return lid ?? undefined
    },
    learnLid: async (companyId, lid, phone) => {
      if (lids.get(`${companyId}/${lid}`) === phone) return
      remember(companyId, lid, phone)
      writer.add({ lid: { companyId, lid, phone } })
      await flush()
    },
    cachedCheck: (companyId, phone) => {
      const known = checks.get(`${companyId}/${phone}`)
      return known && Date.now() - known.at < options.numberCheckCacheMs ? { exists: known.exists, lid: known.lid } : undefined
    },
    rememberCheck: (companyId, phone, answer) => { checks.set(`${companyId}/${phone}`, { ...answer, at: Date.now() }) },
    admitChecks: (companyId, count) => {
      let state = budgets.get(companyId)
      for (let i = 0; i < count; i++) {
        const taken = checkBudget.take(state, Date.now())
        if (!taken.taken) {
          throw new GatewayError(ErrorCode.RATE_LIMITED,
            `number checks are limited to ${options.numberChecksPerMinute} per minute per company (bulk checks get accounts restricted)`,
            { retryAfter: Math.ceil((taken.retryAfterMs * (count - i)) / 1000) })
        }
        state = taken.state
      }
      if (state) budgets.set(companyId, state)
    },
    markEdited: async (companyId, messageId, text) => { await flush(); await store.markEdited(companyId, messageId, text) },
    markDeleted: async (companyId, messageId) => { await flush(); await store.markDeleted(companyId, messageId) },
    chats: async (companyId, options) => { await flush(); return chatList.page(companyId, options) },
    receivedAfter: (companyId, marks) => chatList.receivedAfter(companyId, marks),
    latestIn: async (companyId, chat) => { await flush(); return chatList.latest(companyId, chat) },
    flush,
    contactPhones: async (companyId, limit) => { await flush(); return store.contactPhones(companyId, limit) }
  }
  app.decorate('conversations', conversations)

  const page = async (companyId: string, query: MessagesQuery): Promise<MessagesPage> => {
    await flush()
    const limit = query.limit ?? 50
    let contact: { phone?: string | null, lid?: string | null, groupId?: string } = {}
    if (query.chat && isGroupJid(query.chat)) {
      contact = { groupId: query.chat }
    } else if (query.chat) {
      const lid = query.chat.endsWith('@lid') ? query.chat : undefined
      const phone = lid ? await store.phoneOfLid(companyId, lid) ?? null : app.phone.normalize(query.chat)
      contact = { phone, lid: lid ?? (phone ? await store.lidOfPhone(companyId, phone) ?? null : null) }
    }
    const messages = await store.page(companyId, { ...contact, before: cursorOf(query.before), limit: limit + 1 })
    const more = messages.length > limit
    const shown = messages.slice(0, limit)
    const last = shown.at(-1)
    return {
      success: true,
      companyId,
      messages: shown,
      next: more && last ? `${Date.parse(last.timestamp)}:${last.messageId}` : null
    }
  }
  const one = async (companyId: string, messageId: string): Promise<MessageReply> => {
    await flush()
    const message = await store.get(companyId, messageId)
    if (!message) throw new GatewayError(ErrorCode.NOT_FOUND, `no message ${messageId} in the history of ${companyId}`)
    return { success: true, companyId, message }
  }

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/messages', {
    config: { access: { scope: CONTROL_SCOPES['messages.list'], company: 'params' } },
    schema: {
      operationId: 'messages',
      tags: ['messages'],
      summary: 'Recent messages in and out, newest first (of one contact with `chat`: by phone or LID alike), with delivery states',
      params: CompanyParams,
      querystring: MessagesQuery,
      response: { 200: MessagesPage }
    }
  }, async (request) => page(request.params.companyId, request.query))
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/messages/:messageId', {
    config: { access: { scope: CONTROL_SCOPES['messages.get'], company: 'params' } },
    schema: {
      operationId: 'message',
      tags: ['messages'],
      summary: 'One message and its delivery state (accepted, server_ack, delivered, read, played, or failed with its reason)',
      params: MessageParams,
      response: {
        200: MessageReply, 404: errorAnswer('No such message in the history, or a company the credential does not cover (`NOT_FOUND`)')
      }
    }
  }, async (request) => one(request.params.companyId, request.params.messageId))

  const listing = app.bus.handle(app.subjects.messages('*', 'list'),
    { request: MessagesQuery, reply: MessagesPage, queue: ANY_REPLICA_QUEUE },
    (query, context) => page(context.companyId, query))
  const getting = app.bus.handle(app.subjects.messages('*', 'get'),
    { request: MessageRequest, reply: MessageReply, queue: ANY_REPLICA_QUEUE },
    (request, context) => one(context.companyId, request.messageId))
  app.addHook('onClose', async () => { await Promise.all([listing.close(), getting.close()]) })
}, { name: 'conversations', dependencies: ['config', 'bus', 'db', 'events', 'phone'] })

/** `before`: the `next` of a page (`<ms>:<messageId>`), or an ISO time. */
function cursorOf (before: string | undefined): { at: Date, id: string } | undefined {
  if (!before) return undefined
  const [ms, ...id] = before.split(':')
  if (/^\d+$/.test(ms) && id.length > 0) return { at: new Date(Number(ms)), id: id.join(':') }
  const at = Date.parse(before)
  if (!Number.isFinite(at)) throw new GatewayError(ErrorCode.VALIDATION_ERROR, '`before` is the `next` of a page or an ISO time')
  return { at: new Date(at), id: '\uffff' }
}
