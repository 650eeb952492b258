import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  AdminWebhookParams, CompanyParams, DeliveriesReply, ErrorReply, ReplayRequest, WebhookCreate, WebhookCreated, WebhookParams,
  WebhookReply, WebhookSecretRotated, WebhookSecretRotation, WebhooksList, WebhookUpdate
} from '../../contracts/index.ts'
import type { Principal } from '../../core/access/principal.ts'

const TAGS = ['webhooks']

/** What the routes do, the same for a company's webhooks and the deployment's (companyId null). */
export interface Operations {
  create: (by: Principal, companyId: string | null, request: WebhookCreate) => Promise<unknown>
  list: (companyId: string | null) => Promise<unknown>
  get: (companyId: string | null, id: string) => Promise<unknown>
  update: (by: Principal, companyId: string | null, id: string, request: WebhookUpdate) => Promise<unknown>
  remove: (companyId: string | null, id: string) => Promise<unknown>
  history: (companyId: string | null, id: string) => Promise<unknown>
  replay: (companyId: string | null, id: string, request: ReplayRequest) => Promise<unknown>
  rotateSecret: (companyId: string | null, id: string, request: WebhookSecretRotation) => Promise<unknown>
}

/** A company's webhooks (scope `events`) and the deployment's (scope `admin`), one set of operations. */
export function registerRoutes (app: FastifyInstance, operations: Operations): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply }
  const company = { access: { scope: 'events' as const, company: 'params' as const } }
  const base = '/api/whatsapp/sessions/:companyId/webhooks'
  api.post(base, {
    config: company,
    schema: {
      tags: TAGS,
      summary: 'Register a webhook for the company\'s events; the secret is shown once',
      params: CompanyParams,
      body: WebhookCreate,
      response: { 200: WebhookCreated, ...errors }
    }
  }, async (request) => operations.create(request.principal!, request.params.companyId, request.body) as never)
  api.get(base, {
    config: company,
    schema: { tags: TAGS, summary: 'The company\'s webhooks', params: CompanyParams, response: { 200: WebhooksList, ...errors } }
  }, async (request) => operations.list(request.params.companyId) as never)
  api.get(`${base}/:id`, {
    config: company, schema: { tags: TAGS, summary: 'One webhook', params: WebhookParams, response: { 200: WebhookReply, ...errors } }
  }, async (request) => operations.get(request.params.companyId, request.params.id) as never)
  api.patch(`${base}/:id`, {
    config: company,
    schema: {
      tags: TAGS,
      summary: 'Change a webhook\'s URL or events, or pause and resume it',
      params: WebhookParams,
      body: WebhookUpdate,
      response: { 200: WebhookReply, ...errors }
    }
  }, async (request) => operations.update(request.principal!, request.params.companyId, request.params.id, request.body) as never)
  api.delete(`${base}/:id`, {
    config: company, schema: { tags: TAGS, summary: 'Remove a webhook', params: WebhookParams, response: { ...errors } }
  }, async (request) => operations.remove(request.params.companyId, request.params.id) as never)
  api.get(`${base}/:id/deliveries`, {
    config: company,
    schema: {
      tags: TAGS,
      summary: 'Recent delivery attempts and dead letters',
      params: WebhookParams,
      response: { 200: DeliveriesReply, ...errors }
    }
  }, async (request) => operations.history(request.params.companyId, request.params.id) as never)
  api.post(`${base}/:id/replay`, {
    config: company,
    schema: {
      tags: TAGS,
      summary: 'Deliver again every event after a stream sequence, or from a time',
      params: WebhookParams,
      body: ReplayRequest,
      response: { 200: WebhookReply, ...errors }
    }
  }, async (request) => operations.replay(request.params.companyId, request.params.id, request.body) as never)
  api.post(`${base}/:id/rotate-secret`, {
    config: company,
    schema: {
      tags: TAGS,
      summary: 'A new signing secret (shown once); deliveries carry the old one\'s signature too for `overlapSeconds`',
      params: WebhookParams,
      body: WebhookSecretRotation,
      response: { 200: WebhookSecretRotated, ...errors }
    },
    // Everything in the body is optional.
    preValidation: async (request) => { request.body ??= {} }
  }, async (request) => operations.rotateSecret(request.params.companyId, request.params.id, request.body) as never)

  const admin = { access: { scope: 'admin' as const } }
  api.post('/api/admin/webhooks', {
    config: admin,
    schema: {
      tags: TAGS,
      summary: 'Register a deployment-wide webhook: every company\'s events',
      body: WebhookCreate,
      response: { 200: WebhookCreated, ...errors }
    }
  }, async (request) => operations.create(request.principal!, null, request.body) as never)
  api.get('/api/admin/webhooks', {
    config: admin, schema: { tags: TAGS, summary: 'The deployment-wide webhooks', response: { 200: WebhooksList, ...errors } }
  }, async () => operations.list(null) as never)
  api.patch('/api/admin/webhooks/:id', {
    config: admin,
    schema: {
      tags: TAGS,
      summary: 'Change or pause a deployment-wide webhook',
      params: AdminWebhookParams,
      body: WebhookUpdate,
      response: { 200: WebhookReply, ...errors }
    }
  }, async (request) => operations.update(request.principal!, null, request.params.id, request.body) as never)
  api.delete('/api/admin/webhooks/:id', {
    config: admin, schema: { tags: TAGS, summary: 'Remove a deployment-wide webhook', params: AdminWebhookParams, response: { ...errors } }
  }, async (request) => operations.remove(null, request.params.id) as never)
  api.get('/api/admin/webhooks/:id/deliveries', {
    config: admin,
    schema: {
      tags: TAGS,
      summary: 'Recent delivery attempts and dead letters',
      params: AdminWebhookParams,
      response: { 200: DeliveriesReply, ...errors }
    }
  }, async (request) => operations.history(null, request.params.id) as never)
  api.post('/api/admin/webhooks/:id/replay', {
    config: admin,
    schema: {
      tags: TAGS,
      summary: 'Deliver again from a stream sequence or a time',
      params: AdminWebhookParams,
      body: ReplayRequest,
      response: { 200: WebhookReply, ...errors }
    }
  }, async (request) => operations.replay(null, request.params.id, request.body) as never)
  api.post('/api/admin/webhooks/:id/rotate-secret', {
    config: admin,
    schema: {
      tags: TAGS,
      summary: 'A new signing secret for a deployment-wide webhook, with an overlap',
      params: AdminWebhookParams,
      body: WebhookSecretRotation,
      response: { 200: WebhookSecretRotated, ...errors }
    },
    preValidation: async (request) => { request.body ??= {} }
  }, async (request) => operations.rotateSecret(null, request.params.id, request.body) as never)
}
