import { Type, type Static } from 'typebox'

/**
 * A company id is also a NATS subject token and a KV key part, so it must never carry `.`, `*`, `>`
 * or whitespace.
 */
export const COMPANY_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
export const CompanyId = Type.String({ pattern: COMPANY_ID_PATTERN, description: '1-64 characters of [A-Za-z0-9_-]' })
export type CompanyId = Static<typeof CompanyId>

/** What every event on `wa.evt.<companyId>.<type>` looks like, on NATS and on the WebSocket. */
export const EventEnvelope = Type.Object({
  type: Type.String(),
  companyId: CompanyId,
  timestamp: Type.String({ description: 'ISO 8601 time the event was produced' }),
  replica: Type.String({ description: 'The replica that produced it' }),
  epoch: Type.Optional(Type.Number({ description: 'The fencing epoch of the lease under which it was produced' })),
  seq: Type.Optional(Type.Number({ description: 'Stream sequence, set when read back from the event stream' })),
  data: Type.Record(Type.String(), Type.Unknown())
})
export type EventEnvelope = Static<typeof EventEnvelope>
