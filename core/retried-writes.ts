import type { FastifyBaseLogger } from 'fastify'
import { ErrorCode } from '../contracts/index.ts'
import { GatewayError } from './errors.ts'

/** A write is tried this many times at once, a little apart, before it waits for the next flush. */
const ATTEMPTS_NOW = 3
const APART_MS = 100

/**
 * Writes that record work already done (a message WhatsApp took), which must happen even if the
 * database fails at that moment: tried a few times at once, then kept and tried again at every
 * flush until they succeed. A fenced write is dropped: this replica no longer holds the company,
 * and its successor finds the work unrecorded and redoes it (a message again under the same id).
 */
export class RetriedWrites {
  readonly #pending = new Map<string, () => Promise<unknown>>()
  readonly #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    this.#log = log
  }

  get size (): number {
    return this.#pending.size
  }

  /** Runs the write; one that keeps failing is kept under `key` (a later write with the key replaces it). */
  async write (key: string, write: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await write()
        this.#pending.delete(key)
        return
      } catch (err) {
        if (isFenced(err)) return
        if (attempt >= ATTEMPTS_NOW) {
          this.#log.error({ err, key }, 'a record of work done was not written; it is tried again')
          this.#pending.set(key, write)
          return
        }
        await new Promise((resolve) => setTimeout(resolve, APART_MS * attempt))
      }
    }
  }

  /** Tries every kept write once more; those that fail stay. */
  async flush (): Promise<void> {
    for (const [key, write] of [...this.#pending]) {
      try {
        await write()
        this.#pending.delete(key)
      } catch (err) {
        if (isFenced(err)) this.#pending.delete(key)
        else this.#log.warn({ err, key }, 'a record of work done is still not written')
      }
    }
  }
}

function isFenced (err: unknown): boolean {
  return err instanceof GatewayError && err.code === ErrorCode.FENCED
}
