import fp from 'fastify-plugin'
import apiRateLimit from '@fastify/rate-limit'
import type { FastifyContextConfig, FastifyRequest } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { BudgetReply, CompanyParams, ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { OutboundItem, WaSocket } from '../session-pool/index.ts'
import { Budgets, type Taken } from './budgets.ts'
import { Pacing } from './pacing.ts'
import { TokenBucket } from '../../core/token-bucket.ts'
import type { RateLimitOptions } from './settings.ts'

export { settings, type RateLimitOptions } from './settings.ts'

const MINUTE_MS = 60_000
/** The state of a budget refills within a minute; an hour of KV retention is ample. */
const RATE_STATE_TTL_MS = 60 * MINUTE_MS

export interface MessagingLimits {
  /** MESSAGES_PER_MINUTE: each company's message budget. */
  messagesPerMinute: number
  /** Sends waiting in each company's pacing queue (empty without pacing). */
  queueDepths: () => Map<string, number>
  /** Requests refused by the WhatsApp budgets since start, by limit. */
  refused: { messages: number, reactions: number, queue: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    messagingLimits: MessagingLimits
  }
}

/**
 * WhatsApp budgets (messages per company, reactions per recipient) as token buckets on the holder,
 * with their state in KV so a failover keeps them; optional anti-ban pacing; and, apart from those,
 * a limit on the public HTTP API per credential or IP.
 */
export default fp<RateLimitOptions>(async (app, options) => {
  const kv = await app.openKv(options.rateBucket, { ttlMs: RATE_STATE_TTL_MS, timeoutMs: app.config.natsRequestTimeoutMs })
  const budgets = new Budgets(kv, {
    messages: new TokenBucket(options.messagesPerMinute, MINUTE_MS),
    reactions: new TokenBucket(options.reactionsPerMinutePerRecipient, MINUTE_MS)
  }, app.log)
  const pacing = options.pacingEnabled
    ? new Pacing({ minIntervalMs: options.pacingMinIntervalMs, jitterMs: options.pacingJitterMs, queueMax: options.pacingQueueMax })
    : undefined
  const refused = { messages: 0, reactions: 0, queue: 0 }
  app.decorate('messagingLimits', {
    messagesPerMinute: options.messagesPerMinute, queueDepths: () => pacing?.depths() ?? new Map(), refused
  })

  const overBudget = (item: OutboundItem, taken: Exclude<Taken, { taken: true }>) => {
    refused[taken.limit]++
    const what = taken.limit === 'messages'
      ? `company ${item.companyId} may send ${options.messagesPerMinute} messages per minute`
      : `company ${item.companyId} may send ${options.reactionsPerMinutePerRecipient} reactions per minute to ${item.recipient}`
    const retryAfter = Math.max(1, Math.ceil(taken.retryAfterMs / 1000))
    return new GatewayError(ErrorCode.RATE_LIMITED, `${what}; retry in ${retryAfter} s`, { retryAfter, accepted: false })
  }

  app.outbound.use({
    admit: async (item: OutboundItem, socket: WaSocket, deadline: number) => {
      let waited = 0
      if (pacing) {
        try {
          waited += await pacing.wait(item.companyId, deadline)
        } catch (err) {
          refused.queue++
          throw err
        }
      }
      let taken = await budgets.take(item.companyId, item.epoch, item.kind, item.recipient)
      // Paced sends wait for their token when it comes before the deadline; unpaced ones are refused.
      while (!taken.taken) {
        if (!pacing || performance.now() + taken.retryAfterMs > deadline) throw overBudget(item, taken)
        await sleep(taken.retryAfterMs)
        waited += taken.retryAfterMs
        taken = await budgets.take(item.companyId, item.epoch, item.kind, item.recipient)
      }
      if (pacing && item.kind === 'text' && options.pacingTypingMs > 0 && performance.now() + options.pacingTypingMs < deadline) {
        await socket.setPresence('composing', app.phone.toJid(item.recipient))
          .catch((err: unknown) => app.log.debug({ err }, 'typing presence not sent'))
        await sleep(options.pacingTypingMs)
        waited += options.pacingTypingMs
      }
      return waited
    }
  })
  app.addHook('onClose', () => budgets.flush())

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/budget', {
    config: { access: { scope: 'read', company: 'params' } },
    schema: {
      operationId: 'budget',
      tags: ['sessions'],
      summary: 'What the company may still send now under its WhatsApp budget',
      params: CompanyParams,
      response: { 200: BudgetReply }
    }
  }, async (request) => ({
    success: true as const,
    companyId: request.params.companyId,
    messages: { left: await budgets.messagesLeft(request.params.companyId), perMinute: options.messagesPerMinute },
    reactionsPerMinutePerRecipient: options.reactionsPerMinutePerRecipient
  }))

  await app.register(apiRateLimit, {
    global: false,
    max: options.apiRateLimitMax,
    timeWindow: options.apiRateLimitWindowMs
  })
  const spent = 'The API limit (API_RATE_LIMIT_MAX per API_RATE_LIMIT_WINDOW_MS, per credential or IP) is spent (`RATE_LIMITED`)'
  app.documentRefusals((route) => exemptFromApiLimit(route.config ?? {}) ? {} : { 429: spent })
  // The limit runs before credentials are checked (so guessing keys is limited too): a credential
  // this replica accepted before has a budget of its own, anything else counts against its IP.
  const credentialOrIp = (request: FastifyRequest) =>
    (request.credential?.known ? `credential:${request.credential.digest}` : `ip:${request.ip}`)
  app.addHook('onRequest', app.rateLimit({
    keyGenerator: credentialOrIp,
    allowList: (request) => exemptFromApiLimit(request.routeOptions.config),
    errorResponseBuilder: (_request, context) => new GatewayError(ErrorCode.RATE_LIMITED,
      `API limit: ${context.max} requests per ${Math.round(context.ttl / 1000) || 1} s for this credential or IP; ` +
      `retry in ${context.after}`,
      { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) })
  }))
}, { name: 'rate-limit', dependencies: ['config', 'bus', 'phone', 'session-pool'] })

/**
 * Public probes (`config: { probe: true, access: 'public' }`) are never limited; a probe that checks
 * credentials (/metrics) is limited like any route, so guessing its token is too.
 */
function exemptFromApiLimit ({ probe, access, checksCredentials }: FastifyContextConfig): boolean {
  return probe === true && access === 'public' && checksCredentials !== true
}
