import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import {
  ANY_REPLICA_QUEUE, COMPANY_ID_PATTERN, CompanyParams, ErrorCode, ErrorReply, EventsQuery, Headers, InitializeReply, InitializeRequest,
  LogoutReply, SendReply, SendRequest, SessionStatus, SessionsList, type EventEnvelope
} from '../../contracts/index.ts'
import { GatewayError, toErrorReply, validationError } from '../../core/errors.ts'
import { claimedEpochs, desiredOnline } from '../ownership/sessions.ts'
import { authMigrations, WhatsappAuth, WhatsappAuthSchema, WhatsappKey, WhatsappKeySchema } from './auth-store.ts'
import { pairingMigrations, requestPairing } from './pairing.ts'
import { SessionPool } from './pool.ts'
import type { StopOutcome } from './session.ts'
import { TestWhatsApp } from './test-socket.ts'
import { baileysFactory } from './baileys-adapter.ts'
import type { SocketFactory } from './socket-port.ts'
import { IDEMPOTENCY_TTL_MS, IdempotencyStore } from './idempotency.ts'
import { deliveryFields, Outbound } from './outbound.ts'

export const entities = [WhatsappAuthSchema, WhatsappKeySchema]
export const migrations = [...authMigrations, ...pairingMigrations]

/** Stream events are kept this long for `?since=` replays. */
const EVENTS_MAX_AGE_MS = 24 * 60 * 60 * 1000
/** A session list asks each holder for its status with this deadline, so one slow replica cannot stall it. */
const LIST_STATUS_TIMEOUT_MS = 1_000

/** RFC 6455 close code for a server-side failure. */
const WS_INTERNAL_ERROR = 1011

/** NATS header a client may set instead of `idempotencyKey` (the JetStream de-duplication header, reused). */
const NATS_MSG_ID = 'Nats-Msg-Id'
/** HTTP header a client may set instead of `idempotencyKey`. */
const IDEMPOTENCY_HEADER = 'idempotency-key'

/** Health is looked at this often relative to the threshold, so a report comes at most a quarter late. */
const HEALTH_CHECKS_PER_THRESHOLD = 4
const HEALTH_CHECK_MIN_INTERVAL_MS = 250

const EmptyPayload = Type.Object({})
const HolderInitialize = Type.Object({ restart: Type.Boolean() })

declare module 'fastify' {
  interface FastifyInstance {
    sessionPool: SessionPool
    /** The one way a message leaves a company's connection (idempotency, policies, deadline). */
    outbound: Outbound
    /** With WA_TRANSPORT=test: the in-process WhatsApp the sessions connect to. */
    testWhatsApp: TestWhatsApp | undefined
  }
}

/** Outcomes after which no replica should try the company again until someone initializes it. */
const FINAL_OUTCOMES = new Set<StopOutcome>(['connection_replaced', 'logged_out', 'forbidden', 'qr_expired', 'reconnect_failed'])

export default fp(async (app) => {
  const { config, bus, ownership } = app
  await bus.ensureStream(config.eventsStream, [app.subjects.allEvents], { duplicateWindowMs: config.eventsDuplicateWindowMs, maxAgeMs: EVENTS_MAX_AGE_MS })

  const testWhatsApp = config.waTransport === 'test' ? new TestWhatsApp(ownership.testLedger) : undefined
  const factory: SocketFactory = testWhatsApp
    ? testWhatsApp.factory(config.replicaId)
    : baileysFactory({ wsUrl: config.waWsUrl, version: config.waVersion, certPublicKeyHex: config.waCertPublicKey })
  app.decorate('testWhatsApp', testWhatsApp)

  const publish = (companyId: string, epoch: number, type: string, data: Record<string, unknown>, eventId?: string) => {
    const event: EventEnvelope = { type, companyId, timestamp: new Date().toISOString(), replica: config.replicaId, epoch, data }
    bus.publishDurable(app.subjects.event(companyId, type), event, {
      msgId: eventId ?? `${type}:${companyId}:${randomUUID()}`,
      headers: { [Headers.epoch]: String(epoch), [Headers.replica]: config.replicaId }
    }).catch((err: unknown) => app.log.error({ err, companyId, type }, 'event could not be stored'))
  }

  const pool = new SessionPool({
    config,
    factory,
    em: () => app.orm.em.fork(),
    log: app.log,
    publish,
    onOutcome: (companyId, outcome) => {
      if (!FINAL_OUTCOMES.has(outcome)) return
      ownership.setDesired(companyId, 'offline').catch((err: unknown) => app.log.error({ err, companyId }, 'could not mark the company offline'))
    }
  })
  app.decorate('sessionPool', pool)
  ownership.useConnector(pool)
  const idempotencyKv = await bus.openKv(config.idempotencyBucket, { ttlMs: IDEMPOTENCY_TTL_MS, timeoutMs: config.natsRequestTimeoutMs })
  app.decorate('outbound', new Outbound({
    pool,
    idempotency: new IdempotencyStore(idempotencyKv, config.replicaId, app.log),
    sendTimeoutMs: config.sendTimeoutMs,
    log: app.log
  }))

  // Every message WhatsApp took is an event too (in the sender's trace): other services see sends they did not make.
  app.outbound.onOutcome((item, outcome) => {
    if (outcome.error !== undefined || !outcome.sent) return
    const session = pool.get(item.companyId)
    publish(item.companyId, session?.epoch ?? 0, 'message_sent', {
      messageId: outcome.sent.messageId, phone: item.recipient, kind: item.kind, timestamp: new Date(outcome.sent.timestamp * 1000).toISOString()
    }, `sent:${item.companyId}:${outcome.sent.messageId}`)
  })

  // Passive health: reports sessions that stay unhealthy; never reconnects anything.
  const healthTimer = setInterval(() => { for (const session of pool.all()) session.checkHealth(config.healthFailedAfterMs) }, Math.max(HEALTH_CHECK_MIN_INTERVAL_MS, config.healthFailedAfterMs / HEALTH_CHECKS_PER_THRESHOLD))
  healthTimer.unref()
  app.addHook('onClose', async () => { clearInterval(healthTimer) })

  registerHolderCommands(app, pool)
  registerAnyReplicaHandlers(app)
  await registerRoutes(app)
}, { name: 'session-pool', dependencies: ['config', 'bus', 'db', 'phone', 'ownership'] })

function requireSession (pool: SessionPool, companyId: string) {
  const session = pool.get(companyId)
  if (!session) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} has no session on this replica`)
  return session
}

export function validated<T> (validator: { Check: (value: unknown) => boolean, Errors: (value: unknown) => Parameters<typeof validationError>[0] }, payload: unknown): T {
  if (!validator.Check(payload)) throw validationError(validator.Errors(payload), 'payload')
  return payload as T
}

/** `wa.cmd.<id>.*`: answered only by the replica holding the company. */
function registerHolderCommands (app: FastifyInstance, pool: SessionPool) {
  const { ownership, config } = app
  const sendValidator = Compile(SendRequest)
  const initializeValidator = Compile(HolderInitialize)

  ownership.registerCommand('send', async (companyId, payload, context): Promise<SendReply> => {
    const request = validated<SendRequest>(sendValidator, payload)
    const e164 = app.phone.normalize(request.phone)
    const jid = app.phone.toJid(e164)
    return app.outbound.deliver({
      companyId,
      kind: 'text',
      recipient: e164,
      idempotencyKey: idempotencyKeyOf(request.idempotencyKey, context.headers),
      deliver: (socket) => socket.sendText(jid, request.message, { quoted: request.options?.quoted })
    }, (sent, queuedMs) => deliveryFields(companyId, e164, sent, queuedMs))
  })

  ownership.registerCommand('status', async (companyId, _payload, _context, lease): Promise<SessionStatus> => {
    const status = requireSession(pool, companyId).status()
    return {
      success: true, companyId, connected: status.connected, status: status.state, reconnectAttempts: status.reconnectAttempts,
      holder: config.replicaId, epoch: lease.epoch,
      health: { healthy: status.connected, phoneNumber: status.phoneNumber, lastActivity: status.lastActivity }
    }
  })

  ownership.registerCommand('logout', async (companyId): Promise<LogoutReply> => {
    const session = requireSession(pool, companyId)
    if (session.socket) {
      // The socket closes with 401; the session wipes the auth state and the company goes offline.
      await session.socket.logout()
    } else {
      await pool.disconnect(companyId)
      await wipeAuth(app, companyId)
      await ownership.setDesired(companyId, 'offline')
    }
    return { success: true, companyId, message: 'logged out; auth state wiped' }
  })

  ownership.registerCommand('initialize', async (companyId, payload) => {
    const request = validated<{ restart: boolean }>(initializeValidator, payload)
    if (request.restart || ['stopped', 'breaker_open', 'reconnecting'].includes(requireSession(pool, companyId).state)) await pool.restart(companyId)
    return { success: true, snapshot: pool.get(companyId)?.snapshot() ?? null }
  })
}

const COMPANY_ID = new RegExp(COMPANY_ID_PATTERN)

/** The company a `<namespace>.ctl.<companyId>.…` subject names, checked like every companyId. */
export function companyOfSubject (subject: string): string {
  const companyId = subject.split('.')[2]
  if (!COMPANY_ID.test(companyId)) throw new GatewayError(ErrorCode.VALIDATION_ERROR, `companyId "${companyId}" must be 1-64 characters of [A-Za-z0-9_-]`)
  return companyId
}

/** The client's idempotency key: the body's field, else the NATS message id. */
export function idempotencyKeyOf (fromBody: string | undefined, headers: { get: (key: string) => string } | undefined): string | undefined {
  return fromBody ?? (headers?.get(NATS_MSG_ID) || undefined)
}

/** Over HTTP the key may come as an `Idempotency-Key` header; it travels to the holder as the NATS message id. */
export function idempotencyHeaders (request: { headers: Record<string, unknown> }): { headers: Record<string, string> } | undefined {
  const key = request.headers[IDEMPOTENCY_HEADER]
  return typeof key === 'string' && key.length > 0 ? { headers: { [NATS_MSG_ID]: key } } : undefined
}

async function wipeAuth (app: FastifyInstance, companyId: string) {
  const em = app.orm.em.fork()
  await em.nativeDelete(WhatsappKey, { companyId })
  await em.nativeDelete(WhatsappAuth, { companyId })
}

/** Marks the company online and waits for the holder's first QR, pairing code or connection. */
async function initialize (app: FastifyInstance, companyId: string, request: InitializeRequest): Promise<InitializeReply> {
  const { bus, ownership, config } = app
  const pairingPhone = request.phoneNumber === undefined ? undefined : app.phone.normalize(request.phoneNumber)
  await requestPairing(app.orm.em.fork(), companyId, pairingPhone)
  const waiting = bus.firstOf(['qr', 'pairing_code', 'connected', 'error'].map((type) => app.subjects.event(companyId, type)), config.initializeTimeoutMs)
  await waiting.ready
  await ownership.setDesired(companyId, 'online')

  // Already held: the holder shows what it has, restarting the session when the linking mode changed.
  const fromHolder = await bus.request<{ snapshot: { status: InitializeReply['status'], data: Record<string, unknown> } | null }>(
    app.subjects.command(companyId, 'initialize'), { restart: pairingPhone !== undefined }).catch(() => undefined)
  const found = fromHolder?.snapshot ?? await waiting.next.then((event) => {
    if (!event) return null
    const type = event.subject.split('.').at(-1)!
    const data = (event.data as EventEnvelope).data
    if (type === 'error') throw new GatewayError(ErrorCode.UNAVAILABLE, `initialize failed: ${String(data.message ?? data.reason)}`)
    return { status: type as InitializeReply['status'], data }
  })
  if (!found) throw new GatewayError(ErrorCode.TIMEOUT, `no QR or connection for ${companyId} within ${config.initializeTimeoutMs} ms`)
  if (found.status === 'connected') return { success: true, companyId, status: 'connected', message: 'WhatsApp is connected' }
  if (found.status === 'pairing_code') {
    return { success: true, companyId, status: 'pairing_code', pairingCode: String(found.data.code), expiresAt: String(found.data.expiresAt), message: 'Enter this code in WhatsApp › Linked devices › Link with phone number' }
  }
  return {
    success: true, companyId, status: 'qr', qr: String(found.data.qr), qrDataUrl: String(found.data.qrDataUrl), qrTerminal: String(found.data.qrTerminal),
    message: 'Please scan the QR code with WhatsApp'
  }
}

async function status (app: FastifyInstance, companyId: string, timeoutMs?: number): Promise<SessionStatus> {
  try {
    return await app.bus.request<SessionStatus>(app.subjects.command(companyId, 'status'), {}, { timeoutMs })
  } catch (err) {
    if (!(err instanceof GatewayError) || err.code !== ErrorCode.NOT_CONNECTED) throw err
    return {
      success: true, companyId, connected: false, status: 'disconnected', reconnectAttempts: 0, holder: null, epoch: null,
      health: { healthy: false, phoneNumber: null, lastActivity: null }
    }
  }
}

async function listSessions (app: FastifyInstance): Promise<SessionsList> {
  const em = app.orm.em.fork()
  const online = new Set(await desiredOnline(em))
  const known = [...new Set([...online, ...(await claimedEpochs(em)).keys()])].sort()
  const sessions = await Promise.all(known.map(async (companyId) => {
    const current = await status(app, companyId, LIST_STATUS_TIMEOUT_MS).catch(() => undefined)
    return {
      companyId,
      desired: online.has(companyId) ? 'online' : 'offline',
      connected: current?.connected ?? false,
      status: current?.status ?? 'unknown',
      holder: current?.holder ?? null,
      health: current === undefined ? 'unknown' : current.health.healthy ? 'healthy' : 'unhealthy'
    }
  }))
  return {
    success: true,
    count: sessions.length,
    sessions,
    metrics: { totalSessions: sessions.length, activeConnections: sessions.filter((session) => session.connected).length }
  }
}

/** `wa.ctl.*`: any replica answers, through a queue group. */
function registerAnyReplicaHandlers (app: FastifyInstance) {
  const list = app.bus.handle(app.subjects.sessionsList, { request: EmptyPayload, queue: ANY_REPLICA_QUEUE }, () => listSessions(app))
  const init = app.bus.handle(app.subjects.initialize('*'), { request: InitializeRequest, queue: ANY_REPLICA_QUEUE }, async (request, context) => {
    return initialize(app, companyOfSubject(context.subject), request)
  })
  app.addHook('onClose', async () => {
    await Promise.all([list.close(), init.close()])
  })
}

async function registerRoutes (app: FastifyInstance) {
  await app.register(websocket)
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const tags = ['sessions']

  routes.get('/api/whatsapp/sessions', {
    schema: { tags, summary: 'Every known company with its desired state, holder and status', response: { 200: SessionsList } }
  }, () => listSessions(app))

  routes.post('/api/whatsapp/sessions/:companyId/initialize', {
    schema: {
      tags, summary: 'Mark the company online and return its QR (or pairing code), or that it is connected',
      params: CompanyParams, body: InitializeRequest,
      response: { 200: InitializeReply, 400: ErrorReply, 503: ErrorReply, 504: ErrorReply }
    },
    // The old API is called without a body; that means "link by QR".
    preValidation: async (request) => { request.body ??= {} }
  }, (request) => initialize(app, request.params.companyId, request.body))

  routes.get('/api/whatsapp/sessions/:companyId/status', {
    schema: { tags, summary: 'Status as the holder sees it; disconnected when nobody holds it', params: CompanyParams, response: { 200: SessionStatus, 400: ErrorReply } }
  }, (request) => status(app, request.params.companyId))

  routes.get('/api/whatsapp/sessions/:companyId/health', {
    schema: { tags, summary: '200 when the session is connected, 503 when not (passive: never reconnects)', params: CompanyParams }
  }, async (request, reply) => {
    const [current, readiness] = await Promise.all([status(app, request.params.companyId), app.checkReadiness()])
    const body = {
      success: current.health.healthy,
      companyId: current.companyId,
      healthy: current.health.healthy,
      phoneNumber: current.health.phoneNumber,
      status: current.status,
      lease: { holder: current.holder, epoch: current.epoch },
      // The replica that answered: its own NATS, PostgreSQL and lease-bucket checks.
      replica: { id: app.config.replicaId, ready: readiness.ready, checks: readiness.checks }
    }
    if (current.health.healthy) return body
    return reply.code(503).send({ ...body, error: { code: ErrorCode.NOT_CONNECTED, message: `company ${current.companyId} is ${current.status}` } })
  })

  routes.delete('/api/whatsapp/sessions/:companyId', {
    schema: { tags, summary: 'Log out and wipe the auth state', params: CompanyParams, response: { 200: LogoutReply, 400: ErrorReply } }
  }, async (request) => {
    const { companyId } = request.params
    try {
      return await app.ownership.requestHolder<LogoutReply>(companyId, 'logout', {})
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== ErrorCode.NOT_CONNECTED) throw err
      await app.ownership.setDesired(companyId, 'offline')
      await wipeAuth(app, companyId)
      return { success: true as const, companyId, message: 'logged out; auth state wiped' }
    }
  })

  routes.post('/api/whatsapp/sessions/:companyId/send', {
    schema: {
      tags, summary: 'Send a text message through the company\'s WhatsApp (never creates a session)',
      params: CompanyParams, body: SendRequest,
      response: { 200: SendReply, 400: ErrorReply, 409: ErrorReply, 429: ErrorReply, 503: ErrorReply, 504: ErrorReply }
    }
  }, (request) => app.ownership.requestHolder<SendReply>(request.params.companyId, 'send', request.body, idempotencyHeaders(request)))

  routes.get('/api/whatsapp/events', {
    websocket: true,
    schema: { tags, summary: 'WebSocket: the company\'s events as JSON `{ type, companyId, seq, … }`; reconnect with `?since=<seq>` to receive what you missed', querystring: EventsQuery }
  }, async (socket, request) => {
    const { companyId, since } = request.query as EventsQuery
    let follower
    try {
      follower = await app.bus.follow(app.config.eventsStream, app.subjects.event(companyId, '>'), since, (seq, data) => {
        socket.send(JSON.stringify({ ...(data as object), seq }))
      })
    } catch (err) {
      request.log.error({ err, companyId }, 'could not follow events')
      socket.send(JSON.stringify({ type: 'error', companyId, error: toErrorReply(err).error }))
      socket.close(WS_INTERNAL_ERROR)
      return
    }
    socket.on('close', () => follower.stop())
    // Tells the client it is live and from which point: everything after `seq` follows.
    socket.send(JSON.stringify({ type: 'subscribed', companyId, seq: follower.after }))
  })
}
