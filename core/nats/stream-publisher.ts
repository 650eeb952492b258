import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/nats-core'
import { inboxPrefixOf } from './kv.ts'
import { atTurnEnd } from './turn-outbox.ts'

/** How often outstanding publishes are checked against their deadline (one timer for all of them). */
const SWEEP_INTERVAL_MS = 250

/** A write the stream refused, with JetStream's error code (10071: its subject's last sequence was not the one expected). */
export class StreamRefusal extends Error {
  readonly code: number | undefined

  constructor (message: string, code: number | undefined) {
    super(message)
    this.name = 'StreamRefusal'
    this.code = code
  }
}

interface Pending {
  resolve: (ack: { seq: number, duplicate: boolean }) => void
  reject: (err: Error) => void
  deadline: number
}

interface PubAck {
  stream?: string
  seq?: number
  duplicate?: boolean
  error?: { code?: number, err_code?: number, description?: string }
}

/**
 * Publishes into a JetStream stream and resolves with the stream's acknowledgement, like
 * `js.publish`, but with one reply subscription and one deadline sweep for all publishes instead of
 * a request (subscription entry, timer, promise and error objects) each. The holder publishes an
 * event per receipt; per event, `js.publish` cost as much CPU as the rest of a send.
 */
export class StreamPublisher {
  readonly #nc: NatsConnection
  readonly #timeoutMs: number
  readonly #prefix: string
  readonly #pending = new Map<string, Pending>()
  readonly #subscription: Subscription
  readonly #sweep: NodeJS.Timeout
  /** Publishes of this event-loop turn, written together: one socket write instead of one each. */
  #outbox: { subject: string, data: string, headers: MsgHdrs | undefined, token: string }[] = []
  #next = 0

  constructor (nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc
    this.#timeoutMs = timeoutMs
    this.#prefix = createInbox(inboxPrefixOf(nc))
    this.#subscription = nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => {
        if (err) return
        const token = msg.subject.slice(this.#prefix.length + 1)
        const pending = this.#pending.get(token)
        if (!pending) return
        this.#pending.delete(token)
        // No responders: no stream takes the subject (a 503 status with an empty body).
        if (msg.data.length === 0) {
          pending.reject(new Error(`no stream stored ${msg.subject}: no responders`))
          return
        }
        let ack: PubAck
        try {
          ack = msg.json<PubAck>()
        } catch (err) {
          // Not an acknowledgement (someone published on our reply subject): fail that publish, keep listening.
          pending.reject(new Error(`no acknowledgement: the reply on ${msg.subject} is not JSON`, { cause: err }))
          return
        }
        if (ack.error) {
          const code = ack.error.err_code ?? ack.error.code
          pending.reject(new StreamRefusal(`the stream refused the message: ${ack.error.description ?? 'error'} (${code ?? '?'})`, code))
        } else {
          pending.resolve({ seq: ack.seq ?? 0, duplicate: ack.duplicate === true })
        }
      }
    })
    this.#sweep = setInterval(() => this.#expire(), SWEEP_INTERVAL_MS)
    this.#sweep.unref()
  }

  publish (subject: string, data: string, headers?: MsgHdrs): Promise<{ seq: number, duplicate: boolean }> {
    const token = (this.#next++).toString(36)
    return new Promise((resolve, reject) => {
      this.#pending.set(token, { resolve, reject, deadline: performance.now() + this.#timeoutMs })
      if (this.#outbox.length === 0) atTurnEnd(() => this.#flush())
      this.#outbox.push({ subject, data, headers, token })
    })
  }

  #flush (): void {
    const outbox = this.#outbox
    this.#outbox = []
    for (const { subject, data, headers, token } of outbox) {
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${token}`, headers })
      } catch (err) {
        const pending = this.#pending.get(token)
        this.#pending.delete(token)
        pending?.reject(err as Error)
      }
    }
  }

  #expire (): void {
    const now = performance.now()
    for (const [token, pending] of this.#pending) {
      if (pending.deadline > now) continue
      this.#pending.delete(token)
      pending.reject(new Error(`no acknowledgement from the stream within ${this.#timeoutMs} ms`))
    }
  }

  /** Fails what is still waiting and stops listening. */
  close (): void {
    clearInterval(this.#sweep)
    for (const pending of this.#pending.values()) pending.reject(new Error('publisher closed'))
    this.#pending.clear()
    // After its connection closed, the subscription is gone with it.
    if (!this.#subscription.isClosed()) this.#subscription.unsubscribe()
  }
}
