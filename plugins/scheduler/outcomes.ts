import { createHash } from 'node:crypto'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/**
 * WhatsApp's id for a message the gateway sends on its own (a scheduled message, a campaign's
 * recipient), derived from what it is: a resend after its holder died mid-send carries the same id,
 * and WhatsApp's clients show a message id once. It looks like WhatsApp Web's own ids (3EB0 + 18 hex).
 */
export function derivedMessageId (seed: string): string {
  return `3EB0${createHash('sha256').update(`wa-gateway:${seed}`).digest('hex').slice(0, 18).toUpperCase()}`
}

/** Failures no retry changes: the request itself, the chat, the file, or WhatsApp's refusal. */
const FINAL_FAILURES = new Set<string>([
  ErrorCode.VALIDATION_ERROR, ErrorCode.BAD_REQUEST, ErrorCode.INVALID_PHONE, ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN,
  ErrorCode.MEDIA_TOO_LARGE, ErrorCode.UNSUPPORTED_MEDIA, ErrorCode.MEDIA_URL_FORBIDDEN, ErrorCode.MEDIA_CONVERSION_UNAVAILABLE,
  ErrorCode.MEDIA_UNAVAILABLE, ErrorCode.NOT_GROUP_ADMIN, ErrorCode.NOT_IN_GROUP, ErrorCode.WHATSAPP_REFUSED
])

const FIRST_RETRY_MS = 1_000
const MAX_RETRY_MS = 60_000

export interface SendFailure {
  code: string
  message: string
  /** Worth another attempt (the connection, the budget, a timeout), rather than final. */
  passing: boolean
  /** When the failure itself says (RATE_LIMITED, IN_PROGRESS). */
  retryAfterMs?: number
}

/** What a failed send says for a message the gateway sends on its own: final or passing, and when to try again. */
export function failureOf (err: unknown): SendFailure {
  if (err instanceof GatewayError) {
    return {
      code: err.code,
      message: err.message,
      passing: !FINAL_FAILURES.has(err.code),
      ...(err.retryAfter !== undefined ? { retryAfterMs: err.retryAfter * 1000 } : {})
    }
  }
  // The database, NATS or a bug: nothing says the message is wrong.
  return { code: ErrorCode.INTERNAL_ERROR, message: (err as Error)?.message ?? String(err), passing: true }
}

/** The wait before attempt `attempts + 1`: what the failure asked for, else doubling from a second up to a minute. */
export function retryDelayOf (failure: SendFailure, attempts: number): number {
  const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1))
  return Math.max(failure.retryAfterMs ?? 0, backoff)
}
