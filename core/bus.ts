import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/nats-core'
import { headers as createHeaders } from '@nats-io/nats-core'
import { context, propagation, SpanStatusCode, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api'
import type { TSchema, Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import { Kvm, type KV } from '@nats-io/kv'
import { jetstream, jetstreamManager, DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream'
import { ErrorCode, isErrorReply, toClientError } from '../contracts/index.ts'
import { GatewayError, toErrorReply, validationError } from './errors.ts'
import { settlesWithin } from './deadline.ts'
import { StreamPublisher } from './stream-publisher.ts'
import { inSpan, SpanKind, TRACER_NAME } from './tracing.ts'

/** ADR-32 (NATS services) error headers, so generic NATS tooling sees a failed request as failed. */
const SERVICE_ERROR_HEADER = 'Nats-Service-Error'
const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code'

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? [...carrier.keys()] : []),
  get: (carrier, key) => carrier?.get(key) || undefined
}
const headerSetter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value)
}

export interface HandlerContext {
  subject: string
  headers: MsgHdrs | undefined
  log: FastifyBaseLogger
  /** This message's own EntityManager, forked on first use. */
  readonly em: EntityManager
}

export interface HandleOptions<Request extends TSchema> {
  /** Schema of the request payload (from contracts/); a payload that fails it gets VALIDATION_ERROR. */
  request: Request
  /** Queue group: set it when any replica may answer; leave it out when exactly this replica must. */
  queue?: string
}

export type Handler<Request extends TSchema> = (payload: Static<Request>, context: HandlerContext) => Promise<unknown>

export interface BusSubscription {
  readonly subject: string
  /** Stops taking messages and waits for the ones being handled. */
  close: () => Promise<void>
}

export interface PublishOptions {
  headers?: Record<string, string>
  /** Lets JetStream drop a duplicate of this event (its `Nats-Msg-Id`). */
  msgId?: string
}

export interface RequestOptions {
  headers?: Record<string, string>
  timeoutMs?: number
}

/**
 * The only way plugins touch NATS. Handlers get validated payloads and their own EntityManager;
 * replies and errors have one shape; every outgoing message carries the active trace context.
 */
export class Bus {
  readonly #nc: NatsConnection
  readonly #orm: MikroORM
  readonly #log: FastifyBaseLogger
  readonly #requestTimeoutMs: number
  readonly #subscriptions = new Set<Subscription>()
  readonly #inFlight = new Set<Promise<void>>()

  readonly #replica: string

  constructor (options: { nc: NatsConnection, orm: MikroORM, log: FastifyBaseLogger, requestTimeoutMs: number, replica?: string }) {
    this.#replica = options.replica ?? ''
    this.#nc = options.nc
    this.#orm = options.orm
    this.#log = options.log
    this.#requestTimeoutMs = options.requestTimeoutMs
  }

  /** Span attributes of a NATS operation (OpenTelemetry messaging conventions, plus the replica). */
  #attributes (subject: string, operation: string): Record<string, string> {
    return { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'messaging.operation.name': operation, 'wa.replica': this.#replica }
  }

  /** Headers for an outgoing message: the given values plus the active W3C trace context. */
  headers (values: Record<string, string> = {}): MsgHdrs {
    const headers = createHeaders()
    for (const [key, value] of Object.entries(values)) headers.set(key, value)
    propagation.inject(context.active(), headers, headerSetter)
    return headers
  }

  /** Headers only when there is something to carry (a trace, or values): an empty set still costs encoding on both ends. */
  #headersIfAny (values: Record<string, string> = {}): MsgHdrs | undefined {
    const headers = this.headers(values)
    return headers.keys().length > 0 ? headers : undefined
  }

  handle<Request extends TSchema> (subject: string, options: HandleOptions<Request>, handler: Handler<Request>): BusSubscription {
    const validator = Compile(options.request)
    const subscription = this.#nc.subscribe(subject, {
      queue: options.queue,
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ err, subject }, 'NATS subscription failed')
          return
        }
        const work = this.#dispatch(msg, validator, handler)
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

  async #dispatch<Request extends TSchema> (msg: Msg, validator: ReturnType<typeof Compile<Request>>, handler: Handler<Request>): Promise<void> {
    const parent = propagation.extract(context.active(), msg.headers, headerGetter)
    await context.with(parent, () => inSpan('nats.handle', SpanKind.SERVER, this.#attributes(msg.subject, 'process'), async (span) => {
      let forked: EntityManager | undefined
      const orm = this.#orm
      let log: FastifyBaseLogger | undefined
      const parentLog = this.#log
      const handlerContext: HandlerContext = {
        subject: msg.subject,
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
        const payload = decodePayload(msg)
        if (!validator.Check(payload)) throw validationError(validator.Errors(payload), 'payload')
        body = await handler(payload as Static<Request>, handlerContext)
      } catch (err) {
        failed = err
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
        if (!(err instanceof GatewayError)) handlerContext.log.error({ err }, 'NATS handler failed')
      }
      if (!msg.reply) return
      if (failed === undefined) {
        msg.respond(JSON.stringify(body ?? { success: true }), { headers: this.#headersIfAny() })
        return
      }
      const reply = toErrorReply(failed)
      const headers = this.headers({
        [SERVICE_ERROR_HEADER]: reply.error.message,
        [SERVICE_ERROR_CODE_HEADER]: String(failed instanceof GatewayError ? failed.statusCode : 500)
      })
      msg.respond(JSON.stringify(reply), { headers })
    }))
  }

  publish (subject: string, payload: unknown, options: PublishOptions = {}): void {
    const values = { ...options.headers, ...(options.msgId ? { 'Nats-Msg-Id': options.msgId } : {}) }
    const span = trace.getTracer(TRACER_NAME).startSpan('nats.publish', { kind: SpanKind.PRODUCER, attributes: this.#attributes(subject, 'publish') })
    try {
      context.with(trace.setSpan(context.active(), span), () => {
        this.#nc.publish(subject, JSON.stringify(payload), { headers: this.#headersIfAny(values) })
      })
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
        headers: this.#headersIfAny()
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
    return inSpan('nats.request', SpanKind.CLIENT, this.#attributes(subject, 'send'), () => this.#request<Reply>(subject, payload, options))
  }

  async #request<Reply> (subject: string, payload: unknown, options: RequestOptions): Promise<Reply> {
    const timeout = options.timeoutMs ?? this.#requestTimeoutMs
    let msg: Msg
    try {
      msg = await this.#nc.request(subject, JSON.stringify(payload), { timeout, headers: this.#headersIfAny(options.headers) })
    } catch (err) {
      const mapped = toClientError(err, subject, timeout)
      if ('code' in mapped && typeof mapped.code === 'string') throw new GatewayError(mapped.code, mapped.message, { cause: err })
      throw new GatewayError(ErrorCode.UNAVAILABLE, `NATS request to ${subject} failed: ${mapped.message}`, { cause: err })
    }
    const body: unknown = msg.json()
    if (isErrorReply(body)) {
      throw new GatewayError(body.error.code, body.error.message, { details: body.error.details, retryAfter: body.error.retryAfter, accepted: body.error.accepted })
    }
    return body as Reply
  }

  /**
   * Opens (creating if needed) a JetStream KV bucket. Its operations time out after `timeoutMs`,
   * so a lease renewal cannot hang past its usefulness.
   */
  async openKv (bucket: string, options: { ttlMs: number, history?: number, timeoutMs: number, expiryMarkers?: boolean }): Promise<KV> {
    const kvm = new Kvm(jetstream(this.#nc, { timeout: options.timeoutMs }))
    const markers = options.expiryMarkers === true && supportsExpiryMarkers(this.#nc.info?.version)
    return kvm.create(bucket, { history: options.history ?? 1, ttl: options.ttlMs, ...(markers ? { markerTTL: options.ttlMs } : {}) })
  }

  #js: JetStreamClient | undefined
  #publisher: StreamPublisher | undefined

  /**
   * Binds to (or creates) the stream that keeps events. Several deployments' replicas and tests
   * share one stream on `subjects`: JetStream refuses two streams with overlapping subjects.
   */
  async ensureStream (name: string, subjects: string[], options: { duplicateWindowMs: number, maxAgeMs: number }): Promise<void> {
    const jsm = await jetstreamManager(this.#nc)
    try {
      await jsm.streams.info(name)
    } catch {
      try {
        await jsm.streams.add({ name, subjects, duplicate_window: options.duplicateWindowMs * 1_000_000, max_age: options.maxAgeMs * 1_000_000 })
      } catch (err) {
        // Another replica created it first.
        await jsm.streams.info(name).catch(() => { throw err })
      }
    }
    this.#js = jetstream(this.#nc, { timeout: this.#requestTimeoutMs })
    this.#publisher ??= new StreamPublisher(this.#nc, this.#requestTimeoutMs)
  }

  /**
   * Publishes an event into the stream; a repeat of `msgId` inside the duplicate window is dropped
   * by JetStream (a message redelivered after a failover is not published twice). Returns its sequence.
   */
  async publishDurable (subject: string, payload: unknown, options: PublishOptions & { msgId: string }): Promise<{ seq: number, duplicate: boolean }> {
    const publisher = this.#publisher
    if (!publisher) throw new Error('ensureStream() first')
    return inSpan('nats.publish', SpanKind.PRODUCER, this.#attributes(subject, 'publish'), () =>
      publisher.publish(subject, JSON.stringify(payload), this.headers({ ...options.headers, 'Nats-Msg-Id': options.msgId })))
  }

  /**
   * Reads a stream's messages on `filter`, from sequence `since + 1` (or only new ones), in order,
   * until `stop()` is called. For WebSocket subscribers, who reconnect with the last seq they saw.
   */
  async follow (stream: string, filter: string, since: number | undefined, onMessage: (seq: number, data: unknown) => void): Promise<{ stop: () => void, after: number }> {
    const js = this.#js ?? jetstream(this.#nc, { timeout: this.#requestTimeoutMs })
    // "Only new" is fixed now, not when the consumer starts, so nothing in between is lost.
    const after = since ?? (await (await jetstreamManager(this.#nc)).streams.info(stream)).state.last_seq
    // A single filter as a string becomes `filter_subject`, which NATS 2.9 understands (arrays need 2.10).
    const consumer = await js.consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 })
    const messages = await consumer.consume()
    void (async () => {
      for await (const message of messages) {
        try {
          onMessage(message.seq, message.json())
        } catch (err) {
          this.#log.warn({ err }, 'event follower failed on a message')
        }
      }
    })()
    return { stop: () => { void messages.close() }, after }
  }

  /**
   * Subscribes to `subjects` and resolves with the first message on any of them, or undefined after
   * `timeoutMs`. Subscribe before triggering what you wait for; `ready` resolves once the server has it.
   */
  firstOf (subjects: string[], timeoutMs: number): { ready: Promise<void>, next: Promise<{ subject: string, data: unknown } | undefined> } {
    const subscriptions: Subscription[] = []
    let timer: NodeJS.Timeout | undefined
    const next = new Promise<{ subject: string, data: unknown } | undefined>((resolve) => {
      const finish = (value: { subject: string, data: unknown } | undefined) => {
        clearTimeout(timer)
        for (const subscription of subscriptions) subscription.unsubscribe()
        resolve(value)
      }
      for (const subject of subjects) {
        subscriptions.push(this.#nc.subscribe(subject, { callback: (_err, msg) => finish({ subject: msg.subject, data: decodePayload(msg) }) }))
      }
      timer = setTimeout(() => finish(undefined), timeoutMs)
    })
    return { ready: this.#nc.flush(), next }
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
    this.#publisher?.close()
  }
}

/**
 * Limit markers (a delete marker when a key expires by max age) arrived in nats-server 2.11.2.
 * Older servers silently ignore the option, so it is only asked for when the server reports it.
 */
export function supportsExpiryMarkers (version: string | undefined): boolean {
  const [major = 0, minor = 0, patch = 0] = (version ?? '').split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0)
  return major > 2 || (major === 2 && (minor > 11 || (minor === 11 && patch >= 2)))
}

function decodePayload (msg: Msg): unknown {
  if (msg.data.length === 0) return {}
  try {
    return msg.json()
  } catch {
    throw new GatewayError(ErrorCode.BAD_REQUEST, 'payload is not valid JSON')
  }
}
