import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ApiKeyCreated, ApiKeyList, ApiKeyRevoked, CreateApiKeyRequest, ErrorCode, EventsTicketReply, EventsTicketRequest, WhoAmIReply, type Scope
} from '../../contracts/index.ts'
import { GatewayError } from '../errors.ts'
import { errorAnswer } from './docs.ts'
import { BoundedMap } from '../bounded-map.ts'
import { ApiKeyStore } from '../access/keys.ts'
import { jwtVerifier } from '../access/jwt.ts'
import { allPowerful, coversCompany, hasScope, type Principal } from '../access/principal.ts'
import { adminKeyDigest, hashSecret, looksLikeJwt, sameDigest } from '../access/secrets.ts'
import { TICKET_TTL_MS, Tickets } from '../access/tickets.ts'

/** Where a route's company comes from: its `:companyId`, the query's or the body's `companyId`, or a function. */
export type CompanySource = 'params' | 'query' | 'body' | ((request: FastifyRequest) => string | undefined)

/**
 * Every route's access policy, declared in its `config.access`: `public`, or the scope it needs and
 * where its company comes from. A route without one stops start-up.
 */
export type AccessPolicy = 'public' | {
  scope: Scope
  company?: CompanySource
  /** Whether a single-use `?ticket=` may stand for a key here (the events WebSocket, which browsers open). */
  tickets?: boolean
}

interface PresentedCredential {
  kind: 'bearer' | 'ticket'
  value: string
  /** SHA-256 of the value. */
  digest: string
  /** Whether this credential was accepted before on this replica: the API limit then counts it apart from its IP. */
  known: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: AccessPolicy
  }
  interface FastifyRequest {
    /** Who the request acts as (undefined on public routes). */
    principal: Principal | undefined
    /** The credential the request presents, set before anything else runs (rate limits key on its digest). */
    credential: PresentedCredential | undefined
  }
  interface FastifyInstance {
    access: AccessService
  }
}

export interface AccessService {
  keys: ApiKeyStore
  tickets: Tickets
  /** Told when a key is revoked on any replica (the events WebSocket closes that key's sockets). */
  onRevoked: (listener: (keyId: string) => void) => void
  /** Routes with their policies, as registered (the access test table is generated from it). */
  routes: () => { method: string, url: string, access: AccessPolicy | undefined }[]
}

const ADMIN_TAGS = ['admin']
const UNAUTHORIZED = 'No credential, or one that is not valid, expired or revoked (`UNAUTHORIZED`)'
const FORBIDDEN = 'The credential may not do this (`FORBIDDEN`)'
/** Distinct accepted credentials remembered for the API limit. */
const ACCEPTED_REMEMBERED = 10_000
const KeyParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

function unauthorized (message: string): GatewayError {
  return new GatewayError(ErrorCode.UNAUTHORIZED, message)
}

/** The same answer for a company that does not exist and one the caller may not see: ids cannot be probed. */
function unknownCompany (companyId: string): GatewayError {
  return new GatewayError(ErrorCode.NOT_FOUND, `no company ${companyId}`)
}

function credentialOf (request: FastifyRequest, known: (digest: string) => boolean): PresentedCredential | undefined {
  const authorization = request.headers.authorization
  const bearer = typeof authorization === 'string' && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined
  const apiKey = request.headers['x-api-key']
  const value = bearer || (typeof apiKey === 'string' ? apiKey.trim() : undefined)
  if (value) {
    const digest = hashSecret(value)
    return { kind: 'bearer', value, digest, known: known(digest) }
  }
  // A ticket sits in a URL: it opens the events WebSocket only, never an operation.
  const policy = request.routeOptions.config.access
  const ticket = (request.query as Record<string, unknown> | undefined)?.ticket
  if (typeof ticket === 'string' && ticket.length > 0 && policy !== 'public' && policy?.tickets === true) {
    return { kind: 'ticket', value: ticket, digest: hashSecret(ticket), known: false }
  }
  return undefined
}

function companyOf (request: FastifyRequest, source: CompanySource): string | undefined {
  if (typeof source === 'function') return source(request)
  const from = source === 'params' ? request.params : source === 'query' ? request.query : request.body
  const companyId = (from as Record<string, unknown> | undefined)?.companyId
  return typeof companyId === 'string' ? companyId : undefined
}

/**
 * Access control on every HTTP route and the WebSocket: API keys (the admin key, company keys in
 * PostgreSQL), JWTs from the deployment's identity provider, and single-use WebSocket tickets. A
 * route's policy is its `config.access`; the principal must have the route's scope (403) and cover
 * its company (404 otherwise, as for a company that does not exist). AUTH_MODE=off lets everything
 * through as an all-powerful local principal (refused in production).
 */
export default fp(async (app) => {
  const { config } = app
  const keys = new ApiKeyStore(() => app.orm.em.fork())
  const ticketsKv = await app.openKv(`${config.natsNamespace}_tickets`, { ttlMs: TICKET_TTL_MS, timeoutMs: config.natsRequestTimeoutMs })
  const tickets = new Tickets(ticketsKv, (keyId) => keys.isActive(keyId))
  const adminDigest = config.adminApiKey ? adminKeyDigest(config.adminApiKey) : undefined
  const verifyJwt = jwtVerifier({
    jwksUrl: config.authJwtJwksUrl, secret: config.authJwtSecret, issuer: config.authJwtIssuer, audience: config.authJwtAudience
  })
  const local = allPowerful('local', 'local')
  const revokedListeners: ((keyId: string) => void)[] = []

  async function authenticate (credential: PresentedCredential): Promise<Principal | undefined> {
    if (credential.kind === 'ticket') return tickets.redeem(credential.value)
    if (adminDigest && sameDigest(credential.digest, adminDigest)) return allPowerful('admin', 'admin')
    if (verifyJwt && looksLikeJwt(credential.value)) {
      try {
        return await verifyJwt(credential.value)
      } catch (err) {
        throw unauthorized(`the token was refused: ${(err as Error).message}`)
      }
    }
    return keys.lookup(credential.digest)
  }

  app.decorateRequest('principal', undefined)
  app.decorateRequest('credential', undefined)
  // Credentials accepted before on this replica, so the API limit can count a known caller apart from
  // its IP; a made-up key each time stays under its IP's limit.
  const accepted = new BoundedMap<string, true>(ACCEPTED_REMEMBERED)
  // First of all (before the API limit): what is presented.
  app.addHook('onRequest', async (request) => {
    // With AUTH_MODE=off nothing is checked, so every credential counts as its own caller.
    request.credential = credentialOf(request, (digest) => config.authMode === 'off' || accepted.has(digest))
  })
  // After the body is parsed (a company may come from it), before it is validated: a foreign company is 404 either way.
  app.addHook('preValidation', async (request: FastifyRequest, reply: FastifyReply) => {
    const policy = request.routeOptions.config.access
    if (policy === 'public' || reply.sent) return
    if (policy === undefined) throw new GatewayError(ErrorCode.NOT_FOUND, 'no such route')
    if (config.authMode === 'off') {
      request.principal = local
      return
    }
    const credential = request.credential
    if (!credential) throw unauthorized('credentials are required: Authorization: Bearer <key> or x-api-key: <key>')
    const principal = await authenticate(credential)
    if (!principal) {
      throw unauthorized(credential.kind === 'ticket' ? 'the ticket is unknown, used or expired' : 'the key is unknown or revoked')
    }
    request.principal = principal
    if (credential.kind === 'bearer') accepted.set(credential.digest, true)
    if (!hasScope(principal, policy.scope)) {
      throw new GatewayError(ErrorCode.FORBIDDEN, `this credential lacks the "${policy.scope}" scope`)
    }
    if (policy.company === undefined) return
    const companyId = companyOf(request, policy.company)
    if (companyId !== undefined && !coversCompany(principal, companyId)) throw unknownCompany(companyId)
  })

  // Every route must say who may call it; a forgotten policy stops start-up instead of opening a door.
  app.addHook('onReady', async () => {
    const missing = app.routeTable
      .filter((route) => route.config?.access === undefined)
      .map((route) => `${String(route.method)} ${route.url}`)
    if (missing.length > 0) throw new Error(`routes without an access policy (config.access): ${missing.join(', ')}`)
  })

  const revoked = app.bus.handle(app.subjects.keysRevoked, { request: Type.Object({ keyId: Type.String() }) }, async ({ keyId }) => {
    keys.forget()
    for (const listener of revokedListeners) listener(keyId)
  })
  app.addHook('onClose', () => revoked.close())

  app.decorate('access', {
    keys,
    tickets,
    onRevoked: (listener: (keyId: string) => void) => { revokedListeners.push(listener) },
    routes: () => app.routeTable.map((route) => ({ method: String(route.method), url: route.url, access: route.config?.access }))
  })

  // The refusals of the access policy, documented on each route from its policy (the rule that refuses documents it).
  app.documentRefusals((route) => {
    const policy = route.config?.access
    if (policy === undefined || policy === 'public') return route.config?.checksCredentials ? { 401: UNAUTHORIZED, 403: FORBIDDEN } : {}
    return {
      401: UNAUTHORIZED,
      403: `${FORBIDDEN}: this route needs the scope \`${policy.scope}\`${policy.scope === 'admin' ? ' with every company' : ''}`,
      ...(policy.company ? { 404: 'No such company for this credential: one it does not cover is answered as missing (`NOT_FOUND`)' } : {})
    }
  })

  const routesTyped = app.withTypeProvider<TypeBoxTypeProvider>()
  routesTyped.post('/api/admin/keys', {
    config: { access: { scope: 'admin' } },
    schema: {
      operationId: 'createApiKey',
      tags: ADMIN_TAGS,
      summary: 'Create a company API key; the key is in this answer only (it is stored as a hash)',
      body: CreateApiKeyRequest,
      response: { 200: ApiKeyCreated }
    }
  }, async (request) => {
    const { key, info } = await keys.create(request.body)
    return { success: true as const, ...info, key }
  })
  routesTyped.get('/api/admin/keys', {
    config: { access: { scope: 'admin' } },
    schema: {
      operationId: 'listApiKeys', tags: ADMIN_TAGS, summary: 'Every company API key (never the key itself)', response: { 200: ApiKeyList }
    }
  }, async () => ({ success: true as const, keys: await keys.list() }))
  routesTyped.delete('/api/admin/keys/:id', {
    config: { access: { scope: 'admin' } },
    schema: {
      operationId: 'revokeApiKey',
      tags: ADMIN_TAGS,
      summary: 'Revoke a key: refused on every replica within a second, its WebSockets closed',
      params: KeyParams,
      response: { 200: ApiKeyRevoked, 404: errorAnswer('No such key (`NOT_FOUND`)') }
    }
  }, async (request) => {
    if (!await keys.revoke(request.params.id)) throw new GatewayError(ErrorCode.NOT_FOUND, `no key ${request.params.id}`)
    app.bus.publish(app.subjects.keysRevoked, { keyId: request.params.id })
    return { success: true as const, id: request.params.id, revoked: true as const }
  })
  routesTyped.get('/api/whoami', {
    config: { access: { scope: 'read' } },
    schema: {
      operationId: 'whoAmI',
      tags: ['access'],
      summary: 'Who the credential acts as: its companies (`*` for all) and scopes',
      response: { 200: WhoAmIReply }
    }
  }, async (request) => {
    const { id, kind, companies, scopes } = request.principal!
    const covered = companies === '*' ? '*' as const : [...companies]
    return { success: true as const, principal: { id, kind, companies: covered, scopes: [...scopes] } }
  })
  routesTyped.post('/api/whatsapp/events/ticket', {
    config: { access: { scope: 'events', company: 'body' } },
    schema: {
      operationId: 'createEventsTicket',
      tags: ['events'],
      summary: 'A single-use ticket (60 s, one company) for the events WebSocket in a browser: `?ticket=`',
      body: EventsTicketRequest,
      response: { 200: EventsTicketReply }
    }
  }, async (request) => ({ success: true as const, ...(await tickets.issue(request.principal!, request.body.companyId)) }))
}, { name: 'access', dependencies: ['config', 'routes', 'docs', 'db', 'bus'] })
