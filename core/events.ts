import { randomUUID } from 'node:crypto'
import type { NatsConnection } from '@nats-io/nats-core'
import {
  AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstreamManager, type ConsumerMessages, type JetStreamClient
} from '@nats-io/jetstream'
import type { FastifyBaseLogger } from 'fastify'
import {
  GatewayHeaders, NATS_MSG_ID, type EventData, type EventEnvelope, type EventHeaders, type EventType, type SubjectSet
} from '../contracts/index.ts'
import { StreamPublisher } from './nats/stream-publisher.ts'
import { duringElections, ensureStreamConfig, jetstreamOf } from './nats/kv.ts'
import { inMessagingSpan, publishHeaders } from './nats/trace-context.ts'
import { SpanKind } from './tracing.ts'
import { settlesWithin } from './deadline.ts'

export interface EventsOptions {
  nc: NatsConnection
  subjects: SubjectSet
  replica: string
  /** The JetStream stream that keeps `<namespace>.evt.>`. */
  stream: string
  duplicateWindowMs: number
  maxAgeMs: number
  /** Copies of the stream on a NATS cluster. */
  replicas: number
  requestTimeoutMs: number
  log: FastifyBaseLogger
}

export interface PublishEventOptions {
  /** The lease epoch under which the event was produced (holders set it; 0 when none applies). */
  epoch?: number
  /**
   * A stable id, when the same event may be produced twice (a message WhatsApp delivers again after
   * a failover): JetStream drops the repeat within its duplicate window. Default: a new UUID.
   */
  id?: string
}

/** An event read back from the stream, with its sequence. */
export type StoredEvent = EventEnvelope & { seq: number }

export interface DurableOptions {
  /** The durable consumer's name: a consumer that restarts with it resumes where it left off. */
  name: string
  /** Subject filter, e.g. `subjects.event('*', '>')` or one company's `subjects.event(id, '>')`. */
  filter: string
  /** How long a delivery may go unacknowledged before JetStream delivers it again. */
  ackWaitMs?: number
  /** Pause before a failed event is delivered again. */
  retryDelayMs?: number
  /** Where a consumer made now starts: after this stream sequence, or at this time (default: new events only). */
  start?: { afterSeq: number } | { time: Date }
}

export interface DeliveryInfo {
  /** How many times this event has been delivered to this consumer, this time included. */
  deliveryCount: number
  /** Tells JetStream the event is still being worked on (its ack wait starts again): for handlers that retry at length. */
  working: () => void
  /** Aborted when the consumer stops: a handler waiting between retries gives the event back. */
  signal: AbortSignal
}

export type PublishedListener = (event: EventEnvelope) => void

const DEFAULT_ACK_WAIT_MS = 30_000
const DEFAULT_RETRY_DELAY_MS = 1_000
/** Creating a replicated stream takes about a second on a cluster; more under load. */
const STREAM_SETUP_TIMEOUT_MS = 10_000
/** How long an event the stream did not take is tried again (a JetStream election lasts 4-9 s). */
const STORE_PATIENCE_MS = 60_000
const STORE_RETRY_MAX_MS = 2_000
/** At shutdown, how long events still on their way to the stream are waited for. */
const STORE_DRAIN_MS = 3_000
/** Linking events deleted per sweep at most (the next sweep takes the rest). */
const LINKING_SWEEP_MAX = 10_000
/** JetStream takes durations in nanoseconds. */
const NS_PER_MS = 1_000_000

/**
 * The one event path. Every event (a session's, an ownership change, any plugin's) is built here
 * into one envelope and stored durably in the events stream, with its headers; this replica's own
 * listeners hear it first. Readers either follow a filter from a sequence (WebSocket clients) or
 * consume through a durable consumer with acknowledgements and redelivery (webhooks, services).
 */
export class Events {
  readonly #options: EventsOptions
  readonly #listeners: PublishedListener[] = []
  readonly #followers = new Set<ConsumerMessages>()
  /** Events on their way to the stream (a shutdown waits for them). */
  readonly #storing = new Set<Promise<void>>()
  #closing = false
  #js: JetStreamClient | undefined
  #publisher: StreamPublisher | undefined

  constructor (options: EventsOptions) {
    this.#options = options
  }

  get stream (): string {
    return this.#options.stream
  }

  /**
   * Binds to (or creates) the stream. Several deployments' replicas and tests may share a NATS
   * server: each deployment's stream takes only its own namespace's subjects.
   */
  async open (): Promise<void> {
    const { nc, stream, subjects, duplicateWindowMs, maxAgeMs, requestTimeoutMs, replicas } = this.#options
    await duringElections(async () => {
      const jsm = await jetstreamManager(nc, { timeout: Math.max(requestTimeoutMs, STREAM_SETUP_TIMEOUT_MS) })
      const info = await jsm.streams.info(stream).catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined
        throw err
      })
      if (!info) {
        await jsm.streams.add({
          name: stream,
          subjects: [subjects.allEvents],
          duplicate_window: duplicateWindowMs * NS_PER_MS,
          max_age: maxAgeMs * NS_PER_MS,
          num_replicas: replicas
        }).catch(async (err: unknown) => {
          // Another replica created it first.
          await jsm.streams.info(stream).catch(() => { throw err })
        })
      }
      // EVENTS_MAX_AGE_MS or NATS_REPLICAS changed since the stream was made: the stream follows them.
      await ensureStreamConfig(nc, stream, { replicas, maxAgeMs })
    })
    this.#js = jetstreamOf(nc, requestTimeoutMs)
    this.#publisher = new StreamPublisher(nc, requestTimeoutMs)
  }

  /** In-process: every event this replica publishes, as it is published (metrics, automatic reactions). */
  onPublished (listener: PublishedListener): void {
    this.#listeners.push(listener)
  }

  envelope<T extends EventType> (companyId: string, type: T, data: EventData<T>, options: PublishEventOptions = {}): EventEnvelope {
    return {
      id: options.id ?? `${type}:${companyId}:${randomUUID()}`,
      type,
      companyId,
      timestamp: new Date().toISOString(),
      replica: this.#options.replica,
      epoch: options.epoch ?? 0,
      data
    }
  }

  /**
   * Publishes an event durably and tells this replica's listeners. It never throws: a listener's
   * failure, or a stream that does not answer, is logged (the caller's work must go on). `data` is
   * checked against its type's schema in contracts/events.ts at compile time: what is published is what
   * the AsyncAPI document says.
   */
  publish<T extends EventType> (companyId: string, type: T, data: EventData<T>, options: PublishEventOptions = {}): EventEnvelope {
    const event = this.envelope(companyId, type, data, options)
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (err) {
        this.#options.log.error({ err, companyId, type }, 'an event listener failed')
      }
    }
    const storing = this.#storePersistently(event)
    this.#storing.add(storing)
    void storing.finally(() => this.#storing.delete(storing))
    return event
  }

  /**
   * Stores an event, trying again while the stream cannot take it (a leader election, a NATS node
   * lost): its id makes a repeat harmless. Given up only after STORE_PATIENCE_MS, loudly.
   */
  async #storePersistently (event: EventEnvelope): Promise<void> {
    const deadline = performance.now() + STORE_PATIENCE_MS
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store(event)
        return
      } catch (err) {
        if (this.#closing || performance.now() > deadline) {
          this.#options.log.error({ err, companyId: event.companyId, type: event.type, id: event.id }, 'event could not be stored')
          return
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(STORE_RETRY_MAX_MS, 100 * 2 ** attempt)))
      }
    }
  }

  /** Stores an envelope in the stream; resolves with its sequence once JetStream has it (a repeat of its id is dropped). */
  async store (event: EventEnvelope): Promise<{ seq: number, duplicate: boolean }> {
    const publisher = this.#publisher
    if (!publisher) throw new Error('events: open() first')
    const subject = this.#options.subjects.event(event.companyId, event.type)
    return inMessagingSpan(subject, 'publish', this.#options.replica, SpanKind.PRODUCER, () => publisher.publish(
      subject,
      JSON.stringify(event),
      publishHeaders({
        [NATS_MSG_ID]: event.id,
        [GatewayHeaders.epoch]: String(event.epoch ?? 0),
        [GatewayHeaders.replica]: event.replica
      } satisfies EventHeaders)
    ))
  }

  /** The sequence of the newest event in the stream (0 when empty). */
  async lastSequence (): Promise<number> {
    const jsm = await jetstreamManager(this.#options.nc)
    return (await jsm.streams.info(this.#options.stream)).state.last_seq
  }

  /** Removes QR and pairing-code events stored before sequence `beforeSeq` (they are no longer valid). */
  async purgeLinking (beforeSeq: number): Promise<void> {
    // Message by message, not with a filtered purge: on nats-server 2.9 a filtered purge on an R3
    // stream whose nodes are being killed and restarted cut the stream's head (every event below
    // the sequence, not only the linking ones: bench:chaos found it, first_seq 2191 after a run).
    const jsm = await jetstreamManager(this.#options.nc)
    const { subjects, stream } = this.#options
    const due: number[] = []
    // One subject per consumer: several filters need nats-server 2.10.
    for (const type of ['qr', 'pairing_code']) {
      const consumer = await this.#jetstream().consumers.get(stream, {
        filter_subjects: subjects.event('*', type), deliver_policy: DeliverPolicy.All
      })
      const messages = await consumer.fetch({ max_messages: LINKING_SWEEP_MAX, expires: 1_000 })
      for await (const message of messages) {
        if (message.seq < beforeSeq) due.push(message.seq)
        if (message.seq >= beforeSeq || message.info.pending === 0) break
      }
      await messages.close()
    }
    for (const seq of due) await jsm.streams.deleteMessage(stream, seq, false).catch(() => {})
  }

  /**
   * Reads the events on `filter` from sequence `since + 1` (or only new ones), in order, until
   * `stop()`. For WebSocket clients, who reconnect with the last seq they saw.
   */
  async follow (
    filter: string,
    since: number | undefined,
    onEvent: (event: StoredEvent) => void
  ): Promise<{ stop: () => void, after: number }> {
    const js = this.#jetstream()
    // "Only new" is fixed now, not when the consumer starts, so nothing in between is lost.
    const after = since ?? await this.lastSequence()
    // A single filter as a string becomes `filter_subject`, which NATS 2.9 understands (arrays need 2.10).
    const consumer = await js.consumers.get(this.#options.stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1
    })
    const messages = await consumer.consume()
    this.#followers.add(messages)
    void (async () => {
      for await (const message of messages) {
        try {
          onEvent({ ...message.json<EventEnvelope>(), seq: message.seq })
        } catch (err) {
          this.#options.log.warn({ err }, 'event follower failed on an event')
        }
      }
    })()
    const stop = () => {
      this.#followers.delete(messages)
      void messages.close()
    }
    return { stop, after }
  }

  /**
   * A durable subscription: events on `filter` reach `handler` one at a time, in stream order; an
   * event is acknowledged when the handler resolves and delivered again (after `retryDelayMs`) when
   * it throws or its replica dies before answering. Replicas consuming with the same name share the
   * work. It starts with the events published from now on; a restarted consumer resumes where it was.
   */
  async consume (
    options: DurableOptions,
    handler: (event: StoredEvent, delivery: DeliveryInfo) => Promise<void>
  ): Promise<{ stop: () => Promise<void> }> {
    const jsm = await jetstreamManager(this.#options.nc)
    const config = {
      durable_name: options.name,
      filter_subject: options.filter,
      ack_policy: AckPolicy.Explicit,
      ack_wait: (options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS) * NS_PER_MS,
      max_ack_pending: 1,
      ...(options.start === undefined
        ? { deliver_policy: DeliverPolicy.New }
        : 'afterSeq' in options.start
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.start.afterSeq + 1 }
          : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: options.start.time.toISOString() })
    }
    try {
      await jsm.consumers.info(this.#options.stream, options.name)
    } catch {
      await jsm.consumers.add(this.#options.stream, config).catch(async (err: unknown) => {
        // Another replica created it first.
        await jsm.consumers.info(this.#options.stream, options.name).catch(() => { throw err })
      })
    }
    const consumer = await this.#jetstream().consumers.get(this.#options.stream, options.name)
    const messages = await consumer.consume({ max_messages: 1 })
    const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS
    const stopping = new AbortController()
    const done = (async () => {
      for await (const message of messages) {
        let event: StoredEvent
        try {
          event = { ...message.json<EventEnvelope>(), seq: message.seq }
        } catch (err) {
          // Nothing can ever handle it: acknowledged so it does not block the events behind it.
          this.#options.log.warn({ err, seq: message.seq }, 'a stored event is not JSON; skipped')
          message.ack()
          continue
        }
        try {
          await handler(event, { deliveryCount: message.info.deliveryCount, working: () => message.working(), signal: stopping.signal })
          message.ack()
        } catch (err) {
          if (stopping.signal.aborted) {
            // Given back at once: whichever replica consumes next delivers it.
            message.nak()
            continue
          }
          this.#options.log.warn({ err, consumer: options.name, id: event.id }, 'event handler failed; it will be delivered again')
          message.nak(retryDelayMs)
        }
      }
    })()
    return {
      stop: async () => {
        stopping.abort()
        await messages.close()
        await done
      }
    }
  }

  /** Removes a durable consumer (to start it again elsewhere in the stream: a replay); none is no error. */
  async deleteConsumer (name: string): Promise<void> {
    const jsm = await jetstreamManager(this.#options.nc)
    await jsm.consumers.delete(this.#options.stream, name).catch((err: unknown) => {
      if (!/not found/i.test((err as Error).message)) throw err
    })
  }

  /** Events a durable consumer has yet to deliver (its backlog), or undefined when it does not exist. */
  async backlogOf (name: string): Promise<number | undefined> {
    const jsm = await jetstreamManager(this.#options.nc)
    const info = await jsm.consumers.info(this.#options.stream, name).catch(() => undefined)
    return info === undefined ? undefined : info.num_pending + info.num_ack_pending
  }

  #jetstream (): JetStreamClient {
    this.#js ??= jetstreamOf(this.#options.nc, this.#options.requestTimeoutMs)
    return this.#js
  }

  /** Stops every follower; events on their way to the stream get a moment to arrive first. */
  async close (): Promise<void> {
    for (const messages of this.#followers) void messages.close()
    this.#followers.clear()
    await settlesWithin(Promise.allSettled([...this.#storing]), STORE_DRAIN_MS)
    this.#closing = true
    this.#publisher?.close()
  }
}
