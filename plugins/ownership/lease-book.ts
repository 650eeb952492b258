import type { KvEntry } from '@nats-io/kv'

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

/** A record as this replica last saw it in the lease bucket. */
export interface ObservedLease {
  replica: string
  /** Undefined for a value an earlier version wrote (a lease renewed on its own) or one that is not a lease. */
  incarnation: string | undefined
  nonce: string
  revision: number
  seenAt: number
}

export interface OwnershipChange {
  companyId: string
  /** The replica that held it before, null when nobody did. */
  from: string | null
  /** The replica that holds it now, null when nobody does. */
  to: string | null
  at: string
}

/** Ownership changes kept for the cluster view. */
const CHANGES_KEPT = 50

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

/**
 * What the lease bucket says, as this replica has seen it: each company's record, the companies held
 * under each incarnation (to take them once it is gone), and the recent changes of holder.
 */
export class LeaseBook {
  readonly #leases = new Map<string, ObservedLease>()
  readonly #byIncarnation = new Map<string, { replica: string, companies: Set<string> }>()
  /** Changes of holder seen, newest last (GET /api/whatsapp/cluster). */
  readonly #changes: OwnershipChange[] = []
  /** The wall clock at start, to compare with a record's `since`. */
  readonly #startedWall: number

  constructor (startedWall: number) {
    this.#startedWall = startedWall
  }

  get (companyId: string): ObservedLease | undefined {
    return this.#leases.get(companyId)
  }

  companies (): IterableIterator<string> {
    return this.#leases.keys()
  }

  /** A record was written: returns it as observed. */
  put (companyId: string, entry: KvEntry, at: number): ObservedLease {
    const previous = this.#leases.get(companyId)
    // A value that is not a lease (written by someone else) still occupies the key: held by nobody we know.
    const value = leaseValueOf(entry) ?? { replica: 'unknown', nonce: `unreadable:${entry.revision}`, since: '', incarnation: undefined }
    // A renewal (an earlier version's) keeps the nonce; a record written before this replica started is no change it saw.
    if (previous ? previous.nonce !== value.nonce : Date.parse(value.since) >= this.#startedWall) {
      this.#noteChange(companyId, previous?.replica ?? null, value.replica)
    }
    const observed = { replica: value.replica, incarnation: value.incarnation, nonce: value.nonce, revision: entry.revision, seenAt: at }
    this.#leases.set(companyId, observed)
    this.#index(companyId, previous, observed)
    return observed
  }

  /** A record was deleted (or purged). */
  remove (companyId: string): void {
    const previous = this.#leases.get(companyId)
    if (!previous) return
    this.#noteChange(companyId, previous.replica, null)
    this.#leases.delete(companyId)
    this.#index(companyId, previous, undefined)
  }

  /** Every incarnation some record names, with its companies; an incarnation that no record names any more is dropped. */
  * incarnations (): Generator<[incarnation: string, holder: { replica: string, companies: Set<string> }]> {
    for (const [incarnation, holder] of this.#byIncarnation) {
      if (holder.companies.size === 0) this.#byIncarnation.delete(incarnation)
      else yield [incarnation, holder]
    }
  }

  /** Whether any record names `incarnation`. */
  names (incarnation: string): boolean {
    return (this.#byIncarnation.get(incarnation)?.companies.size ?? 0) > 0
  }

  /** Recent changes of holder, newest first. */
  changes (): OwnershipChange[] {
    return this.#changes.toReversed()
  }

  #noteChange (companyId: string, from: string | null, to: string | null): void {
    this.#changes.push({ companyId, from, to, at: new Date().toISOString() })
    if (this.#changes.length > CHANGES_KEPT) this.#changes.shift()
  }

  #index (companyId: string, previous: ObservedLease | undefined, next: ObservedLease | undefined): void {
    if (previous?.incarnation === next?.incarnation) return
    if (previous?.incarnation !== undefined) this.#byIncarnation.get(previous.incarnation)?.companies.delete(companyId)
    if (next?.incarnation === undefined) return
    let holder = this.#byIncarnation.get(next.incarnation)
    if (!holder) this.#byIncarnation.set(next.incarnation, holder = { replica: next.replica, companies: new Set() })
    holder.companies.add(companyId)
  }
}
