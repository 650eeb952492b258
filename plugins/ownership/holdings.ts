import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { KV } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import type { Bus, BusSubscription } from '../../core/bus.ts'
import type { Events } from '../../core/events.ts'
import type { OwnerChanged, SubjectSet } from '../../contracts/index.ts'
import { CommandPayload, type CommandRouter } from './command-router.ts'
import type { ConnectLease, Connector } from './connector.ts'
import type { Membership } from './membership.ts'
import { isWrongLastSequence } from './kv-errors.ts'
import type { EpochClaims } from './records.ts'
import type { LeaseValue } from './lease-book.ts'
import type { RetryBackoff } from './acquisition-queue.ts'

export const LEASE_PREFIX = 'company.'

export interface HeldLease {
  companyId: string
  /** Revision of the record this replica wrote: the fencing epoch, and the compare-and-set of its release. */
  epoch: number
  value: LeaseValue
  acquiredAt: number
  subscription?: BusSubscription
  ending: boolean
}

export interface OwnershipStats {
  acquisitions: number
  losses: number
  fences: number
  handoffs: number
}

const now = () => performance.now()

/**
 * The companies this replica holds, from winning a record to giving it back: the record written,
 * the fencing epoch claimed, the connection opened under the lease, commands taken; and the two
 * ways out, a graceful release (close, then delete the record) and a fence (close, touch nothing).
 */
export class Holdings {
  readonly stats: OwnershipStats = { acquisitions: 0, losses: 0, fences: 0, handoffs: 0 }
  readonly #held = new Map<string, HeldLease>()
  readonly #acquiring = new Set<string>()
  readonly #acquiredListeners: ((companyId: string, takeoverMs: number | undefined) => void)[] = []
  readonly #replica: string
  readonly #leaseKv: () => KV
  readonly #membership: () => Membership
  readonly #epochClaims: EpochClaims
  readonly #connector: Connector
  readonly #bus: Bus
  readonly #subjects: SubjectSet
  readonly #commands: CommandRouter
  readonly #events: Pick<Events, 'publish'>
  readonly #log: FastifyBaseLogger
  readonly #backoff: RetryBackoff
  readonly #retryMs: () => number
  readonly #stopping: () => boolean
  /** A company is no longer held here (released, fenced, given back): it may need a holder. */
  readonly #onEnded: (companyId: string) => void
  /** An epoch claim failed with an error (not a newer epoch stored): is PostgreSQL there? */
  readonly #onClaimError: () => void
  /** A compare-and-set on the record failed: this replica's view of it may be behind the server's. */
  readonly #onStaleRecord: (companyId: string) => void

  constructor (options: {
    replica: string
    leaseKv: () => KV
    membership: () => Membership
    epochClaims: EpochClaims
    connector: Connector
    bus: Bus
    subjects: SubjectSet
    commands: CommandRouter
    events: Pick<Events, 'publish'>
    log: FastifyBaseLogger
    backoff: RetryBackoff
    retryMs: () => number
    stopping: () => boolean
    onEnded: (companyId: string) => void
    onClaimError: () => void
    onStaleRecord: (companyId: string) => void
  }) {
    this.#replica = options.replica
    this.#leaseKv = options.leaseKv
    this.#membership = options.membership
    this.#epochClaims = options.epochClaims
    this.#connector = options.connector
    this.#bus = options.bus
    this.#subjects = options.subjects
    this.#commands = options.commands
    this.#events = options.events
    this.#log = options.log
    this.#backoff = options.backoff
    this.#retryMs = options.retryMs
    this.#stopping = options.stopping
    this.#onEnded = options.onEnded
    this.#onClaimError = options.onClaimError
    this.#onStaleRecord = options.onStaleRecord
  }

  /** Called when this replica starts holding a company; `takeoverMs` is how long it had been without a holder, when known. */
  onAcquired (listener: (companyId: string, takeoverMs: number | undefined) => void): void {
    this.#acquiredListeners.push(listener)
  }

  get (companyId: string): HeldLease | undefined {
    return this.#held.get(companyId)
  }

  has (companyId: string): boolean {
    return this.#held.has(companyId)
  }

  /** Its record is being written: not to be taken again meanwhile. */
  acquiring (companyId: string): boolean {
    return this.#acquiring.has(companyId)
  }

  get size (): number {
    return this.#held.size
  }

  all (): IterableIterator<HeldLease> {
    return this.#held.values()
  }

  /** Writes the record (created, or compare-and-set over an orphaned one), claims its epoch, connects. */
  async acquire (companyId: string, orphanRevision: number | undefined, unownedSince: number | undefined): Promise<void> {
    const membership = this.#membership()
    const incarnation = membership.currentIncarnation()
    if (incarnation === undefined) return
    this.#acquiring.add(companyId)
    const value: LeaseValue = { replica: this.#replica, incarnation, nonce: randomUUID(), since: new Date().toISOString() }
    const key = `${LEASE_PREFIX}${companyId}`
    let epoch: number
    try {
      epoch = orphanRevision === undefined
        ? await this.#leaseKv().create(key, JSON.stringify(value))
        : await this.#leaseKv().update(key, JSON.stringify(value), orphanRevision)
    } catch (err) {
      this.#acquiring.delete(companyId)
      if (isWrongLastSequence(err)) {
        // Someone else took it first, or this replica's view of the record is behind: look again shortly, at the server's.
        this.#backoff.brief(companyId, now(), this.#retryMs())
        this.#onStaleRecord(companyId)
      } else {
        this.#log.warn({ err, companyId }, 'ownership record write failed')
      }
      return
    }
    const held: HeldLease = { companyId, epoch, value, acquiredAt: now(), ending: false }
    this.#held.set(companyId, held)
    this.#acquiring.delete(companyId)
    // Won after stop() listed what to hand off: given back now, not left behind.
    if (this.#stopping()) {
      await this.release(held, 'shutdown')
      return
    }
    // The membership lease ended while the record was being written: the record is already an orphan.
    if (membership.currentIncarnation() !== incarnation) {
      await this.fence(held, 'fenced')
      return
    }

    let claimed: boolean
    try {
      claimed = await this.#epochClaims.claim(companyId, epoch)
    } catch (err) {
      const waitMs = this.#backoff.failed(companyId, now())
      this.#log.error({ err, companyId, epoch, waitMs }, 'could not record the fencing epoch; giving the lease back')
      this.#onClaimError()
      await this.release(held, 'claim_failed')
      return
    }
    if (!claimed) {
      const waitMs = this.#backoff.failed(companyId, now())
      this.#log.error({ companyId, epoch, waitMs }, `a newer epoch than ${epoch} is stored; giving the lease back`)
      await this.release(held, 'claim_failed')
      return
    }
    if (held.ending) return
    let opened: boolean
    try {
      opened = await this.#connector.connect(companyId, this.#leaseOf(held))
    } catch (err) {
      const waitMs = this.#backoff.failed(companyId, now())
      this.#log.warn({ err, companyId, waitMs }, 'connect failed; giving the lease back')
      await this.release(held, 'connect_failed')
      return
    }
    if (held.ending) {
      await this.#connector.disconnect(companyId, epoch, 'lease ended while connecting')
      return
    }
    // Nothing opened though the lease is still held (another attempt got in the way): given back, taken again afresh.
    if (!opened) {
      await this.release(held, 'connect_abandoned')
      return
    }
    this.#backoff.succeeded(companyId)
    held.subscription = this.#bus.handle(this.#subjects.commandsOf(companyId), { request: CommandPayload, requestsOnly: true },
      (payload, context) => this.#commands.run(held, payload, context))
    this.stats.acquisitions++
    const takeoverMs = unownedSince === undefined ? undefined : now() - unownedSince
    for (const listener of this.#acquiredListeners) listener(companyId, takeoverMs)
    this.#publishOwnerChange(held, { holder: this.#replica, epoch, reason: 'acquired' })
    this.#log.info({ companyId, epoch }, 'holding company')
  }

  /** What a connection attempt runs under: this lease, for as long as it is held, writing only while the membership key is sure to live. */
  #leaseOf (held: HeldLease): ConnectLease {
    return {
      epoch: held.epoch,
      isHeld: () => !held.ending && this.#held.get(held.companyId) === held,
      writableUntil: () => this.#membership().writableUntil()
    }
  }

  /** The membership heartbeat could not be kept: every company held under it is closed. */
  fenceAll (reason: 'fenced' | 'lost'): void {
    for (const held of this.#held.values()) {
      // One being released may still be draining its commands (up to the request timeout) before it
      // disconnects: the lease ends now, so it disconnects now.
      if (held.ending) void this.#connector.disconnect(held.companyId, held.epoch, reason).catch(() => {})
      else void this.fence(held, reason)
    }
  }

  /** Lost or unrenewable: close now, touch nothing on the server. */
  async fence (held: HeldLease, reason: 'fenced' | 'lost'): Promise<void> {
    if (held.ending) return
    held.ending = true
    if (reason === 'fenced') this.stats.fences++
    else this.stats.losses++
    this.#log.warn({ companyId: held.companyId, epoch: held.epoch, reason }, 'lost the lease; closing the connection')
    void held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, held.epoch, reason)
    this.#ended(held)
    this.#publishOwnerChange(held, { holder: null, epoch: held.epoch, reason })
  }

  /**
   * Graceful: stop taking commands, close the connection, then delete the record so others take over
   * at once. It stays held until the delete was tried, so that nothing here mistakes its record for a leftover meanwhile.
   */
  async release (held: HeldLease, reason: string): Promise<void> {
    if (held.ending) return
    held.ending = true
    await held.subscription?.close().catch(() => {})
    await this.#connector.disconnect(held.companyId, held.epoch, reason)
    try {
      await this.#leaseKv().delete(`${LEASE_PREFIX}${held.companyId}`, { previousSeq: held.epoch })
    } catch (err) {
      this.#log.warn({ err, companyId: held.companyId },
        'ownership record release failed; it is deleted later, or taken over once this replica is gone')
    }
    this.#ended(held)
    if (reason === 'handoff') this.stats.handoffs++
    this.#publishOwnerChange(held, { holder: null, epoch: held.epoch, reason })
  }

  #ended (held: HeldLease): void {
    if (this.#held.get(held.companyId) === held) this.#held.delete(held.companyId)
    this.#onEnded(held.companyId)
  }

  #publishOwnerChange (held: HeldLease, data: OwnerChanged): void {
    this.#events.publish(held.companyId, 'owner_changed', { ...data }, { epoch: held.epoch })
  }
}
