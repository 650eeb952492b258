import { Type, type Static } from 'typebox'

/**
 * A company id is also a NATS subject token and a KV key part, so it must never carry `.`, `*`, `>`
 * or whitespace.
 */
export const COMPANY_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
/** The company-id rule in words, for every message that refuses one. */
export const COMPANY_ID_RULE = '1-64 characters of [A-Za-z0-9_-]'
export const CompanyId = Type.String({ pattern: COMPANY_ID_PATTERN, description: COMPANY_ID_RULE })
export type CompanyId = Static<typeof CompanyId>

const COMPANY_ID = new RegExp(COMPANY_ID_PATTERN)

export function isCompanyId (value: unknown): value is CompanyId {
  return typeof value === 'string' && COMPANY_ID.test(value)
}

/** The payload of a request that takes no parameters. */
export const EmptyRequest = Type.Object({})

/** The payload of a command whose body carries nothing: any field is refused (VALIDATION_ERROR), never ignored. */
export const NoFieldsRequest = Type.Object({}, { additionalProperties: false })

/** What an operation that has nothing else to say answers. */
export const SuccessReply = Type.Object({ success: Type.Literal(true) })
export type SuccessReply = Static<typeof SuccessReply>

/** What every event on `<namespace>.evt.<companyId>.<type>` looks like, on NATS and on the WebSocket. */
export const EventEnvelope = Type.Object({
  id: Type.String({ description: 'Stable id of the event (its Nats-Msg-Id): a redelivered event keeps it, so consumers can deduplicate' }),
  type: Type.String(),
  companyId: CompanyId,
  timestamp: Type.String({ format: 'date-time', description: 'ISO 8601 time the event was produced' }),
  replica: Type.String({ description: 'The replica that produced it' }),
  epoch: Type.Integer({
    minimum: 0,
    description: 'The fencing epoch of the lease under which it was produced (a newer holder has a larger one; 0: no lease applies).' +
      ' Who holds a company and its connection state are decided by epoch, not arrival: a holder or state event' +
      ' (LEASE_STATE_EVENTS) of an epoch older than one already seen for the company is stale'
  }),
  seq: Type.Optional(Type.Number({ description: 'Stream sequence, set when read back from the event stream' })),
  data: Type.Record(Type.String(), Type.Unknown())
})
export type EventEnvelope = Static<typeof EventEnvelope>

/** A time as an ISO 8601 string. */
export const DateTime = (description: string) => Type.String({ format: 'date-time', description })

/** WhatsApp message ids are ~20-32 characters; anything longer is not one. */
export const MAX_MESSAGE_ID_LENGTH = 128
