import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import {
  ANY_REPLICA_QUEUE, AutoReactionRules, AutoReactionRulesReply, CompanyParams, ErrorCode, ErrorReply, LegacyReactionRequest,
  ReactionReply, ReactionRequest
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { companyOfSubject, idempotencyHeaders, idempotencyKeyOf, validated } from '../session-pool/index.ts'
import { deliveryFields } from '../session-pool/outbound.ts'
import { isSingleEmoji } from './emoji.ts'
import { gratitudeTest } from './gratitude.ts'
import { AutoReactionRuleSchema, ruleMigrations, rulesOf, saveRules, type EffectiveRules } from './rules.ts'

export const entities = [AutoReactionRuleSchema]
export const migrations = ruleMigrations

/** Idempotency scope of automatic reactions: one per inbound message, whichever replica sees it. */
const AUTO_REACTION_KEY = 'auto-thanks'
const EmptyPayload = Type.Object({})

function checkEmoji (emoji: string, field: string, allowRemoval: boolean): void {
  if (emoji === '' && allowRemoval) return
  if (!isSingleEmoji(emoji)) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, `${field} must be exactly one emoji (e.g. ❤️, 👍🏽, 🇷🇺)${allowRemoval ? ', or "" to remove the reaction' : ''}`, {
      details: [{ field, message: 'is not exactly one emoji' }]
    })
  }
}

function rulesReply (companyId: string, rules: EffectiveRules): AutoReactionRulesReply {
  return { success: true, companyId, rules }
}

/**
 * Reactions: send one (HTTP, the old route, NATS `wa.cmd.<id>.react`), each through the holder's
 * outbound path (budgets, idempotency, deadline); and the opt-in ❤️ to inbound thanks.
 */
export default fp(async (app) => {
  const reactValidator = Compile(ReactionRequest)

  app.ownership.registerCommand('react', async (companyId, payload, context): Promise<ReactionReply> => {
    const request = validated<ReactionRequest>(reactValidator, payload)
    return react(app, companyId, request, idempotencyKeyOf(request.idempotencyKey, context.headers))
  })

  app.sessionPool.onEvent((companyId, type, data) => {
    if (type !== 'message' || typeof data.text !== 'string' || typeof data.phone !== 'string' || typeof data.messageId !== 'string') return
    autoReact(app, companyId, { text: data.text, phone: data.phone, messageId: data.messageId }).catch((err: unknown) => {
      const expected = err instanceof GatewayError
      app.log[expected ? 'info' : 'error']({ err, companyId, messageId: data.messageId }, 'no automatic reaction to thanks')
    })
  })

  const rulesGet = app.bus.handle(app.subjects.autoReactionRules('*', 'get'), { request: EmptyPayload, queue: ANY_REPLICA_QUEUE }, async (_payload, context) => {
    const companyId = companyOfSubject(context.subject)
    return rulesReply(companyId, await rulesOf(context.em, companyId))
  })
  const rulesSet = app.bus.handle(app.subjects.autoReactionRules('*', 'set'), { request: AutoReactionRules, queue: ANY_REPLICA_QUEUE }, async (rules, context) => {
    const companyId = companyOfSubject(context.subject)
    return setRules(context.em, companyId, rules)
  })
  app.addHook('onClose', async () => { await Promise.all([rulesGet.close(), rulesSet.close()]) })

  registerRoutes(app)
}, { name: 'reactions', dependencies: ['config', 'bus', 'db', 'phone', 'ownership', 'session-pool', 'rate-limit'] })

async function setRules (em: Parameters<typeof rulesOf>[0], companyId: string, rules: AutoReactionRules): Promise<AutoReactionRulesReply> {
  if (rules.emoji !== undefined) checkEmoji(rules.emoji, 'emoji', false)
  await saveRules(em, companyId, rules)
  return rulesReply(companyId, await rulesOf(em, companyId))
}

/** On the holder: one reaction through the outbound path. */
async function react (app: FastifyInstance, companyId: string, request: ReactionRequest, idempotencyKey: string | undefined): Promise<ReactionReply> {
  checkEmoji(request.emoji, 'emoji', true)
  const e164 = app.phone.normalize(request.phone)
  const jid = app.phone.toJid(e164)
  const fromMe = request.fromMe ?? false
  return app.outbound.deliver({
    companyId,
    kind: 'reaction',
    recipient: e164,
    idempotencyKey,
    deliver: (socket) => socket.react(jid, { id: request.messageId, fromMe }, request.emoji)
  }, (sent, queuedMs) => ({ ...deliveryFields(companyId, e164, sent, queuedMs), emoji: request.emoji, reactedTo: request.messageId }))
}

/** On the holder, for each inbound message: the company's emoji when it thanks, once per message. */
async function autoReact (app: FastifyInstance, companyId: string, message: { text: string, phone: string, messageId: string }): Promise<void> {
  const rules = await rulesOf(app.orm.em.fork(), companyId)
  if (!rules.enabled || !gratitudeTest(rules)(message.text)) return
  const reply = await react(app, companyId, { phone: message.phone, emoji: rules.emoji, messageId: message.messageId }, `${AUTO_REACTION_KEY}:${message.messageId}`)
  if (!reply.duplicate) app.log.info({ companyId, messageId: message.messageId, emoji: rules.emoji }, 'reacted to thanks')
}

function registerRoutes (app: FastifyInstance) {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const tags = ['reactions']
  const errors = { 400: ErrorReply, 409: ErrorReply, 429: ErrorReply, 503: ErrorReply, 504: ErrorReply }

  routes.post('/api/whatsapp/sessions/:companyId/reaction', {
    schema: {
      tags, summary: 'React to a message with one emoji ("" removes the reaction); through the holder, under the reaction budgets',
      params: CompanyParams, body: ReactionRequest, response: { 200: ReactionReply, ...errors }
    }
  }, (request) => app.ownership.requestHolder<ReactionReply>(request.params.companyId, 'react', request.body, idempotencyHeaders(request)))

  routes.post('/api/whatsapp/reaction', {
    schema: {
      tags, summary: 'The old system\'s reaction route, still served: { phone, emoji, messageId, companyId }',
      body: LegacyReactionRequest, response: { 200: ReactionReply, ...errors }
    }
  }, (request) => {
    const companyId = request.body.companyId ?? app.config.defaultCompanyId
    if (companyId === undefined) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'body/companyId is required (no DEFAULT_COMPANY_ID is configured)', { details: [{ field: 'body/companyId', message: 'is required' }] })
    }
    const { phone, emoji, messageId } = request.body
    return app.ownership.requestHolder<ReactionReply>(companyId, 'react', { phone, emoji, messageId }, idempotencyHeaders(request))
  })

  routes.get('/api/whatsapp/sessions/:companyId/auto-reactions', {
    schema: { tags, summary: 'The company\'s automatic reaction to thanks (off unless enabled)', params: CompanyParams, response: { 200: AutoReactionRulesReply, 400: ErrorReply } }
  }, async (request) => rulesReply(request.params.companyId, await rulesOf(request.em, request.params.companyId)))

  routes.put('/api/whatsapp/sessions/:companyId/auto-reactions', {
    schema: {
      tags, summary: 'Turn the automatic reaction to thanks on or off; patterns and exclusions replace the Russian and English defaults',
      params: CompanyParams, body: AutoReactionRules, response: { 200: AutoReactionRulesReply, 400: ErrorReply }
    }
  }, (request) => setRules(request.em, request.params.companyId, request.body))
}
