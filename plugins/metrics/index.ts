import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { EmptyRequest, ErrorCode, MetricsReply, ReplicaMetrics } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { SessionState } from '../session-pool/index.ts'
import type { MetricsOptions } from './settings.ts'
import { hashSecret, sameDigest } from '../../core/access/secrets.ts'

export { settings, type MetricsOptions } from './settings.ts'

// Not `import { createServer } from 'node:http'`: an ES import of node:http loads Node's bundled undici
// (its WebSocket getters), see core/net/safe-request.ts.
const { createServer } = process.getBuiltinModule('node:http')

const SECONDS = 1000
/** How often the webhooks' backlogs are read from JetStream for the gauge. */
const BACKLOG_REFRESH_MS = 5_000
/** Takeover after a crash takes about the lease TTL (15 s by default); a handoff, milliseconds. */
const TAKEOVER_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60]
/** From the test double's fraction of a millisecond to WhatsApp's seconds. */
const SEND_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15]
const OTHER_COMPANIES = 'other'
/** Label values known in advance: their series exist at 0 from the start, so dashboards and alerts work on a fresh replica. */
const SESSION_STATES: SessionState[] = ['connecting', 'qr', 'pairing', 'open', 'reconnecting', 'breaker_open', 'stopped']
const MESSAGE_KINDS = ['text', 'media', 'location', 'contact', 'edit', 'delete', 'reaction']
/** WhatsApp's refusal codes known by name (plugins/session-pool/session.ts refusalOf). */
const KNOWN_REFUSALS = ['463', '479']
const ERROR_SOURCES = ['session', 'send']
const RATE_LIMITS = ['messages', 'reactions', 'queue']
const DUPLICATE_TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/** What this replica counts for the old JSON shape. */
interface LocalCounts {
  failedReconnects: number
  messagesSent: number
  messagesReceived: number
  qrCodesGenerated: number
  errors: number
  lastError: { message: string, at: string } | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The replica's Prometheus registry. */
    metricsRegistry: Registry
  }
}

/**
 * Prometheus metrics at `GET /metrics` (the old system's names and the new ones), and the old JSON
 * at `GET /api/whatsapp/metrics`, summed over every replica by a NATS scatter-gather.
 */
export default fp<MetricsOptions>(async (app, options) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // prom-client also names these gauges `…_total`, which the Prometheus conventions (and promtool)
  // keep for counters; the same values stay under their names without the suffix.
  for (const name of DUPLICATE_TOTAL_GAUGES) registry.removeSingleMetric(name)
  app.decorate('metricsRegistry', registry)

  // A company label only while its cardinality stays under the configured bound.
  const labelled = new Set<string>()
  const withCompany = options.metricsCompanyLabels > 0
  const companyLabel = (companyId: string): Record<string, string> => {
    if (!withCompany) return {}
    if (labelled.has(companyId) || labelled.size < options.metricsCompanyLabels) {
      labelled.add(companyId)
      return { company: companyId }
    }
    return { company: OTHER_COMPANIES }
  }
  const companyLabels = withCompany ? ['company'] : []
  const local: LocalCounts = { failedReconnects: 0, messagesSent: 0, messagesReceived: 0, qrCodesGenerated: 0, errors: 0, lastError: null }
  const noteError = (message: string) => {
    local.errors++
    local.lastError = { message, at: new Date().toISOString() }
  }

  const sessionsStarted = new Counter({
    name: 'whatsapp_sessions_total',
    help: 'Sessions this replica started holding',
    registers: [registry]
  })
  // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
  new Gauge({
    name: 'whatsapp_sessions',
    help: 'Sessions held by this replica, by state',
    labelNames: ['state'],
    registers: [registry],
    collect () {
      this.reset()
      for (const state of SESSION_STATES) this.set({ state }, 0)
      for (const session of app.sessionPool.all()) this.inc({ state: session.state })
    }
  })
  // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
  new Gauge({
    name: 'whatsapp_active_connections',
    help: 'Held sessions with an open WhatsApp connection',
    labelNames: companyLabels,
    registers: [registry],
    collect () {
      this.reset()
      if (!withCompany) this.set(app.sessionPool.all().filter((session) => session.status().connected).length)
      else for (const session of app.sessionPool.all()) if (session.status().connected) this.inc(companyLabel(session.companyId))
    }
  })
  // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
  new Gauge({
    name: 'whatsapp_reconnect_attempts',
    help: 'Reconnect attempts in progress, summed over the held sessions',
    registers: [registry],
    collect () { this.set(app.sessionPool.all().reduce((sum, session) => sum + session.status().reconnectAttempts, 0)) }
  })
  const sent = new Counter({
    name: 'whatsapp_messages_sent_total',
    help: 'Messages WhatsApp took, texts and reactions',
    labelNames: ['kind', ...companyLabels],
    registers: [registry]
  })
  const reactions = new Counter({ name: 'whatsapp_reactions_sent_total', help: 'Reactions WhatsApp took', registers: [registry] })
  const received = new Counter({
    name: 'whatsapp_messages_received_total',
    help: 'Inbound messages',
    labelNames: companyLabels,
    registers: [registry]
  })
  const errors = new Counter({
    name: 'whatsapp_errors_total',
    help: 'Errors: session errors and failed sends (budgets apart)',
    labelNames: ['source'],
    registers: [registry]
  })
  const deliveryFailures = new Counter({
    name: 'whatsapp_delivery_failures_total',
    help: 'Messages WhatsApp took and then refused (their state went to failed), by WhatsApp\'s code',
    labelNames: ['reason'],
    registers: [registry]
  })
  const webhookAttempts = new Counter({
    name: 'whatsapp_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (delivered, failed and retried, dead_letter)',
    labelNames: ['outcome'],
    registers: [registry]
  })
  const webhookLatency = new Histogram({
    name: 'whatsapp_webhook_delivery_duration_seconds',
    help: 'Time a webhook receiver took to answer a delivery',
    buckets: SEND_BUCKETS_S,
    registers: [registry]
  })
  const backlogs = new Map<string, number>()
  new Gauge({ // eslint-disable-line no-new -- registered with the registry, read at scrape time
    name: 'whatsapp_webhook_backlog',
    help: 'Events the webhooks running on this replica have yet to deliver (a webhook\'s own: GET …/webhooks/:id)',
    registers: [registry],
    collect () {
      this.set([...backlogs.values()].reduce((sum, backlog) => sum + backlog, 0))
    }
  })
  for (const outcome of ['delivered', 'failed', 'dead_letter']) webhookAttempts.inc({ outcome }, 0)
  // Webhooks are optional: followed once every plugin is loaded, when they are there.
  let followingWebhooks = false
  app.addHook('onReady', async () => {
    if (!app.hasDecorator('webhooks')) return
    followingWebhooks = true
    app.webhooks.onAttempt((attempt) => {
      webhookAttempts.inc({ outcome: attempt.outcome })
      if (attempt.outcome !== 'dead_letter') webhookLatency.observe(attempt.latencyMs / SECONDS)
    })
  })
  const refreshBacklogs = setInterval(() => {
    if (!followingWebhooks) return
    app.webhooks.backlogs().then((current) => {
      backlogs.clear()
      for (const [id, backlog] of current) backlogs.set(id, backlog)
    }, () => {})
  }, BACKLOG_REFRESH_MS)
  refreshBacklogs.unref()
  app.addHook('onClose', async () => { clearInterval(refreshBacklogs) })
  const qrCodes = new Counter({ name: 'whatsapp_qr_codes_generated_total', help: 'QR codes shown for linking', registers: [registry] })
  const failedReconnects = new Counter({
    name: 'whatsapp_reconnects_failed_total',
    help: 'Sessions that gave up reconnecting',
    registers: [registry]
  })
  const healthFailures = new Counter({
    name: 'whatsapp_health_check_failures_total',
    help: 'Held sessions that stayed unhealthy past HEALTH_FAILED_AFTER_MS',
    registers: [registry]
  })
  const sendDuration = new Histogram({
    name: 'whatsapp_send_duration_seconds',
    help: 'Time from a send reaching the holder to WhatsApp taking it (budgets and pacing included)',
    labelNames: ['kind'],
    buckets: SEND_BUCKETS_S,
    registers: [registry]
  })
  const takeover = new Histogram({
    name: 'whatsapp_takeover_duration_seconds',
    help: 'Time a company spent without a holder before this replica took it',
    buckets: TAKEOVER_BUCKETS_S,
    registers: [registry]
  })

  if (!withCompany) for (const kind of MESSAGE_KINDS) sent.inc({ kind }, 0)
  for (const kind of MESSAGE_KINDS) sendDuration.zero({ kind })
  for (const source of ERROR_SOURCES) errors.inc({ source }, 0)
  for (const reason of KNOWN_REFUSALS) deliveryFailures.inc({ reason }, 0)

  // Counts kept elsewhere are added as deltas at scrape time.
  const deltaCounter = (name: string, help: string, read: () => Record<string, number>, labelName?: string) => {
    const last = new Map<string, number>()
    return new Counter({
      name,
      help,
      labelNames: labelName ? [labelName] : [],
      registers: [registry],
      collect () {
        for (const [label, value] of Object.entries(read())) {
          const delta = value - (last.get(label) ?? 0)
          last.set(label, value)
          // An increment by 0 still makes the series, so a known label exists from the first scrape.
          this.inc(labelName ? { [labelName]: label } : {}, Math.max(0, delta))
        }
      }
    })
  }
  const refusedByLimit = () => (app.hasDecorator('messagingLimits')
    ? { ...app.messagingLimits.refused }
    : Object.fromEntries(RATE_LIMITS.map((limit) => [limit, 0])))
  deltaCounter('whatsapp_rate_limited_total', 'Sends refused by the WhatsApp budgets or the pacing queue', refusedByLimit, 'limit')
  deltaCounter('whatsapp_commands_ignored_total',
    'Command messages the holder dropped unread: no reply subject, or a JetStream ack as reply (not a request)',
    () => ({ ...app.bus.ignored }), 'reason')
  deltaCounter('whatsapp_lease_acquisitions_total', 'Company leases this replica acquired',
    () => ({ all: app.ownership.stats.acquisitions }))
  deltaCounter('whatsapp_lease_losses_total', 'Company leases this replica lost or fenced itself from (not handed off)',
    () => ({ all: app.ownership.stats.losses + app.ownership.stats.fences }))
  // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
  new Gauge({
    name: 'whatsapp_lease_acquisitions_waiting',
    help: 'Companies this replica is due to take, waiting for one of its LEASE_ACQUIRE_CONCURRENCY turns (a cold start, a takeover)',
    registers: [registry],
    collect () { this.set(app.ownership.acquisitions().waiting) }
  })
  // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
  new Gauge({
    name: 'whatsapp_pacing_queue_depth',
    help: 'Sends waiting in the pacing queues',
    labelNames: companyLabels,
    registers: [registry],
    collect () {
      this.reset()
      const depths = app.hasDecorator('messagingLimits') ? app.messagingLimits.queueDepths() : new Map<string, number>()
      if (!withCompany) this.set([...depths.values()].reduce((sum, depth) => sum + depth, 0))
      else for (const [companyId, depth] of depths) this.inc(companyLabel(companyId), depth)
    }
  })

  app.ownership.onAcquired((_companyId, takeoverMs) => {
    sessionsStarted.inc()
    if (takeoverMs !== undefined) takeover.observe(takeoverMs / SECONDS)
  })
  app.events.onPublished(({ companyId, type, data }) => {
    if (type === 'message') {
      received.inc(companyLabel(companyId))
      local.messagesReceived++
    } else if (type === 'message_status' && data.state === 'failed') {
      deliveryFailures.inc({ reason: String((data.failure as { code?: string } | undefined)?.code ?? 'unknown') })
    } else if (type === 'qr') {
      qrCodes.inc()
      local.qrCodesGenerated++
    } else if (type === 'reconnect_failed') {
      failedReconnects.inc()
      local.failedReconnects++
    } else if (type === 'health_check_failed') {
      healthFailures.inc()
    } else if (type === 'error') {
      errors.inc({ source: 'session' })
      noteError(`${companyId}: ${String(data.message ?? data.reason ?? 'session error')}`)
    }
  })
  app.outbound.onOutcome((item, outcome) => {
    if (outcome.error === undefined) {
      sent.inc({ kind: item.kind, ...companyLabel(item.companyId) })
      if (item.kind === 'reaction') reactions.inc()
      sendDuration.observe({ kind: item.kind }, outcome.durationMs / SECONDS)
      local.messagesSent++
      return
    }
    if (outcome.error instanceof GatewayError && outcome.error.code === ErrorCode.RATE_LIMITED) return
    errors.inc({ source: 'send' })
    noteError(`${item.companyId}: ${(outcome.error as Error).message}`)
  })

  const mine = (): ReplicaMetrics => replicaMetrics(app, local)
  // Every replica answers (no queue group): the cluster-wide JSON gathers them all.
  const collect = app.bus.handle(app.subjects.metricsCollect, { request: EmptyRequest, reply: ReplicaMetrics }, async () => mine())
  app.addHook('onClose', () => collect.close())

  if (options.metricsPort !== undefined) {
    // Its own listener, for a network only Prometheus reaches: no credentials there.
    const exposition = createServer((request, response) => {
      if (request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404).end()
        return
      }
      registry.metrics().then((text) => {
        response.writeHead(200, { 'content-type': registry.contentType }).end(text)
      }, (err: unknown) => {
        app.log.error({ err }, 'metrics exposition failed')
        response.writeHead(500).end()
      })
    })
    await new Promise<void>((resolve, reject) => {
      exposition.once('error', reject)
      exposition.listen(options.metricsPort, app.config.httpHost, () => resolve())
    })
    app.addHook('onClose', async () => { await new Promise((resolve) => exposition.close(resolve)) })
  } else {
    const tokenDigest = options.metricsToken === undefined ? undefined : hashSecret(options.metricsToken)
    app.get('/metrics', {
      // With METRICS_TOKEN, Prometheus presents that token; without, the admin key.
      config: { probe: true, checksCredentials: true, access: tokenDigest === undefined ? { scope: 'admin' } : 'public' },
      onRequest: async (request) => {
        if (tokenDigest === undefined) return
        // The access plugin has read the presented credential already.
        if (!sameDigest(request.credential?.digest ?? '', tokenDigest)) {
          throw new GatewayError(ErrorCode.UNAUTHORIZED, '/metrics needs METRICS_TOKEN as a bearer token')
        }
      },
      schema: { hide: true }
    }, async (_request, reply) => {
      reply.header('content-type', registry.contentType)
      return registry.metrics()
    })
  }
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/metrics', {
    config: { access: { scope: 'admin' } },
    schema: {
      operationId: 'metrics',
      tags: ['metrics'],
      summary: 'The old JSON metrics, summed over every replica that answers in time (those that do not are named)',
      response: { 200: MetricsReply }
    }
  }, () => clusterMetrics(app, options.metricsGatherTimeoutMs))
}, { name: 'metrics', dependencies: ['config', 'bus', 'events', 'ownership', 'session-pool'] })

function replicaMetrics (app: FastifyInstance, local: LocalCounts): ReplicaMetrics {
  const sessions = app.sessionPool.all()
  const connected = sessions.filter((session) => session.status().connected).length
  return {
    replica: app.config.replicaId,
    metrics: { totalSessions: sessions.length, activeConnections: connected, ...local },
    sessions: { total: sessions.length, connected, disconnected: sessions.length - connected }
  }
}

async function clusterMetrics (app: FastifyInstance, gatherTimeoutMs: number): Promise<MetricsReply> {
  const members = app.ownership.members().filter((member) => member.alive).map((member) => member.replica)
  const expected = new Set([...members, app.config.replicaId])
  const answers = await app.bus.gather<ReplicaMetrics>(app.subjects.metricsCollect, {}, {
    maxWaitMs: gatherTimeoutMs,
    expected: expected.size
  })
  const replicas = answers
    .filter((answer, index) => answers.findIndex((other) => other.replica === answer.replica) === index)
    .sort((a, b) => a.replica.localeCompare(b.replica))
  const sum = (pick: (replica: ReplicaMetrics) => number) => replicas.reduce((total, replica) => total + pick(replica), 0)
  const lastError = replicas
    .map((replica) => replica.metrics.lastError)
    .filter((error) => error !== null)
    .sort((a, b) => b.at.localeCompare(a.at))[0] ?? null
  const missing = [...expected].filter((replica) => !replicas.some((answer) => answer.replica === replica)).sort()
  return {
    success: true,
    metrics: {
      totalSessions: sum((replica) => replica.metrics.totalSessions),
      activeConnections: sum((replica) => replica.metrics.activeConnections),
      failedReconnects: sum((replica) => replica.metrics.failedReconnects),
      messagesSent: sum((replica) => replica.metrics.messagesSent),
      messagesReceived: sum((replica) => replica.metrics.messagesReceived),
      qrCodesGenerated: sum((replica) => replica.metrics.qrCodesGenerated),
      errors: sum((replica) => replica.metrics.errors),
      lastError
    },
    sessions: {
      total: sum((replica) => replica.sessions.total),
      connected: sum((replica) => replica.sessions.connected),
      disconnected: sum((replica) => replica.sessions.disconnected)
    },
    timestamp: new Date().toISOString(),
    replicas,
    missing,
    complete: missing.length === 0
  }
}
