import { createHash, randomUUID } from 'node:crypto'
import type { KV } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { FixedHeaders } from '../../core/nats/fixed-headers.ts'
import type { StreamPublisher } from '../../core/nats/stream-publisher.ts'

/** Records live this long: a repeat within it returns the first result. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000

type StoredRecord =
  | { state: 'pending', startedAt: number, replica: string, attempt?: string }
  | { state: 'done', reply: unknown }

export type Begun =
  | { kind: 'new' }
  | { kind: 'done', reply: unknown }
  | { kind: 'pending', startedAt: number, replica: string }

/** JetStream's header for a write that must find its subject's last sequence at this one (0: no value yet). */
const EXPECTED_LAST_SUBJECT_SEQUENCE = 'Nats-Expected-Last-Subject-Sequence'

/**
 * Idempotency records in a JetStream KV bucket (24 h TTL), so a repeat reaches the same answer on
 * any replica, before or after a failover. `begin` creates a pending record atomically (KV create:
 * of two concurrent repeats exactly one sends); `complete` stores the reply; `abandon` removes the
 * record of a send that certainly did not happen, so the key may be used again.
 *
 * The two writes of every keyed send are made as nats.js's KV `create` and `put` make them (a publish
 * on the key's subject, the create expecting no value), through a stream publisher of their own, as the events have: one reply
 * subscription and the turn's writes together instead of a request each. With them, a keyed send
 * cost the holder 2.5 times an unkeyed one in bench:send.
 */
export class IdempotencyStore {
  readonly #kv: KV
  readonly #publisher: Pick<StreamPublisher, 'publish'>
  readonly #replica: string
  readonly #log: FastifyBaseLogger

  constructor (kv: KV, publisher: Pick<StreamPublisher, 'publish'>, replica: string, log: FastifyBaseLogger) {
    this.#kv = kv
    this.#publisher = publisher
    this.#replica = replica
    this.#log = log
  }

  /** Writes `value` as the key's value; with `previousRevision`, only if that is the key's last revision (0: none). */
  async #write (key: string, value: string, previousRevision?: number): Promise<void> {
    // The subject nats.js writes the key on (a mirror's or a domain's prefix included).
    const subject = (this.#kv as unknown as { subjectForKey: (key: string, edit: boolean) => string }).subjectForKey(key, true)
    const expectation = previousRevision === undefined
      ? undefined
      : new FixedHeaders({ [EXPECTED_LAST_SUBJECT_SEQUENCE]: String(previousRevision) })
    await this.#publisher.publish(subject, value, expectation)
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
      await this.#write(key, JSON.stringify(pending), 0)
      return { kind: 'new' }
    } catch (err) {
      const entry = await this.#kv.get(key)
      // Abandoned (a delete marker, which a create must name as the last revision), or gone since:
      // the create's error was about a record that is no more.
      if (!entry || entry.operation !== 'PUT') {
        this.#log.debug({ err, key }, 'idempotency record vanished during begin; trying once more')
        await this.#write(key, JSON.stringify(pending), entry?.revision ?? 0)
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
    await this.#write(key, JSON.stringify({ state: 'done', reply } satisfies StoredRecord))
  }

  async abandon (key: string): Promise<void> {
    await this.#kv.delete(key)
  }
}
