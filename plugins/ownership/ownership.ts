import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import type { MikroORM } from '@mikro-orm/postgresql'
import type { Bus, BusSubscription } from '../../core/bus.ts'
import type { KvOptions } from '../../core/nats/kv.ts'
import type { Events } from '../../core/events.ts'
import type { OwnerChanged, SubjectSet } from '../../contracts/index.ts'
import { settlesWithin } from '../../core/deadline.ts'
import { CommandPayload, CommandRouter, type CommandHandler } from './command-router.ts'
import { assignPreferredOwners, RendezvousScores } from './assignment.ts'
import type { Connector } from './connector.ts'
import { Membership, type MemberView } from './membership.ts'
import { watchKv } from './kv-watch.ts'
import { isWrongLastSequence } from './kv-errors.ts'
import { desiredOnline, EpochClaims } from './records.ts'
import type { OwnershipOptions } from './settings.ts'

const LEASE_PREFIX = 'company.'

/**
 * A company's ownership record. It is written when the company changes hands, never renewed: it is
 * held as long as `replica`'s membership heartbeat carries `incarnation`.
 */
export interface LeaseValue {
  replica: string
  incarnation: string
  nonce: string
  since: string
}

interface HeldLease {
  companyId: string
  /** Revision of the record this replica wrote: the fencing epoch, and the compare-and-set of its release. */
  epoch: number
  value: LeaseValue
  acquiredAt: number
  subscription?: BusSubscription
  ending: boolean
}

interface ObservedLease {
  replica: string
  /** Undefined for a value an earlier version wrote (a lease renewed on its own) or one that is not a lease. */
  incarnation: string | undefined
  nonce: string
  revision: number
  seenAt: number
}

export interface OwnershipStats {
  acquisitions: number
  losses: number
  fences: number
  handoffs: number
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

/** A record's value, or undefined when the key holds something else (it must not throw into a watch). */
function leaseValueOf (entry: KvEntry): Omit<LeaseValue, 'incarnation'> & { incarnation?: string } | undefined {
  try {
    const value = entry.json<Partial<LeaseValue>>()
    if (typeof value?.replica !== 'string' || typeof value.nonce !== 'string') return undefined
    return { ...value as LeaseValue, incarnation: typeof value.incarnation === 'string' ? value.incarnation : undefined }
  } catch {
    return undefined
  }
}

const now = () => performance.now()

/**
 * Keeps exactly one live connection per company across replicas. Each company has an ownership
 * record in a KV bucket, written only when it changes hands: created (or, over a holder that is gone,
 * compare-and-set) to acquire, its revision being the fencing epoch, and deleted to release. The
 * record names the holder's membership incarnation, and that one heartbeat is the lease of all its
 * companies: a replica that cannot get a heartbeat acknowledged closes every connection before its
 * key can expire on the server, and a company is taken over only once the server confirms that its
 * holder's incarnation is over. So no two replicas are ever connected at once, and the upkeep is a
 * few writes per replica per TTL rather than a few per company (bench:scale).
 */
export class Ownership {
  readonly replica: string
  readonly stats: OwnershipStats = { acquisitions: 0, losses: 0, fences: 0, handoffs: 0 }
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
  /**
   * Desired companies that may need a holder: looked at on every tick. One held under an incarnation
   * that is alive leaves, and comes back when that incarnation goes (looking at all 10,000 on every
   * tick was 7.6 % of a cold start's CPU: bench:scale).
   */
  readonly #candidates = new Set<string>()
  /** Companies by the incarnation their record names, and its replica: candidates again once it goes. */
  readonly #byIncarnation = new Map<string, { replica: string, companies: Set<string> }>()
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
  readonly #epochClaims: EpochClaims
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
    this.#epochClaims = new EpochClaims(() => this.#orm.em.fork(), this.replica)
  }

  get ttlMs (): number { return this.#config.leaseTtlMs }
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
    // Records never expire: they are held by their holder's heartbeat (an earlier version's bucket loses its TTL here).
    this.#leaseKv = await this.#openKv(this.#config.leaseBucket, { timeoutMs })
    this.#log.info({ server: this.#bus.serverVersion() }, 'lease bucket open')
    const memberKv = await this.#openKv(this.#config.membersBucket, { ttlMs: this.ttlMs, timeoutMs })
    this.#membership = new Membership({
      kv: memberKv,
      replica: this.replica,
      ttlMs: this.ttlMs,
      fenceMarginMs: this.#config.leaseFenceMarginMs,
      log: this.#log,
      onChange: () => this.#refreshAssignment(),
      onLost: (reason) => this.#fenceAll(reason),
      onGone: () => this.#tick()
    })
    this.#desired = new Set(await desiredOnline(this.#orm.em.fork()))
    for (const companyId of this.#desired) this.#candidates.add(companyId)
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
    // Every company is given back before the membership key goes: until then, the key keeps them ours.
    const handOff = (async () => {
      await Promise.all([...this.#held.values()].map((held) => this.#release(held, 'shutdown')))
      await this.#membership?.leave()
    })()
    // Without NATS the releases cannot complete; the connections are closed first, and the membership key expires by TTL.
    if (!await settlesWithin(handOff, this.ttlMs)) this.#log.warn('handoff at shutdown did not finish; the membership key expires by TTL')
    this.#leaseWatch?.stop()
    // Undefined when start() failed before it was made.
    this.#membership?.stopWatching()
  }

  /** Follows a desired-state change (from the event or the local API). */
  setDesired (companyId: string, online: boolean): void {
    if (online) this.#candidates.add(companyId)
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
      const live = observed && !this.#isOrphaned(observed, at) ? observed : undefined
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
      const value = leaseValueOf(entry) ?? { replica: 'unknown', nonce: `unreadable:${entry.revision}`, since: '', incarnation: undefined }
      // A renewal (an earlier version's) keeps the nonce; a record written before this replica started is no change it saw.
      if (previous ? previous.nonce !== value.nonce : Date.parse(value.since) >= this.#startedWall) {
        this.#noteChange(companyId, previous?.replica ?? null, value.replica)
      }
      this.#leases.set(companyId, {
        replica: value.replica, incarnation: value.incarnation, nonce: value.nonce, revision: entry.revision, seenAt: now()
      })
      this.#index(companyId, previous, value)
      this.#candidates.add(companyId)
      this.#unownedSince.delete(companyId)
      const held = this.#held.get(companyId)
      // An older write delivered late is not a loss: only a newer record than ours is.
      if (held && value.nonce !== held.value.nonce && entry.revision > held.epoch && !held.ending) void this.#fence(held, 'lost')
      return
    }
    if (previous) this.#noteChange(companyId, previous.replica, null)
    this.#leases.delete(companyId)
    this.#index(companyId, previous, undefined)
    this.#candidates.add(companyId)
    this.#unownedSince.set(companyId, now())
    const held = this.#held.get(companyId)
    // Someone else removed our lease (an operator purge): we no longer hold it.
    if (held && !held.ending && entry.revision > held.epoch) void this.#fence(held, 'lost')
    this.#evaluate(companyId)
  }

  #index (companyId: string, previous: ObservedLease | undefined, next: { replica: string, incarnation?: string } | undefined): void {
    if (previous?.incarnation === next?.incarnation) return
    if (previous?.incarnation !== undefined) this.#byIncarnation.get(previous.incarnation)?.companies.delete(companyId)
    if (next?.incarnation === undefined) return
    let holder = this.#byIncarnation.get(next.incarnation)
    if (!holder) this.#byIncarnation.set(next.incarnation, holder = { replica: next.replica, companies: new Set() })
    holder.companies.add(companyId)
  }

  /** The desired companies of incarnations that are no longer alive become candidates again. */
  #reviveOrphans (at: number): void {
    for (const [incarnation, { replica, companies }] of this.#byIncarnation) {
      if (companies.size === 0) {
        this.#byIncarnation.delete(incarnation)
        continue
      }
      if (this.#membership.isLiveIncarnation(replica, incarnation, at)) continue
      for (const companyId of companies) if (this.#desired.has(companyId)) this.#candidates.add(companyId)
    }
  }

  #refreshAssignment (): void {
    // Every live member, settled or not: a replica coming up takes its share of the unowned companies
    // itself rather than letting one that started first take them all and hand them over later (a cold
    // start moved 3,524 of 10,000: bench:scale). Handing a held company to a member waits for it to settle.
    const members = this.#membership.live(now(), false)
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
    this.#reviveOrphans(now())
    const { preferred, others } = this.#dueForAcquisition
    // Those waiting for an acquisition turn are looked at again when they get it.
    for (const companyId of this.#candidates) if (!preferred.has(companyId) && !others.has(companyId)) this.#evaluate(companyId)
    for (const held of this.#held.values()) {
      if (!this.#desired.has(held.companyId) && !held.ending) void this.#release(held, 'desired_offline')
    }
    this.#handOffToPreferred()
  }

  /** Takes an unowned company: at once if it prefers this replica, after the grace period otherwise. */
  #evaluate (companyId: string): void {
    if (this.#stopping) return
    if (!this.#desired.has(companyId) || this.#held.has(companyId)) {
      this.#candidates.delete(companyId)
      return
    }
    if (this.#acquiring.has(companyId)) return
    const at = now()
    if ((this.#retryAfter.get(companyId) ?? 0) > at) return
    this.#retryAfter.delete(companyId)
    if (this.#membership.currentIncarnation(at) === undefined) return
    const observed = this.#leases.get(companyId)
    if (observed) {
      if (this.#isLeftover(observed, at)) {
        this.#clearLeftover(companyId, observed.revision)
        return
      }
      // Held by a live incarnation: nothing to do until it goes (#reviveOrphans brings it back).
      if (this.#holderIsLive(observed, at)) {
        this.#candidates.delete(companyId)
        return
      }
      if (!this.#isOrphaned(observed, at)) return
      if (!this.#unownedSince.has(companyId)) this.#unownedSince.set(companyId, this.#orphanedSince(observed, at))
    }
    // The grace runs from when the company became unowned, or from when its current preferred owner
    // became preferred if that is later: a replica that joins gets its share rather than losing it
    // to those that were already up (a cold start moved 8,316 of 10,000 companies twice: bench:scale).
    const unownedSince = Math.max(this.#unownedSince.get(companyId) ?? this.#startedAt, this.#assignmentChangedAt)
    const preferred = this.#preferred.get(companyId)
    const preferredAlive = preferred !== undefined && this.#membership.isAlive(preferred, at)
    if (preferred === this.replica || !preferredAlive || at - unownedSince >= this.#config.unownedGraceMs) {
      this.#startAcquisition(companyId, observed?.revision)
    }
  }

  /**
   * Whether a company's record names a holder that is gone. One that names an incarnation is, once
   * the server confirms that incarnation over (asked once per incarnation, not per company). One that
   * names none (an earlier version's lease, or not a lease at all) is, once nobody has written it for
   * a TTL: the compare-and-set on the revision seen proves nobody has since.
   */
  #isOrphaned (observed: ObservedLease, at: number): boolean {
    if (observed.incarnation === undefined) return observed.seenAt + this.ttlMs <= at
    if (this.#holderIsLive(observed, at)) return false
    return this.#membership.confirmedGone(observed.replica, observed.incarnation) === true
  }

  #holderIsLive (observed: ObservedLease, at: number): boolean {
    return observed.incarnation !== undefined && this.#membership.isLiveIncarnation(observed.replica, observed.incarnation, at)
  }

  /** When an orphaned company became unowned, as this replica can tell: its holder's last heartbeat plus the TTL. */
  #orphanedSince (observed: ObservedLease, at: number): number {
    const since = observed.incarnation === undefined ? observed.seenAt + this.ttlMs : this.#membership.goneSince(observed.replica)
    return Math.min(since ?? at, at)
  }

  /** A record under this replica's own incarnation that it does not hold: a release whose delete did not get through. */
  #isLeftover (observed: ObservedLease, at: number): boolean {
    return observed.replica === this.replica && observed.incarnation !== undefined &&
      observed.incarnation === this.#membership.currentIncarnation(at)
  }

  /** Deletes a leftover record so that its company can be taken again (by whichever replica it prefers). */
  #clearLeftover (companyId: string, revision: number): void {
    this.#retryAfter.set(companyId, now() + this.#retryMs)
    this.#leaseKv.delete(`${LEASE_PREFIX}${companyId}`, { previousSeq: revision })
      .catch((err: unknown) => { this.#log.warn({ err, companyId }, 'a leftover ownership record could not be deleted; trying again') })
  }

  /**
   * At most `acquireConcurrency` at once. Unbounded, a cold start fired thousands: their leases were
   * won, then their fencing epochs waited for PostgreSQL connections past the pool's timeout, and the
   * leases were given back to be won again (bench:scale).
   */
  #startAcquisition (companyId: string, orphanRevision: number | undefined): void {
    const { preferred, others } = this.#dueForAcquisition
    if (this.#acquisitionsRunning >= this.#config.acquireConcurrency) {
      if (this.#preferred.get(companyId) === this.replica) preferred.add(companyId)
      else others.add(companyId)
      return
    }
    preferred.delete(companyId)
    others.delete(companyId)
    this.#acquisitionsRunning++
    this.#acquire(companyId, orphanRevision)
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

  /** Writes the record (created, or compare-and-set over an orphaned one), claims its epoch, connects. */
  async #acquire (companyId: string, orphanRevision: number | undefined): Promise<void> {
    const incarnation = this.#membership.currentIncarnation()
    if (incarnation === undefined) return
    this.#acquiring.add(companyId)
    // When the company became unowned (a deleted record, a holder gone), for the takeover time.
    const unownedSince = this.#unownedSince.get(companyId)
    const value: LeaseValue = { replica: this.replica, incarnation, nonce: randomUUID(), since: new Date().toISOString() }
    const key = `${LEASE_PREFIX}${companyId}`
    let epoch: number
    try {
      epoch = orphanRevision === undefined
        ? await this.#leaseKv.create(key, JSON.stringify(value))
        : await this.#leaseKv.update(key, JSON.stringify(value), orphanRevision)
    } catch (err) {
      this.#acquiring.delete(companyId)
      if (isWrongLastSequence(err)) {
        // Someone else took it first: look again shortly.
        this.#retryAfter.set(companyId, now() + this.#retryMs)
      } else {
        this.#log.warn({ err, companyId }, 'ownership record write failed')
      }
      return
    }
    const held: HeldLease = { companyId, epoch, value, acquiredAt: now(), ending: false }
    this.#held.set(companyId, held)
    this.#acquiring.delete(companyId)
    // Won after stop() listed what to hand off: given back now, not left behind.
    if (this.#stopping) {
      await this.#release(held, 'shutdown')
      return
    }
    // The membership lease ended while the record was being written: the record is already an orphan.
    if (this.#membership.currentIncarnation() !== incarnation) {
      await this.#fence(held, 'fenced')
      return
    }

    try {
      if (!await this.#epochClaims.claim(companyId, epoch)) throw new Error(`a newer epoch than ${epoch} is stored`)
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

  /** The membership heartbeat could not be kept: every company held under it is closed. */
  #fenceAll (reason: 'fenced' | 'lost'): void {
    for (const held of this.#held.values()) {
      // One being released may still be draining its commands (up to the request timeout) before it
      // disconnects: the lease ends now, so it disconnects now.
      if (held.ending) void this.#connector.disconnect(held.companyId, reason).catch(() => {})
      else void this.#fence(held, reason)
    }
  }

  /** Lost or unrenewable: close now, touch nothing on the server. */
  async #fence (held: HeldLease, reason: 'fenced' | 'lost'): Promise<void> {
    if (held.ending) return
    held.ending = true
    if (reason === 'fenced') this.stats.fences++
    else this.stats.losses++
    this.#log.warn({ companyId: held.companyId, epoch: held.epoch, reason }, 'lost the lease; closing the connection')
    void held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, reason)
    if (this.#held.get(held.companyId) === held) this.#held.delete(held.companyId)
    this.#candidates.add(held.companyId)
    this.#publishOwnerChange(held, { holder: null, epoch: held.epoch, reason })
  }

  /**
   * Graceful: stop taking commands, close the connection, then delete the record so others take over
   * at once. It stays held until the delete was tried, so that nothing here mistakes its record for a leftover meanwhile.
   */
  async #release (held: HeldLease, reason: string): Promise<void> {
    if (held.ending) return
    held.ending = true
    await held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, reason)
    try {
      await this.#leaseKv.delete(`${LEASE_PREFIX}${held.companyId}`, { previousSeq: held.epoch })
    } catch (err) {
      this.#log.warn({ err, companyId: held.companyId },
        'ownership record release failed; it is deleted later, or taken over once this replica is gone')
    }
    if (this.#held.get(held.companyId) === held) this.#held.delete(held.companyId)
    this.#candidates.add(held.companyId)
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
