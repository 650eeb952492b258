import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { watchKv } from './kv-watch.ts'

const MEMBER_PREFIX = 'member.'
/** How soon a failed heartbeat is tried again (an election usually settles within seconds). */
const HEARTBEAT_RETRY_MS = 250

/**
 * Leases are renewed, and heartbeats put, this many times per TTL. A JetStream leader election on
 * nats-server 2.9 stops writes for the shorter of two followers' random 4-9 s election timeouts
 * (4.3-6.8 s measured by bench:elections); a gap that starts just before a renewal is survived
 * when it is shorter than (1 − 1/RENEWALS_PER_TTL)·TTL − the fence margin: 9.75 s at the default
 * 15 s TTL with four, 8.5 s with three.
 */
export const RENEWALS_PER_TTL = 4
const now = () => performance.now()

interface ObservedMember {
  startedAt: string
  seenAt: number
  firstSeenAt: number
}

export interface MemberView {
  replica: string
  alive: boolean
  startedAt: string
  lastSeenMsAgo: number
}

/**
 * Which replicas are alive: each puts a heartbeat in the members bucket RENEWALS_PER_TTL times per TTL,
 * and a member not seen for a TTL counts as gone. New members settle before others hand them work.
 */
export class Membership {
  readonly replica: string
  readonly #kv: KV
  readonly #ttlMs: number
  readonly #log: FastifyBaseLogger
  readonly #members = new Map<string, ObservedMember>()
  readonly #onChange: () => void
  #startedAt = 0
  #revision = 0
  #timer?: NodeJS.Timeout
  #watch?: { stop: () => void }
  #stopping = false
  /** Whether heartbeats are failing (reported once per stretch). */
  #failing = false

  constructor (options: { kv: KV, replica: string, ttlMs: number, log: FastifyBaseLogger, onChange: () => void }) {
    this.#kv = options.kv
    this.replica = options.replica
    this.#ttlMs = options.ttlMs
    this.#log = options.log
    this.#onChange = options.onChange
  }

  /** A member must be seen this long before others hand companies to it (no flapping on a flicker). */
  get #settleMs (): number { return this.#ttlMs / 3 }

  async start (startedAt: number): Promise<void> {
    this.#startedAt = startedAt
    this.#watch = await watchKv(this.#kv, MEMBER_PREFIX, { initialWaitMs: this.#ttlMs / 3, log: this.#log },
      (replica, entry) => this.#onEntry(replica, entry))
    await this.#heartbeat()
  }

  /** Leaves the cluster at once (others need not wait for the TTL). */
  async leave (): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#timer)
    if (this.#revision) await this.#kv.delete(`${MEMBER_PREFIX}${this.replica}`).catch(() => {})
  }

  stopWatching (): void {
    this.#watch?.stop()
  }

  isAlive (replica: string, at = now()): boolean {
    return (this.#members.get(replica)?.seenAt ?? -Infinity) + this.#ttlMs > at
  }

  /** For readiness: this replica's own heartbeat is current. */
  checkSelf (): void {
    if (!this.isAlive(this.replica)) throw new Error('this replica\'s membership heartbeat is not current')
  }

  /** Live members (this replica included while it runs), sorted; `settledOnly` leaves out those seen too recently. */
  live (at: number, settledOnly: boolean): string[] {
    const live = [...this.#members]
      .filter(([replica, member]) => member.seenAt + this.#ttlMs > at &&
        (!settledOnly || replica === this.replica || member.firstSeenAt + this.#settleMs <= at))
      .map(([replica]) => replica)
    if (!this.#stopping && !live.includes(this.replica)) live.push(this.replica)
    return live.sort()
  }

  view (at = now()): MemberView[] {
    return [...this.#members].map(([replica, member]) => ({
      replica,
      alive: member.seenAt + this.#ttlMs > at,
      startedAt: member.startedAt,
      lastSeenMsAgo: Math.round(at - member.seenAt)
    }))
  }

  #onEntry (replica: string, entry: KvEntry): void {
    if (entry.operation === 'PUT') {
      const value = entry.json<{ startedAt: string }>()
      const known = this.#members.get(replica)
      this.#members.set(replica, { startedAt: value.startedAt, seenAt: now(), firstSeenAt: known?.firstSeenAt ?? now() })
    } else {
      this.#members.delete(replica)
    }
    this.#onChange()
  }

  async #heartbeat (): Promise<void> {
    if (this.#stopping) return
    const key = `${MEMBER_PREFIX}${this.replica}`
    let next = this.#ttlMs / RENEWALS_PER_TTL
    try {
      this.#revision = await this.#kv.put(key, JSON.stringify({
        startedAt: new Date(Date.now() - (now() - this.#startedAt)).toISOString()
      }))
      this.#failing = false
    } catch (err) {
      // A JetStream leader election (a node lost, a bucket just made) answers "no responders" or
      // "jetstream is not enabled" for seconds: weather, retried soon, reported once per stretch.
      next = Math.min(next, HEARTBEAT_RETRY_MS)
      if (!this.#failing) {
        this.#failing = true
        this.#log.warn({ err }, 'membership heartbeat failed; retrying')
      }
    }
    this.#timer = setTimeout(() => { void this.#heartbeat() }, next)
  }
}
