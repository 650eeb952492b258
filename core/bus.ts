import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/nats-core'
import { context, SpanStatusCode, trace } from '@opentelemetry/api'
import type { TSchema, Static } from 'typebox'
import { checkOnFirstUse, type PayloadCheck } from './lazy-schemas.ts'
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import { COMPANY_ID_RULE, companyOfSubject, ErrorCode, errorOfReply, isErrorReply, requestFailure } from '../contracts/index.ts'
import { asGatewayError, assertStorable, assertValid, GatewayError, statusOf, toErrorReply } from './errors.ts'
import { settlesWithin } from './deadline.ts'
import {
  inMessagingSpan, messagingSpan, traceContextOf, tracedHeaders, tracedHeadersIfAny, type MessagingOperation
} from './nats/trace-context.ts'
import { ServiceEndpoints, type EndpointDeclaration } from './nats/service-endpoints.ts'
import { atTurnEnd } from './nats/turn-outbox.ts'
import { SpanKind, TRACER_NAME, tracing } from './tracing.ts'

/** ADR-32 (NATS services) error headers, so generic NATS tooling sees a failed request as failed. */
const SERVICE_ERROR_HEADER = 'Nats-Service-Error'
const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code'

export interface HandlerContext {
  subject: string
  /** The company the subject names (`<namespace>.{cmd|ctl}.<companyId>.…`); VALIDATION_ERROR when it names none. */
  readonly companyId: string
  headers: MsgHdrs | undefined
  log: FastifyBaseLogger
  /** This message's own EntityManager, forked on first use. */
  readonly em: EntityManager
}

export interface HandleOptions<Request extends TSchema> {
  /** Schema of the request payload (from contracts/); a payload that fails it gets VALIDATION_ERROR. */
  request: Request
  /**
   * Schema of the reply. Declaring it makes the subject an endpoint of the gateway's NATS micro
   * service (`$SRV.INFO` lists it with both schemas, `$SRV.STATS` counts it); broadcasts, which
   * nobody answers, declare none.
   */
  reply?: TSchema
  /** Queue group: set it when any replica may answer; leave it out when exactly this replica must. */
  queue?: string
  /**
   * Only requests run the handler: a message without a reply subject, or whose reply subject is a
   * JetStream acknowledgement (`$JS.ACK.…`, what a push consumer delivering to this subject sets), is
   * dropped unread and counted in `Bus.ignored`. An option, not the rule for every handler: the
   * gateway's own broadcasts (key revocations, desired-state changes) are plain publishes handled
   * here too. Set it where a message that nobody waits for must not act, above all the holder's
   * commands: a JetStream consumer that a tenant aims at `<namespace>.cmd.<companyId>.<name>` delivers
   * stored messages without a reply inbox, and must not run a logout on a company.
   */
  requestsOnly?: boolean
}

/** Why a `requestsOnly` handler dropped a message. */
export type IgnoredReason = 'no_reply' | 'jetstream_ack'

/** The prefix of the reply subjects JetStream sets on what a consumer delivers. */
const JETSTREAM_ACK_PREFIX = '$JS.ACK.'

/** Why a message is not a request (undefined when it is one). */
export function notARequest (reply: string | undefined): IgnoredReason | undefined {
  if (!reply) return 'no_reply'
  if (reply.startsWith(JETSTREAM_ACK_PREFIX)) return 'jetstream_ack'
  return undefined
}

export type Handler<Request extends TSchema> = (payload: Static<Request>, context: HandlerContext) => Promise<unknown>

export interface BusSubscription {
  readonly subject: string
  /** Stops taking messages and waits for the ones being handled. */
  close: () => Promise<void>
}

export interface PublishOptions {
  headers?: Record<string, string>
}

export interface RequestOptions {
  headers?: Record<string, string>
  timeoutMs?: number
}

/**
 * Request/reply and plain publishing over NATS. Handlers get validated payloads and their own
 * EntityManager; replies and errors have one shape; every outgoing message carries the active
 * trace context. Durable events go through core/events.ts, KV buckets through core/nats/kv.ts.
 */
export class Bus {
  readonly #nc: NatsConnection
  readonly #orm: MikroORM
  readonly #log: FastifyBaseLogger
  readonly #requestTimeoutMs: number
  readonly #subscriptions = new Set<Subscription>()
  readonly #inFlight = new Set<Promise<void>>()

  readonly #replica: string
  /** Messages `requestsOnly` handlers dropped, by reason (exposed on /metrics as `whatsapp_commands_ignored_total`). */
  readonly ignored: Record<IgnoredReason, number> = { no_reply: 0, jetstream_ack: 0 }
  /** The request/reply endpoints handled here and their counts, for NATS service discovery (core/nats/service-discovery.ts). */
  readonly endpoints = new ServiceEndpoints()

  constructor (options: { nc: NatsConnection, orm: MikroORM, log: FastifyBaseLogger, requestTimeoutMs: number, replica?: string }) {
    this.#replica = options.replica ?? ''
    this.#nc = options.nc
    this.#orm = options.orm
    this.#log = options.log
    this.#requestTimeoutMs = options.requestTimeoutMs
  }

  /** Runs `work` in a span named by OpenTelemetry's messaging conventions (`send <ns>.cmd.{companyId}.send`). */
  #inSpan<T> (subject: string, operation: MessagingOperation, kind: SpanKind, work: () => Promise<T>): Promise<T> {
    return inMessagingSpan(subject, operation, this.#replica, kind, work)
  }

  /**
   * Lists an endpoint that arrives through a subscription of its own: the holder subscribes to
   * `<namespace>.cmd.<companyId>.>` for each company it holds, and each command is described once as
   * `<namespace>.cmd.*.<name>`; its requests are counted as they come.
   */
  describeEndpoint (endpoint: EndpointDeclaration): void {
    this.endpoints.add(endpoint)
  }

  handle<Request extends TSchema> (subject: string, options: HandleOptions<Request>, handler: Handler<Request>): BusSubscription {
    const validator = checkOnFirstUse(options.request)
    if (options.reply) this.endpoints.add({ subject, queue: options.queue, request: options.request, reply: options.reply })
    const subscription = this.#nc.subscribe(subject, {
      queue: options.queue,
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ err, subject }, 'NATS subscription failed')
          return
        }
        const ignored = options.requestsOnly === true ? notARequest(msg.reply) : undefined
        if (ignored !== undefined) {
          this.ignored[ignored]++
          this.#log.debug({ subject: msg.subject, reason: ignored }, 'a message that is not a request was ignored')
          return
        }
        // A handler's failure is answered inside; anything past that (a reply the closed connection
        // refuses) is logged here, never left to end the process as an unhandled rejection.
        const work = this.#dispatch(msg, validator, handler)
          .catch((err: unknown) => this.#log.error({ err, subject: msg.subject }, 'a NATS message could not be answered'))
        this.#inFlight.add(work)
        void work.finally(() => this.#inFlight.delete(work))
      }
    })
    this.#subscriptions.add(subscription)
    return {
      subject,
      close: async () => {
        this.#subscriptions.delete(subscription)
        await this.#drainBounded(subscription)
      }
    }
  }

  /** Drain waits for a server round trip, which never comes while disconnected: bound it, then drop. */
  async #drainBounded (subscription: Subscription): Promise<void> {
    if (subscription.isClosed()) return
    const drained = await settlesWithin(subscription.drain(), this.#requestTimeoutMs)
    if (!drained && !subscription.isClosed()) subscription.unsubscribe()
  }

  async #dispatch<Request extends TSchema> (
    msg: Msg,
    validator: PayloadCheck<Static<Request>>,
    handler: Handler<Request>
  ): Promise<void> {
    const startedAt = process.hrtime.bigint()
    // The trace the request carries is continued only when spans go anywhere.
    const carried = tracing() ? traceContextOf(msg.headers) : context.active()
    await context.with(carried, () => inMessagingSpan(msg.subject, 'process', this.#replica, SpanKind.SERVER, async (span) => {
      let forked: EntityManager | undefined
      const orm = this.#orm
      let log: FastifyBaseLogger | undefined
      const parentLog = this.#log
      const handlerContext: HandlerContext = {
        subject: msg.subject,
        get companyId () {
          const companyId = companyOfSubject(msg.subject)
          if (companyId === undefined) {
            throw new GatewayError(ErrorCode.VALIDATION_ERROR, `the subject ${msg.subject} names no company (${COMPANY_ID_RULE})`)
          }
          return companyId
        },
        headers: msg.headers,
        get log () {
          log ??= parentLog.child({ subject: msg.subject })
          return log
        },
        get em () {
          forked ??= orm.em.fork()
          return forked
        }
      }
      let body: unknown
      let failed: unknown
      try {
        const payload = assertValid(validator, decodePayload(msg), 'payload')
        assertStorable(payload, 'payload')
        body = await handler(payload, handlerContext)
      } catch (err) {
        failed = err
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
        // A database that does not answer is UNAVAILABLE (503) here too, as on HTTP (asGatewayError).
        const known = asGatewayError(err)
        if (!known) handlerContext.log.error({ err }, 'NATS handler failed')
        else if (!(err instanceof GatewayError)) handlerContext.log.warn({ err }, known.message)
      }
      const errorReply = failed === undefined ? undefined : toErrorReply(failed)
      try {
        if (!msg.reply) return
        if (errorReply === undefined) {
          // With the turn's other replies and publishes: one socket write for all of them.
          const reply = JSON.stringify(body ?? { success: true })
          const headers = tracedHeadersIfAny()
          atTurnEnd(() => msg.respond(reply, { headers }))
          return
        }
        const headers = tracedHeaders({
          [SERVICE_ERROR_HEADER]: errorReply.error.message,
          [SERVICE_ERROR_CODE_HEADER]: String(statusOf(failed))
        })
        msg.respond(JSON.stringify(errorReply), { headers })
      } finally {
        const lastError = errorReply && `${errorReply.error.code}: ${errorReply.error.message}`
        this.endpoints.record(msg.subject, Number(process.hrtime.bigint() - startedAt), lastError)
      }
    }))
  }

  /** A fire-and-forget message to whoever listens now (no stream keeps it). */
  publish (subject: string, payload: unknown, options: PublishOptions = {}): void {
    // The headers are read inside the span when there is one: they carry its trace context.
    const send = () => { this.#nc.publish(subject, JSON.stringify(payload), { headers: tracedHeadersIfAny(options.headers) }) }
    if (!tracing()) {
      send()
      return
    }
    const described = messagingSpan(subject, 'publish', this.#replica)
    const span = trace.getTracer(TRACER_NAME).startSpan(described.name, { kind: SpanKind.PRODUCER, attributes: described.attributes })
    try {
      context.with(trace.setSpan(context.active(), span), send)
    } finally {
      span.end()
    }
  }

  /**
   * Scatter-gather: asks every subscriber of `subject` (every replica) and collects the replies that
   * come within `maxWaitMs`, or until `expected` have. It never fails for silence: the caller sees who answered.
   */
  async gather<Reply> (subject: string, payload: unknown, options: { maxWaitMs: number, expected?: number }): Promise<Reply[]> {
    const replies: Reply[] = []
    try {
      const stream = await this.#nc.requestMany(subject, JSON.stringify(payload), {
        strategy: options.expected === undefined ? 'timer' : 'count',
        maxWait: options.maxWaitMs,
        ...(options.expected === undefined ? {} : { maxMessages: options.expected }),
        headers: tracedHeadersIfAny()
      })
      for await (const msg of stream) {
        const body: unknown = msg.json()
        if (!isErrorReply(body)) replies.push(body as Reply)
      }
    } catch (err) {
      // No responders or a timeout in 'count' mode: what arrived is the answer.
      this.#log.debug({ err, subject }, 'gather ended early')
    }
    return replies
  }

  /** A request to another gateway subject; an error reply is rethrown as the GatewayError it was. */
  async request<Reply> (subject: string, payload: unknown, options: RequestOptions = {}): Promise<Reply> {
    return this.#inSpan(subject, 'send', SpanKind.CLIENT, () => this.#request<Reply>(subject, payload, options))
  }

  async #request<Reply> (subject: string, payload: unknown, options: RequestOptions): Promise<Reply> {
    const timeout = options.timeoutMs ?? this.#requestTimeoutMs
    let msg: Msg
    try {
      msg = await this.#nc.request(subject, JSON.stringify(payload), { timeout, headers: tracedHeadersIfAny(options.headers) })
    } catch (err) {
      const failure = requestFailure(err, subject, timeout)
      throw failure
        ? GatewayError.from(failure)
        : new GatewayError(ErrorCode.UNAVAILABLE, `NATS request to ${subject} failed: ${(err as Error).message}`, { cause: err })
    }
    const body: unknown = msg.json()
    if (isErrorReply(body)) throw GatewayError.from(errorOfReply(body))
    return body as Reply
  }

  /**
   * Subscribes to `subjects` and resolves with the first message on any of them, or undefined after
   * `timeoutMs`. Subscribe before triggering what you wait for; `ready` resolves once the server has it.
   */
  firstOf (subjects: string[], timeoutMs: number): {
    ready: Promise<void>
    next: Promise<{ subject: string, data: unknown } | undefined>
    /** Stops waiting (the answer came another way): its subscriptions and timer go now, `next` resolves undefined. */
    cancel: () => void
  } {
    const subscriptions: Subscription[] = []
    let timer: NodeJS.Timeout | undefined
    let finish!: (value: { subject: string, data: unknown } | undefined) => void
    const next = new Promise<{ subject: string, data: unknown } | undefined>((resolve) => {
      finish = (value) => {
        clearTimeout(timer)
        for (const subscription of subscriptions) subscription.unsubscribe()
        subscriptions.length = 0
        resolve(value)
      }
      for (const subject of subjects) {
        subscriptions.push(this.#nc.subscribe(subject, {
          callback: (_err, msg) => {
            // A message that is not JSON is nobody's answer: skipped (a throw here would end the subscription).
            try {
              finish({ subject: msg.subject, data: decodePayload(msg) })
            } catch (err) {
              this.#log.warn({ err, subject: msg.subject }, 'a message that is not JSON was skipped')
            }
          }
        }))
      }
      timer = setTimeout(() => finish(undefined), timeoutMs)
    })
    return { ready: this.#nc.flush(), next, cancel: () => finish(undefined) }
  }

  /** The connected server's version, e.g. `2.9.10`. */
  serverVersion (): string | undefined {
    return this.#nc.info?.version
  }

  /** Stops every handler subscription, then waits (bounded) for handlers still running. */
  async close (timeoutMs: number): Promise<void> {
    await Promise.all([...this.#subscriptions].map((subscription) => this.#drainBounded(subscription)))
    this.#subscriptions.clear()
    await settlesWithin(Promise.allSettled([...this.#inFlight]), timeoutMs)
    if (this.#inFlight.size > 0) this.#log.warn({ pending: this.#inFlight.size }, 'NATS handlers still running at shutdown')
  }
}

/** A message's JSON payload; an empty one is `{}`. */
export function decodePayload (msg: Msg): unknown {
  if (msg.data.length === 0) return {}
  try {
    return msg.json()
  } catch {
    throw new GatewayError(ErrorCode.BAD_REQUEST, 'payload is not valid JSON')
  }
}
