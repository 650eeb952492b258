import { JetStreamApiError } from '@nats-io/jetstream'

/** JetStream's "wrong last sequence": the compare-and-set of create/update/delete failed. */
const WRONG_LAST_SEQUENCE = new Set([10071, 10164])

export function isWrongLastSequence (err: unknown): boolean {
  return err instanceof JetStreamApiError && WRONG_LAST_SEQUENCE.has(err.code)
}
