import { createHash, randomUUID } from 'node:crypto'
import type { KV } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'

/** Records live this long: a repeat within it returns the first result. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

type StoredRecord =
  | { state: 'pending', startedAt: number, replica: string, attempt?: string }
  | { state: 'done', reply: unknown }

export type Begun =
  | { kind: 'new' }
  | { kind: 'done', reply: unknown }
  | { kind: 'pending', startedAt: number, replica: string }

/**
 * Idempotency records in a JetStream KV bucket (24 h TTL), so a repeat reaches the same answer on
 * any replica, before or after a failover. `begin` creates a pending record atomically (KV create:
 * of two concurrent repeats exactly one sends); `complete` stores the reply; `abandon` removes the
 * record of a send that certainly did not happen, so the key may be used again.
 */
export class IdempotencyStore {
  readonly #kv: KV
  readonly #replica: string
  readonly #log: FastifyBaseLogger

  constructor (kv: KV, replica: string, log: FastifyBaseLogger) {
    this.#kv = kv
    this.#replica = replica
    this.#log = log
  }

  /** KV keys allow few characters; the client's key is hashed, scoped by company and operation. */
  static keyOf (companyId: string, operation: string, clientKey: string): string {
    return `${companyId}.${operation}.${createHash('sha256').update(clientKey).digest('hex')}`
  }

  async begin (key: string): Promise<Begun> {
    // The attempt's own id: a create whose answer was lost (a JetStream election) but which was
    // stored is recognized as this attempt's, not taken for an earlier request's.
    const attempt = randomUUID()
    const pending: StoredRecord = { state: 'pending', startedAt: Date.now(), replica: this.#replica, attempt }
    try {
      await this.#kv.create(key, JSON.stringify(pending))
      return { kind: 'new' }
    } catch (err) {
      const entry = await this.#kv.get(key)
      // Gone between the two calls (completed-and-abandoned, or expired): the create error was about it.
      if (!entry || entry.operation !== 'PUT') {
        this.#log.debug({ err, key }, 'idempotency record vanished during begin; trying once more')
        await this.#kv.create(key, JSON.stringify(pending))
        return { kind: 'new' }
      }
      const record = entry.json<StoredRecord>()
      if (record.state === 'pending' && record.attempt === attempt) return { kind: 'new' }
      return record.state === 'done'
        ? { kind: 'done', reply: record.reply }
        : { kind: 'pending', startedAt: record.startedAt, replica: record.replica }
    }
  }

  async complete (key: string, reply: unknown): Promise<void> {
    await this.#kv.put(key, JSON.stringify({ state: 'done', reply } satisfies StoredRecord))
  }

  async abandon (key: string): Promise<void> {
    await this.#kv.delete(key)
  }
}
