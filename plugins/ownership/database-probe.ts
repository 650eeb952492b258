import { performance } from 'node:perf_hooks'
import type { MikroORM } from '@mikro-orm/postgresql'
import { settlesWithin } from '../../core/deadline.ts'

/**
 * Whether this replica's PostgreSQL answers, asked when an epoch claim fails with an error and then
 * every `intervalMs` while it does not. A replica that reaches NATS but not PostgreSQL would win
 * records and give them straight back, keeping its companies unheld for as long as the cut lasts;
 * degraded, it says so in its heartbeat and the others are assigned its companies.
 */
export class DatabaseProbe {
  readonly #orm: MikroORM
  readonly #intervalMs: number
  /** Told when the answer changes: degraded, or healthy again. */
  readonly #onChange: (answers: boolean) => void
  #degraded = false
  #probing = false
  #nextAt = 0

  constructor (orm: MikroORM, intervalMs: number, onChange: (answers: boolean) => void) {
    this.#orm = orm
    this.#intervalMs = intervalMs
    this.#onChange = onChange
  }

  get degraded (): boolean { return this.#degraded }

  /** A claim failed with an error: find out whether PostgreSQL is there at all. */
  claimFailed (): void {
    if (!this.#degraded && !this.#probing) this.#probe()
  }

  /** On every tick: while degraded, ask again now and then. */
  tick (at: number): void {
    if (this.#degraded && !this.#probing && at >= this.#nextAt) this.#probe()
  }

  #probe (): void {
    this.#probing = true
    const query = this.#orm.em.fork().execute('select 1')
    query.catch(() => {})
    settlesWithin(query, this.#intervalMs)
      .then(async (settled) => settled && await query.then(() => true, () => false))
      .then((answers) => {
        this.#nextAt = performance.now() + this.#intervalMs
        if (this.#degraded === !answers) return
        this.#degraded = !answers
        this.#onChange(answers)
      })
      .finally(() => { this.#probing = false })
  }
}
