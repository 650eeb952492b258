import type { FastifyBaseLogger } from 'fastify'
import { userOfJid, type EventData } from '../../contracts/index.ts'
import type { Conversations, HistoryRecord } from '../conversations/index.ts'
import type { HistoryChunk, HistoryMessage, HistoryNotice, HistoryPort } from '../session-pool/index.ts'
import type { HistoryStore } from './store.ts'

/** Rows per insert at most: a slice of a chunk (a few hundred messages) is one statement, a longer conversation a few. */
const ROWS_PER_INSERT = 1_000
const DAY_MS = 24 * 60 * 60 * 1000

/** What importing needs of the session that was told of a chunk. */
export interface ImportSource {
  companyId: string
  /** The session's connection's history, while one is open (a reconnect opens another). */
  history: () => HistoryPort | undefined
  /** Publishes under the session's lease (nothing once it stopped). */
  publish: (data: EventData<'history_sync'>) => void
  /** Whether this replica still holds the company in that session. */
  holds: () => boolean
}

/** A person's chat by phone JID, or a LID's with its phone (from the chunk's map). */
function addressOf (jid: string, phoneOf: Map<string, string>, lidOf: Map<string, string>) {
  if (jid.endsWith('@lid')) {
    const phoneJid = phoneOf.get(jid)
    return { phone: phoneJid ? userOfJid(phoneJid) : null, lid: jid }
  }
  if (jid.endsWith('@s.whatsapp.net')) return { phone: userOfJid(jid), lid: lidOf.get(jid) ?? null }
  return { phone: null, lid: null }
}

/** A history message as the conversations plugin keeps it (built by assignment: it runs for every message of a sync). */
export function recordOf (message: HistoryMessage, phoneOf: Map<string, string>, lidOf: Map<string, string>): HistoryRecord {
  const group = message.from.endsWith('@g.us')
  const address = group
    ? (message.fromMe || !message.participant
        ? NO_ADDRESS
        : addressOf(message.participantAlt ?? message.participant, phoneOf, lidOf))
    : addressOf(message.fromAlt && message.from.endsWith('@lid') && !phoneOf.has(message.from)
      ? message.fromAlt
      : message.from, phoneOf, lidOf)
  const data: Record<string, unknown> = {}
  if (message.text !== undefined) data.text = message.text
  if (message.media) data.media = { ...message.media, onDemand: true }
  if (message.location) data.location = message.location
  if (message.contact) data.contact = message.contact
  if (message.quotedMessageId) data.quotedMessageId = message.quotedMessageId
  const record: HistoryRecord = {
    messageId: message.id,
    direction: message.fromMe ? 'out' : 'in',
    phone: address.phone,
    lid: address.lid,
    groupId: group ? message.from : null,
    data,
    state: message.fromMe ? message.state ?? 'server_ack' : null,
    sentAt: new Date(message.timestamp * 1000)
  }
  if (message.mediaRef) record.mediaRef = message.mediaRef
  return record
}

const NO_ADDRESS = { phone: null, lid: null }

/** The name a chat goes by in the list: the group's JID, else the contact's phone JID, else its LID (as the history's chats are named). */
function listNameOf (jid: string, phoneOf: Map<string, string>): string {
  return jid.endsWith('@lid') ? phoneOf.get(jid) ?? jid : jid
}

/**
 * Imports the history chunks a company's phone sends, one chunk at a time per company (a chunk is
 * read whole, a few MB at most, and let go before the next): each is kept as told before it is
 * read, its messages go into the history in large inserts (one stored before is left alone), its
 * names and LID map too, and then it is marked imported, once, whichever holder gets there.
 */
export class HistoryImporter {
  readonly #store: HistoryStore
  readonly #conversations: Conversations
  readonly #log: FastifyBaseLogger
  /** Each company's queue: chunks are imported in the order they were told. */
  readonly #queues = new Map<string, Promise<void>>()
  /** Chunks queued, with the session to import them in: the newest one told of them (a restart's, a takeover's). */
  readonly #queued = new Map<string, ImportSource>()
  readonly #telling = new Map<string, Promise<void>>()

  constructor (store: HistoryStore, conversations: Conversations, log: FastifyBaseLogger) {
    this.#store = store
    this.#conversations = conversations
    this.#log = log
  }

  /**
   * The phone told of chunks: each is kept (a known one is not imported again), then imported in
   * turn. Notices are kept one telling after the other, so chunks queue in the order they were told.
   */
  async told (source: ImportSource, notices: HistoryNotice[]): Promise<void> {
    const previous = this.#telling.get(source.companyId) ?? Promise.resolve()
    const telling = previous.catch(() => {}).then(async () => {
      const fresh = await this.#store.told(source.companyId, notices)
      for (const notice of fresh) this.#enqueue(source, notice)
    })
    this.#telling.set(source.companyId, telling)
    try {
      await telling
    } finally {
      if (this.#telling.get(source.companyId) === telling) this.#telling.delete(source.companyId)
    }
  }

  /** A holder took the company: what its predecessors were told and did not import is imported now. */
  async resume (source: ImportSource): Promise<void> {
    for (const notice of await this.#store.pending(source.companyId)) this.#enqueue(source, notice)
  }

  /** Resolves once every chunk queued so far is imported (or given up). */
  async settled (companyId?: string): Promise<void> {
    const tellings = companyId ? [this.#telling.get(companyId)] : [...this.#telling.values()]
    await Promise.allSettled(tellings)
    const queues = companyId ? [this.#queues.get(companyId)] : [...this.#queues.values()]
    await Promise.all(queues)
  }

  #enqueue (source: ImportSource, notice: HistoryNotice): void {
    const key = `${source.companyId}/${notice.id}`
    // Queued already (by a session since replaced, say): it is imported once, in the newest session.
    const queued = this.#queued.has(key)
    this.#queued.set(key, source)
    if (queued) return
    const previous = this.#queues.get(source.companyId) ?? Promise.resolve()
    const next = previous.then(() => this.#importOne(this.#queued.get(key) ?? source, notice)).finally(() => this.#queued.delete(key))
    this.#queues.set(source.companyId, next)
    void next.finally(() => { if (this.#queues.get(source.companyId) === next) this.#queues.delete(source.companyId) })
  }

  async #importOne (source: ImportSource, notice: HistoryNotice): Promise<void> {
    const { companyId } = source
    // A replica that lost the company leaves the chunk pending: the new holder imports it. So does a
    // session between two connections: its next one resumes the chunks still pending.
    const history = source.holds() ? source.history() : undefined
    if (!history) return
    // A request for older messages asked for them: the link's age limit is for what the phone sends by itself.
    const since = history.settings.days === null || notice.syncType === 'on_demand' ? 0 : Date.now() - history.settings.days * DAY_MS
    let added = 0
    let chats = 0
    try {
      await history.read(notice, async (slice) => {
        added += await this.#write(companyId, slice, since)
        chats += slice.chats.length
      })
      if (!await this.#store.imported(companyId, notice.id, { chats, messages: added })) return
    } catch (err) {
      const retry = await this.#store.failed(companyId, notice.id).catch(() => false)
      this.#log.warn({ err, companyId, notice: notice.id, syncType: notice.syncType, retry }, 'a history chunk could not be imported')
      // Writing is idempotent: a chunk read again adds only what it did not add before.
      if (retry && source.holds()) this.#enqueueAgain(source, notice)
      return
    }
    const totals = await this.#store.state(companyId, history.settings.mode)
    source.publish({
      syncType: notice.syncType,
      chunk: notice.chunkOrder,
      progress: notice.progress,
      chats,
      messages: added,
      done: totals.state === 'done',
      ...(notice.requestId ? { requestId: notice.requestId } : {}),
      totals: { chunks: totals.chunks, chats: totals.chats, messages: totals.messages }
    })
  }

  #enqueueAgain (source: ImportSource, notice: HistoryNotice): void {
    setTimeout(() => this.#enqueue(source, notice), 1_000).unref()
  }

  /** Writes a slice's LID map, names and messages (those since `since`, ms); returns how many messages were new to the history. */
  async #write (companyId: string, chunk: HistoryChunk, since: number): Promise<number> {
    const phoneOf = new Map<string, string>()
    const lidOf = new Map<string, string>()
    for (const { lid, phone } of chunk.lids) {
      phoneOf.set(lid, phone)
      lidOf.set(phone, lid)
    }
    if (chunk.lids.length > 0) {
      await this.#conversations.learnLids(companyId, chunk.lids.map(({ lid, phone }) => ({ lid, phone: userOfJid(phone) })))
    }
    // A name the phone saved wins over the one a contact gave themselves (push name), which only fills a gap.
    const saved = [
      ...chunk.chats.filter((chat) => chat.name).map((chat) => ({ chat: listNameOf(chat.jid, phoneOf), name: chat.name! })),
      ...chunk.contacts.filter((contact) => contact.name)
        .map((contact) => ({ chat: listNameOf(contact.phone ?? contact.jid, phoneOf), name: contact.name! }))
    ]
    const pushed = chunk.contacts.filter((contact) => !contact.name && contact.notify)
      .map((contact) => ({ chat: listNameOf(contact.phone ?? contact.jid, phoneOf), name: contact.notify! }))
    await this.#store.chats(companyId, [...new Set(chunk.chats.map((chat) => listNameOf(chat.jid, phoneOf)))])
    await this.#conversations.nameChats(companyId, saved, { replace: true })
    await this.#conversations.nameChats(companyId, pushed, { replace: false })
    let added = 0
    let batch: HistoryRecord[] = []
    for (const message of chunk.messages) {
      if (message.timestamp * 1000 < since) continue
      batch.push(recordOf(message, phoneOf, lidOf))
      if (batch.length === ROWS_PER_INSERT) {
        added += await this.#conversations.importHistory(companyId, batch)
        batch = []
      }
    }
    added += await this.#conversations.importHistory(companyId, batch)
    return added
  }
}
