import type { FastifyInstance, FastifyRequest, HTTPMethods } from 'fastify'
import type { TSchema } from 'typebox'
import {
  AdminWebhookParams, CompanyParams, DeliveriesReply, ReplayRequest, SuccessReply, WebhookCreate, WebhookCreated,
  WebhookParams, WebhookReply, WebhookSecretRotated, WebhookSecretRotation, WebhooksList, WebhookUpdate
} from '../../contracts/index.ts'
import type { Principal } from '../../core/access/principal.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'

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

interface Call {
  by: Principal
  companyId: string | null
  id: string
  body: never
}

/** One webhook operation, served for a company (`…/sessions/:companyId/webhooks…`) and deployment-wide (`/api/admin/webhooks…`). */
interface WebhookRoute {
  method: HTTPMethods
  /** After the webhooks' path; `/:id` names one webhook. */
  path: '' | `/:id${string}`
  operationId: string
  /** The deployment-wide operation's id. */
  adminOperationId: string
  summary: string
  body?: TSchema
  optionalBody?: boolean
  reply: TSchema
  run: (operations: Operations, call: Call) => Promise<unknown>
}

const WEBHOOK_ROUTES: WebhookRoute[] = [
  {
    method: 'POST',
    path: '',
    operationId: 'createWebhook',
    adminOperationId: 'createDeploymentWebhook',
    summary: 'Register a webhook for the company\'s events (deployment-wide: every company\'s); the secret is shown once',
    body: WebhookCreate,
    reply: WebhookCreated,
    run: (operations, { by, companyId, body }) => operations.create(by, companyId, body)
  },
  {
    method: 'GET',
    path: '',
    operationId: 'listWebhooks',
    adminOperationId: 'listDeploymentWebhooks',
    summary: 'The company\'s webhooks (deployment-wide: the webhooks for every company)',
    reply: WebhooksList,
    run: (operations, { companyId }) => operations.list(companyId)
  },
  {
    method: 'GET',
    path: '/:id',
    operationId: 'getWebhook',
    adminOperationId: 'getDeploymentWebhook',
    summary: 'One webhook, with the events it has yet to deliver',
    reply: WebhookReply,
    run: (operations, { companyId, id }) => operations.get(companyId, id)
  },
  {
    method: 'PATCH',
    path: '/:id',
    operationId: 'updateWebhook',
    adminOperationId: 'updateDeploymentWebhook',
    summary: 'Change a webhook\'s URL or events, or pause and resume it',
    body: WebhookUpdate,
    reply: WebhookReply,
    run: (operations, { by, companyId, id, body }) => operations.update(by, companyId, id, body)
  },
  {
    method: 'DELETE',
    path: '/:id',
    operationId: 'deleteWebhook',
    adminOperationId: 'deleteDeploymentWebhook',
    summary: 'Remove a webhook, its consumer and its delivery log',
    reply: SuccessReply,
    run: (operations, { companyId, id }) => operations.remove(companyId, id)
  },
  {
    method: 'GET',
    path: '/:id/deliveries',
    operationId: 'webhookDeliveries',
    adminOperationId: 'deploymentWebhookDeliveries',
    summary: 'Recent delivery attempts and dead letters',
    reply: DeliveriesReply,
    run: (operations, { companyId, id }) => operations.history(companyId, id)
  },
  {
    method: 'POST',
    path: '/:id/replay',
    operationId: 'replayWebhook',
    adminOperationId: 'replayDeploymentWebhook',
    summary: 'Deliver again every event after a stream sequence, or from a time',
    body: ReplayRequest,
    reply: WebhookReply,
    run: (operations, { companyId, id, body }) => operations.replay(companyId, id, body)
  },
  {
    method: 'POST',
    path: '/:id/rotate-secret',
    operationId: 'rotateWebhookSecret',
    adminOperationId: 'rotateDeploymentWebhookSecret',
    summary: 'A new signing secret (shown once); deliveries carry the old one\'s signature too for `overlapSeconds`',
    body: WebhookSecretRotation,
    optionalBody: true,
    reply: WebhookSecretRotated,
    run: (operations, { companyId, id, body }) => operations.rotateSecret(companyId, id, body)
  }
]

/** A company's webhooks (scope `events`) and the deployment's (scope `admin`), one set of operations. */
export function registerRoutes (app: FastifyInstance, operations: Operations): void {
  for (const route of WEBHOOK_ROUTES) {
    const one = route.path.startsWith('/:id')
    const serve = (deploymentWide: boolean) => app.route({
      method: route.method,
      url: `${deploymentWide ? '/api/admin/webhooks' : '/api/whatsapp/sessions/:companyId/webhooks'}${route.path}`,
      config: {
        access: deploymentWide ? { scope: 'admin' } : { scope: 'events', company: 'params' },
        ...(route.optionalBody ? { optionalBody: true } : {})
      },
      schema: {
        operationId: deploymentWide ? route.adminOperationId : route.operationId,
        tags: TAGS,
        summary: route.summary,
        ...(deploymentWide ? (one ? { params: AdminWebhookParams } : {}) : { params: one ? WebhookParams : CompanyParams }),
        ...(route.body ? { body: route.body } : {}),
        // A company's route answers 404 for a company its credential does not cover (documented from its access policy).
        response: { 200: route.reply, ...(one ? { 404: errorAnswer('No such webhook (`NOT_FOUND`)') } : {}) }
      },
      handler: async (request: FastifyRequest) => {
        const params = request.params as { companyId?: string, id?: string }
        return route.run(operations, {
          by: request.principal!,
          companyId: deploymentWide ? null : params.companyId!,
          id: params.id ?? '',
          body: request.body as never
        })
      }
    })
    serve(false)
    serve(true)
  }
}
