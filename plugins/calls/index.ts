import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, CallParams, CallRejectReply, CallRejectRequest, CallSettings, CallSettingsReply, CallsPage, CallsQuery,
  CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { declareHolderCommand } from '../session-pool/index.ts'
import { CallDesk } from './desk.ts'
import type { CallsOptions } from './settings.ts'
import { callMigrations, CallSettingSchema, callSettingsOf, CallStore, saveCallSettings } from './store.ts'

export { settings, type CallsOptions } from './settings.ts'
export const entities = [CallSettingSchema]
export const migrations = callMigrations

const TAGS = ['calls']
const BASE = '/api/whatsapp/sessions/:companyId'
/** How often old calls are dropped from the record. */
const PRUNE_EVERY_MS = 60 * 60 * 1000

/** A page's cursor: the last call's offer time (ms) and its place in the record. */
function cursorOf (before: string | undefined): { at: Date, seq: string } | undefined {
  if (before === undefined) return undefined
  const match = /^(\d{1,15}):(\d{1,19})$/.exec(before)
  if (!match) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'before must be the `next` of a previous page', {
      details: [{ field: 'before', message: 'is not a page cursor' }]
    })
  }
  return { at: new Date(Number(match[1])), seq: match[2] }
}

/**
 * Calls to the company's number: each step becomes a `call` event and a row of the calls record
 * (any replica reads it); the company's settings (any replica answers) may decline ringing calls
 * and text each caller once; a ringing call can be declined through the holder.
 */
export default fp<CallsOptions>(async (app, options) => {
  const store = new CallStore(() => app.orm.em.fork())
  const desk = new CallDesk(app, store)

  app.sessionPool.onSocket((socket, { companyId }) => {
    socket.on('calls', (calls) => {
      for (const call of calls) desk.told(companyId, socket, call)
    })
  })

  // A rejection names its call in the path: a POST without a body (curl -X POST) is the empty one.
  const REJECT_URL = `${BASE}/calls/:callId/reject`
  app.addHook('preValidation', async (request) => {
    if (request.routeOptions.url === REJECT_URL && request.method === 'POST') request.body ??= {}
  })
  declareHolderCommand(app, {
    name: 'call-reject',
    request: CallRejectRequest,
    reply: CallRejectReply,
    http: {
      method: 'POST',
      url: REJECT_URL,
      params: CallParams,
      operationId: 'rejectCall',
      tags: TAGS,
      summary: 'Decline a ringing call (the caller sees it declined); a call already over is left as it is (`rejected: false`)',
      errors: [404, 503, 504]
    },
    handle: ({ companyId, request }) => desk.rejectByApi(companyId, request.callId)
  })

  const page = async (companyId: string, query: CallsQuery): Promise<CallsPage> => {
    const limit = query.limit ?? 50
    const before = cursorOf(query.before)
    await desk.settled()
    const rows = await store.page(companyId, { before, limit: limit + 1 })
    const shown = rows.slice(0, limit)
    const more = rows.length > limit
    return { success: true, companyId, calls: shown.map((row) => row.record), next: more ? shown.at(-1)!.cursor : null }
  }
  const settingsReply = async (companyId: string, em = app.orm.em.fork()): Promise<CallSettingsReply> =>
    ({ success: true, companyId, settings: await callSettingsOf(em, companyId) })
  const setSettings = async (companyId: string, settings: CallSettings): Promise<CallSettingsReply> => {
    const em = app.orm.em.fork()
    await saveCallSettings(em, companyId, settings)
    return settingsReply(companyId, em)
  }

  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get(`${BASE}/calls`, {
    config: { access: { scope: CONTROL_SCOPES['calls.list'], company: 'params' } },
    schema: {
      operationId: 'calls',
      tags: TAGS,
      summary: 'The calls the company\'s number received, most recent first: who, voice or video, how each ended, what the gateway did',
      params: CompanyParams,
      querystring: CallsQuery,
      response: { 200: CallsPage }
    }
  }, (request) => page(request.params.companyId, request.query))
  routes.get(`${BASE}/call-settings`, {
    config: { access: { scope: CONTROL_SCOPES['call-settings.get'], company: 'params' } },
    schema: {
      operationId: 'callSettings',
      tags: TAGS,
      summary: 'Whether calls are declined automatically, and the text each caller is answered with (both off unless set)',
      params: CompanyParams,
      response: { 200: CallSettingsReply }
    }
  }, (request) => settingsReply(request.params.companyId))
  routes.put(`${BASE}/call-settings`, {
    config: { access: { scope: CONTROL_SCOPES['call-settings.set'], company: 'params' } },
    schema: {
      operationId: 'setCallSettings',
      tags: TAGS,
      summary: 'Decline ringing calls automatically, and/or answer each caller with a text (once per call); calls told offline are' +
        ' only reported',
      params: CompanyParams,
      body: CallSettings,
      response: { 200: CallSettingsReply }
    }
  }, (request) => setSettings(request.params.companyId, request.body))

  const handlers = [
    app.bus.handle(app.subjects.calls('*', 'calls.list'), { request: CallsQuery, reply: CallsPage, queue: ANY_REPLICA_QUEUE },
      (query, context) => page(context.companyId, query)),
    app.bus.handle(app.subjects.calls('*', 'call-settings.get'),
      { request: EmptyRequest, reply: CallSettingsReply, queue: ANY_REPLICA_QUEUE },
      (_payload, context) => settingsReply(context.companyId)),
    app.bus.handle(app.subjects.calls('*', 'call-settings.set'),
      { request: CallSettings, reply: CallSettingsReply, queue: ANY_REPLICA_QUEUE },
      (settings, context) => setSettings(context.companyId, settings))
  ]

  const prune = () => {
    store.prune(options.callRetentionDays, options.callsKeptPerCompany)
      .then((dropped) => { if (dropped > 0) app.log.info({ dropped }, 'old calls dropped from the record') })
      .catch((err: unknown) => app.log.warn({ err }, 'old calls not dropped'))
  }
  const pruning = setInterval(prune, PRUNE_EVERY_MS)
  pruning.unref()
  app.addHook('onReady', async () => { prune() })
  app.addHook('onClose', async () => {
    clearInterval(pruning)
    await desk.settled()
    await Promise.all(handlers.map((handler) => handler.close()))
  })
}, { name: 'calls', dependencies: ['config', 'bus', 'db', 'events', 'phone', 'ownership', 'session-pool'] })
