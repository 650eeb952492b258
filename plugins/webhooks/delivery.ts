import { randomBytes } from 'node:crypto'
import type { WebhookHeaders } from '../../contracts/index.ts'
import type { StoredEvent } from '../../core/events.ts'
import { safeRequest, SafeRequestError } from '../../core/net/safe-request.ts'

/** A receiver's answer is read up to this and then cut: only its status matters. */
const MAX_RESPONSE_BYTES = 64 * 1024
/** Pauses between attempts stop growing here. */
const MAX_BACKOFF_MS = 10 * 60_000

export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`

export interface Attempt {
  ok: boolean
  status: number | null
  latencyMs: number
  error: string | null
  /** A 429 or 503 receiver's `Retry-After`, when it gave one. */
  retryAfterMs?: number
}

export interface DeliveryLimits {
  allowPrivate: boolean
  connectTimeoutMs: number
  timeoutMs: number
}

/**
 * One delivery of an event to a webhook, by the Standard Webhooks convention: `webhook-id` is the
 * event's id (receivers deduplicate by it), `webhook-timestamp` the attempt's time and
 * `webhook-signature` `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with each of the webhook's
 * secrets, space-separated (during a rotation's overlap, the new and the old: a receiver accepts either).
 */
export async function deliver (url: string, secrets: string[], event: StoredEvent, limits: DeliveryLimits): Promise<Attempt> {
  const body = Buffer.from(JSON.stringify(event))
  const now = new Date()
  // Loaded by the first delivery: a replica with no webhook never needs it.
  const { Webhook } = await import('standardwebhooks')
  const signature = secrets.map((secret) => new Webhook(secret).sign(event.id, now, body.toString())).join(' ')
  const started = performance.now()
  const signal = AbortSignal.timeout(limits.timeoutMs)
  try {
    const response = await safeRequest(url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': event.id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature
      } satisfies WebhookHeaders,
      allowPrivate: limits.allowPrivate,
      connectTimeoutMs: limits.connectTimeoutMs,
      totalTimeoutMs: limits.timeoutMs,
      signal
    })
    await drain(response, signal)
    const status = response.statusCode ?? 0
    const ok = status >= 200 && status < 300
    const retryAfterMs = ok ? undefined : retryAfterOf(response.headers['retry-after'])
    return {
      ok,
      status,
      latencyMs: performance.now() - started,
      error: ok ? null : `the receiver answered ${status}`,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {})
    }
  } catch (err) {
    const message = err instanceof SafeRequestError ? `the webhook URL cannot be reached: ${err.message}` : (err as Error).message
    return { ok: false, status: null, latencyMs: performance.now() - started, error: message }
  }
}

/** Reads (and drops) the answer up to the cap, within the delivery's deadline. */
async function drain (response: AsyncIterable<Buffer> & { destroy: () => void }, signal: AbortSignal): Promise<void> {
  let read = 0
  const onAbort = () => response.destroy()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of response) {
      read += chunk.length
      if (read > MAX_RESPONSE_BYTES) {
        response.destroy()
        return
      }
    }
  } catch {
    // A cut or slow answer after the status line: the status counts.
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** `Retry-After`: seconds, or an HTTP date. */
function retryAfterOf (header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (!value) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined
}

/** The pause before attempt `attempt + 1`: doubling from `baseMs`, capped, with ±20 % jitter. */
export function backoffMs (attempt: number, baseMs: number): number {
  const plain = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(plain * (0.8 + Math.random() * 0.4))
}
