import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, AutoReactionRules, AutoReactionRulesReply, CompanyParams, CONTROL_SCOPES, EmptyRequest, ErrorCode, ErrorReply,
  LegacyReactionRequest, ReactionReply, ReactionRequest
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { declareHolderCommand, deliveryFields, idempotencyHeaders } from '../session-pool/index.ts'
import { isSingleEmoji } from './emoji.ts'
import { gratitudeTest } from './gratitude.ts'
import { AutoReactionRuleSchema, ruleMigrations, rulesOf, saveRules, type EffectiveRules } from './rules.ts'
import type { ReactionsOptions } from './settings.ts'

export { settings, type ReactionsOptions } from './settings.ts'
export const entities = [AutoReactionRuleSchema]
export const migrations = ruleMigrations

/** Idempotency scope of automatic reactions: one per inbound message, whichever replica sees it. */
const AUTO_REACTION_KEY = 'auto-thanks'
const TAGS = ['reactions']

function checkEmoji (emoji: string, field: string, allowRemoval: boolean): void {
  if (emoji === '' && allowRemoval) return
  if (!isSingleEmoji(emoji)) {
    throw new GatewayError(
      ErrorCode.VALIDATION_ERROR,
      `${field} must be exactly one emoji (e.g. ❤️, 👍🏽, 🇷🇺)${allowRemoval ? ', or "" to remove the reaction' : ''}`,
      { details: [{ field, message: 'is not exactly one emoji' }] }
    )
  }
}

function rulesReply (companyId: string, rules: EffectiveRules): AutoReactionRulesReply {
  return { success: true, companyId, rules }
}

/**
 * Reactions: send one (HTTP, the old route, NATS `<namespace>.cmd.<companyId>.react`), each through
 * the holder's outbound path (budgets, idempotency, deadline); and the opt-in ❤️ to inbound thanks.
 */
export default fp<ReactionsOptions>(async (app, options) => {
  declareHolderCommand(app, {
    name: 'react',
    request: ReactionRequest,
    reply: ReactionReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/reaction',
      operationId: 'react',
      tags: TAGS,
      summary: 'React to a message with one emoji ("" removes the reaction); through the holder, under the reaction budgets',
      errors: [409, 429, 503, 504]
    },
    handle: ({ companyId, request, lease, idempotencyKey }) => react(app, companyId, lease.epoch, request, idempotencyKey)
  })

  // Inbound messages are published by the holder, which is where a reaction can be sent from.
  app.events.onPublished((event) => {
    const { text, phone, messageId } = event.data
    if (event.type !== 'message' || typeof text !== 'string' || typeof phone !== 'string' || typeof messageId !== 'string') return
    autoReact(app, event.companyId, event.epoch ?? 0, { text, phone, messageId }).catch((err: unknown) => {
      const expected = err instanceof GatewayError
      app.log[expected ? 'info' : 'error']({ err, companyId: event.companyId, messageId }, 'no automatic reaction to thanks')
    })
  })

  const rulesGet = app.bus.handle(app.subjects.autoReactionRules('*', 'get'),
    { request: EmptyRequest, reply: AutoReactionRulesReply, queue: ANY_REPLICA_QUEUE },
    async (_payload, context) => rulesReply(context.companyId, await rulesOf(context.em, context.companyId)))
  const rulesSet = app.bus.handle(app.subjects.autoReactionRules('*', 'set'),
    { request: AutoReactionRules, reply: AutoReactionRulesReply, queue: ANY_REPLICA_QUEUE },
    async (rules, context) => setRules(context.em, context.companyId, rules))
  app.addHook('onClose', async () => { await Promise.all([rulesGet.close(), rulesSet.close()]) })

  registerRoutes(app, options.defaultCompanyId)
}, { name: 'reactions', dependencies: ['config', 'bus', 'db', 'events', 'phone', 'ownership', 'session-pool'] })

async function setRules (em: Parameters<typeof rulesOf>[0], companyId: string, rules: AutoReactionRules): Promise<AutoReactionRulesReply> {
  if (rules.emoji !== undefined) checkEmoji(rules.emoji, 'emoji', false)
  await saveRules(em, companyId, rules)
  return rulesReply(companyId, await rulesOf(em, companyId))
}

/** On the holder: one reaction through the outbound path. */
async function react (
  app: FastifyInstance,
  companyId: string,
  epoch: number,
  request: ReactionRequest,
  idempotencyKey: string | undefined
): Promise<ReactionReply> {
  checkEmoji(request.emoji, 'emoji', true)
  const e164 = app.phone.normalize(request.phone)
  const jid = app.phone.toJid(e164)
  const fromMe = request.fromMe ?? false
  return app.outbound.send({
    companyId,
    epoch,
    kind: 'reaction',
    recipient: e164,
    idempotencyKey,
    write: (socket) => socket.react(jid, { id: request.messageId, fromMe }, request.emoji)
  }, (sent, queuedMs) => ({ ...deliveryFields(companyId, e164, sent, queuedMs), emoji: request.emoji, reactedTo: request.messageId }))
}

/** On the holder, for each inbound message: the company's emoji when it thanks, once per message. */
async function autoReact (
  app: FastifyInstance,
  companyId: string,
  epoch: number,
  message: { text: string, phone: string, messageId: string }
): Promise<void> {
  const rules = await rulesOf(app.orm.em.fork(), companyId)
  if (!rules.enabled || !gratitudeTest(rules)(message.text)) return
  const reply = await react(app, companyId, epoch, {
    phone: message.phone,
    emoji: rules.emoji,
    messageId: message.messageId
  }, `${AUTO_REACTION_KEY}:${message.messageId}`)
  if (!reply.duplicate) app.log.info({ companyId, messageId: message.messageId, emoji: rules.emoji }, 'reacted to thanks')
}

function registerRoutes (app: FastifyInstance, defaultCompanyId: string | undefined) {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const errors = { 400: ErrorReply, 409: ErrorReply, 429: ErrorReply, 503: ErrorReply, 504: ErrorReply }

  routes.post('/api/whatsapp/reaction', {
    // The body names the company, or DEFAULT_COMPANY_ID does: checked like any other company.
    config: {
      access: { scope: 'send', company: (request) => (request.body as { companyId?: string } | undefined)?.companyId ?? defaultCompanyId }
    },
    schema: {
      operationId: 'reactLegacy',
      tags: TAGS,
      summary: 'The old system\'s reaction route, still served: { phone, emoji, messageId, companyId }',
      body: LegacyReactionRequest,
      response: { 200: ReactionReply, ...errors }
    }
  }, (request) => {
    const companyId = request.body.companyId ?? defaultCompanyId
    if (companyId === undefined) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'body/companyId is required (no DEFAULT_COMPANY_ID is configured)', {
        details: [{ field: 'body/companyId', message: 'is required' }]
      })
    }
    const { phone, emoji, messageId } = request.body
    return app.ownership.requestHolder<ReactionReply>(companyId, 'react', { phone, emoji, messageId }, idempotencyHeaders(request))
  })

  routes.get('/api/whatsapp/sessions/:companyId/auto-reactions', {
    config: { access: { scope: CONTROL_SCOPES['auto-reactions.get'], company: 'params' } },
    schema: {
      operationId: 'autoReactionRules',
      tags: TAGS,
      summary: 'The company\'s automatic reaction to thanks (off unless enabled)',
      params: CompanyParams,
      response: { 200: AutoReactionRulesReply }
    }
  }, async (request) => rulesReply(request.params.companyId, await rulesOf(request.em, request.params.companyId)))

  routes.put('/api/whatsapp/sessions/:companyId/auto-reactions', {
    config: { access: { scope: CONTROL_SCOPES['auto-reactions.set'], company: 'params' } },
    schema: {
      operationId: 'setAutoReactionRules',
      tags: TAGS,
      summary: 'Turn the automatic reaction to thanks on or off; patterns and exclusions replace the Russian and English defaults',
      params: CompanyParams,
      body: AutoReactionRules,
      response: { 200: AutoReactionRulesReply }
    }
  }, (request) => setRules(request.em, request.params.companyId, request.body))
}
