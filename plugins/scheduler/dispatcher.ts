import type { FastifyBaseLogger } from 'fastify'
import { RetriedWrites } from '../../core/retried-writes.ts'
import type { EventData } from '../../contracts/index.ts'
import type { CommandLease } from '../ownership/index.ts'
import { derivedMessageId, failureOf, retryDelayOf } from './outcomes.ts'
import { isAllowed, nextAllowed, type AllowedHours } from './quiet-hours.ts'
import { iso, type ScheduledRow, type SchedulerStore } from './store.ts'

/** Due messages read per look. */
const DUE_BATCH = 200
/** Expired messages are looked for this often (by every replica: a company nobody holds has its messages expire too). */
const EXPIRY_SWEEP_MS = 1_000
const EXPIRED_BATCH = 500

type Publish = <T extends 'message_expired' | 'message_failed'>(companyId: string, type: T, data: EventData<T>, epoch: number) => void

export interface DispatcherOptions {
  store: SchedulerStore
  pollMs: number
  maxAttempts: number
  /** Whether this replica holds any company (else a look asks PostgreSQL nothing but the expiry sweep). */
  holdsAny: () => boolean
  /** The lease of a company this replica holds with an open connection; undefined for any other. */
  readyLease: (companyId: string) => CommandLease | undefined
  /** Whether the lease is still this replica's (a company handed off mid-batch stops there). */
  stillHeld: (companyId: string, epoch: number) => boolean
  /** Sends the message through its command's handler under the lease, with WhatsApp's id chosen. */
  send: (row: ScheduledRow, lease: CommandLease, messageId: string) => Promise<{ messageId: string }>
  allowedHours: (companyId: string) => Promise<AllowedHours | undefined>
  publish: Publish
  log: FastifyBaseLogger
}

/**
 * Sends the scheduled messages of the companies this replica holds, each once and on time: it looks
 * for due messages every SCHEDULER_POLL_MS, takes each under the lease's epoch (a fenced write: a
 * replica that lost the company cannot take one), sends it under a WhatsApp id derived from its own,
 * and records the outcome under the same epoch. A newer holder first makes the messages its
 * predecessor left `sending` pending again: sent again under the same id, they show once.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions
  /** Companies whose due messages are being sent now: one batch per company at a time, in due order. */
  readonly #busy = new Set<string>()
  readonly #working = new Set<Promise<void>>()
  /** The epoch under which each company's predecessors' unfinished messages were taken back. */
  readonly #recovered = new Map<string, number>()
  /** Outcomes of sends made that the database did not take at once: written again at every look. */
  readonly #records: RetriedWrites
  #timer: NodeJS.Timeout | undefined
  #looking = false
  #stopped = false
  #lastSweep = 0

  constructor (options: DispatcherOptions) {
    this.#options = options
    this.#records = new RetriedWrites(options.log)
  }

  start (): void {
    this.#timer = setInterval(() => { void this.look() }, this.#options.pollMs)
    this.#timer.unref()
  }

  /** Stops looking and waits for the messages being sent (a shutdown: the rest is the next holder's). */
  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await Promise.allSettled([...this.#working])
  }

  /** Resolves once nothing is being sent (tests, benchmarks). */
  async settled (): Promise<void> {
    while (this.#working.size > 0) await Promise.allSettled([...this.#working])
  }

  /** One look: expire what is past its time, take back predecessors' unfinished sends, send what is due. */
  async look (): Promise<void> {
    if (this.#looking || this.#stopped) return
    this.#looking = true
    try {
      if (Date.now() - this.#lastSweep >= EXPIRY_SWEEP_MS) {
        this.#lastSweep = Date.now()
        await this.#expire()
      }
      await this.#records.flush()
      if (!this.#options.holdsAny()) return
      // Which companies have work at all (most have none), and of those, the ones held here: not every
      // company held, four times a second. Those due before the next look count too: each waits for its
      // time, so it goes on time, not up to a poll late.
      const work = await this.#options.store.withWork(this.#options.pollMs)
      await this.#recover(work.unfinished)
      const leases = this.#readyOf(work.due)
      if (leases.size === 0) return
      const due = await this.#options.store.due([...leases.keys()], DUE_BATCH, this.#options.pollMs)
      const byCompany = new Map<string, ScheduledRow[]>()
      for (const row of due) byCompany.set(row.company_id, [...(byCompany.get(row.company_id) ?? []), row])
      for (const [companyId, rows] of byCompany) {
        this.#busy.add(companyId)
        const work = this.#sendAll(rows, leases.get(companyId)!).finally(() => {
          this.#busy.delete(companyId)
          this.#working.delete(work)
        })
        this.#working.add(work)
      }
    } catch (err) {
      this.#options.log.warn({ err }, 'scheduled messages: a look for due ones failed; the next one tries again')
    } finally {
      this.#looking = false
    }
  }

  async #expire (): Promise<void> {
    const expired = await this.#options.store.expire(EXPIRED_BATCH)
    for (const row of expired) {
      this.#options.publish(row.company_id, 'message_expired', {
        id: row.id, scheduleKey: row.schedule_key, phone: row.phone, dueAt: iso(row.due_at), expiresAt: iso(row.expires_at!)
      }, 0)
    }
  }

  /** Of these companies, those held here with an open connection and not busy sending, with their leases. */
  #readyOf (companyIds: Iterable<string>): Map<string, CommandLease> {
    const leases = new Map<string, CommandLease>()
    for (const companyId of companyIds) {
      const lease = this.#busy.has(companyId) ? undefined : this.#options.readyLease(companyId)
      if (lease) leases.set(companyId, lease)
    }
    return leases
  }

  /**
   * Once per lease: the messages an older epoch left `sending` are pending again (they go at the next
   * look). `withUnfinished` are the companies with messages `sending` at all; only those held here are looked at.
   */
  async #recover (withUnfinished: string[]): Promise<void> {
    for (const [companyId, epoch] of this.#recovered) {
      if (this.#options.readyLease(companyId)?.epoch !== epoch && !this.#busy.has(companyId)) this.#recovered.delete(companyId)
    }
    for (const [companyId, lease] of this.#readyOf(withUnfinished)) {
      if (this.#recovered.get(companyId) === lease.epoch) continue
      const taken = await this.#options.store.recover(companyId, lease.epoch)
      this.#recovered.set(companyId, lease.epoch)
      if (taken > 0) {
        this.#options.log.info({ companyId, epoch: lease.epoch, taken }, 'scheduled messages a predecessor began are pending again')
      }
    }
  }

  async #sendAll (rows: ScheduledRow[], lease: CommandLease): Promise<void> {
    for (const row of rows) {
      if (this.#stopped || !this.#options.stillHeld(row.company_id, lease.epoch)) return
      try {
        await this.#sendOne(row, lease)
      } catch (err) {
        this.#options.log.warn({ err, companyId: row.company_id, id: row.id },
          'a scheduled message could not be handled; the next look tries again')
      }
    }
  }

  async #sendOne (row: ScheduledRow, lease: CommandLease): Promise<void> {
    const { store, log } = this.#options
    const early = new Date(row.due_at).getTime() - Date.now()
    if (early > 0) await new Promise((resolve) => setTimeout(resolve, early))
    if (this.#stopped || !this.#options.stillHeld(row.company_id, lease.epoch)) return
    const now = Date.now()
    if (row.quiet_hours === 'respect') {
      const hours = await this.#options.allowedHours(row.company_id)
      if (hours && !isAllowed(hours, now)) {
        await store.defer(row, new Date(nextAllowed(hours, now)))
        return
      }
    }
    if (!await store.claim(row, lease.epoch)) return
    const attempts = row.attempts + 1
    let messageId: string
    try {
      messageId = (await this.#options.send(row, lease, derivedMessageId(row.id))).messageId
    } catch (err) {
      const failure = failureOf(err)
      const error = { code: failure.code, message: failure.message }
      if (failure.passing && attempts < this.#options.maxAttempts) {
        log.debug({ err, companyId: row.company_id, id: row.id, attempts }, 'scheduled message not sent; trying again later')
        const dueAt = new Date(Date.now() + retryDelayOf(failure, attempts))
        await this.#records.write(row.id, () => store.retryAt(row, lease.epoch, dueAt, error))
        return
      }
      await this.#records.write(row.id, () => store.failed(row, lease.epoch, error))
      const ref = { id: row.id, scheduleKey: row.schedule_key, phone: row.phone }
      this.#options.publish(row.company_id, 'message_failed', { ...ref, error }, lease.epoch)
      return
    }
    // Until it is written the row stays `sending` under this epoch: nobody sends it again unless the company changes hands.
    await this.#records.write(row.id, () => store.sent(row, lease.epoch, messageId))
  }
}
