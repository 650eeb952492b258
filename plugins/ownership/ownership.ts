import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { KV, KvEntry } from '@nats-io/kv'
import { JetStreamApiError } from '@nats-io/jetstream'
import type { FastifyBaseLogger } from 'fastify'
import type { MikroORM } from '@mikro-orm/postgresql'
import type { Bus, BusSubscription } from '../../core/bus.ts'
import type { KvOptions } from '../../core/nats/kv.ts'
import { supportsExpiryMarkers } from '../../core/nats/kv.ts'
import type { Events } from '../../core/events.ts'
import type { OwnerChanged, SubjectSet } from '../../contracts/index.ts'
import { settlesWithin } from '../../core/deadline.ts'
import { CommandPayload, CommandRouter, type CommandHandler } from './command-router.ts'
import { assignPreferredOwners, RendezvousScores } from './assignment.ts'
import type { Connector } from './connector.ts'
import { Membership, RENEWALS_PER_TTL, type MemberView } from './membership.ts'
import { watchKv } from './kv-watch.ts'
import { claimEpoch, desiredOnline } from './records.ts'
import type { OwnershipOptions } from './settings.ts'

/** JetStream's "wrong last sequence": the compare-and-set of create/update/delete failed. */
const WRONG_LAST_SEQUENCE = new Set([10071, 10164])
const LEASE_PREFIX = 'company.'

export interface LeaseValue {
  replica: string
  nonce: string
  since: string
}

interface HeldLease {
  companyId: string
  /** Revision returned by create(): the fencing epoch. Renewals never change it. */
  epoch: number
  /** Current revision, for the next compare-and-set. */
  revision: number
  value: LeaseValue
  acquiredAt: number
  /** Monotonic send time of the latest acknowledged write of this lease. */
  ackedSendAt: number
  renewTimer?: NodeJS.Timeout
  fenceTimer?: NodeJS.Timeout
  renewing?: Promise<void>
  subscription?: BusSubscription
  ending: boolean
}

interface ObservedLease {
  replica: string
  nonce: string
  revision: number
  seenAt: number
}

export interface OwnershipStats {
  acquisitions: number
  losses: number
  fences: number
  handoffs: number
  renewals: number
}

/** Ownership changes kept for the cluster view. */
const CHANGES_KEPT = 50

export interface OwnershipChange {
  companyId: string
  /** The replica that held it before, null when nobody did. */
  from: string | null
  /** The replica that holds it now, null when nobody does. */
  to: string | null
  at: string
}

/** A lease's value, or undefined when the key holds something else (it must not throw into a watch or renewal). */
function leaseValueOf (entry: KvEntry): LeaseValue | undefined {
  try {
    const value = entry.json<Partial<LeaseValue>>()
    return typeof value?.replica === 'string' && typeof value.nonce === 'string' ? value as LeaseValue : undefined
  } catch {
    return undefined
  }
}

function isWrongLastSequence (err: unknown): boolean {
  return err instanceof JetStreamApiError && WRONG_LAST_SEQUENCE.has(err.code)
}

const now = () => performance.now()

/**
 * Keeps exactly one live connection per company across replicas. Each company has a lease in a KV
 * bucket: created to acquire (its revision is the fencing epoch), compare-and-set renewed
 * RENEWALS_PER_TTL times per TTL, deleted to release. A holder that cannot get a renewal acknowledged closes its connection
 * before the lease can expire on the server, so no two replicas are ever connected at once.
 */
export class Ownership {
  readonly replica: string
  readonly stats: OwnershipStats = { acquisitions: 0, losses: 0, fences: 0, handoffs: 0, renewals: 0 }
  readonly #config: OwnershipOptions
  readonly #bus: Bus
  readonly #events: Pick<Events, 'publish'>
  readonly #openKv: (bucket: string, options: KvOptions) => Promise<KV>
  readonly #orm: MikroORM
  readonly #log: FastifyBaseLogger
  readonly #connector: Connector
  readonly #subjects: SubjectSet
  readonly #commands = new CommandRouter()
  readonly #acquiredListeners: ((companyId: string, takeoverMs: number | undefined) => void)[] = []
  readonly #held = new Map<string, HeldLease>()
  readonly #acquiring = new Set<string>()
  /** Acquisitions running, from the lease's create until the connection is open (or given back). */
  #acquisitionsRunning = 0
  /**
   * Companies to take once a running acquisition ends, in the order they became due: those that
   * prefer this replica first, so that its backlog goes to it rather than to whoever has room.
   */
  readonly #dueForAcquisition = { preferred: new Set<string>(), others: new Set<string>() }
  readonly #leases = new Map<string, ObservedLease>()
  readonly #unownedSince = new Map<string, number>()
  /** Changes of holder this replica saw in the lease bucket, newest last (GET /api/whatsapp/cluster). */
  readonly #changes: OwnershipChange[] = []
  /** Companies whose create() just failed are not tried again before this time. */
  readonly #retryAfter = new Map<string, number>()
  #membership!: Membership
  #desired = new Set<string>()
  #preferred = new Map<string, string>()
  #assignmentKey = ''
  /** The live members the assignment was made for, and when they last changed: a newly preferred owner gets the grace period from then. */
  #assignedMembers = ''
  #assignmentChangedAt = 0
  /** Bumped whenever the desired set changes: the assignment is recomputed only when it or the members change. */
  #desiredVersion = 0
  readonly #scores = new RendezvousScores()
  #leaseKv!: KV
  #startedAt = 0
  /** The wall clock at start, to compare with a lease's `since`. */
  #startedWall = 0
  #nextHandoffAt = 0
  #tickTimer?: NodeJS.Timeout
  #leaseWatch?: { stop: () => void }
  #stopping = false

  constructor (options: {
    config: OwnershipOptions
    replica: string
    bus: Bus
    events: Pick<Events, 'publish'>
    openKv: (bucket: string, options: KvOptions) => Promise<KV>
    orm: MikroORM
    log: FastifyBaseLogger
    connector: Connector
    subjects: SubjectSet
  }) {
    this.#subjects = options.subjects
    this.#config = options.config
    this.replica = options.replica
    this.#bus = options.bus
    this.#events = options.events
    this.#openKv = options.openKv
    this.#orm = options.orm
    this.#log = options.log.child({ module: 'ownership' })
    this.#connector = options.connector
  }

  get ttlMs (): number { return this.#config.leaseTtlMs }
  get #renewIntervalMs (): number { return this.ttlMs / RENEWALS_PER_TTL }
  get #fenceMarginMs (): number { return Math.min(this.#config.leaseFenceMarginMs, this.ttlMs / 4) }
  get #retryMs (): number { return Math.max(25, Math.min(250, this.ttlMs / 10)) }
  get #tickMs (): number { return Math.max(25, Math.min(250, this.ttlMs / 10)) }
  /** A company is not handed off again sooner than this after it was acquired. */
  get #minHoldMs (): number { return this.ttlMs / 3 }

  /** Called when this replica starts holding a company; `takeoverMs` is how long it had been without a holder, when known. */
  onAcquired (listener: (companyId: string, takeoverMs: number | undefined) => void): void {
    this.#acquiredListeners.push(listener)
  }

  /** For readiness: the lease bucket answers, and this replica's membership is current. */
  async checkLeases (): Promise<void> {
    if (!this.#leaseKv) throw new Error('ownership has not started')
    await this.#leaseKv.status()
    this.#membership.checkSelf()
  }

  /** Whether the company is desired online (some replica should hold it). */
  desires (companyId: string): boolean {
    return this.#desired.has(companyId)
  }

  /** Registers `<namespace>.cmd.<companyId>.<name>`, answered only by the holder. */
  registerCommand (name: string, handler: CommandHandler): void {
    this.#commands.register(name, handler)
  }

  async start (): Promise<void> {
    this.#startedAt = now()
    this.#startedWall = Date.now()
    const timeoutMs = Math.max(500, Math.floor(this.ttlMs / 4))
    // With limit markers (2.11.2+) an expired lease arrives in the watch as a delete; on older servers its expiry is inferred on the tick.
    this.#leaseKv = await this.#openKv(this.#config.leaseBucket, { ttlMs: this.ttlMs, timeoutMs, expiryMarkers: true })
    this.#log.info({
      server: this.#bus.serverVersion(),
      expiryMarkers: supportsExpiryMarkers(this.#bus.serverVersion())
    }, 'lease bucket open')
    const memberKv = await this.#openKv(this.#config.membersBucket, { ttlMs: this.ttlMs, timeoutMs })
    this.#membership = new Membership({
      kv: memberKv,
      replica: this.replica,
      ttlMs: this.ttlMs,
      log: this.#log,
      onChange: () => this.#refreshAssignment()
    })
    this.#desired = new Set(await desiredOnline(this.#orm.em.fork()))
    this.#desiredVersion++
    const [leaseWatch] = await Promise.all([
      watchKv(this.#leaseKv, LEASE_PREFIX, { initialWaitMs: this.ttlMs / 3, log: this.#log }, (key, entry) => this.#onLease(key, entry)),
      this.#membership.start(this.#startedAt)
    ])
    this.#leaseWatch = leaseWatch
    this.#tickTimer = setInterval(() => this.#tick(), this.#tickMs)
    this.#tick()
  }

  /** Hands every held company off (close, then release) so others take over at once. */
  async stop (): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    clearInterval(this.#tickTimer)
    this.#dueForAcquisition.preferred.clear()
    this.#dueForAcquisition.others.clear()
    const handOff = (async () => {
      await this.#membership?.leave()
      await Promise.all([...this.#held.values()].map((held) => this.#release(held, 'shutdown')))
    })()
    // Without NATS the releases cannot complete; the connections are closed first, and the leases expire by TTL.
    if (!await settlesWithin(handOff, this.ttlMs)) this.#log.warn('handoff at shutdown did not finish; remaining leases will expire by TTL')
    this.#leaseWatch?.stop()
    // Undefined when start() failed before it was made.
    this.#membership?.stopWatching()
  }

  /** Follows a desired-state change (from the event or the local API). */
  setDesired (companyId: string, online: boolean): void {
    if (online !== this.#desired.has(companyId)) {
      if (online) this.#desired.add(companyId)
      else this.#desired.delete(companyId)
      this.#desiredVersion++
    }
    this.#tick()
  }

  holds (companyId: string): boolean {
    return this.#held.get(companyId)?.ending === false
  }

  epochOf (companyId: string): number | undefined {
    const held = this.#held.get(companyId)
    return held && !held.ending ? held.epoch : undefined
  }

  heldCompanies (): string[] {
    return [...this.#held.values()].filter((held) => !held.ending).map((held) => held.companyId)
  }

  /** The replicas this one sees. */
  members (): MemberView[] {
    return this.#membership?.view() ?? []
  }

  /** This replica's view of the cluster, for GET /api/whatsapp/cluster. */
  view () {
    const at = now()
    const members = this.#membership.view(at)
    const companyIds = new Set([...this.#desired, ...this.#leases.keys()])
    const companies = [...companyIds].sort().map((companyId) => {
      const held = this.#held.get(companyId)
      const observed = this.#leases.get(companyId)
      const live = observed && observed.seenAt + this.ttlMs > at ? observed : undefined
      return {
        companyId,
        desired: this.#desired.has(companyId) ? 'online' as const : 'offline' as const,
        holder: held && !held.ending ? this.replica : live?.replica ?? null,
        preferred: this.#preferred.get(companyId) ?? null,
        epoch: held && !held.ending ? held.epoch : null,
        heldForMs: held && !held.ending ? Math.round(at - held.acquiredAt) : null
      }
    })
    return { members, companies }
  }

  /** Recent changes of holder, newest first. */
  changes (): OwnershipChange[] {
    return this.#changes.toReversed()
  }

  #noteChange (companyId: string, from: string | null, to: string | null): void {
    this.#changes.push({ companyId, from, to, at: new Date().toISOString() })
    if (this.#changes.length > CHANGES_KEPT) this.#changes.shift()
  }

  #onLease (companyId: string, entry: KvEntry): void {
    const previous = this.#leases.get(companyId)
    if (entry.operation === 'PUT') {
      // A value that is not a lease (written by someone else) still occupies the key: held by nobody we know.
      const value = leaseValueOf(entry) ?? { replica: 'unknown', nonce: `unreadable:${entry.revision}`, since: '' }
      // A renewal keeps the nonce; a lease taken before this replica started is no change it saw.
      if (previous ? previous.nonce !== value.nonce : Date.parse(value.since) >= this.#startedWall) {
        this.#noteChange(companyId, previous?.replica ?? null, value.replica)
      }
      this.#leases.set(companyId, { replica: value.replica, nonce: value.nonce, revision: entry.revision, seenAt: now() })
      this.#unownedSince.delete(companyId)
      const held = this.#held.get(companyId)
      if (held && value.nonce !== held.value.nonce && !held.ending) void this.#fence(held, 'lost')
      return
    }
    if (previous) this.#noteChange(companyId, previous.replica, null)
    this.#leases.delete(companyId)
    this.#unownedSince.set(companyId, now())
    const held = this.#held.get(companyId)
    // Someone else removed our lease (an operator purge): we no longer hold it.
    if (held && !held.ending && entry.revision > held.revision) void this.#fence(held, 'lost')
    this.#evaluate(companyId)
  }

  #refreshAssignment (): void {
    const members = this.#membership.live(now(), true)
    // Heartbeats and ticks call this several times a second; with 10,000 companies sorting and
    // joining them each time was measurable, so the desired set is named by its version.
    const membersKey = members.join(',')
    const key = `${membersKey}|${this.#desiredVersion}`
    if (key === this.#assignmentKey) return
    this.#assignmentKey = key
    // Only a change of members restarts the grace: companies going online and offline happen all the time.
    if (membersKey !== this.#assignedMembers) {
      this.#assignedMembers = membersKey
      this.#assignmentChangedAt = now()
    }
    this.#preferred = assignPreferredOwners([...this.#desired].sort(), members, this.#config.balanceSlackPct, this.#scores)
  }

  #tick (): void {
    if (this.#stopping) return
    this.#refreshAssignment()
    for (const companyId of this.#desired) this.#evaluate(companyId)
    for (const held of this.#held.values()) {
      if (!this.#desired.has(held.companyId) && !held.ending) void this.#release(held, 'desired_offline')
    }
    this.#handOffToPreferred()
  }

  /** Takes an unowned company: at once if it prefers this replica, after the grace period otherwise. */
  #evaluate (companyId: string): void {
    if (this.#stopping || !this.#desired.has(companyId) || this.#held.has(companyId) || this.#acquiring.has(companyId)) return
    const at = now()
    if ((this.#retryAfter.get(companyId) ?? 0) > at) return
    this.#retryAfter.delete(companyId)
    const observed = this.#leases.get(companyId)
    if (observed) {
      const expiresAt = observed.seenAt + this.ttlMs
      if (expiresAt > at) return
      // 2.9 sends no event when a key expires by TTL: its expiry is inferred from the last write seen.
      this.#leases.delete(companyId)
      this.#unownedSince.set(companyId, expiresAt)
    }
    // The grace runs from when the company became unowned, or from when its current preferred owner
    // became preferred if that is later: a replica that joins gets its share rather than losing it
    // to those that were already up (a cold start moved 8,316 of 10,000 companies twice: bench:scale).
    const unownedSince = Math.max(this.#unownedSince.get(companyId) ?? this.#startedAt, this.#assignmentChangedAt)
    const preferred = this.#preferred.get(companyId)
    const preferredAlive = preferred !== undefined && this.#membership.isAlive(preferred, at)
    if (preferred === this.replica || !preferredAlive || at - unownedSince >= this.#config.unownedGraceMs) {
      this.#startAcquisition(companyId)
    }
  }

  /**
   * At most `acquireConcurrency` at once. Unbounded, a cold start fired thousands: their leases were
   * won, then their fencing epochs waited for PostgreSQL connections past the pool's timeout, and the
   * leases were given back to be won again (bench:scale).
   */
  #startAcquisition (companyId: string): void {
    const { preferred, others } = this.#dueForAcquisition
    if (this.#acquisitionsRunning >= this.#config.acquireConcurrency) {
      if (this.#preferred.get(companyId) === this.replica) preferred.add(companyId)
      else others.add(companyId)
      return
    }
    preferred.delete(companyId)
    others.delete(companyId)
    this.#acquisitionsRunning++
    this.#acquire(companyId)
      .catch((err: unknown) => { this.#log.error({ err, companyId }, 'acquisition failed') })
      .finally(() => {
        this.#acquisitionsRunning--
        this.#startDueAcquisitions()
      })
  }

  acquisitions (): { running: number, waiting: number } {
    return { running: this.#acquisitionsRunning, waiting: this.#dueForAcquisition.preferred.size + this.#dueForAcquisition.others.size }
  }

  /** Looks again at the companies waiting for a turn, its own preferred first, oldest first, while there is room. */
  #startDueAcquisitions (): void {
    const { preferred, others } = this.#dueForAcquisition
    for (const due of [preferred, others]) {
      for (const companyId of due) {
        if (this.#acquisitionsRunning >= this.#config.acquireConcurrency) return
        due.delete(companyId)
        // Queued when this replica was its preferred owner, and no longer is (another replica joined): it waits behind.
        if (due === preferred && this.#preferred.get(companyId) !== this.replica) {
          others.add(companyId)
          continue
        }
        this.#evaluate(companyId)
      }
    }
  }

  async #acquire (companyId: string): Promise<void> {
    this.#acquiring.add(companyId)
    // When the company became unowned (a deleted or expired lease), for the takeover time.
    const unownedSince = this.#unownedSince.get(companyId)
    const value: LeaseValue = { replica: this.replica, nonce: randomUUID(), since: new Date().toISOString() }
    const sentAt = now()
    let epoch: number
    try {
      epoch = await this.#leaseKv.create(`${LEASE_PREFIX}${companyId}`, JSON.stringify(value))
    } catch (err) {
      this.#acquiring.delete(companyId)
      if (isWrongLastSequence(err)) {
        // Someone holds it, or the server has not expired the old value yet: look again shortly.
        this.#retryAfter.set(companyId, now() + this.#retryMs)
      } else {
        this.#log.warn({ err, companyId }, 'lease create failed')
      }
      return
    }
    const held: HeldLease = { companyId, epoch, revision: epoch, value, acquiredAt: now(), ackedSendAt: sentAt, ending: false }
    this.#held.set(companyId, held)
    this.#acquiring.delete(companyId)
    this.#armFence(held)
    this.#scheduleRenewal(held, this.#renewIntervalMs)
    // Won after stop() listed what to hand off: given back now, not left to expire by TTL.
    if (this.#stopping) {
      await this.#release(held, 'shutdown')
      return
    }

    try {
      if (!await claimEpoch(this.#orm.em.fork(), companyId, epoch, this.replica)) throw new Error(`a newer epoch than ${epoch} is stored`)
    } catch (err) {
      this.#log.error({ err, companyId, epoch }, 'could not record the fencing epoch; giving the lease back')
      await this.#release(held, 'claim_failed')
      return
    }
    if (held.ending) return
    try {
      await this.#connector.connect(companyId, { epoch })
    } catch (err) {
      this.#log.warn({ err, companyId }, 'connect failed; giving the lease back')
      await this.#release(held, 'connect_failed')
      return
    }
    if (held.ending) {
      await this.#connector.disconnect(companyId, 'lease ended while connecting')
      return
    }
    held.subscription = this.#bus.handle(this.#subjects.commandsOf(companyId), { request: CommandPayload },
      (payload, context) => this.#commands.run(held, payload, context))
    this.stats.acquisitions++
    const takeoverMs = unownedSince === undefined ? undefined : now() - unownedSince
    for (const listener of this.#acquiredListeners) listener(companyId, takeoverMs)
    this.#publishOwnerChange(held, { holder: this.replica, epoch, reason: 'acquired' })
    this.#log.info({ companyId, epoch }, 'holding company')
  }

  #scheduleRenewal (held: HeldLease, delayMs: number): void {
    clearTimeout(held.renewTimer)
    held.renewTimer = setTimeout(() => { held.renewing = this.#renew(held) }, delayMs)
  }

  async #renew (held: HeldLease): Promise<void> {
    if (held.ending) return
    const sentAt = now()
    try {
      held.revision = await this.#leaseKv.update(`${LEASE_PREFIX}${held.companyId}`, JSON.stringify(held.value), held.revision)
      held.ackedSendAt = sentAt
      this.stats.renewals++
      this.#armFence(held)
      this.#scheduleRenewal(held, Math.max(0, sentAt + this.#renewIntervalMs - now()))
    } catch (err) {
      if (held.ending) return
      if (!isWrongLastSequence(err)) {
        // A timeout is ambiguous (the write may have landed): retry with the same revision.
        this.#scheduleRenewal(held, this.#retryMs)
        return
      }
      let entry: KvEntry | null
      try {
        entry = await this.#leaseKv.get(`${LEASE_PREFIX}${held.companyId}`)
      } catch {
        this.#scheduleRenewal(held, this.#retryMs)
        return
      }
      if (entry?.operation === 'PUT' && leaseValueOf(entry)?.nonce === held.value.nonce) {
        // Our earlier, timed-out renewal did land: adopt its revision and renew again at once.
        held.revision = entry.revision
        this.#scheduleRenewal(held, 0)
        return
      }
      await this.#fence(held, 'lost')
    }
  }

  /** Closes the connection before the lease can expire on the server if no renewal gets through. */
  #armFence (held: HeldLease): void {
    clearTimeout(held.fenceTimer)
    const deadline = held.ackedSendAt + this.ttlMs - this.#fenceMarginMs
    held.fenceTimer = setTimeout(() => { void this.#fence(held, 'fenced') }, Math.max(0, deadline - now()))
  }

  #endLease (held: HeldLease): void {
    held.ending = true
    clearTimeout(held.renewTimer)
    clearTimeout(held.fenceTimer)
  }

  /** Lost or unrenewable: close now, touch nothing on the server. */
  async #fence (held: HeldLease, reason: 'fenced' | 'lost'): Promise<void> {
    if (held.ending) return
    this.#endLease(held)
    if (reason === 'fenced') this.stats.fences++
    else this.stats.losses++
    this.#log.warn({ companyId: held.companyId, epoch: held.epoch, reason }, 'lost the lease; closing the connection')
    void held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, reason)
    if (this.#held.get(held.companyId) === held) this.#held.delete(held.companyId)
    this.#publishOwnerChange(held, { holder: null, epoch: held.epoch, reason })
  }

  /** Graceful: stop taking commands, close the connection, then delete the lease so others take over at once. */
  async #release (held: HeldLease, reason: string): Promise<void> {
    if (held.ending) return
    this.#endLease(held)
    await held.renewing?.catch(() => {})
    await held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, reason)
    if (this.#held.get(held.companyId) === held) this.#held.delete(held.companyId)
    try {
      await this.#leaseKv.delete(`${LEASE_PREFIX}${held.companyId}`, { previousSeq: held.revision })
    } catch (err) {
      this.#log.warn({ err, companyId: held.companyId }, 'lease release failed; it will expire by TTL')
    }
    if (reason === 'handoff') this.stats.handoffs++
    this.#publishOwnerChange(held, { holder: null, epoch: held.epoch, reason })
  }

  /** When preferred owners change (a replica joined), hand companies over a few at a time. */
  #handOffToPreferred (): void {
    const at = now()
    if (at < this.#nextHandoffAt) return
    const members = this.#membership.live(at, true)
    const movable = [...this.#held.values()].filter((held) => {
      const preferred = this.#preferred.get(held.companyId)
      return !held.ending && held.subscription !== undefined && preferred !== undefined && preferred !== this.replica &&
        members.includes(preferred) && at - held.acquiredAt >= this.#minHoldMs
    })
    if (movable.length === 0) return
    this.#nextHandoffAt = at + this.#config.handoffIntervalMs
    for (const held of movable.slice(0, this.#config.handoffBatch)) void this.#release(held, 'handoff')
  }

  #publishOwnerChange (held: HeldLease, data: OwnerChanged): void {
    this.#events.publish(held.companyId, 'owner_changed', { ...data }, { epoch: held.epoch })
  }
}
