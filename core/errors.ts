import { ErrorCode, GatewayClientError, type ErrorDetail, type ErrorReply } from '../contracts/index.ts'

const STATUS_BY_CODE: Record<string, number> = {
  [ErrorCode.VALIDATION_ERROR]: 400,
  [ErrorCode.BAD_REQUEST]: 400,
  [ErrorCode.INVALID_PHONE]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.UNAUTHORIZED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.LIMIT_REACHED]: 409,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.IN_PROGRESS]: 409,
  [ErrorCode.OUTCOME_UNKNOWN]: 409,
  [ErrorCode.FENCED]: 409,
  [ErrorCode.NOT_CONNECTED]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.TIMEOUT]: 504,
  [ErrorCode.INTERNAL_ERROR]: 500,
  [ErrorCode.MEDIA_TOO_LARGE]: 413,
  [ErrorCode.UNSUPPORTED_MEDIA]: 415,
  [ErrorCode.MEDIA_URL_FORBIDDEN]: 400,
  [ErrorCode.MEDIA_UNREACHABLE]: 422,
  [ErrorCode.MEDIA_CONVERSION_UNAVAILABLE]: 422,
  [ErrorCode.MEDIA_UNAVAILABLE]: 404,
  [ErrorCode.NOT_EDITABLE]: 409,
  [ErrorCode.NOT_GROUP_ADMIN]: 409,
  [ErrorCode.NOT_IN_GROUP]: 409,
  [ErrorCode.WHATSAPP_REFUSED]: 422
}

/**
 * The error every module throws for an expected failure; the HTTP and NATS layers render it the same
 * way. It is the typed client's error with an HTTP status, so one predicate (contracts'
 * `isBetweenHolders`) reads both.
 */
export class GatewayError extends GatewayClientError {
  readonly statusCode: number

  constructor (
    code: string,
    message: string,
    extra: { details?: ErrorDetail[], retryAfter?: number, accepted?: boolean, noResponders?: boolean, cause?: unknown } = {}
  ) {
    super(code, message, extra.details, extra)
    this.name = 'GatewayError'
    this.statusCode = STATUS_BY_CODE[code] ?? 500
  }

  /** The same failure, as thrown on this side of a NATS request. */
  static from (err: GatewayClientError): GatewayError {
    return new GatewayError(err.code, err.message, {
      details: err.details,
      retryAfter: err.retryAfter,
      accepted: err.accepted,
      noResponders: err.noResponders,
      cause: err.cause
    })
  }
}

/** Validation failures as reported by TypeBox (and by Fastify's schema layer, which uses it). */
export interface ValidationIssue {
  instancePath: string
  message?: string
  params?: Record<string, unknown>
}

/**
 * Turns schema errors into one VALIDATION_ERROR naming each bad field, e.g.
 * "querystring/phone must be string". `part` is where the value came from (body, querystring, payload).
 */
export function validationError (issues: readonly ValidationIssue[], part: string): GatewayError {
  const details = issues.flatMap((issue) => {
    const missing = issue.params?.requiredProperties ?? issue.params?.missingProperty
    if (missing !== undefined) {
      return [missing].flat().map((name) => ({ field: `${part}${issue.instancePath}/${String(name)}`, message: 'is required' }))
    }
    return [{ field: `${part}${issue.instancePath}`, message: issue.message ?? 'is invalid' }]
  })
  const message = details.map((detail) => `${detail.field} ${detail.message}`).join('; ') || `${part} is invalid`
  return new GatewayError(ErrorCode.VALIDATION_ERROR, message, { details })
}

/** `value` as its schema's type (a compiled TypeBox check), or VALIDATION_ERROR naming each bad field under `part` (payload, …). */
export function assertValid<T> (
  check: { Check: (value: unknown) => value is T, Errors: (value: unknown) => Iterable<ValidationIssue> },
  value: unknown,
  part: string
): T {
  if (!check.Check(value)) throw validationError([...check.Errors(value)], part)
  return value
}

/**
 * PostgreSQL text cannot hold NUL (`\u0000`), and its JSON refuses lone surrogates (half of an
 * emoji): an input carrying either anywhere is refused as VALIDATION_ERROR naming the field, instead
 * of failing later inside a transaction.
 */
export function assertStorable (value: unknown, part: string): void {
  const path = unstorablePath(value, part, 0)
  if (path !== undefined) {
    const message = 'must not contain the NUL character or a lone surrogate'
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${path} ${message}`, { details: [{ field: path, message }] })
  }
}

function unstorable (text: string): boolean {
  return text.includes('\u0000') || !text.isWellFormed()
}

/** Inputs nest only a few levels; deeper structures are not walked (schemas bound them anyway). */
const MAX_WALK_DEPTH = 8

function unstorablePath (value: unknown, path: string, depth: number): string | undefined {
  if (typeof value === 'string') return unstorable(value) ? path : undefined
  if (depth >= MAX_WALK_DEPTH || value === null || typeof value !== 'object') return undefined
  for (const [key, item] of Object.entries(value)) {
    if (unstorable(key)) return path
    const found = unstorablePath(item, `${path}/${key}`, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

/** How long a client waits before asking again when the database did not answer (Retry-After, `retryAfter`). */
export const DATABASE_RETRY_AFTER_S = 5

/** Node's codes for a peer that refused, dropped or never answered a connection. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN'
])
/**
 * PostgreSQL's SQLSTATEs for a server that is not there for this session: class 08 (connection
 * exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting or in
 * recovery), 53300 too many connections.
 */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/
/**
 * What pg and pg-pool say, without a code, when no connection could be had or one died: the pool's
 * acquire timeout, a connect timeout, a connection that ended mid-query, a client left unusable, the
 * query timeout (`query_timeout`).
 */
const PG_MESSAGES = [
  /^timeout exceeded when trying to connect$/,
  /^Connection terminated( unexpectedly| due to connection timeout)?$/,
  /^Query read timeout$/,
  /is not queryable$/
]
/** How deep causes are followed (MikroORM's DriverException wraps pg's error, which may wrap a socket error). */
const MAX_CAUSE_DEPTH = 4

interface Failure {
  name?: unknown
  code?: unknown
  message?: unknown
  cause?: unknown
  errors?: unknown
}

/**
 * Why `err` says the database (or, for a bare socket error, a service the request needs) did not
 * answer, or undefined when it says something else: as MikroORM (DriverException,
 * ConnectionException), pg and pg-pool report a refused, reset or timed-out connection or a server
 * that is shutting down. Its cause and, for an AggregateError (one per address tried), its errors
 * are read too.
 */
export function unavailabilityOf (err: unknown, depth = 0): { database: boolean, reason: string } | undefined {
  if (err === null || typeof err !== 'object' || depth > MAX_CAUSE_DEPTH) return undefined
  const failure = err as Failure
  const code = typeof failure.code === 'string' ? failure.code : undefined
  const message = typeof failure.message === 'string' ? failure.message : ''
  const fromDriver = failure.name === 'DriverException' || failure.name === 'ConnectionException'
  if (failure.name === 'ConnectionException') return { database: true, reason: code ?? message }
  if (code !== undefined && UNAVAILABLE_SQLSTATE.test(code)) return { database: true, reason: code }
  if (code !== undefined && NETWORK_CODES.has(code)) return { database: fromDriver, reason: code }
  if (PG_MESSAGES.some((pattern) => pattern.test(message))) return { database: true, reason: message }
  const inner = [failure.cause, ...(Array.isArray(failure.errors) ? failure.errors : [])]
  for (const each of inner) {
    const found = unavailabilityOf(each, depth + 1)
    if (found) return { database: found.database || fromDriver, reason: found.reason }
  }
  return undefined
}

/**
 * `err` as the GatewayError a client is answered with: itself, or UNAVAILABLE (503, with
 * `retryAfter`) when the database did not answer; undefined for anything unexpected (500).
 */
export function asGatewayError (err: unknown): GatewayError | undefined {
  if (err instanceof GatewayError) return err
  const unavailable = unavailabilityOf(err)
  if (!unavailable) return undefined
  const what = unavailable.database ? 'the database' : 'a service this request needs'
  return new GatewayError(ErrorCode.UNAVAILABLE, `${what} did not answer (${unavailable.reason}); try again shortly`, {
    retryAfter: DATABASE_RETRY_AFTER_S,
    cause: err
  })
}

/** The one rendering of any error as the wire shape; unexpected errors never leak their message. */
export function toErrorReply (failure: unknown): ErrorReply {
  const err = asGatewayError(failure)
  if (err) {
    return {
      success: false,
      error: {
        code: err.code,
        message: err.message,
        ...(err.details ? { details: err.details } : {}),
        ...(err.retryAfter !== undefined ? { retryAfter: err.retryAfter } : {}),
        ...(err.accepted !== undefined ? { accepted: err.accepted } : {})
      }
    }
  }
  return { success: false, error: { code: ErrorCode.INTERNAL_ERROR, message: 'internal error' } }
}

export function statusOf (err: unknown): number {
  return asGatewayError(err)?.statusCode ?? 500
}
