import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { setKvMaxAge } from '../../core/nats/kv.ts'

/**
 * How long member keys live after their last heartbeat: the members bucket's max age. It follows the
 * longest TTL a live member runs, raised at once when a member needs more (a replica joins only a
 * bucket whose keys live at least its own TTL) and lowered only once no live member runs a longer one.
 * Otherwise a replica starting with a shorter TTL would expire the keys of those running a longer one
 * before they learn of it, and their companies would be taken while still connected.
 */
export class MemberKeyLife {
  readonly #kv: KV
  readonly #ownTtlMs: number
  readonly #prefix: string
  readonly #ttlOf: (entry: KvEntry) => number | undefined
  readonly #log: FastifyBaseLogger
  #ms: number
  /** A change of the max age running (one at a time). */
  #changing?: Promise<void>

  constructor (options: {
    kv: KV
    ownTtlMs: number
    prefix: string
    ttlOf: (entry: KvEntry) => number | undefined
    log: FastifyBaseLogger
  }) {
    this.#kv = options.kv
    this.#ownTtlMs = options.ownTtlMs
    this.#prefix = options.prefix
    this.#ttlOf = options.ttlOf
    this.#log = options.log
    this.#ms = options.ownTtlMs
  }

  /** The max age as last read or set. */
  get ms (): number { return this.#ms }

  /** Reads the max age from the server (0, unlimited, is not a lifetime to fence on: the own TTL stands for it). */
  async read (): Promise<number> {
    const lifeMs = (await this.#kv.status()).ttl
    this.#ms = lifeMs > 0 ? lifeMs : this.#ownTtlMs
    return lifeMs
  }

  /** Before joining: keys must live at least this replica's TTL; a longer max age (another member's) stays. */
  async atLeastOwnTtl (): Promise<void> {
    const lifeMs = await this.read()
    if (lifeMs < this.#ownTtlMs) await this.#set(this.#ownTtlMs)
  }

  /**
   * Follows `longestLiveMs`, the longest TTL among the live members. Lowering cannot be made atomic
   * with a member joining, so the keys are read again right after it, and a longer TTL found there
   * raises it back before any key written since could have outlived the shorter age (a joining
   * replica also reads the max age after writing its key, and fences on the shorter).
   */
  follow (longestLiveMs: number): void {
    if (this.#changing || longestLiveMs === this.#ms) return
    this.#changing = (async () => {
      const previous = this.#ms
      if (longestLiveMs > previous) {
        await this.#set(longestLiveMs)
      } else {
        // Lowering expires at once every key older than the new age: the keys on the server, not only
        // the watch's view of them, must allow it (a member the watch missed keeps its key).
        const wanted = Math.max(longestLiveMs, ...await this.#storedTtls())
        if (wanted >= previous) return
        await this.#set(wanted)
        const longest = Math.max(wanted, ...await this.#storedTtls())
        if (longest > wanted) await this.#set(longest)
      }
      this.#log.info({ maxAgeMs: this.#ms, previousMs: previous }, 'the members bucket follows the longest TTL a live member runs')
    })().catch((err: unknown) => { this.#log.warn({ err }, 'the members bucket\'s max age could not be changed; trying again') })
      .finally(() => { this.#changing = undefined })
  }

  async #set (ms: number): Promise<void> {
    await setKvMaxAge(this.#kv, ms)
    this.#ms = ms
  }

  /** The TTLs the member keys on the server name now (read from the stream's leader, not the watch). */
  async #storedTtls (): Promise<number[]> {
    const ttls: number[] = []
    for await (const key of await this.#kv.keys(`${this.#prefix}>`)) {
      const entry = await this.#kv.get(key)
      if (entry?.operation === 'PUT') ttls.push(this.#ttlOf(entry) ?? this.#ms)
    }
    return ttls
  }
}
