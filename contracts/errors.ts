import { Type, type Static } from 'typebox'

/**
 * Every failure on every surface (HTTP body, NATS reply, client exception) carries one of these codes.
 * Clients branch on the code, never on the message.
 */
export const ErrorCode = {
  VALIDATION_ERROR: 'VALIDATION_ERROR',
  /** No credentials, or ones that are unknown, revoked, expired or badly signed. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The credentials are good but lack the scope the operation needs. */
  FORBIDDEN: 'FORBIDDEN',
  /** A deployment limit (MAX_COMPANIES) would be exceeded. */
  LIMIT_REACHED: 'LIMIT_REACHED',
  BAD_REQUEST: 'BAD_REQUEST',
  INVALID_PHONE: 'INVALID_PHONE',
  NOT_FOUND: 'NOT_FOUND',
  NOT_CONNECTED: 'NOT_CONNECTED',
  RATE_LIMITED: 'RATE_LIMITED',
  /** An earlier request with the same idempotency key is still being sent: retry after `retryAfter`. */
  IN_PROGRESS: 'IN_PROGRESS',
  /** An earlier request with the same idempotency key stopped mid-send: whether it went out is unknown. */
  OUTCOME_UNKNOWN: 'OUTCOME_UNKNOWN',
  TIMEOUT: 'TIMEOUT',
  /** A write carried a fencing epoch older than the stored one: the writer no longer holds the company. */
  FENCED: 'FENCED',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  /** A file over MEDIA_MAX_BYTES or WhatsApp's limit for its kind. */
  MEDIA_TOO_LARGE: 'MEDIA_TOO_LARGE',
  /** The file's content is not a type its kind takes (or not the type declared). */
  UNSUPPORTED_MEDIA: 'UNSUPPORTED_MEDIA',
  /** A media `url` that is not http(s) or resolves to a loopback, private, link-local or metadata address. */
  MEDIA_URL_FORBIDDEN: 'MEDIA_URL_FORBIDDEN',
  /** A media `url` that could not be fetched (an error status, a timeout, no such host). */
  MEDIA_UNREACHABLE: 'MEDIA_UNREACHABLE',
  /** A voice note in a format WhatsApp does not play as one, and no ffmpeg here to convert it. */
  MEDIA_CONVERSION_UNAVAILABLE: 'MEDIA_CONVERSION_UNAVAILABLE',
  /** An edit or a deletion WhatsApp would refuse: not a message this company sent, not a text, or past WhatsApp's window. */
  NOT_EDITABLE: 'NOT_EDITABLE',
  /** An inbound file WhatsApp no longer has and the phone did not upload again. */
  MEDIA_UNAVAILABLE: 'MEDIA_UNAVAILABLE',
  /** A group change that needs an admin, and the company's number is not one. */
  NOT_GROUP_ADMIN: 'NOT_GROUP_ADMIN',
  /** The company's number is not (or no longer) a participant of the group. */
  NOT_IN_GROUP: 'NOT_IN_GROUP',
  /** WhatsApp refused the operation for another reason; the message carries its code. */
  WHATSAPP_REFUSED: 'WHATSAPP_REFUSED'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

export const ErrorDetail = Type.Object({
  field: Type.String({ description: 'Where the problem is, e.g. `querystring/phone` or `/phone`' }),
  message: Type.String()
})
export type ErrorDetail = Static<typeof ErrorDetail>

export const ErrorReply = Type.Object(
  {
    success: Type.Literal(false),
    error: Type.Object({
      code: Type.String({ description: 'One of ErrorCode' }),
      message: Type.String(),
      details: Type.Optional(Type.Array(ErrorDetail)),
      retryAfter: Type.Optional(Type.Number({ description: 'Seconds to wait before retrying' })),
      accepted: Type.Optional(Type.Boolean({ description: 'For a failed send: whether WhatsApp took the message' }))
    })
  },
  { $id: 'ErrorReply', description: 'The one error shape of HTTP responses and NATS replies' }
)
export type ErrorReply = Static<typeof ErrorReply>

/** Thrown by the typed client when the gateway answers with an error reply or cannot be reached. */
export class GatewayClientError extends Error {
  readonly code: string
  readonly details: ErrorDetail[] | undefined
  /** Seconds to wait before retrying (RATE_LIMITED, IN_PROGRESS). */
  readonly retryAfter: number | undefined
  /** For a failed send: whether WhatsApp took the message. */
  readonly accepted: boolean | undefined
  /** Nobody answered the subject (for a command: no replica holds the company right now). */
  readonly noResponders: boolean

  constructor (
    code: string,
    message: string,
    details?: ErrorDetail[],
    extra: { retryAfter?: number, accepted?: boolean, noResponders?: boolean, cause?: unknown } = {}
  ) {
    super(message, { cause: extra.cause })
    this.name = 'GatewayClientError'
    this.code = code
    this.details = details
    this.retryAfter = extra.retryAfter
    this.accepted = extra.accepted
    this.noResponders = extra.noResponders ?? false
  }
}
