import { performance } from 'node:perf_hooks'
import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import type { MikroORM } from '@mikro-orm/postgresql'
import type { Bus } from '../../core/bus.ts'
import type { KvOptions } from '../../core/nats/kv.ts'
import type { Events } from '../../core/events.ts'
import type { CommandName, SubjectSet } from '../../contracts/index.ts'
import { settlesWithin } from '../../core/deadline.ts'
import { CommandRouter, type CommandHandler } from './command-router.ts'
import { assignPreferredOwners, RendezvousScores, takesUnowned } from './assignment.ts'
import type { Connector } from './connector.ts'
import { Membership, type MemberView } from './membership.ts'
import { watchKv } from './kv-watch.ts'
import { desiredOnline, EpochClaims } from './records.ts'
import { LeaseBook, type ObservedLease, type OwnershipChange } from './lease-book.ts'
import { Holdings, LEASE_PREFIX, type OwnershipStats } from './holdings.ts'
import { DatabaseProbe } from './database-probe.ts'
import { RecordUpkeep } from './record-upkeep.ts'
import { AcquisitionQueue, RetryBackoff } from './acquisition-queue.ts'
import type { OwnershipOptions } from './settings.ts'

export type { LeaseValue, OwnershipChange } from './lease-book.ts'
export type { OwnershipStats } from './holdings.ts'

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
  readonly #config: OwnershipOptions
  readonly #bus: Bus
  readonly #openKv: (bucket: string, options: KvOptions) => Promise<KV>
  readonly #orm: MikroORM
  readonly #log: FastifyBaseLogger
  readonly #connector: Connector
  readonly #subjects: SubjectSet
  readonly #commands = new CommandRouter()
  readonly #held: Holdings
  readonly #upkeep: RecordUpkeep
  readonly #database: DatabaseProbe
  readonly #queue: AcquisitionQueue
  readonly #backoff: RetryBackoff
  #book!: LeaseBook
  /**
   * Desired companies that may need a holder: looked at on every tick. One held under an incarnation
   * that is alive leaves, and comes back when that incarnation goes (looking at all 10,000 on every
   * tick was 7.6 % of a cold start's CPU: bench:scale).
   */
  readonly #candidates = new Set<string>()
  readonly #unownedSince = new Map<string, number>()
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
    this.#openKv = options.openKv
    this.#orm = options.orm
    this.#log = options.log.child({ module: 'ownership' })
    this.#connector = options.connector
    this.#database = new DatabaseProbe(this.#orm, this.ttlMs / 4, (answers) => {
      this.#membership.setDegraded(!answers)
      // PostgreSQL is back: the companies this replica failed to take meanwhile may be tried again at once.
      if (answers) this.#backoff.clear()
    })
    this.#queue = new AcquisitionQueue({
      limit: this.#config.acquireConcurrency,
      prefersThis: (companyId) => this.#preferred.get(companyId) === this.replica,
      lookAgain: (companyId) => this.#evaluate(companyId),
      onError: (err, companyId) => { this.#log.error({ err, companyId }, 'acquisition failed') }
    })
    this.#backoff = new RetryBackoff(() => this.#config.unownedGraceMs, () => 2 * this.ttlMs)
    this.#upkeep = new RecordUpkeep({
      leaseKv: () => this.#leaseKv,
      book: () => this.#book,
      backoff: this.#backoff,
      log: this.#log,
      retryMs: () => this.#tickMs,
      ttlMs: this.ttlMs,
      apply: (companyId, entry) => this.#onLease(companyId, entry)
    })
    this.#held = new Holdings({
      replica: this.replica,
      leaseKv: () => this.#leaseKv,
      membership: () => this.#membership,
      epochClaims: new EpochClaims(() => this.#orm.em.fork(), this.replica),
      connector: this.#connector,
      bus: this.#bus,
      subjects: this.#subjects,
      commands: this.#commands,
      events: options.events,
      log: this.#log,
      backoff: this.#backoff,
      retryMs: () => this.#tickMs,
      stopping: () => this.#stopping,
      onEnded: (companyId) => this.#candidates.add(companyId),
      onClaimError: () => this.#database.claimFailed(),
      onStaleRecord: (companyId) => this.#upkeep.refresh(companyId)
    })
  }

  get stats (): OwnershipStats { return this.#held.stats }

  get ttlMs (): number { return this.#config.leaseTtlMs }
  /** How often ownership looks at its candidates, and how soon a lost race is looked at again. */
  get #tickMs (): number { return Math.max(25, Math.min(250, this.ttlMs / 10)) }
  /** A company is not handed off again sooner than this after it was acquired. */
  get #minHoldMs (): number { return this.ttlMs / 3 }

  /** Called when this replica starts holding a company; `takeoverMs` is how long it had been without a holder, when known. */
  onAcquired (listener: (companyId: string, takeoverMs: number | undefined) => void): void {
    this.#held.onAcquired(listener)
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

  /** Registers `<namespace>.cmd.<companyId>.<name>`, answered only by the holder (each named, with its scope, in COMMAND_SCOPES). */
  registerCommand (name: CommandName, handler: CommandHandler): void {
    this.#commands.register(name, handler)
  }

  async start (): Promise<void> {
    this.#startedAt = now()
    this.#book = new LeaseBook(Date.now())
    const timeoutMs = Math.max(500, Math.floor(this.ttlMs / 4))
    // Records never expire: they are held by their holder's heartbeat (an earlier version's bucket loses its TTL here).
    this.#leaseKv = await this.#openKv(this.#config.leaseBucket, { timeoutMs })
    this.#log.info({ server: this.#bus.serverVersion() }, 'lease bucket open')
    // The members bucket's max age is the membership's to manage: never shorter than a live member's TTL.
    const memberKv = await this.#openKv(this.#config.membersBucket, { ttlMs: this.ttlMs, timeoutMs, keepExistingTtl: true })
    this.#membership = new Membership({
      kv: memberKv,
      replica: this.replica,
      ttlMs: this.ttlMs,
      fenceMarginMs: this.#config.leaseFenceMarginMs,
      closeTimeoutMs: this.#connector.closeTimeoutMs,
      log: this.#log,
      onChange: () => this.#refreshAssignment(),
      onLost: (reason) => this.#held.fenceAll(reason),
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
    this.#queue.clear()
    // Every company is given back before the membership key goes: until then, the key keeps them ours.
    const handOff = (async () => {
      await Promise.all([...this.#held.all()].map((held) => this.#held.release(held, 'shutdown')))
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

  /** The lease this replica holds the company under, as commands get it; undefined when it holds none (or is giving it up). */
  leaseOf (companyId: string): { epoch: number, since: string } | undefined {
    const held = this.#held.get(companyId)
    return held && !held.ending ? { epoch: held.epoch, since: held.value.since } : undefined
  }

  /** Whether it holds any company, one being released included (cheaper than `heldCompanies`, and as good for a yes or no). */
  holdsAny (): boolean {
    return this.#held.size > 0
  }

  heldCompanies (): string[] {
    return [...this.#held.all()].filter((held) => !held.ending).map((held) => held.companyId)
  }

  /** The replicas this one sees. */
  members (): MemberView[] {
    return this.#membership?.view() ?? []
  }

  /** This replica's view of the cluster, for GET /api/whatsapp/cluster. */
  view () {
    const at = now()
    const members = this.#membership.view(at)
    const companyIds = new Set([...this.#desired, ...this.#book.companies()])
    const companies = [...companyIds].sort().map((companyId) => {
      const held = this.#held.get(companyId)
      const observed = this.#book.get(companyId)
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
    return this.#book.changes()
  }

  acquisitions (): { running: number, waiting: number } {
    return { running: this.#queue.running, waiting: this.#queue.waiting }
  }

  #onLease (companyId: string, entry: KvEntry): void {
    this.#candidates.add(companyId)
    const held = this.#held.get(companyId)
    if (entry.operation === 'PUT') {
      const observed = this.#book.put(companyId, entry, now())
      this.#unownedSince.delete(companyId)
      // An older write delivered late is not a loss: only a newer record than ours is.
      if (held && observed.nonce !== held.value.nonce && entry.revision > held.epoch && !held.ending) void this.#held.fence(held, 'lost')
      return
    }
    this.#book.remove(companyId)
    // Only a company some replica should hold needs to know since when it has had none.
    if (this.#desired.has(companyId)) this.#unownedSince.set(companyId, now())
    else this.#unownedSince.delete(companyId)
    // Someone else removed our lease (an operator purge): we no longer hold it.
    if (held && !held.ending && entry.revision > held.epoch) void this.#held.fence(held, 'lost')
    this.#evaluate(companyId)
  }

  /**
   * The companies of incarnations that are no longer alive: desired ones become candidates again;
   * records of companies no longer desired are deleted once the server confirms their holder gone,
   * so the bucket and this replica's memory stay bounded.
   */
  #reviveOrphans (at: number): void {
    for (const [incarnation, { replica, companies }] of this.#book.incarnations()) {
      if (this.#membership.members.isLiveIncarnation(replica, incarnation, at)) continue
      for (const companyId of companies) {
        if (this.#desired.has(companyId)) this.#candidates.add(companyId)
        else if (this.#membership.members.confirmedGone(replica, incarnation) === true) this.#upkeep.deleteAbandoned(companyId, at)
      }
    }
    this.#membership.members.forgetGone((incarnation) => this.#book.names(incarnation))
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
    const at = now()
    this.#database.tick(at)
    this.#membership.members.prune(at)
    this.#refreshAssignment()
    this.#reviveOrphans(at)
    // Those waiting for an acquisition turn are looked at again when they get it.
    for (const companyId of this.#candidates) if (!this.#queue.isWaiting(companyId)) this.#evaluate(companyId)
    for (const held of this.#held.all()) {
      if (!this.#desired.has(held.companyId) && !held.ending) void this.#held.release(held, 'desired_offline')
    }
    this.#handOffToPreferred()
  }

  /** Takes an unowned company: at once if it prefers this replica, after the grace period otherwise. */
  #evaluate (companyId: string): void {
    if (this.#stopping) return
    if (!this.#desired.has(companyId)) {
      // Nothing more to know about a company nobody wants online (memory stays bounded with churn).
      this.#candidates.delete(companyId)
      this.#unownedSince.delete(companyId)
      this.#backoff.forget(companyId)
      return
    }
    if (this.#held.has(companyId)) {
      this.#candidates.delete(companyId)
      return
    }
    // A replica whose epoch claims fail takes nothing until PostgreSQL answers again.
    if (this.#held.acquiring(companyId) || this.#database.degraded) return
    const at = now()
    if (this.#backoff.waits(companyId, at)) return
    if (this.#membership.currentIncarnation(at) === undefined) return
    const observed = this.#book.get(companyId)
    if (observed) {
      if (this.#isLeftover(observed, at)) {
        this.#upkeep.clearLeftover(companyId, observed.revision)
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
    const preferred = this.#preferred.get(companyId)
    const takes = takesUnowned({
      self: this.replica,
      preferred,
      preferredAlive: preferred !== undefined && this.#membership.members.isAlive(preferred, at),
      unownedSince: this.#unownedSince.get(companyId) ?? this.#startedAt,
      assignmentChangedAt: this.#assignmentChangedAt,
      at,
      graceMs: this.#config.unownedGraceMs
    })
    if (!takes) return
    this.#queue.offer(companyId, () => this.#held.acquire(companyId, observed?.revision, this.#unownedSince.get(companyId)))
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
    return this.#membership.members.confirmedGone(observed.replica, observed.incarnation) === true
  }

  #holderIsLive (observed: ObservedLease, at: number): boolean {
    return observed.incarnation !== undefined && this.#membership.members.isLiveIncarnation(observed.replica, observed.incarnation, at)
  }

  /** When an orphaned company became unowned, as this replica can tell: its holder's last heartbeat plus the TTL. */
  #orphanedSince (observed: ObservedLease, at: number): number {
    const since = observed.incarnation === undefined ? observed.seenAt + this.ttlMs : this.#membership.members.goneSince(observed.replica)
    return Math.min(since ?? at, at)
  }

  /** A record under this replica's own incarnation that it does not hold: a release whose delete did not get through. */
  #isLeftover (observed: ObservedLease, at: number): boolean {
    return observed.replica === this.replica && observed.incarnation !== undefined &&
      observed.incarnation === this.#membership.currentIncarnation(at)
  }

  /** When preferred owners change (a replica joined), hand companies over a few at a time. */
  #handOffToPreferred (): void {
    const at = now()
    if (at < this.#nextHandoffAt) return
    const members = this.#membership.live(at, true)
    const movable = [...this.#held.all()].filter((held) => {
      const preferred = this.#preferred.get(held.companyId)
      return !held.ending && held.subscription !== undefined && preferred !== undefined && preferred !== this.replica &&
        members.includes(preferred) && at - held.acquiredAt >= this.#minHoldMs
    })
    if (movable.length === 0) return
    this.#nextHandoffAt = at + this.#config.handoffIntervalMs
    for (const held of movable.slice(0, this.#config.handoffBatch)) void this.#held.release(held, 'handoff')
  }
}
