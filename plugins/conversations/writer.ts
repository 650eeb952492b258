import type { FastifyBaseLogger } from 'fastify'
import { advances, userOfJid, type DeliveryState } from '../../contracts/index.ts'
import type { BoundedMap } from '../../core/bounded-map.ts'
import type { EventEnvelope } from '../../contracts/index.ts'
import type { ConversationStore, NewMessage, Receipt } from './store.ts'

const FLUSH_EVERY_MS = 50
const MAX_BATCH = 500

/** The delivery state a `message_status` event reports. */
const STATE_OF: Record<string, DeliveryState> = {
  server: 'server_ack',
  delivered: 'delivered',
  read: 'read',
  played: 'played',
  error: 'failed'
}

/** A write of the holder's live traffic, in the order it published. */
export type PendingWrite = { insert: NewMessage } | { advance: Receipt } |
{ lid: { companyId: string, lid: string, phone: string } } | { forget: { companyId: string, messageId: string } } |
{ name: { companyId: string, chat: string, name: string } }

/** What the plugin's lookups and this writer share: what is stored already, so the same again writes nothing. */
export interface WrittenCaches {
  /** Edits and deletions sent lately, whose receipts are not about a message of the history. */
  protocolMessages: BoundedMap<string, true>
  /** `<companyId>/<chat>` → the contact's push name, as last stored. */
  pushNames: BoundedMap<string, string>
  /** `<companyId>/<lid>` → phone, as last stored. */
  lids: BoundedMap<string, string>
  /** Records a LID-phone pair in the lookups' caches. */
  remember: (companyId: string, lid: string, phone: string) => void
}

/**
 * The holder's messages, receipts and contacts as it publishes them, written to the history in
 * batches (every FLUSH_EVERY_MS, at most MAX_BATCH at a time): inserts first, then the state changes
 * in their order.
 */
export class LiveHistoryWriter {
  readonly #store: ConversationStore
  readonly #log: FastifyBaseLogger
  readonly #caches: WrittenCaches
  readonly #pending: PendingWrite[] = []
  readonly #timer: NodeJS.Timeout
  #flushing: Promise<void> = Promise.resolve()

  constructor (store: ConversationStore, log: FastifyBaseLogger, caches: WrittenCaches) {
    this.#store = store
    this.#log = log
    this.#caches = caches
    this.#timer = setInterval(() => { if (this.#pending.length > 0) void this.flush() }, FLUSH_EVERY_MS)
    this.#timer.unref()
  }

  /** A write to make in its turn with the others. */
  add (write: PendingWrite): void {
    this.#pending.push(write)
  }

  /** Waits until everything added so far is written. */
  flush (): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushNow())
    return this.#flushing
  }

  /** Stops the timer and writes what is left. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    await this.flush()
  }

  /** What an event this replica published adds to the history (messages, receipts, contacts). */
  take (event: EventEnvelope): void {
    const data = event.data as Record<string, unknown>
    const companyId = event.companyId
    const text = (value: unknown) => (typeof value === 'string' ? value : null)
    const messageId = text(data.messageId)
    if (!messageId) return
    if (event.type === 'message') {
      const phone = text(data.phone)
      const lid = text(data.lid)
      this.#pending.push({
        insert: {
          companyId,
          messageId,
          direction: 'in',
          phone,
          lid,
          groupId: text(data.groupId),
          kind: kindOf(data),
          text: text(data.text),
          details: detailsOf(data),
          quotedMessageId: text(data.quotedMessageId),
          state: null,
          // The time the holder published it (ms): the history's order. WhatsApp's own is in seconds.
          sentAt: dateOf(event.timestamp),
          epoch: event.epoch
        }
      })
      const pushName = text(data.pushName)
      const chat = phone ? `${phone}@s.whatsapp.net` : lid
      if (pushName && chat && !data.groupId && this.#caches.pushNames.get(`${companyId}/${chat}`) !== pushName) {
        this.#caches.pushNames.set(`${companyId}/${chat}`, pushName)
        this.#pending.push({ name: { companyId, chat, name: pushName } })
      }
      if (phone && lid && this.#caches.lids.get(`${companyId}/${lid}`) !== phone) {
        this.#caches.remember(companyId, lid, phone)
        this.#pending.push({ lid: { companyId, lid, phone } })
      }
    } else if (event.type === 'message_sent') {
      // An edit or a deletion is a change to another message (markEdited, markDeleted), not a message of its own;
      // its receipts are not kept either (one may have come first and made a placeholder).
      if (data.kind === 'edit' || data.kind === 'delete') {
        this.#caches.protocolMessages.set(`${companyId}/${messageId}`, true)
        this.#pending.push({ forget: { companyId, messageId } })
        return
      }
      this.#pending.push({
        insert: {
          companyId,
          messageId,
          direction: 'out',
          phone: text(data.phone),
          lid: text(data.lid),
          groupId: text(data.groupId),
          kind: text(data.kind) ?? 'text',
          text: text(data.text),
          details: detailsOf(data),
          quotedMessageId: text(data.quotedMessageId),
          state: 'accepted',
          sentAt: dateOf(event.timestamp),
          epoch: event.epoch
        }
      })
    } else if (event.type === 'message_status') {
      if (this.#caches.protocolMessages.get(`${companyId}/${messageId}`)) return
      const state = (text(data.state) ?? STATE_OF[text(data.status) ?? '']) as DeliveryState | undefined
      if (!state) return
      const failure = data.failure as { code: string, message: string } | undefined
      const to = text(data.to) ?? ''
      this.#pending.push({
        advance: {
          companyId,
          messageId,
          state,
          failure: failure ?? null,
          phone: to.endsWith('@s.whatsapp.net') ? userOfJid(to) : null,
          lid: to.endsWith('@lid') ? to : null
        }
      })
    }
  }

  async #flushNow (): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = foldReceipts(this.#pending.splice(0, MAX_BATCH))
      const inserts = batch.flatMap((item) => ('insert' in item ? [item.insert] : []))
      try {
        await this.#store.insert(inserts)
        // Receipts in a row go as one batch; contacts learnt and placeholders forgotten keep their place between them.
        let receipts: Receipt[] = []
        for (const item of batch) {
          if ('advance' in item) {
            receipts.push(item.advance)
            continue
          }
          if (receipts.length > 0) await this.#store.advance(receipts)
          receipts = []
          if ('lid' in item) {
            await this.#store.learnLid(item.lid.companyId, item.lid.lid, item.lid.phone)
          } else if ('forget' in item) {
            await this.#store.forgetPlaceholder(item.forget.companyId, item.forget.messageId)
          } else if ('name' in item) {
            // The name a contact gave themselves names their chat only where the phone saved none.
            await this.#store.name(item.name.companyId, [item.name], { replace: false })
          }
        }
        if (receipts.length > 0) await this.#store.advance(receipts)
      } catch (err) {
        this.#log.error({ err, messages: batch.length }, 'message history not written')
      }
    }
  }
}

/**
 * A receipt of a message the same batch adds (the server's ack, or a delivery that came within the
 * flush interval) goes into the row as it is added, instead of an update of it after: PostgreSQL's
 * CPU per send in bench:send. The insert applies it to a row already there by `advance`'s rule.
 */
function foldReceipts (batch: PendingWrite[]): PendingWrite[] {
  const added = new Map<string, NewMessage>()
  return batch.filter((item) => {
    if ('insert' in item) {
      const key = `${item.insert.companyId}/${item.insert.messageId}`
      if (item.insert.direction === 'out' && !added.has(key)) added.set(key, item.insert)
      return true
    }
    if (!('advance' in item)) return true
    const row = added.get(`${item.advance.companyId}/${item.advance.messageId}`)
    if (!row) return true
    if (advances(row.state ?? undefined, item.advance.state)) {
      row.state = item.advance.state
      row.failure = item.advance.failure
    }
    return false
  })
}

/** A stored message's kind, from what its event says. */
export function kindOf (data: Record<string, unknown>): string {
  if (data.media) return 'media'
  if (data.location) return 'location'
  if (data.contact) return 'contact'
  return typeof data.text === 'string' ? 'text' : 'other'
}

/** What a message carries besides its text (a file, a location, a contact card, a poll), or null. */
export function detailsOf (data: Record<string, unknown>): Record<string, unknown> | null {
  const present = ['media', 'location', 'contact', 'poll'].filter((key) => data[key] !== undefined)
  const details = Object.fromEntries(present.map((key) => [key, data[key]]))
  return Object.keys(details).length > 0 ? details : null
}

/** An event's ISO time as a Date (now, for none). */
export function dateOf (value: unknown): Date {
  const parsed = typeof value === 'string' ? Date.parse(value) : NaN
  return Number.isFinite(parsed) ? new Date(parsed) : new Date()
}
