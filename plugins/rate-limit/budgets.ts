import type { KV } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import type { BucketState, TokenBucket } from '../../core/token-bucket.ts'
import type { OutboundKind } from '../session-pool/index.ts'

/** Every outbound kind takes from the company's message budget; reactions from the recipient's too. */
export type BudgetKind = OutboundKind

interface Stored {
  messages?: BucketState
  /** Per recipient phone; buckets that refilled completely are left out. */
  reactions: Record<string, BucketState>
}

interface Entry {
  epoch: number
  state: Stored
  writing: boolean
  dirty: boolean
  lastWriteAt: number
  timer: NodeJS.Timeout | undefined
}

/**
 * A company's state is written at most this often. A takeover may then find up to this much of the
 * old holder's spending unrecorded: at 30 messages per minute, not even one message.
 */
export const STATE_WRITE_INTERVAL_MS = 250

export type Taken = { taken: true } | { taken: false, retryAfterMs: number, limit: 'messages' | 'reactions' }

/**
 * Each company's WhatsApp budgets, on the replica that holds it: every message takes a token from
 * the company's bucket, a reaction also from its recipient's. The state is written to a KV bucket
 * after a change (at most every STATE_WRITE_INTERVAL_MS, one write in flight per company, the latest
 * state wins) and read back the first time a new lease epoch sends, so a takeover continues the old
 * holder's budget.
 */
export class Budgets {
  readonly #kv: KV
  readonly #messages: TokenBucket
  readonly #reactions: TokenBucket
  readonly #log: FastifyBaseLogger
  readonly #entries = new Map<string, Entry>()
  readonly #loading = new Map<string, Promise<Entry>>()

  constructor (kv: KV, buckets: { messages: TokenBucket, reactions: TokenBucket }, log: FastifyBaseLogger) {
    this.#kv = kv
    this.#messages = buckets.messages
    this.#reactions = buckets.reactions
    this.#log = log
  }

  async take (companyId: string, epoch: number, kind: BudgetKind, recipient: string, now = Date.now()): Promise<Taken> {
    const entry = await this.#entry(companyId, epoch)
    const message = this.#messages.take(entry.state.messages, now)
    if (!message.taken) return { taken: false, retryAfterMs: message.retryAfterMs, limit: 'messages' }
    if (kind === 'reaction') {
      const reaction = this.#reactions.take(entry.state.reactions[recipient], now)
      if (!reaction.taken) return { taken: false, retryAfterMs: reaction.retryAfterMs, limit: 'reactions' }
      entry.state.reactions[recipient] = reaction.state
    }
    entry.state.messages = message.state
    this.#persist(companyId, entry)
    return { taken: true }
  }

  /**
   * Messages the company may send now: from this replica's state when it holds the company, else from
   * the stored state (at most STATE_WRITE_INTERVAL_MS behind its holder's).
   */
  async messagesLeft (companyId: string, now = Date.now()): Promise<number> {
    let state = this.#entries.get(companyId)?.state.messages
    if (!this.#entries.has(companyId)) {
      const stored = await this.#kv.get(companyId)
      if (stored && stored.operation === 'PUT') state = stored.json<Partial<Stored>>().messages
    }
    return Math.floor(state ? this.#messages.refill(state, now).tokens : this.#messages.capacity)
  }

  /** Writes what is pending now and waits for every write (shutdown, handoff). */
  async flush (): Promise<void> {
    for (const [companyId, entry] of this.#entries) {
      if (entry.timer) {
        clearTimeout(entry.timer)
        entry.timer = undefined
        this.#write(companyId, entry)
      }
    }
    while ([...this.#entries.values()].some((entry) => entry.writing || entry.timer)) await new Promise((resolve) => setTimeout(resolve, 5))
  }

  async #entry (companyId: string, epoch: number): Promise<Entry> {
    const known = this.#entries.get(companyId)
    if (known?.epoch === epoch) return known
    const key = `${companyId}:${epoch}`
    let loading = this.#loading.get(key)
    if (!loading) {
      loading = this.#load(companyId, epoch).finally(() => this.#loading.delete(key))
      this.#loading.set(key, loading)
    }
    return loading
  }

  async #load (companyId: string, epoch: number): Promise<Entry> {
    let state: Stored = { reactions: {} }
    try {
      const stored = await this.#kv.get(companyId)
      if (stored && stored.operation === 'PUT') {
        const saved = stored.json<Partial<Stored>>()
        state = { messages: saved.messages, reactions: saved.reactions ?? {} }
      }
    } catch (err) {
      // Without the stored state the company starts with a full budget; sending must not stop for it.
      this.#log.warn({ err, companyId }, 'rate-limit state could not be read; starting from a full budget')
    }
    const entry: Entry = { epoch, state, writing: false, dirty: false, lastWriteAt: 0, timer: undefined }
    this.#entries.set(companyId, entry)
    return entry
  }

  #persist (companyId: string, entry: Entry): void {
    if (entry.writing) {
      entry.dirty = true
      return
    }
    if (entry.timer) return
    const wait = entry.lastWriteAt + STATE_WRITE_INTERVAL_MS - Date.now()
    if (wait > 0) {
      entry.timer = setTimeout(() => {
        entry.timer = undefined
        this.#write(companyId, entry)
      }, wait)
      return
    }
    this.#write(companyId, entry)
  }

  #write (companyId: string, entry: Entry): void {
    entry.writing = true
    entry.lastWriteAt = Date.now()
    entry.dirty = false
    const now = Date.now()
    for (const [phone, state] of Object.entries(entry.state.reactions)) {
      if (this.#reactions.isFull(state, now)) delete entry.state.reactions[phone]
    }
    this.#kv.put(companyId, JSON.stringify(entry.state))
      .catch((err: unknown) => this.#log.warn({ err, companyId }, 'rate-limit state not stored; a takeover now would see an older budget'))
      .finally(() => {
        entry.writing = false
        if (entry.dirty) this.#persist(companyId, entry)
      })
  }
}
