import type { FastifyBaseLogger } from 'fastify'
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { TRACER_NAME, tracing } from '../../core/tracing.ts'
import { withDeadline } from '../../core/deadline.ts'
import { ErrorCode, type MessageSentDetails } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { isoFromSeconds } from '../../core/time.ts'
import { IdempotencyStore } from './idempotency.ts'
import type { SessionPool } from './pool.ts'
import { WhatsAppRefusal, type SentMessage, type WaSocket } from './socket-port.ts'

/** Session states that end by themselves, soon; a send refused in them is told when to retry. */
const TRANSIENT_STATES = new Set(['connecting', 'reconnecting'])
const RECONNECTING_RETRY_AFTER_S = 1

export type OutboundKind = 'text' | 'media' | 'location' | 'contact' | 'edit' | 'delete' | 'reaction' | 'poll' | 'status'

export type OutboundListener = (item: OutboundItem, outcome: { durationMs: number, error?: unknown, sent?: SentMessage }) => void

/** One message on its way out of a company's connection. */
export interface OutboundItem {
  companyId: string
  /** The fencing epoch of the lease the command runs under: budgets and events carry it. */
  epoch: number
  kind: OutboundKind
  /** E.164 digits of the chat. */
  recipient: string
  /** The client's idempotency key (body field, Idempotency-Key or Nats-Msg-Id). */
  idempotencyKey?: string
  /** Hands the message to the connection; resolves when WhatsApp took it. */
  write: (socket: WaSocket) => Promise<SentMessage>
  /** What the `message_sent` event (and so the history) says of it besides its kind: text, media, quoted message, LID. */
  details?: MessageSentDetails
}

/**
 * A rule every outbound message passes before it is written (the rate-limit plugin's budgets and
 * pacing). It resolves when the item may go, after any wait, with the time waited; or throws
 * (RATE_LIMITED). `deadline` is the performance.now() by which the send must have been handed over.
 */
export interface OutboundPolicy {
  admit: (item: OutboundItem, socket: WaSocket, deadline: number) => Promise<number>
}

export interface OutboundOptions {
  pool: SessionPool
  idempotency: IdempotencyStore
  sendTimeoutMs: number
  log: FastifyBaseLogger
}

/** The fields every delivery reply has (send and reaction alike), in the contracts' shape. */
export function deliveryFields (companyId: string, phone: string, sent: SentMessage, queuedMs: number) {
  return {
    success: true as const,
    companyId,
    phone,
    messageId: sent.messageId,
    timestamp: isoFromSeconds(sent.timestamp),
    accepted: true as const,
    ...(queuedMs > 0 ? { queuedMs } : {})
  }
}

/** The reply of a delivered item, as the caller built it, plus the duplicate marker. */
export type Delivered<R> = R & { duplicate?: true }

/**
 * The one way a message leaves: an idempotency check, every policy, then the socket under the send
 * deadline. A send that times out says whether WhatsApp took it; with an idempotency key its late
 * outcome is still recorded, so a retry with the same key learns it instead of sending twice.
 */
export class Outbound {
  readonly #options: OutboundOptions
  readonly #policies: OutboundPolicy[] = []
  readonly #listeners: OutboundListener[] = []
  /** Keys whose send this replica has not finished (a timed-out send may still complete). */
  readonly #inFlight = new Set<string>()

  constructor (options: OutboundOptions) {
    this.#options = options
  }

  use (policy: OutboundPolicy): void {
    this.#policies.push(policy)
  }

  /** Told of every attempt's outcome (metrics). Duplicates answered from the idempotency record are not attempts. */
  onOutcome (listener: OutboundListener): void {
    this.#listeners.push(listener)
  }

  #report (item: OutboundItem, startedAt: number, error?: unknown, sent?: SentMessage): void {
    const outcome = { durationMs: performance.now() - startedAt, error, sent }
    for (const listener of this.#listeners) listener(item, outcome)
  }

  async send<R extends object> (item: OutboundItem, reply: (sent: SentMessage, queuedMs: number) => R): Promise<Delivered<R>> {
    const { idempotency, log } = this.#options
    const key = item.idempotencyKey === undefined ? undefined : IdempotencyStore.keyOf(item.companyId, item.kind, item.idempotencyKey)
    if (key) {
      const begun = await idempotency.begin(key)
      log.debug({ companyId: item.companyId, idempotencyKey: item.idempotencyKey, begun: begun.kind }, 'idempotency record begun')
      if (begun.kind === 'done') return { ...(begun.reply as R), duplicate: true }
      if (begun.kind === 'pending') throw this.#pendingError(key, begun.startedAt)
      this.#inFlight.add(key)
    }
    let handedOver: Promise<SentMessage> | undefined
    const startedAt = performance.now()
    try {
      const { sent, queuedMs } = await this.#send(item, (sending) => { handedOver = sending })
      const result = reply(sent, queuedMs)
      this.#report(item, startedAt, undefined, sent)
      if (key) {
        await idempotency.complete(key, result)
          .catch((err: unknown) => log.error({ err, companyId: item.companyId }, 'idempotency record not stored; a repeat may send again'))
        this.#inFlight.delete(key)
      }
      return result
    } catch (err) {
      this.#report(item, startedAt, err)
      if (key && handedOver === undefined) {
        log.debug({ err, companyId: item.companyId, idempotencyKey: item.idempotencyKey },
          'send not handed to the socket; idempotency record abandoned')
        await idempotency.abandon(key).catch((abandonErr: unknown) => log.warn({ err: abandonErr }, 'idempotency record not removed'))
        this.#inFlight.delete(key)
      } else if (key && handedOver) {
        // Timed out after the socket took it: record whatever happens next for a retry to find. A send
        // whose socket closed under it may never settle, so a repeat is told IN_PROGRESS only for
        // one more send timeout; after that, OUTCOME_UNKNOWN (a chaos run's client retried a key for
        // 46 s after its faults ended and never got past IN_PROGRESS).
        const unknownAfter = setTimeout(() => this.#inFlight.delete(key), this.#options.sendTimeoutMs)
        unknownAfter.unref()
        handedOver.then(
          (sent) => idempotency.complete(key, reply(sent, 0)),
          (lateErr: unknown) => {
            log.debug({ err: lateErr, companyId: item.companyId, idempotencyKey: item.idempotencyKey },
              'timed-out send failed; idempotency record abandoned')
            return idempotency.abandon(key)
          }
        ).catch((lateErr: unknown) => log.warn({ err: lateErr }, 'late outcome of a timed-out send not recorded'))
          .finally(() => {
            clearTimeout(unknownAfter)
            this.#inFlight.delete(key)
          })
      }
      throw err
    }
  }

  async #send (item: OutboundItem, onHandover: (sending: Promise<SentMessage>) => void): Promise<{ sent: SentMessage, queuedMs: number }> {
    const { pool, sendTimeoutMs } = this.#options
    const started = performance.now()
    const deadline = started + sendTimeoutMs
    // Looked up once: after any wait, the same session must still have the same socket.
    const session = pool.get(item.companyId)
    const socket = session?.socket
    if (!session || !socket) {
      // Connecting or reconnecting passes: say when to try again. A session waiting for a QR scan does not.
      const transient = session !== undefined && TRANSIENT_STATES.has(session.state)
      throw new GatewayError(
        ErrorCode.NOT_CONNECTED,
        `WhatsApp is not connected for company ${item.companyId}${transient ? ` (${session?.state})` : ''}`,
        { accepted: false, ...(transient ? { retryAfter: RECONNECTING_RETRY_AFTER_S } : {}) }
      )
    }
    let queuedMs = 0
    for (const policy of this.#policies) queuedMs += await policy.admit(item, socket, deadline)
    if (session.socket !== socket) {
      // A reconnect (the restart that follows a link, a handoff) passes: say when to try again, as below.
      throw new GatewayError(ErrorCode.NOT_CONNECTED,
        `WhatsApp disconnected for company ${item.companyId} while the message waited; it was not sent`,
        { accepted: false, retryAfter: RECONNECTING_RETRY_AFTER_S })
    }
    const sending = tracing() ? writeTraced(item, socket, queuedMs) : item.write(socket)
    onHandover(sending)
    try {
      const sent = await withDeadline(sending, deadline - performance.now(), () => new GatewayError(ErrorCode.TIMEOUT,
        `WhatsApp did not take the message within ${sendTimeoutMs} ms; it was not confirmed and may still go out` +
          ' (retry with the same idempotency key to learn the outcome)',
        { accepted: false }))
      session.touch()
      return { sent, queuedMs: Math.round(queuedMs) }
    } catch (err) {
      if (err instanceof GatewayError) throw err
      const refusal = groupRefusalOf(err)
      if (refusal) throw refusal
      // The connection closed under the send (a handoff, a reconnect): not sent, and worth another try.
      const closedUnder = session.socket !== socket
      throw new GatewayError(ErrorCode.NOT_CONNECTED, `WhatsApp refused the message: ${(err as Error).message}`, {
        cause: err, accepted: false, ...(closedUnder ? { retryAfter: RECONNECTING_RETRY_AFTER_S } : {})
      })
    }
  }

  #pendingError (key: string, startedAt: number): GatewayError {
    const age = Date.now() - startedAt
    // Still being sent here, or recently enough elsewhere that it may be.
    if (this.#inFlight.has(key) || age < this.#options.sendTimeoutMs) {
      return new GatewayError(ErrorCode.IN_PROGRESS, 'an earlier request with this idempotency key is still being sent', {
        retryAfter: Math.max(1, Math.ceil((this.#options.sendTimeoutMs - age) / 1000))
      })
    }
    return new GatewayError(ErrorCode.OUTCOME_UNKNOWN,
      'an earlier request with this idempotency key stopped mid-send (its replica went away); whether it went out is unknown.' +
        ' Use a new key to send again')
  }
}

/** Hands `item` to the socket in a span of its own, which ends when WhatsApp took it, even after the deadline. */
function writeTraced (item: OutboundItem, socket: WaSocket, queuedMs: number): Promise<SentMessage> {
  const span = trace.getTracer(TRACER_NAME).startSpan('whatsapp.send', {
    kind: SpanKind.CLIENT,
    attributes: { 'wa.company': item.companyId, 'wa.kind': item.kind, 'wa.queued_ms': Math.round(queuedMs) }
  })
  const sending = context.with(trace.setSpan(context.active(), span), () => item.write(socket))
  sending.then((sent) => {
    span.setAttribute('wa.message_id', sent.messageId)
    span.end()
  }, (err: unknown) => {
    span.recordException(err as Error)
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
    span.end()
  })
  return sending
}

/**
 * A send to a group that WhatsApp refused before it went out (the group's metadata query said no):
 * not a connection problem but the number's standing in the group, and no retry will change it.
 */
function groupRefusalOf (err: unknown): GatewayError | undefined {
  const boom = err as { isBoom?: boolean, data?: unknown } | undefined
  const code = err instanceof WhatsAppRefusal ? err.code : boom?.isBoom ? boom.data : undefined
  const base = { cause: err, accepted: false }
  if (code === 403) return new GatewayError(ErrorCode.NOT_IN_GROUP, 'the company\'s number is not a participant of the group', base)
  if (code === 401) return new GatewayError(ErrorCode.NOT_GROUP_ADMIN, 'only the group\'s admins may write in it', base)
  if (code === 404) return new GatewayError(ErrorCode.NOT_FOUND, 'WhatsApp knows no such group', base)
  return undefined
}
