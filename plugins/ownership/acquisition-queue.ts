/**
 * At most `limit` acquisitions at once. Unbounded, a cold start fired thousands: their leases were
 * won, then their fencing epochs waited for PostgreSQL connections past the pool's timeout, and the
 * leases were given back to be won again (bench:scale). The companies waiting for a turn are looked
 * at again when they get one, those that prefer this replica first, so that its backlog goes to it
 * rather than to whoever has room.
 */
export class AcquisitionQueue {
  readonly #limit: number
  readonly #prefersThis: (companyId: string) => boolean
  readonly #lookAgain: (companyId: string) => void
  readonly #onError: (err: unknown, companyId: string) => void
  readonly #due = { preferred: new Set<string>(), others: new Set<string>() }
  #running = 0

  constructor (options: {
    limit: number
    prefersThis: (companyId: string) => boolean
    /** A company's turn came: decide again whether to take it (things may have changed while it waited). */
    lookAgain: (companyId: string) => void
    onError: (err: unknown, companyId: string) => void
  }) {
    this.#limit = options.limit
    this.#prefersThis = options.prefersThis
    this.#lookAgain = options.lookAgain
    this.#onError = options.onError
  }

  get running (): number { return this.#running }
  get waiting (): number { return this.#due.preferred.size + this.#due.others.size }

  isWaiting (companyId: string): boolean {
    return this.#due.preferred.has(companyId) || this.#due.others.has(companyId)
  }

  /** Runs the acquisition now if there is room; otherwise the company waits for a turn. */
  offer (companyId: string, acquire: () => Promise<void>): void {
    const { preferred, others } = this.#due
    if (this.#running >= this.#limit) {
      (this.#prefersThis(companyId) ? preferred : others).add(companyId)
      return
    }
    preferred.delete(companyId)
    others.delete(companyId)
    this.#running++
    acquire()
      .catch((err: unknown) => { this.#onError(err, companyId) })
      .finally(() => {
        this.#running--
        this.#next()
      })
  }

  clear (): void {
    this.#due.preferred.clear()
    this.#due.others.clear()
  }

  /** The companies waiting, its own preferred first, oldest first, while there is room. */
  #next (): void {
    const { preferred, others } = this.#due
    for (const due of [preferred, others]) {
      for (const companyId of due) {
        if (this.#running >= this.#limit) return
        due.delete(companyId)
        // Queued when this replica was its preferred owner, and no longer is (another replica joined): it waits behind.
        if (due === preferred && !this.#prefersThis(companyId)) {
          others.add(companyId)
          continue
        }
        this.#lookAgain(companyId)
      }
    }
  }
}

/** ± this share of a backoff is random, so that replicas and companies do not retry in lockstep. */
const JITTER_SHARE = 0.25

/**
 * When this replica may try a company again. A lost race waits a moment; a failure (the fencing
 * epoch could not be claimed, the connection could not be opened) waits longer each time, starting at
 * the grace other replicas wait before they take a company they are not preferred for: a replica
 * that cannot hold a company stops re-taking it within that grace, so the others get it.
 */
export class RetryBackoff {
  readonly #firstFailureMs: () => number
  readonly #maxMs: () => number
  readonly #until = new Map<string, number>()
  readonly #failures = new Map<string, number>()

  constructor (firstFailureMs: () => number, maxMs: () => number) {
    this.#firstFailureMs = firstFailureMs
    this.#maxMs = maxMs
  }

  /** Whether the company must not be tried yet; a wait long over is forgotten, and with it the streak of failures. */
  waits (companyId: string, at: number): boolean {
    const until = this.#until.get(companyId)
    if (until === undefined) return false
    if (until > at) return true
    this.#until.delete(companyId)
    if (at - until > this.#maxMs()) this.#failures.delete(companyId)
    return false
  }

  /** Lost a race (someone else wrote first): look again shortly. */
  brief (companyId: string, at: number, ms: number): void {
    this.#until.set(companyId, at + ms)
  }

  /** Returns how long the company now waits. */
  failed (companyId: string, at: number): number {
    const failures = (this.#failures.get(companyId) ?? 0) + 1
    this.#failures.set(companyId, failures)
    const base = Math.min(this.#maxMs(), this.#firstFailureMs() * 2 ** (failures - 1))
    const waitMs = Math.round(base * (1 + Math.random() * JITTER_SHARE))
    this.#until.set(companyId, at + waitMs)
    return waitMs
  }

  succeeded (companyId: string): void {
    this.#failures.delete(companyId)
    this.#until.delete(companyId)
  }

  /** A company nobody wants online any more needs no wait. */
  forget (companyId: string): void {
    this.#failures.delete(companyId)
    this.#until.delete(companyId)
  }

  /** Every wait ends (the cause of the failures went away). */
  clear (): void {
    this.#failures.clear()
    this.#until.clear()
  }
}
