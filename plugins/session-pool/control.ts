import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, COMMAND_SCOPES, CONTROL_SCOPES, CompanyParams, ErrorCode, InitializeReply, InitializeRequest, LogoutReply,
  SessionHealth, SessionsList, SessionStatus, SessionsListQuery, NewestEpochs, type EventEnvelope
} from '../../contracts/index.ts'
import { errorAnswer, notConnectedAnswer } from '../../core/plugins/docs.ts'
import { GatewayError } from '../../core/errors.ts'
import type { Principal } from '../../core/access/principal.ts'
import { forgetCompany } from './commands.ts'
import { requestPairing } from './pairing.ts'
import { saveLinkSettings } from './link-settings.ts'

export interface InitializeLimits {
  initializeTimeoutMs: number
  /** Companies a deployment may hold; the first initialize of one more is refused. */
  maxCompanies: number
}

async function checkCompanyLimit (app: FastifyInstance, companyId: string, maxCompanies: number): Promise<void> {
  const { count, known } = await app.ownership.companyCount(app.orm.em.fork(), companyId)
  if (known || count < maxCompanies) return
  throw new GatewayError(ErrorCode.LIMIT_REACHED, `this deployment holds its maximum of ${maxCompanies} companies (MAX_COMPANIES)`)
}

/** A session list asks each holder for its status with this deadline, so one slow replica cannot stall it. */
const LIST_STATUS_TIMEOUT_MS = 1_000
const TAGS = ['sessions']
/** Companies a page of the session list asks about (each one a request to its holder). */
const DEFAULT_PAGE = 100

/** Marks the company online and waits for the holder's first QR, pairing code or connection. */
async function initialize (
  app: FastifyInstance,
  companyId: string,
  request: InitializeRequest,
  limits: InitializeLimits
): Promise<InitializeReply> {
  const { bus, ownership } = app
  const timeoutMs = limits.initializeTimeoutMs
  await checkCompanyLimit(app, companyId, limits.maxCompanies)
  const pairingPhone = request.phoneNumber === undefined ? undefined : app.phone.normalize(request.phoneNumber)
  // A proxy given here is checked and kept first: a bad URL refuses the whole initialize, and the first socket already uses it.
  if (request.proxy !== undefined) await app.proxies.set(companyId, request.proxy, 'proxy')
  await requestPairing(app.orm.em.fork(), companyId, pairingPhone)
  if (request.history) await saveLinkSettings(app.orm.em.fork(), companyId, request.history)
  const waiting = bus.firstOf(['qr', 'pairing_code', 'connected', 'error'].map((type) => app.subjects.event(companyId, type)), timeoutMs)
  let found: { status: InitializeReply['status'], data: Record<string, unknown> } | null
  try {
    await waiting.ready
    await ownership.setDesired(companyId, 'online')
    // Already held: the holder shows what it has, restarting the session when the linking mode changed.
    const fromHolder = await bus.request<{ snapshot: { status: InitializeReply['status'], data: Record<string, unknown> } | null }>(
      app.subjects.command(companyId, 'initialize'), { restart: pairingPhone !== undefined }).catch(() => undefined)
    found = fromHolder?.snapshot ?? await waiting.next.then((event) => {
      if (!event) return null
      const { type, data } = event.data as EventEnvelope
      if (type === 'error') throw new GatewayError(ErrorCode.UNAVAILABLE, `initialize failed: ${String(data.message ?? data.reason)}`)
      return { status: type as InitializeReply['status'], data }
    })
  } finally {
    // The holder answered (or the request failed): the event subscriptions and their timer go now, not at the timeout.
    waiting.cancel()
  }
  if (!found) throw new GatewayError(ErrorCode.TIMEOUT, `no QR or connection for ${companyId} within ${timeoutMs} ms`)
  if (found.status === 'connected') return { success: true, companyId, status: 'connected', message: 'WhatsApp is connected' }
  if (found.status === 'pairing_code') {
    return {
      success: true,
      companyId,
      status: 'pairing_code',
      pairingCode: String(found.data.code),
      expiresAt: String(found.data.expiresAt),
      message: 'Enter this code in WhatsApp › Linked devices › Link with phone number'
    }
  }
  return {
    success: true,
    companyId,
    status: 'qr',
    qr: String(found.data.qr),
    qrDataUrl: String(found.data.qrDataUrl),
    qrTerminal: String(found.data.qrTerminal),
    message: 'Please scan the QR code with WhatsApp'
  }
}

/** The holder's status, or "disconnected" when nobody holds the company. */
async function status (app: FastifyInstance, companyId: string, timeoutMs?: number): Promise<SessionStatus> {
  try {
    return await app.bus.request<SessionStatus>(app.subjects.command(companyId, 'status'), {}, { timeoutMs })
  } catch (err) {
    if (!(err instanceof GatewayError) || err.code !== ErrorCode.NOT_CONNECTED) throw err
    return {
      success: true,
      companyId,
      connected: false,
      status: 'disconnected',
      reconnectAttempts: 0,
      holder: null,
      epoch: null,
      health: { healthy: false, phoneNumber: null, lastActivity: null }
    }
  }
}

/**
 * The status of a company's current holder, judged by epoch, not by who answers first: a replica
 * whose lease a newer holder has claimed in PostgreSQL (`claimed`) may still answer for a moment (a
 * fence not yet run, a stalled event loop), and its answer is not shown as the holder's. Then every
 * subscriber is asked and the newest lease's answer taken; none within the deadline is "unknown".
 */
async function currentStatus (app: FastifyInstance, companyId: string, claimed: number): Promise<SessionStatus | undefined> {
  const first = await status(app, companyId, LIST_STATUS_TIMEOUT_MS).catch(() => undefined)
  const newest = new NewestEpochs()
  newest.observe(companyId, claimed)
  if (first === undefined || newest.observe(companyId, first.epoch)) return first
  const answers = await app.bus.gather<SessionStatus>(app.subjects.command(companyId, 'status'), {}, { maxWaitMs: LIST_STATUS_TIMEOUT_MS })
  return answers.filter((answer) => answer.epoch !== null && newest.observe(companyId, answer.epoch))
    .sort((a, b) => (b.epoch ?? 0) - (a.epoch ?? 0))[0]
}

/** A page of the known companies with their status (asking each holder); over HTTP only those the caller may see. */
async function listSessions (app: FastifyInstance, query: SessionsListQuery, principal?: Principal): Promise<SessionsList> {
  const limit = query.limit ?? DEFAULT_PAGE
  const only = principal && principal.companies !== '*' ? principal.companies : undefined
  const known = await app.ownership.knownCompanies(app.orm.em.fork(), { after: query.after, limit, only })
  const sessions = await Promise.all(known.map(async ({ companyId, desired, epoch }) => {
    const current = await currentStatus(app, companyId, epoch)
    return {
      companyId,
      desired,
      connected: current?.connected ?? false,
      status: current?.status ?? 'unknown',
      holder: current?.holder ?? null,
      epoch: current?.epoch ?? null,
      health: current === undefined ? 'unknown' : current.health.healthy ? 'healthy' : 'unhealthy',
      phoneNumber: current?.health.phoneNumber ?? null,
      lastActivity: current?.health.lastActivity ?? null,
      lastError: current?.lastError ?? null
    }
  }))
  return {
    success: true,
    count: sessions.length,
    sessions,
    metrics: { totalSessions: sessions.length, activeConnections: sessions.filter((session) => session.connected).length },
    next: known.length === limit ? known[known.length - 1].companyId : null
  }
}

/**
 * Operations any replica answers (`<namespace>.ctl.…` through a queue group, and their HTTP routes):
 * linking, the list of sessions, status with a fallback for companies nobody holds, health, logout.
 */
export function registerSessionControl (app: FastifyInstance, limits: InitializeLimits): void {
  const list = app.bus.handle(app.subjects.sessionsList, { request: SessionsListQuery, reply: SessionsList, queue: ANY_REPLICA_QUEUE },
    (query) => listSessions(app, query))
  const init = app.bus.handle(app.subjects.initialize('*'),
    { request: InitializeRequest, reply: InitializeReply, queue: ANY_REPLICA_QUEUE },
    (request, context) => initialize(app, context.companyId, request, limits))
  app.addHook('onClose', async () => {
    await Promise.all([list.close(), init.close()])
  })

  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get('/api/whatsapp/sessions', {
    config: { access: { scope: 'read' } },
    schema: {
      operationId: 'listSessions',
      tags: TAGS,
      summary: 'Known companies with their desired state, holder and status, a page at a time (`limit`, `after`)',
      querystring: SessionsListQuery,
      response: { 200: SessionsList }
    }
  }, (request) => listSessions(app, request.query, request.principal))

  routes.post('/api/whatsapp/sessions/:companyId/initialize', {
    // The old API is called without a body; that means "link by QR".
    config: { access: { scope: CONTROL_SCOPES.initialize, company: 'params' }, optionalBody: true },
    schema: {
      operationId: 'initialize',
      tags: TAGS,
      summary: 'Mark the company online and return its QR (or pairing code), or that it is connected',
      params: CompanyParams,
      body: InitializeRequest,
      response: {
        200: InitializeReply,
        409: errorAnswer('The deployment holds MAX_COMPANIES companies already (`LIMIT_REACHED`)'),
        504: errorAnswer('Neither a QR, a pairing code nor a connection came in time (`TIMEOUT`)')
      }
    }
  }, (request) => initialize(app, request.params.companyId, request.body, limits))

  routes.get('/api/whatsapp/sessions/:companyId/status', {
    config: { access: { scope: COMMAND_SCOPES.status, company: 'params' } },
    schema: {
      operationId: 'status',
      tags: TAGS,
      summary: 'Status as the holder sees it; disconnected when nobody holds it',
      params: CompanyParams,
      response: { 200: SessionStatus }
    }
  }, (request) => status(app, request.params.companyId))

  routes.get('/api/whatsapp/sessions/:companyId/health', {
    config: { access: { scope: 'read', company: 'params' } },
    schema: {
      operationId: 'sessionHealth',
      tags: TAGS,
      summary: '200 when the session is connected, 503 when not (passive: never reconnects)',
      params: CompanyParams,
      response: {
        200: SessionHealth,
        503: { ...SessionHealth, description: 'Not connected: the same body, with `error` (`NOT_CONNECTED`)' }
      }
    }
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
    return reply.code(503).send({
      ...body,
      error: { code: ErrorCode.NOT_CONNECTED, message: `company ${current.companyId} is ${current.status}` }
    })
  })

  routes.delete('/api/whatsapp/sessions/:companyId', {
    config: { access: { scope: COMMAND_SCOPES.logout, company: 'params' } },
    schema: {
      operationId: 'logout',
      tags: TAGS,
      summary: 'Log out and wipe the auth state',
      params: CompanyParams,
      response: { 200: LogoutReply, 503: notConnectedAnswer }
    }
  }, async (request) => {
    const { companyId } = request.params
    try {
      return await app.ownership.requestHolder<LogoutReply>(companyId, 'logout', {})
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== ErrorCode.NOT_CONNECTED) throw err
      await forgetCompany(app, companyId)
      return { success: true as const, companyId, message: 'logged out; auth state wiped' }
    }
  })
}
