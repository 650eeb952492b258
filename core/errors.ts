import { ErrorCode, type ErrorDetail, type ErrorReply } from '../contracts/index.ts'

const STATUS_BY_CODE: Record<string, number> = {
  [ErrorCode.VALIDATION_ERROR]: 400,
  [ErrorCode.BAD_REQUEST]: 400,
  [ErrorCode.INVALID_PHONE]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.IN_PROGRESS]: 409,
  [ErrorCode.OUTCOME_UNKNOWN]: 409,
  [ErrorCode.FENCED]: 409,
  [ErrorCode.NOT_CONNECTED]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.TIMEOUT]: 504,
  [ErrorCode.INTERNAL_ERROR]: 500
}

/** The error every module throws for an expected failure; the HTTP and NATS layers render it the same way. */
export class GatewayError extends Error {
  readonly code: string
  readonly statusCode: number
  readonly details: ErrorDetail[] | undefined
  readonly retryAfter: number | undefined
  readonly accepted: boolean | undefined

  constructor (code: string, message: string, extra: { details?: ErrorDetail[], retryAfter?: number, accepted?: boolean, cause?: unknown } = {}) {
    super(message, { cause: extra.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = STATUS_BY_CODE[code] ?? 500
    this.details = extra.details
    this.retryAfter = extra.retryAfter
    this.accepted = extra.accepted
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
