import { performance } from 'node:perf_hooks'
import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { isWrongLastSequence } from './kv-errors.ts'
import type { LeaseBook } from './lease-book.ts'
import type { RetryBackoff } from './acquisition-queue.ts'
import { LEASE_PREFIX } from './holdings.ts'

/** What a delete looks like to the watch, for a record the server no longer has. */
function deletedEntry (companyId: string, revision: number): KvEntry {
  return { key: `${LEASE_PREFIX}${companyId}`, operation: 'DEL', revision } as KvEntry
}

/**
 * Records nobody holds that would otherwise stay: a leftover of this replica's own (a release whose
 * delete did not get through) and one of a company nobody wants online whose holder is gone. Each is
 * deleted by compare-and-set on the revision seen, so a holder that wrote it since wins; a refused
 * one is read again from the server.
 */
export class RecordUpkeep {
  readonly #leaseKv: () => KV
  readonly #book: () => LeaseBook
  readonly #backoff: RetryBackoff
  readonly #log: FastifyBaseLogger
  readonly #retryMs: () => number
  readonly #ttlMs: number
  /** Applies what the server says of a record as if the watch had said it. */
  readonly #apply: (companyId: string, entry: KvEntry) => void

  constructor (options: {
    leaseKv: () => KV
    book: () => LeaseBook
    backoff: RetryBackoff
    log: FastifyBaseLogger
    retryMs: () => number
    ttlMs: number
    apply: (companyId: string, entry: KvEntry) => void
  }) {
    this.#leaseKv = options.leaseKv
    this.#book = options.book
    this.#backoff = options.backoff
    this.#log = options.log
    this.#retryMs = options.retryMs
    this.#ttlMs = options.ttlMs
    this.#apply = options.apply
  }

  /** Deletes a leftover record so that its company can be taken again (by whichever replica it prefers). */
  clearLeftover (companyId: string, revision: number): void {
    this.#backoff.brief(companyId, performance.now(), this.#retryMs())
    this.#delete(companyId, revision, 'a leftover ownership record could not be deleted; trying again')
  }

  /** Deletes the record of a company nobody wants online whose holder is gone. */
  deleteAbandoned (companyId: string, at: number): void {
    const observed = this.#book().get(companyId)
    if (!observed || this.#backoff.waits(companyId, at)) return
    this.#backoff.brief(companyId, at, this.#ttlMs)
    this.#delete(companyId, observed.revision, 'an abandoned ownership record was not deleted; trying again later')
  }

  #delete (companyId: string, revision: number, failure: string): void {
    this.#leaseKv().delete(`${LEASE_PREFIX}${companyId}`, { previousSeq: revision })
      .catch((err: unknown) => {
        this.#log.warn({ err, companyId }, failure)
        if (isWrongLastSequence(err)) this.refresh(companyId)
      })
  }

  /**
   * Reads a company's record from the stream's leader when a compare-and-set on it failed: the watch
   * may have shown this replica a revision the server does not have as the last (seen once in
   * bench:chaos after a NATS node was killed: 65 s of deletes refused against a revision that was not
   * the record's, the company unheld all along). The server's answer replaces what the watch showed.
   */
  refresh (companyId: string): void {
    this.#leaseKv().get(`${LEASE_PREFIX}${companyId}`)
      .then((entry) => {
        const observed = this.#book().get(companyId)
        if (entry === null || entry.operation !== 'PUT') {
          if (observed) this.#log.warn({ companyId, revision: observed.revision }, 'the server has no record this replica saw; forgotten')
          this.#apply(companyId, entry ?? deletedEntry(companyId, observed?.revision ?? 0))
        } else if (entry.revision !== observed?.revision) {
          this.#log.warn({ companyId, seen: observed?.revision, stored: entry.revision }, 'a record differs from the stored one')
          this.#apply(companyId, entry)
        }
      })
      .catch((err: unknown) => { this.#log.debug({ err, companyId }, 'an ownership record could not be read again') })
  }
}
