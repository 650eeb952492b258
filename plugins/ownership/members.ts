import { performance } from 'node:perf_hooks'
import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'

export const MEMBER_PREFIX = 'member.'
/** A member unseen for this many of its TTLs is dropped from the view. */
const FORGET_AFTER_TTLS = 20
const now = () => performance.now()

/** A member's heartbeat value. `incarnation` is new each time the replica (re)joins: its companies are held under it. */
export interface MemberValue {
  startedAt: string
  incarnation: string
  /** The member's LEASE_TTL_MS: the bucket's max age never falls below the longest a live member runs. */
  ttlMs: number
  /** Its epoch claims fail (PostgreSQL out of reach): no company is assigned or handed to it meanwhile. */
  degraded: boolean
}

interface ObservedMember {
  startedAt: string
  incarnation: string | undefined
  /** Undefined for an earlier version's member, which counts as running the bucket's current max age. */
  ttlMs: number | undefined
  degraded: boolean
  seenAt: number
  firstSeenAt: number
}

export interface MemberView {
  replica: string
  alive: boolean
  startedAt: string
  lastSeenMsAgo: number
}

export function memberValueOf (entry: KvEntry): Partial<MemberValue> {
  try {
    const value = entry.json<Partial<MemberValue>>()
    return typeof value === 'object' && value !== null ? value : {}
  } catch {
    return {}
  }
}

/** The TTL a member's heartbeat names (none from an earlier version). */
export function ttlOfMember (entry: KvEntry): number | undefined {
  const { ttlMs } = memberValueOf(entry)
  return typeof ttlMs === 'number' && ttlMs > 0 ? ttlMs : undefined
}

/**
 * The other replicas as this one sees them in the members bucket: who is alive (seen within the TTL
 * it runs), under which incarnation, and, asked of the server, whether an incarnation is over.
 */
export class Members {
  readonly #kv: KV
  readonly #self: string
  readonly #log: FastifyBaseLogger
  /** A member must be seen this long before others hand companies to it (no flapping on a flicker). */
  readonly #settleMs: number
  /** The life of a member key that names no TTL (an earlier version's): the bucket's max age. */
  readonly #defaultTtlMs: () => number
  readonly #onChange: () => void
  readonly #onGone: () => void
  readonly #members = new Map<string, ObservedMember>()
  /** Incarnations the server confirmed gone: an incarnation never comes back, so this is final. */
  readonly #gone = new Set<string>()
  /** Server checks running, by incarnation, so that a thousand orphaned companies ask once. */
  readonly #checking = new Map<string, Promise<boolean>>()

  constructor (options: {
    kv: KV
    self: string
    log: FastifyBaseLogger
    settleMs: number
    defaultTtlMs: () => number
    onChange: () => void
    /** An incarnation was confirmed gone: its companies can be taken. */
    onGone: () => void
  }) {
    this.#kv = options.kv
    this.#self = options.self
    this.#log = options.log
    this.#settleMs = options.settleMs
    this.#defaultTtlMs = options.defaultTtlMs
    this.#onChange = options.onChange
    this.#onGone = options.onGone
  }

  /** A heartbeat (or a delete) seen in the bucket. */
  observe (replica: string, entry: KvEntry): void {
    if (entry.operation === 'PUT') {
      const value = memberValueOf(entry)
      const known = this.#members.get(replica)
      this.#members.set(replica, {
        startedAt: typeof value.startedAt === 'string' ? value.startedAt : '',
        incarnation: typeof value.incarnation === 'string' ? value.incarnation : undefined,
        ttlMs: ttlOfMember(entry),
        degraded: value.degraded === true,
        seenAt: now(),
        firstSeenAt: known?.firstSeenAt ?? now()
      })
    } else {
      this.#members.delete(replica)
    }
    this.#onChange()
  }

  isAlive (replica: string, at = now()): boolean {
    const member = this.#members.get(replica)
    return member !== undefined && this.#aliveAt(member, at)
  }

  /** Seen within its own TTL: a member heartbeats a few times per TTL it runs, whatever this replica's is. */
  #aliveAt (member: ObservedMember, at: number): boolean {
    return member.seenAt + this.#ttlOf(member) > at
  }

  #ttlOf (member: ObservedMember): number {
    return member.ttlMs ?? this.#defaultTtlMs()
  }

  /** Whether `replica` is alive, as far as this replica has seen, under `incarnation`. */
  isLiveIncarnation (replica: string, incarnation: string, at = now()): boolean {
    const member = this.#members.get(replica)
    return member !== undefined && member.incarnation === incarnation && this.#aliveAt(member, at)
  }

  /**
   * Whether the server confirms that `replica`'s incarnation is over: its key expired, was deleted,
   * or holds a newer incarnation. Either way its last heartbeat was written at least a TTL ago (or it
   * gave everything back and left), so its holder has closed every connection it held under it.
   * Undefined while the server is being asked.
   */
  confirmedGone (replica: string, incarnation: string): boolean | undefined {
    if (this.#gone.has(incarnation)) return true
    if (!this.#checking.has(incarnation)) {
      // openKv binds without direct gets: this is answered by the stream's leader, never a lagging follower.
      const check = this.#kv.get(`${MEMBER_PREFIX}${replica}`)
        .then((entry) => {
          const gone = entry === null || entry.operation !== 'PUT' || memberValueOf(entry).incarnation !== incarnation
          if (gone) this.#gone.add(incarnation)
          return gone
        })
        .catch(() => false)
        // Asked again on a later look: a live member may die, and a failed request proves nothing.
        .finally(() => {
          this.#checking.delete(incarnation)
          try {
            if (this.#gone.has(incarnation)) this.#onGone()
          } catch (err) {
            this.#log.error({ err }, 'taking the companies of a replica that is gone failed')
          }
        })
      this.#checking.set(incarnation, check)
    }
    return undefined
  }

  /** When `replica` counts as gone in this replica's view (its last heartbeat seen plus the TTL), if it was seen. */
  goneSince (replica: string): number | undefined {
    const member = this.#members.get(replica)
    return member && member.seenAt + this.#ttlOf(member)
  }

  /**
   * Members gone this long are forgotten (2.9 sends no event when a key expires, so nothing else
   * removes them): the view keeps recently gone ones for a while, and memory stays bounded.
   */
  prune (at: number): void {
    for (const [replica, member] of this.#members) {
      if (replica !== this.#self && member.seenAt + FORGET_AFTER_TTLS * this.#ttlOf(member) < at) this.#members.delete(replica)
    }
  }

  /** Gone incarnations no record names any more need not be remembered. */
  forgetGone (isNamed: (incarnation: string) => boolean): void {
    for (const incarnation of this.#gone) if (!isNamed(incarnation)) this.#gone.delete(incarnation)
  }

  /**
   * Live members that may be given companies, sorted: not degraded, and with `settledOnly`, seen long
   * enough. This replica is in it unless `selfExcluded` (stopping or degraded), whether seen yet or not.
   */
  live (at: number, settledOnly: boolean, selfExcluded: boolean): string[] {
    const live = [...this.#members]
      .filter(([replica, member]) => replica !== this.#self && this.#aliveAt(member, at) && !member.degraded &&
        (!settledOnly || member.firstSeenAt + this.#settleMs <= at))
      .map(([replica]) => replica)
    if (!selfExcluded) live.push(this.#self)
    return live.sort()
  }

  view (at = now()): MemberView[] {
    return [...this.#members].map(([replica, member]) => ({
      replica,
      alive: this.#aliveAt(member, at),
      startedAt: member.startedAt,
      lastSeenMsAgo: Math.round(at - member.seenAt)
    }))
  }

  /** The longest TTL among `ownTtlMs` and the members seen alive. */
  longestLiveTtl (ownTtlMs: number, at = now()): number {
    let longest = ownTtlMs
    for (const member of this.#members.values()) if (this.#aliveAt(member, at)) longest = Math.max(longest, this.#ttlOf(member))
    return longest
  }
}
