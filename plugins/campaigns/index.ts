import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ANY_REPLICA_QUEUE, CAMPAIGN_REPORT_PAGE, CampaignCreateRequest, CampaignRef, CampaignReply, CampaignReportReply, CampaignReportRequest,
  CampaignsReply, CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode, MAX_CAMPAIGN_CSV_BYTES, type CampaignAction,
  type CampaignState, type NumberCheckReply
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import type { CommandLease } from '../ownership/index.ts'
import type { HolderCall } from '../session-pool/index.ts'
import { csvField, placeholdersOf, prepareRecipients, recipientsFromCsv } from './recipients.ts'
import { campaignMigrations, CampaignStore, viewOf, type CampaignRow } from './store.ts'
import { CampaignRunner } from './runner.ts'
import { campaignBodyFromMultipart } from './upload.ts'
import type { CampaignsOptions } from './settings.ts'

export const migrations = campaignMigrations
export { settings, type CampaignsOptions } from './settings.ts'

/** The campaigns plugin's public face. */
export interface Campaigns {
  /** Looks for campaigns to send now instead of at the next look (tests). */
  look: () => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    campaigns: Campaigns
  }
}

const TAGS = ['campaigns']
const BASE = '/api/whatsapp/sessions/:companyId/campaigns'
const LOOK_MS = 1_000
/** A running campaign's progress is published at most this often (and on every change of state). */
const PROGRESS_EVERY_MS = 2_000
/** Receipts are looked up for companies with a campaign active or changed within this many days. */
const TRACKED_DAYS = 7
const TRACKED_REFRESH_MS = 30_000
const DEFAULT_JITTER = 0.5
const DEFAULTS = { failureRate: 0.2, notOnWhatsAppRate: 0.5, window: 50 }
/** A JSON body of 100,000 recipients with their variables. */
const CREATE_BODY_LIMIT = 4 * MAX_CAMPAIGN_CSV_BYTES
const REPORT_HEADER = 'seq,phone,status,message_id,error,sent_at,delivered_at,read_at\n'

/** Which states each action moves a campaign from, and to. */
const ACTIONS: Record<CampaignAction, { from: CampaignState[], to: CampaignState }> = {
  pause: { from: ['scheduled', 'running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  cancel: { from: ['scheduled', 'running', 'paused'], to: 'cancelled' }
}

/**
 * Campaigns: one templated message to each of up to 100,000 recipients, sent by the company's
 * holder at the campaign's pace (within the company's budget, with jitter and an optional typing
 * presence), within quiet hours; recipients not on WhatsApp are skipped; a campaign pauses itself
 * when failures or absent numbers pass its thresholds. Any replica creates, reads and controls them.
 */
export default fp<CampaignsOptions>(async (app, options) => {
  const store = new CampaignStore(() => app.orm.em)
  const lastProgress = new Map<string, number>()

  const viewReply = async (companyId: string, row: CampaignRow): Promise<CampaignReply> =>
    ({ success: true, companyId, campaign: viewOf(row, await store.counts(row.id)) })

  const publishProgress = async (row: CampaignRow, epoch: number, force: boolean) => {
    const now = Date.now()
    if (!force && now - (lastProgress.get(row.id) ?? 0) < PROGRESS_EVERY_MS) return
    lastProgress.set(row.id, now)
    if (row.status === 'finished' || row.status === 'cancelled') lastProgress.delete(row.id)
    const counts = await store.counts(row.id)
    app.events.publish(row.company_id, 'campaign_progress', {
      campaignId: row.id, name: row.name, status: row.status, pausedReason: row.paused_reason, total: row.total, counts
    }, { epoch })
  }

  const create = async (companyId: string, request: CampaignCreateRequest): Promise<CampaignReply> => {
    const { template } = request
    if (!template.text && !template.media) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a template needs a text, a file, or both', {
        details: [{ field: '/template', message: 'give text and/or media' }]
      })
    }
    if ((request.recipients === undefined) === (request.csv === undefined)) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'give the recipients either as `recipients` or as `csv`', {
        details: [{ field: '/recipients', message: 'exactly one of recipients and csv' }]
      })
    }
    if (await store.open(companyId) >= options.campaignsMaxOpen) {
      throw new GatewayError(ErrorCode.LIMIT_REACHED, `company ${companyId} has ${options.campaignsMaxOpen} campaigns not yet finished` +
        ' (CAMPAIGNS_MAX_OPEN); cancel one or wait for one to finish')
    }
    const startAt = request.startAt === undefined ? Date.now() : Date.parse(request.startAt)
    if (template.media && startAt > Date.now() + app.media.retentionMs) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a file is kept for MEDIA_RETENTION, and startAt is later than that', {
        details: [{ field: '/startAt', message: `within ${Math.floor(app.media.retentionMs / 3_600_000)} h for a campaign with a file` }]
      })
    }
    const recipients = await prepareRecipients(request.recipients ?? await recipientsFromCsv(request.csv!), placeholdersOf(template.text),
      (phone) => app.phone.normalize(phone))
    const media = template.media ? await app.media.stage(companyId, template.media) : undefined
    const budget = app.messagingLimits.messagesPerMinute
    const row = {
      id: randomUUID(),
      company_id: companyId,
      name: request.name,
      template: {
        text: template.text ?? null,
        media: media
          ? {
              kind: media.kind, objectId: media.objectId, mimetype: media.mimetype, ...(media.fileName ? { fileName: media.fileName } : {})
            }
          : null
      },
      start_at: new Date(startAt),
      // Within the company's budget: by default half of it, so customers' conversations keep the rest.
      pacing: {
        messagesPerMinute: Math.min(budget, request.pacing?.messagesPerMinute ?? Math.max(1, Math.floor(budget / 2))),
        jitter: request.pacing?.jitter ?? DEFAULT_JITTER,
        typingMs: request.pacing?.typingMs ?? 0
      },
      quiet_hours: request.quietHours ?? 'respect',
      auto_pause: { ...DEFAULTS, ...request.autoPause },
      total: recipients.length
    }
    await store.create(row, recipients)
    const created = (await store.get(companyId, row.id))!
    await publishProgress(created, 0, true)
    return viewReply(companyId, created)
  }

  /** The company's latest campaigns with their counts (one statement for all the counts). */
  const listReply = async (companyId: string): Promise<CampaignsReply> => {
    const rows = await store.list(companyId)
    const counts = await store.countsOf(rows.map((row) => row.id))
    return { success: true, companyId, campaigns: rows.map((row) => viewOf(row, counts.get(row.id)!)) }
  }

  const campaignOf = async (companyId: string, id: string): Promise<CampaignRow> => {
    const row = await store.get(companyId, id)
    if (!row) throw new GatewayError(ErrorCode.NOT_FOUND, `company ${companyId} has no campaign ${id}`)
    return row
  }
  const act = async (companyId: string, id: string, action: CampaignAction): Promise<CampaignReply> => {
    const { from, to } = ACTIONS[action]
    const changed = await store.transition(companyId, id, from, to, action === 'pause' ? 'manual' : null)
    if (!changed) {
      const row = await campaignOf(companyId, id)
      const done = action === 'cancel' ? 'cancelled' : `${action}d`
      throw new GatewayError(ErrorCode.IN_PROGRESS, `campaign ${id} is ${row.status}: it cannot be ${done}`)
    }
    if (action === 'cancel') await store.skipQueued(id)
    await publishProgress(changed, 0, true)
    if (action === 'resume') void runner.look()
    return viewReply(companyId, changed)
  }
  const reportPage = async (companyId: string, id: string, after: number, limit: number) => {
    await campaignOf(companyId, id)
    const rows = await store.report(id, after, limit)
    const time = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString())
    const lines = rows.map((row) => [
      row.seq, row.phone, row.status, row.message_id, row.error?.code ?? null, time(row.sent_at), time(row.delivered_at), time(row.read_at)
    ].map(csvField).join(',')).join('\n')
    return { lines: lines.length > 0 ? `${lines}\n` : '', last: rows.at(-1)?.seq, full: rows.length === limit }
  }

  const holderRun = <Reply>(name: string, companyId: string, lease: CommandLease, request: Record<string, unknown>,
    sent?: Pick<HolderCall<unknown>, 'messageId' | 'sentFor'>) =>
      app.holderCommands.run<Reply>(name, { companyId, request, lease, idempotencyKey: undefined, ...sent })
  const runner = new CampaignRunner({
    store,
    lookMs: LOOK_MS,
    holdsAny: () => app.holderCommands.holdsAny(),
    readyLease: (companyId) => app.holderCommands.readyLease(companyId),
    stillHeld: (companyId, epoch) => app.holderCommands.holds(companyId, epoch),
    onWhatsApp: async (companyId, lease, phones) => {
      const reply = await holderRun<NumberCheckReply>('check-numbers', companyId, lease, { phones })
      return new Map(reply.results.map((result) => [result.phone, result.exists]))
    },
    typing: async (companyId, lease, phone) => {
      await holderRun('presence', companyId, lease, { presence: 'composing', phone })
        .catch((err: unknown) => app.log.debug({ err, companyId }, 'campaign: typing presence not sent'))
    },
    send: (companyId, lease, request, recipient) => {
      // Its receipts are followed from the first send on, not from the next refresh of the list.
      tracked.add(companyId)
      return holderRun<{ messageId: string }>('send', companyId, lease, request, {
        messageId: recipient.messageId, sentFor: { campaign: { id: recipient.campaignId, seq: recipient.seq } }
      })
    },
    allowedHours: (companyId) => app.scheduler.allowedHours(companyId),
    progress: publishProgress,
    log: app.log
  })

  // Receipts of campaign messages move their recipients to delivered and read (or failed, on a refusal).
  let tracked = new Set<string>()
  const refreshTracked = async () => { tracked = new Set(await store.tracked(TRACKED_DAYS)) }
  const trackedTimer = setInterval(() => {
    refreshTracked().catch((err: unknown) => app.log.warn({ err }, 'campaigns: the companies to follow receipts of could not be read'))
  }, TRACKED_REFRESH_MS)
  trackedTimer.unref()
  app.sessionPool.onSocket((socket, { companyId }) => {
    socket.on('receipts', (receipts) => {
      if (!tracked.has(companyId)) return
      const relevant = receipts.flatMap((receipt) => ['delivered', 'read', 'error'].includes(receipt.status)
        ? [{
            messageId: receipt.id,
            status: receipt.status as 'delivered' | 'read' | 'error',
            ...(receipt.code ? { code: receipt.code } : {})
          }]
        : [])
      if (relevant.length === 0) return
      store.receipts(companyId, relevant).then((changed) => {
        for (const { campaignId, errors } of changed) if (errors > 0) runner.refused(campaignId, errors)
      }).catch((err: unknown) => app.log.warn({ err, companyId }, 'campaign receipts were not recorded'))
    })
  })

  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const IdParams = Type.Object({ companyId: CompanyParams.properties.companyId, id: Type.String({ format: 'uuid' }) })
  routes.post(BASE, {
    config: { access: { scope: CONTROL_SCOPES['campaigns.create'], company: 'params' } },
    bodyLimit: CREATE_BODY_LIMIT,
    schema: {
      operationId: 'createCampaign',
      tags: TAGS,
      summary: 'Create a campaign: a template with {{variables}} (text, and/or a file), recipients (a list, `csv`, or a CSV file' +
        ' as multipart/form-data: the fields name, text, startAt, messagesPerMinute, jitter, typingMs, quietHours, then a part' +
        ' named `file`), a start time and pacing; the company\'s holder sends it',
      params: CompanyParams,
      body: CampaignCreateRequest,
      response: {
        201: CampaignReply,
        409: errorAnswer('The company has CAMPAIGNS_MAX_OPEN campaigns not yet finished (`LIMIT_REACHED`)'),
        413: errorAnswer('The template\'s file is over MEDIA_MAX_BYTES or WhatsApp\'s limit (`MEDIA_TOO_LARGE`)'),
        415: errorAnswer('The template\'s file is not a type its kind takes (`UNSUPPORTED_MEDIA`)'),
        422: errorAnswer('The template\'s file could not be fetched or converted (`MEDIA_UNREACHABLE`, `MEDIA_CONVERSION_UNAVAILABLE`)')
      }
    },
    // After access control, before validation: a form becomes the JSON body.
    preValidation: async (request: FastifyRequest) => {
      if (request.isMultipart()) request.body = await campaignBodyFromMultipart(request)
    }
  }, async (request, reply) => reply.code(201).send(await create(request.params.companyId, request.body)))
  routes.get(BASE, {
    config: { access: { scope: CONTROL_SCOPES['campaigns.list'], company: 'params' } },
    schema: {
      operationId: 'campaigns',
      tags: TAGS,
      summary: 'The company\'s latest 100 campaigns, newest first, with their progress',
      params: CompanyParams,
      response: { 200: CampaignsReply }
    }
  }, (request) => listReply(request.params.companyId))
  routes.get(`${BASE}/:id`, {
    config: { access: { scope: CONTROL_SCOPES['campaigns.get'], company: 'params' } },
    schema: {
      operationId: 'campaign',
      tags: TAGS,
      summary: 'One campaign: its state and counts (queued, sent, delivered, read, failed, skipped)',
      params: IdParams,
      response: { 200: CampaignReply }
    }
  }, async (request) => viewReply(request.params.companyId, await campaignOf(request.params.companyId, request.params.id)))
  for (const action of Object.keys(ACTIONS) as CampaignAction[]) {
    routes.post(`${BASE}/:id/${action}`, {
      config: { access: { scope: CONTROL_SCOPES[`campaigns.${action}`], company: 'params' } },
      schema: {
        operationId: `${action}Campaign`,
        tags: TAGS,
        summary: {
          pause: 'Pause a campaign (the recipient being sent finishes); resume goes on from the next one',
          resume: 'Resume a paused campaign (also one that paused itself)',
          cancel: 'Cancel a campaign: recipients not yet sent are skipped'
        }[action],
        params: IdParams,
        response: { 200: CampaignReply, 409: errorAnswer('The campaign is in a state the action does not apply to (`IN_PROGRESS`)') }
      }
    }, (request) => act(request.params.companyId, request.params.id, action))
  }
  routes.get(`${BASE}/:id/report`, {
    config: { access: { scope: CONTROL_SCOPES['campaigns.report'], company: 'params' } },
    schema: {
      operationId: 'campaignReport',
      tags: TAGS,
      summary: 'The per-recipient report as CSV (text/csv): seq, phone, status, message id, error code, sent, delivered and read times',
      params: IdParams,
      produces: ['text/csv'],
      response: { 200: Type.String({ description: 'CSV with a header line' }) }
    }
  }, async (request, reply) => {
    const { companyId, id } = request.params
    await campaignOf(companyId, id)
    let body = REPORT_HEADER
    for (let after = -1; ;) {
      const page = await reportPage(companyId, id, after, CAMPAIGN_REPORT_PAGE)
      body += page.lines
      if (!page.full || page.last === undefined) break
      after = page.last
    }
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="campaign-${id}.csv"`).send(body)
  })

  const { subjects } = app
  const handlers = [
    app.bus.handle(subjects.campaigns('*', 'create'), { request: CampaignCreateRequest, reply: CampaignReply, queue: ANY_REPLICA_QUEUE },
      (request, context) => create(context.companyId, request)),
    app.bus.handle(subjects.campaigns('*', 'list'), { request: EmptyRequest, reply: CampaignsReply, queue: ANY_REPLICA_QUEUE },
      (_request, context) => listReply(context.companyId)),
    app.bus.handle(subjects.campaigns('*', 'get'), { request: CampaignRef, reply: CampaignReply, queue: ANY_REPLICA_QUEUE },
      async (request, context) => viewReply(context.companyId, await campaignOf(context.companyId, request.id))),
    ...(Object.keys(ACTIONS) as CampaignAction[]).map((action) =>
      app.bus.handle(subjects.campaigns('*', action), { request: CampaignRef, reply: CampaignReply, queue: ANY_REPLICA_QUEUE },
        (request, context) => act(context.companyId, request.id, action))),
    app.bus.handle(subjects.campaigns('*', 'report'),
      { request: CampaignReportRequest, reply: CampaignReportReply, queue: ANY_REPLICA_QUEUE },
      async (request, context) => {
        const page = await reportPage(context.companyId, request.id, request.after ?? -1, CAMPAIGN_REPORT_PAGE)
        return {
          success: true as const,
          companyId: context.companyId,
          campaignId: request.id,
          csv: REPORT_HEADER + page.lines,
          next: page.full && page.last !== undefined ? page.last : null
        }
      })
  ]

  app.decorate('campaigns', { look: () => runner.look() } satisfies Campaigns)
  app.addHook('onReady', async () => {
    await refreshTracked()
    runner.start()
  })
  app.addHook('preClose', async () => {
    clearInterval(trackedTimer)
    await runner.stop()
  })
  app.addHook('onClose', async () => { await Promise.all(handlers.map((handler) => handler.close())) })
}, {
  name: 'campaigns',
  dependencies: ['config', 'bus', 'db', 'events', 'phone', 'media', 'ownership', 'session-pool', 'rate-limit', 'scheduler']
})
