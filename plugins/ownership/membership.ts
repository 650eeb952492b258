import { randomUUID } from 'node:crypto'
import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { MemberKeyLife } from './key-life.ts'
import { watchKv } from './kv-watch.ts'
import { isWrongLastSequence } from './kv-errors.ts'
import { MEMBER_PREFIX, Members, memberValueOf, ttlOfMember, type MemberValue, type MemberView } from './members.ts'

export type { MemberView } from './members.ts'

/** How soon a failed heartbeat is tried again (an election usually settles within seconds). */
const HEARTBEAT_RETRY_MS = 250

/**
 * Heartbeats are put this many times per TTL. A JetStream leader election on nats-server 2.9
 * stops writes for the shorter of two followers' random 4-9 s election timeouts (4.3-6.8 s
 * measured by bench:elections); a gap that starts just before a heartbeat is survived when it is
 * shorter than (1 − 1/RENEWALS_PER_TTL)·TTL − the fence margin − the close timeout: 8.75 s at the
 * default 15 s TTL, 1.5 s margin and 1 s close with four, 7.5 s with three.
 */
export const RENEWALS_PER_TTL = 4
const now = () => performance.now()

/**
 * This replica's own lease on being a member, and its view of the others (`members`). Each replica's heartbeat key
 * lives in a bucket whose values expire after the TTL; it is created with a fresh incarnation and
 * compare-and-set renewed RENEWALS_PER_TTL times per TTL. Every company a replica holds is held under
 * its incarnation, so this one key is the lease of all of them: when no renewal has been acknowledged
 * for the TTL less the fence margin and the close timeout, the replica is told to close every
 * connection (`onLost`), so that the closes end before the key can expire on the server and others
 * take its companies over.
 */
export class Membership {
  readonly replica: string
  readonly #kv: KV
  readonly #ttlMs: number
  readonly #fenceMarginMs: number
  readonly #log: FastifyBaseLogger
  /** The other replicas, as this one sees them. */
  readonly members: Members
  readonly #onChange: () => void
  readonly #onLost: (reason: 'fenced' | 'lost') => void
  #startedAt = 0
  /** This replica's current incarnation and the revision of its key; undefined while it is not a member. */
  #incarnation: string | undefined
  #revision = 0
  /** Monotonic send time of the latest acknowledged heartbeat write. */
  #ackedSendAt = 0
  /**
   * How long this replica's key lives on the server: the bucket's max age, the longest TTL a live
   * member runs. Fencing counts from the shorter of it and LEASE_TTL_MS, and it is read again after
   * every join and heartbeat, so a replica never outlives its key.
   */
  readonly #keyLife: MemberKeyLife
  #timer?: NodeJS.Timeout
  /** The heartbeat being written, if any: leaving waits for it, so that its delete carries the latest revision. */
  #beating?: Promise<void>
  #fenceTimer?: NodeJS.Timeout
  #watch?: { stop: () => void }
  #stopping = false
  #degraded = false
  /** How long before its key's earliest expiry a replica must start closing: the fence margin and the close. */
  readonly #closeTimeoutMs: number
  /** Whether heartbeats are failing (reported once per stretch). */
  #failing = false

  constructor (options: {
    kv: KV
    replica: string
    ttlMs: number
    fenceMarginMs: number
    /** The connector's longest close: the fence starts that much earlier, so the close ends before the key can expire. */
    closeTimeoutMs: number
    log: FastifyBaseLogger
    onChange: () => void
    onLost: (reason: 'fenced' | 'lost') => void
    /** An incarnation was confirmed gone: its companies can be taken. */
    onGone: () => void
  }) {
    this.#kv = options.kv
    this.replica = options.replica
    this.#ttlMs = options.ttlMs
    this.#fenceMarginMs = options.fenceMarginMs
    this.#log = options.log
    this.#onChange = options.onChange
    this.#onLost = options.onLost
    this.members = new Members({
      kv: options.kv,
      self: options.replica,
      log: options.log,
      settleMs: options.ttlMs / 3,
      defaultTtlMs: () => this.#keyLife.ms,
      onChange: options.onChange,
      onGone: options.onGone
    })
    this.#keyLife = new MemberKeyLife({
      kv: options.kv, ownTtlMs: options.ttlMs, prefix: MEMBER_PREFIX, ttlOf: ttlOfMember, log: options.log
    })
    this.#closeTimeoutMs = options.closeTimeoutMs
    const leadMs = this.#marginMs(options.ttlMs) + options.closeTimeoutMs
    // The fence must leave room for heartbeats to fail and be retried, or it would close every connection on a hiccup.
    if (leadMs > options.ttlMs / 2) {
      throw new Error(`LEASE_TTL_MS ${options.ttlMs} is too short for a fence that starts ${leadMs} ms before the key can expire ` +
        `(LEASE_FENCE_MARGIN_MS, capped at a quarter of the TTL, plus the connections' close timeout ${options.closeTimeoutMs} ms): ` +
        'the lead must be at most half the TTL. Raise LEASE_TTL_MS or lower the close timeout')
    }
  }

  /** The margin for clocks and the server's expiry sweep, capped at a quarter of the key's life. */
  #marginMs (lifeMs: number): number {
    return Math.min(this.#fenceMarginMs, lifeMs / 4)
  }

  get #key (): string { return `${MEMBER_PREFIX}${this.replica}` }

  async start (startedAt: number): Promise<void> {
    this.#startedAt = startedAt
    this.#watch = await watchKv(this.#kv, MEMBER_PREFIX, { initialWaitMs: this.#ttlMs / 3, log: this.#log },
      (replica, entry) => this.members.observe(replica, entry))
    await this.#beat()
  }

  /**
   * The incarnation companies may be taken under now: none before this replica has joined, after it
   * lost its key, or once its last acknowledged heartbeat is too old (even if the fence timer has not run yet).
   */
  currentIncarnation (at = now()): string | undefined {
    return this.#incarnation !== undefined && at < this.#fenceDeadline() ? this.#incarnation : undefined
  }

  /**
   * The monotonic time after which nothing may be written to a connection held under this membership:
   * the key can expire on the server from then on (less the margin), however late the fence runs.
   */
  writableUntil (): number {
    if (this.#incarnation === undefined) return -Infinity
    const lifeMs = this.#lifeMs
    return this.#ackedSendAt + lifeMs - this.#marginMs(lifeMs)
  }

  /** Marks this replica unable to take companies (its epoch claims fail) in its heartbeats, or able again. */
  setDegraded (degraded: boolean): void {
    if (degraded === this.#degraded) return
    this.#degraded = degraded
    this.#log.warn({ degraded }, degraded ? 'epoch claims fail: this replica asks to be given no companies' : 'epoch claims work again')
  }

  /** Leaves the cluster at once (others need not wait for the TTL). Called once every company is given back. */
  async leave (): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#timer)
    await this.#beating
    clearTimeout(this.#fenceTimer)
    if (this.#incarnation !== undefined) await this.#kv.delete(this.#key, { previousSeq: this.#revision }).catch(() => {})
    this.#incarnation = undefined
  }

  stopWatching (): void {
    this.#watch?.stop()
  }

  /** For readiness: this replica's own heartbeat is current. */
  checkSelf (): void {
    if (this.currentIncarnation() === undefined) throw new Error('this replica\'s membership heartbeat is not current')
  }

  /** Live members that may be given companies, sorted: this replica among them while it runs and is not degraded. */
  live (at: number, settledOnly: boolean): string[] {
    return this.members.live(at, settledOnly, this.#stopping || this.#degraded)
  }

  view (at = now()): MemberView[] {
    return this.members.view(at)
  }

  /** When the fence starts: early enough that the slowest close ends by writableUntil(). */
  #fenceDeadline (): number {
    return this.writableUntil() - this.#closeTimeoutMs
  }

  /** How long this replica's key outlives its last heartbeat, as far as it may count on: the shorter of its setting and the bucket's. */
  get #lifeMs (): number {
    return Math.min(this.#ttlMs, this.#keyLife.ms)
  }

  /** Closes every connection before the key can expire on the server if no heartbeat gets through. */
  #armFence (): void {
    clearTimeout(this.#fenceTimer)
    this.#fenceTimer = setTimeout(() => { this.#lose('fenced') }, Math.max(0, this.#fenceDeadline() - now()))
  }

  #lose (reason: 'fenced' | 'lost'): void {
    if (this.#incarnation === undefined) return
    clearTimeout(this.#fenceTimer)
    this.#incarnation = undefined
    this.#log.warn({ reason }, 'membership lease lost; closing every connection')
    this.#onLost(reason)
  }

  async #heartbeat (): Promise<void> {
    if (this.#stopping) return
    const sentAt = now()
    let next: number
    try {
      const current = this.#incarnation !== undefined ? await this.#renew(sentAt) : await this.#join(sentAt)
      // Paced on the key's life as read after this write (it may have just shortened); sooner when that could not be read.
      next = current ? this.#lifeMs / RENEWALS_PER_TTL : HEARTBEAT_RETRY_MS
      if (this.#incarnation !== undefined) this.#failing = false
    } catch (err) {
      if (this.#incarnation !== undefined && isWrongLastSequence(err)) {
        next = await this.#adoptOrLose()
      } else {
        // A JetStream leader election (a node lost, a bucket just made) answers "no responders" or
        // "jetstream is not enabled" for seconds: weather, retried soon (a timed-out renewal with the
        // same revision), reported once per stretch.
        next = HEARTBEAT_RETRY_MS
        if (!this.#failing) {
          this.#failing = true
          this.#log.warn({ err }, 'membership heartbeat failed; retrying')
        }
      }
    }
    if (this.#stopping) return
    this.#timer = setTimeout(() => { void this.#beat() }, Math.max(0, sentAt + next - now()))
  }

  #beat (): Promise<void> {
    this.#beating = this.#heartbeat().finally(() => { this.#beating = undefined })
    return this.#beating
  }

  #value (incarnation: string): string {
    const value: MemberValue = {
      startedAt: new Date(Date.now() - (now() - this.#startedAt)).toISOString(), incarnation, ttlMs: this.#ttlMs, degraded: this.#degraded
    }
    return JSON.stringify(value)
  }

  /**
   * A new incarnation, with create(): while an earlier process under the same REPLICA_ID (killed and
   * restarted) still has a key, this waits for it to expire rather than taking its place, since its
   * companies' connections may still be open for up to the TTL.
   */
  /** Joins; false when it could not (an earlier incarnation's key lives on) or the key's life could not be read after. */
  async #join (sentAt: number): Promise<boolean> {
    // Never join a bucket whose keys live shorter than this replica's TTL: the others keep theirs, this one raises it.
    await this.#keyLife.atLeastOwnTtl()
    const incarnation = randomUUID()
    try {
      this.#revision = await this.#kv.create(this.#key, this.#value(incarnation))
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err
      if (!this.#failing) this.#log.warn('an earlier incarnation of this replica is still a member; waiting for its key to expire')
      this.#failing = true
      return false
    }
    if (this.#stopping) {
      await this.#kv.delete(this.#key, { previousSeq: this.#revision }).catch(() => {})
      return false
    }
    this.#incarnation = incarnation
    this.#ackedSendAt = sentAt
    // Read after the key is written: a replica lowering the max age meanwhile (it did not see this one yet)
    // is seen here, fenced on at once, and undone (the max age is raised again, this key being live).
    const lifeRead = await this.#keyLifeAfterWrite()
    this.#log.info({ incarnation }, 'joined the cluster')
    this.#onChange()
    return lifeRead
  }

  /**
   * The key's life read again after a write, the fence re-armed on it, and raised back to this
   * replica's TTL if a member lowered it without seeing this one. False when it could not be read:
   * the next heartbeat comes soon and reads it then.
   */
  async #keyLifeAfterWrite (): Promise<boolean> {
    try {
      await this.#keyLife.read()
    } catch {
      this.#armFence()
      return false
    }
    this.#armFence()
    if (this.#keyLife.ms < this.#ttlMs) {
      // Raising a bucket's max age lengthens the life of the keys already in it: the fence may move out with it.
      await this.#keyLife.atLeastOwnTtl().then(() => { this.#armFence() }, () => {})
    }
    return true
  }

  /** Renews the key; false when its life could not be read after (the next heartbeat comes soon). */
  async #renew (sentAt: number): Promise<boolean> {
    const incarnation = this.#incarnation!
    const revision = await this.#kv.update(this.#key, this.#value(incarnation), this.#revision)
    if (this.#incarnation !== incarnation) return true
    this.#revision = revision
    this.#ackedSendAt = sentAt
    const lifeRead = await this.#keyLifeAfterWrite()
    if (!this.#stopping) this.#keyLife.follow(this.members.longestLiveTtl(this.#ttlMs))
    return lifeRead
  }

  /** A renewal was refused: our earlier, timed-out one may have landed (adopt it), or the key is no longer ours. */
  async #adoptOrLose (): Promise<number> {
    let entry: KvEntry | null
    try {
      entry = await this.#kv.get(this.#key)
    } catch {
      return HEARTBEAT_RETRY_MS
    }
    if (entry?.operation === 'PUT' && memberValueOf(entry).incarnation === this.#incarnation) {
      this.#revision = entry.revision
      return 0
    }
    this.#lose('lost')
    return 0
  }
}
