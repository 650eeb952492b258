import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ErrorCode, EVENT_TYPES, type ReplayRequest, type WebhookCreate, type WebhookSecretRotation, type WebhookUpdate, type WebhookView
} from '../../contracts/index.ts'
import { hasScope, mayReceive, type Principal } from '../../core/access/principal.ts'
import { GatewayError } from '../../core/errors.ts'
import type { DeliveryInfo, StoredEvent } from '../../core/events.ts'
import { checkTarget, SafeRequestError } from '../../core/net/safe-request.ts'
import { backoffMs, deliver, newSecret } from './delivery.ts'
import { DeliveredEpochs, epochMigrations } from './epochs.ts'
import { registerRoutes } from './routes.ts'
import type { WebhooksOptions } from './settings.ts'
import {
  mayLinkMigrations, resealSecrets, sealedSecretMigrations, WebhookDeadLetterSchema, WebhookDeliverySchema, webhookMigrations,
  WebhookSchema, WebhookStore, type AttemptRow, type WebhookRow
} from './store.ts'

export { settings, type WebhooksOptions } from './settings.ts'
export { resealSecrets } from './store.ts'

/** One delivery attempt's outcome, for metrics. */
export interface WebhookAttempt {
  webhookId: string
  outcome: 'delivered' | 'failed' | 'dead_letter'
  latencyMs: number
}

/** The webhooks plugin's public face (metrics reads it). */
export interface Webhooks {
  onAttempt: (listener: (attempt: WebhookAttempt) => void) => void
  /** Events each running webhook has yet to deliver. */
  backlogs: () => Promise<Map<string, number>>
}

declare module 'fastify' {
  interface FastifyInstance {
    webhooks: Webhooks
  }
}
export const entities = [WebhookSchema, WebhookDeliverySchema, WebhookDeadLetterSchema]
export const migrations = [...webhookMigrations, ...epochMigrations, ...mayLinkMigrations, ...sealedSecretMigrations]

/**
 * JetStream gives an event to another replica when the one delivering it went quiet this long past
 * the receiver's timeout (a SIGKILLed replica's event moves on after that); a replica waiting
 * between retries says "working" every third of it.
 */
const ACK_WAIT_MARGIN_MS = 5_000
const RESYNC_EVERY_MS = 30_000
const PRUNE_EVERY_MS = 10 * 60_000
const LOG_EVERY_MS = 100

const viewOf = (row: WebhookRow): WebhookView => ({
  id: row.id,
  companyId: row.companyId,
  url: row.url,
  events: row.events,
  paused: row.paused,
  pausedReason: row.pausedReason,
  failingSince: row.failingSince?.toISOString() ?? null,
  createdAt: row.createdAt.toISOString(),
  previousSecretExpiresAt: signsWithPrevious(row) ? row.previousSecretUntil!.toISOString() : null
})

const signsWithPrevious = (row: WebhookRow, now = Date.now()) =>
  row.previousSecret !== null && row.previousSecretUntil !== null && row.previousSecretUntil.getTime() > now

/** Every secret a delivery is signed with now: the current one, and the one it replaced until its overlap ends. */
const signingSecrets = (row: WebhookRow) => signsWithPrevious(row) ? [row.secret, row.previousSecret!] : [row.secret]

/**
 * Webhooks delivered from the events stream: one durable JetStream consumer per webhook, shared by
 * every replica, one event at a time in stream order; an event is acknowledged only after the
 * receiver answered 2xx, and a replica that dies while delivering gives it back to another (ack wait).
 */
export default fp<WebhooksOptions>(async (app, options) => {
  const store = new WebhookStore(() => app.orm.em.fork(), app.sealer)
  // Signing secrets are sealed at rest like the auth state: those stored before (or under an older key) are sealed now.
  const resealed = await resealSecrets(() => app.orm.em.fork(), app.sealer)
  if (resealed > 0) app.log.info({ resealed, keyId: app.sealer.currentKeyId }, 'sealed stored webhook secrets under the current key')
  const epochs = new DeliveredEpochs(() => app.orm.em.fork())
  const running = new Map<string, { stop: () => Promise<void>, version: string }>()
  const failing = new Set<string>()
  const changedSubject = `${app.config.natsNamespace}.sys.webhooks.changed`
  const ackWaitMs = options.webhookTimeoutMs + ACK_WAIT_MARGIN_MS
  const workingEveryMs = ackWaitMs / 3
  const limits = {
    allowPrivate: options.webhookAllowPrivate,
    connectTimeoutMs: options.webhookConnectTimeoutMs,
    timeoutMs: options.webhookTimeoutMs
  }
  let closing = false
  const listeners: ((attempt: WebhookAttempt) => void)[] = []
  const report = (attempt: WebhookAttempt) => {
    for (const listener of listeners) listener(attempt)
  }
  app.decorate('webhooks', {
    onAttempt: (listener) => { listeners.push(listener) },
    backlogs: async () => new Map(await Promise.all(
      [...running.keys()].map(async (id) => [id, await app.events.backlogOf(id) ?? 0] as const)
    ))
  } satisfies Webhooks)

  const versionOf = (row: WebhookRow) =>
    JSON.stringify([row.url, row.events, row.secret, row.previousSecret, row.previousSecretUntil, row.mayLink, row.paused, row.replayedAt])

  /** Waits `ms`, telling JetStream every little while that the event is still being worked on. */
  const wait = async (ms: number, delivery: DeliveryInfo) => {
    for (let left = ms; left > 0; left -= workingEveryMs) {
      await sleep(Math.min(left, workingEveryMs), undefined, { signal: delivery.signal })
      delivery.working()
    }
  }

  const pause = async (row: WebhookRow, reason: string) => {
    await store.update(row.id, { paused: true, pausedReason: reason })
    app.log.warn({ webhookId: row.id, companyId: row.companyId, reason }, 'webhook paused')
    if (row.companyId) app.events.publish(row.companyId, 'webhook_paused', { webhookId: row.id, url: row.url, reason })
    announce(row.id)
  }

  /** Delivers one event to one webhook, retrying with backoff until it is taken, too old, or the webhook pauses. */
  const handle = async (row: WebhookRow, event: StoredEvent, delivery: DeliveryInfo) => {
    if (!await epochs.admits(row.id, event)) {
      app.log.info({ webhookId: row.id, companyId: event.companyId, type: event.type, epoch: event.epoch, id: event.id },
        'a newer lease epoch\'s events were delivered already: this stale one is not')
      return
    }
    if (!mayReceive(event.type, row.mayLink)) return
    if (row.events && !row.events.includes(event.type)) return
    for (let attempt = 1; ; attempt++) {
      // A replay gives old events a new WEBHOOK_MAX_AGE from the replay.
      const since = Math.max(Date.parse(event.timestamp), row.replayedAt?.getTime() ?? 0)
      const age = Date.now() - since
      if (age > options.webhookMaxAgeMs) {
        await store.deadLetter({
          webhookId: row.id,
          eventId: event.id,
          seq: event.seq,
          type: event.type,
          companyId: event.companyId,
          reason: `not taken within WEBHOOK_MAX_AGE (${options.webhookMaxAgeMs} ms)`
        })
        report({ webhookId: row.id, outcome: 'dead_letter', latencyMs: 0 })
        return
      }
      const result = await deliver(row.url, signingSecrets(row), event, limits)
      attemptsToLog.push({ webhookId: row.id, eventId: event.id, seq: event.seq, attempt, ...result })
      report({ webhookId: row.id, outcome: result.ok ? 'delivered' : 'failed', latencyMs: result.latencyMs })
      if (result.ok) {
        if (failing.delete(row.id) || row.failingSince) await store.noteOutcome(row.id, true)
        return
      }
      failing.add(row.id)
      const failingSince = await store.noteOutcome(row.id, false)
      if (failingSince && Date.now() - failingSince.getTime() > options.webhookDisableAfterMs) {
        await pause(row, `failing since ${failingSince.toISOString()}: ${result.error}`)
        throw new Error('webhook paused')
      }
      const remaining = options.webhookMaxAgeMs - (Date.now() - since)
      await wait(Math.max(0, Math.min(result.retryAfterMs ?? backoffMs(attempt, options.webhookRetryBaseMs), remaining)), delivery)
    }
  }

  const start = async (row: WebhookRow, from?: { afterSeq: number } | { time: Date }) => {
    const consumer = await app.events.consume({
      name: row.id,
      filter: row.companyId ? app.subjects.event(row.companyId, '>') : app.subjects.allEvents,
      ackWaitMs,
      ...(from ? { start: from } : {})
    }, (event, delivery) => handle(row, event, delivery))
    running.set(row.id, { stop: consumer.stop, version: versionOf(row) })
  }

  const stop = async (id: string) => {
    const current = running.get(id)
    running.delete(id)
    await current?.stop()
  }

  /**
   * Brings this replica's consumers in line with PostgreSQL (one webhook, or all). One at a time: two
   * interleaved (a webhook's creation and its change announced close together) would both find it
   * not running and start it twice, and the first consumer, never stopped, would hold its events.
   */
  let synced: Promise<void> = Promise.resolve()
  const sync = (id?: string) => {
    const next = synced.then(() => syncNow(id))
    synced = next.catch(() => {})
    return next
  }
  const syncNow = async (id?: string) => {
    if (closing) return
    const rows = id
      ? [await store.get(id)].filter((row) => row !== undefined)
      : await store.all((webhookId, err) => app.log.error({ err, webhookId }, 'a webhook\'s secret does not open: it is not delivered'))
    const wanted = new Map(rows.filter((row) => !row.paused).map((row) => [row.id, row]))
    for (const runningId of [...running.keys()]) {
      if ((id === undefined || runningId === id) &&
        (!wanted.has(runningId) || running.get(runningId)!.version !== versionOf(wanted.get(runningId)!))) {
        await stop(runningId)
      }
    }
    for (const row of wanted.values()) if (!running.has(row.id)) await start(row)
  }
  const syncing = (id?: string) => { sync(id).catch((err: unknown) => app.log.error({ err, webhookId: id }, 'webhooks not synced')) }

  /** Every replica follows a change at once (and all of them every RESYNC_EVERY_MS anyway). */
  const announce = (id: string) => { app.nats.publish(changedSubject, id) }
  const changes = app.nats.subscribe(changedSubject, {
    callback: (_err, message) => { if (message) syncing(message.string()) }
  })

  app.addHook('onReady', async () => { await sync() })
  const resync = setInterval(() => syncing(), RESYNC_EVERY_MS)
  resync.unref()
  // The delivery log is written in batches: one statement per LOG_EVERY_MS, not one per attempt.
  let attemptsToLog: AttemptRow[] = []
  const writeLog = async () => {
    const batch = attemptsToLog
    attemptsToLog = []
    await store.logAttempts(batch).catch((err: unknown) => app.log.warn({ err, attempts: batch.length }, 'webhook deliveries not logged'))
  }
  const logging = setInterval(() => { void writeLog() }, LOG_EVERY_MS)
  logging.unref()
  const prune = setInterval(() => {
    store.pruneDeliveries().catch((err: unknown) => app.log.warn({ err }, 'webhook deliveries not pruned'))
  }, PRUNE_EVERY_MS)
  prune.unref()
  app.addHook('onClose', async () => {
    closing = true
    clearInterval(resync)
    clearInterval(prune)
    clearInterval(logging)
    changes.unsubscribe()
    await Promise.all([...running.keys()].map(stop))
    await writeLog()
  })

  // --- the API ----------------------------------------------------------------------------------

  const checkUrl = async (url: string) => {
    try {
      await checkTarget(url, options.webhookAllowPrivate)
    } catch (err) {
      if (!(err instanceof SafeRequestError)) throw err
      throw invalid('/url', err.reason === 'forbidden' && !/http or https|not a URL/.test(err.message)
        ? `${err.message} (WEBHOOK_ALLOW_PRIVATE)`
        : err.message)
    }
  }
  const checkEvents = (events: string[] | null | undefined, mayLink: boolean) => {
    const unknown = (events ?? []).filter((type) => !(EVENT_TYPES as readonly string[]).includes(type))
    if (unknown.length > 0) throw invalid('/events', `unknown event types: ${unknown.join(', ')} (known: ${EVENT_TYPES.join(', ')})`)
    const linking = (events ?? []).filter((type) => !mayReceive(type, mayLink))
    if (linking.length > 0) throw invalid('/events', `${linking.join(', ')} need the scope link`)
  }

  const create = async (by: Principal, companyId: string | null, request: WebhookCreate) => {
    const mayLink = hasScope(by, 'link')
    checkEvents(request.events, mayLink)
    await checkUrl(request.url)
    const secret = request.secret ?? newSecret()
    const row = await store.create({
      id: `wh_${randomBytes(16).toString('hex')}`,
      companyId,
      url: request.url,
      events: request.events ?? null,
      secret,
      mayLink
    })
    announce(row.id)
    return { success: true as const, webhook: viewOf(row), secret }
  }
  const owned = async (companyId: string | null, id: string) => {
    const row = await store.get(id)
    if (!row || row.companyId !== companyId) throw new GatewayError(ErrorCode.NOT_FOUND, `no webhook ${id}`)
    return row
  }
  /** A change by a principal without `link` ends the webhook's linking events: it could aim them at its own URL. */
  const update = async (by: Principal, companyId: string | null, id: string, request: WebhookUpdate) => {
    await owned(companyId, id)
    const mayLink = hasScope(by, 'link')
    checkEvents(request.events, mayLink)
    if (request.url !== undefined) await checkUrl(request.url)
    const row = await store.update(id, {
      ...request,
      ...(request.paused ? { pausedReason: 'paused by request' } : {}),
      ...(mayLink ? {} : { mayLink: false as const })
    })
    announce(id)
    return { success: true as const, webhook: viewOf(row!) }
  }
  const remove = async (companyId: string | null, id: string) => {
    await owned(companyId, id)
    await store.delete(id)
    await epochs.forget(id)
    announce(id)
    await stop(id)
    await app.events.deleteConsumer(id)
    return { success: true as const }
  }
  const history = async (companyId: string | null, id: string) => {
    await owned(companyId, id)
    await writeLog()
    const [deliveries, deadLetters] = await Promise.all([store.deliveries(id, 100), store.deadLetters(id, 100)])
    return {
      success: true as const,
      deliveries: deliveries.map((row) => ({
        eventId: row.event_id,
        seq: Number(row.seq),
        attempt: row.attempt,
        status: row.status,
        latencyMs: row.latency_ms,
        error: row.error,
        at: new Date(row.at).toISOString()
      })),
      deadLetters: deadLetters.map((row) => ({
        eventId: row.event_id,
        seq: Number(row.seq),
        type: row.type,
        companyId: row.company_id,
        reason: row.reason,
        at: new Date(row.at).toISOString()
      }))
    }
  }
  /** Delivers again from a stream sequence or a time: the webhook's consumer starts over there. */
  const replay = async (companyId: string | null, id: string, request: ReplayRequest) => {
    const row = await owned(companyId, id)
    const from = typeof request.since === 'number' ? { afterSeq: request.since } : { time: new Date(request.since) }
    await stop(id)
    await app.events.deleteConsumer(id)
    const replayed = (await store.markReplayed(id))!
    if (!replayed.paused) await start(replayed, from)
    announce(id)
    return { success: true as const, webhook: viewOf(row) }
  }

  /** A new secret; the old one signs beside it for the overlap, so receivers switch without a failed delivery. */
  const rotateSecret = async (companyId: string | null, id: string, request: WebhookSecretRotation) => {
    await owned(companyId, id)
    const secret = request.secret ?? newSecret()
    const overlapMs = request.overlapSeconds !== undefined ? request.overlapSeconds * 1000 : options.webhookSecretOverlapMs
    const row = await store.rotateSecret(id, secret, overlapMs > 0 ? new Date(Date.now() + overlapMs) : null)
    if (!row) throw new GatewayError(ErrorCode.NOT_FOUND, `no webhook ${id}`)
    announce(id)
    return { success: true as const, webhook: viewOf(row), secret }
  }

  registerRoutes(app, {
    create,
    list: async (companyId) => ({ success: true as const, webhooks: (await store.list(companyId)).map(viewOf) }),
    get: async (companyId, id) => {
      const row = await owned(companyId, id)
      const backlog = await app.events.backlogOf(id)
      return { success: true as const, webhook: { ...viewOf(row), ...(backlog !== undefined ? { backlog } : {}) } }
    },
    update,
    remove,
    history,
    replay,
    rotateSecret
  })
}, { name: 'webhooks', dependencies: ['config', 'nats', 'bus', 'db', 'events', 'sealing'] })

const invalid = (field: string, message: string) => new GatewayError(ErrorCode.VALIDATION_ERROR, `webhook ${field.slice(1)}: ${message}`, {
  details: [{ field, message }]
})
