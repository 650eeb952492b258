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
  [ErrorCode.NOT_EDITABLE]: 409
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

/** The one rendering of any error as the wire shape; unexpected errors never leak their message. */
export function toErrorReply (err: unknown): ErrorReply {
  if (err instanceof GatewayError) {
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
  return err instanceof GatewayError ? err.statusCode : 500
}
