import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { COMPANY_SCOPES, type Scope } from '../contracts/index.ts'
import { build } from './helpers/build.ts'
import { clusterSettings, startReplica } from './helpers/cluster.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'
import { messageData, qrData } from './helpers/event-data.ts'

const ADMIN = `admin-${'x'.repeat(40)}`
const ACCESS_ON = { authMode: 'keys' as const, adminApiKey: ADMIN }
const JWT_SECRET = 'a-shared-secret-of-at-least-32-characters'

async function createKey (app: FastifyInstance, companyIds: string[], scopes: readonly Scope[], admin = ADMIN): Promise<string> {
  const response = await app.inject({
    method: 'POST', url: '/api/admin/keys', headers: { authorization: `Bearer ${admin}` }, payload: { companyIds, scopes, name: 'test' }
  })
  if (response.statusCode !== 200) throw new Error(`key not created: ${response.body}`)
  return response.json().key
}

/** A request to a route with `companyId` in the path, the query and the body, so every company source names it. */
function requestTo (route: { method: string, url: string }, companyId: string, headers: Record<string, string>) {
  const url = route.url.replace(':companyId', companyId).replace(':id', 'no-such-key')
  const withQuery = `${url}${url.includes('?') ? '&' : '?'}companyId=${companyId}`
  const body = ['GET', 'HEAD', 'DELETE'].includes(route.method) ? undefined : { companyId }
  return { method: route.method as 'GET', url: withQuery, headers, ...(body ? { payload: body } : {}) }
}

t.test('every route, as registered, refuses no credentials, a foreign company and a missing scope', async (t) => {
  const app = await build(t, { config: ACCESS_ON })
  const companyA = uniqueName('a')
  const companyB = uniqueName('b')
  const full = await createKey(app, [companyA], COMPANY_SCOPES)
  const routes = app.access.routes().filter((route) => route.access !== 'public')
  t.ok(routes.length >= 20, `${routes.length} routes with a policy`)
  for (const route of app.access.routes()) t.not(route.access, undefined, `${route.method} ${route.url} has a policy`)

  for (const route of routes) {
    const policy = route.access as { scope: Scope, company?: unknown }
    const name = `${route.method} ${route.url}`
    const anonymous = await app.inject(requestTo(route, companyA, {}))
    t.equal(anonymous.statusCode, 401, `${name}: no credentials → 401`)
    // HEAD answers carry no body.
    if (route.method !== 'HEAD') t.equal(anonymous.json().error.code, 'UNAUTHORIZED')

    if (policy.scope === 'admin') {
      const tenant = await app.inject(requestTo(route, companyA, { authorization: `Bearer ${full}` }))
      t.equal(tenant.statusCode, 403, `${name}: a company key → 403`)
      const admin = await app.inject(requestTo(route, companyA, { authorization: `Bearer ${ADMIN}` }))
      t.notOk([401, 403].includes(admin.statusCode), `${name}: the admin key passes (${admin.statusCode})`)
      continue
    }
    const lacking = await createKey(app, [companyA], COMPANY_SCOPES.filter((scope) => scope !== policy.scope))
    const withoutScope = await app.inject(requestTo(route, companyA, { 'x-api-key': lacking }))
    t.equal(withoutScope.statusCode, 403, `${name}: without "${policy.scope}" → 403`)
    if (policy.company !== undefined) {
      const foreign = await app.inject(requestTo(route, companyB, { authorization: `Bearer ${full}` }))
      t.equal(foreign.statusCode, 404, `${name}: A's key on B → 404`)
      if (route.method !== 'HEAD') t.equal(foreign.json().error.code, 'NOT_FOUND')
    }
    const own = await app.inject(requestTo(route, companyA, { authorization: `Bearer ${full}` }))
    t.notOk([401, 403].includes(own.statusCode), `${name}: A on A with the scope passes (${own.statusCode})`)
  }
})

t.test('probes are public; a route added without a policy stops start-up', async (t) => {
  const app = await build(t, { config: ACCESS_ON })
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  const fp = (await import('fastify-plugin')).default
  const careless = {
    default: fp(async (instance: FastifyInstance) => { instance.get('/open-door', async () => 'hi') }, { name: 'careless' })
  }
  await t.rejects(
    build(t, { config: ACCESS_ON, plugins: [careless] }),
    /routes without an access policy \(config.access\): GET \/open-door/
  )
})

t.test('keys: created once, listed without the key, stored as a hash, revoked', async (t) => {
  const app = await build(t, { config: ACCESS_ON })
  const companyId = uniqueName('acme')
  const created = await app.inject({
    method: 'POST',
    url: '/api/admin/keys',
    headers: { authorization: `Bearer ${ADMIN}` },
    payload: { companyIds: [companyId], scopes: ['send', 'read'], name: 'booking-bot' }
  })
  t.equal(created.statusCode, 200)
  const { id, key } = created.json()
  t.match(key, /^wak_[A-Za-z0-9_-]{43}$/, '256 random bits')
  const listed = await app.inject({ method: 'GET', url: '/api/admin/keys', headers: { authorization: `Bearer ${ADMIN}` } })
  t.notMatch(listed.body, key.slice(4), 'the list never shows a key')
  t.match(
    listed.json().keys.find((row: { id: string }) => row.id === id),
    { name: 'booking-bot', companyIds: [companyId], scopes: ['send', 'read'], revokedAt: null }
  )
  const stored = await app.orm.em.fork().getConnection().execute('select key_hash from api_keys where id = ?', [id])
  t.match(stored[0].key_hash, /^[0-9a-f]{64}$/)
  t.notMatch(JSON.stringify(stored), key)

  const status = () => app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status`, headers: { 'x-api-key': key } })
  t.equal((await status()).statusCode, 200)
  const whoami = await app.inject({ method: 'GET', url: '/api/whoami', headers: { authorization: `Bearer ${key}` } })
  t.same(whoami.json(), { success: true, principal: { id: `key:${id}`, kind: 'key', companies: [companyId], scopes: ['send', 'read'] } },
    'a key says who it acts as')
  const adminWhoami = await app.inject({ method: 'GET', url: '/api/whoami', headers: { authorization: `Bearer ${ADMIN}` } })
  t.match(adminWhoami.json(), { principal: { id: 'admin', kind: 'admin', companies: '*' } })
  const unknownWhoami = await app.inject({ method: 'GET', url: '/api/whoami', headers: { authorization: 'Bearer wak_not-a-key' } })
  t.match(unknownWhoami, { statusCode: 401 })
  t.match(unknownWhoami.json(), { success: false, error: { code: 'UNAUTHORIZED', message: 'the key is unknown or revoked' } })
  const badRequests = [
    { companyIds: [companyId], scopes: ['admin'], name: 'x' },
    { companyIds: ['a.b'], scopes: ['send'], name: 'x' },
    { companyIds: [companyId], scopes: [], name: 'x' },
    { companyIds: [companyId], scopes: ['send'], name: '' }
  ]
  for (const payload of badRequests) {
    const refused = await app.inject({ method: 'POST', url: '/api/admin/keys', headers: { authorization: `Bearer ${ADMIN}` }, payload })
    t.equal(refused.statusCode, 400, `refused: ${JSON.stringify(payload)}`)
  }
  const revoked = await app.inject({ method: 'DELETE', url: `/api/admin/keys/${id}`, headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(revoked.statusCode, 200)
  t.equal((await status()).statusCode, 401, 'refused at once on the replica that revoked it')
  const missing = await app.inject({ method: 'DELETE', url: '/api/admin/keys/nope', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(missing.statusCode, 404)
})

t.test('the admin key may be given as its sha256', async (t) => {
  const { createHash } = await import('node:crypto')
  const app = await build(t, { config: { authMode: 'keys', adminApiKey: `sha256:${createHash('sha256').update(ADMIN).digest('hex')}` } })
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/keys', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/keys', headers: { authorization: 'Bearer wrong' } })).statusCode, 401)
})

t.test('a revoked key is refused on another replica within a second, and its WebSocket is closed', async (t) => {
  const settings = await clusterSettings(t)
  const a = await startReplica(t, settings, ACCESS_ON)
  const b = await startReplica(t, settings, ACCESS_ON)
  const companyId = uniqueName('acme')
  const key = await createKey(a.app, [companyId], ['events', 'read'])
  const status = () => b.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status`, headers: { 'x-api-key': key } })
  t.equal((await status()).statusCode, 200, 'a key made on one replica works on another')

  await b.app.listen({ host: '127.0.0.1', port: 0 })
  const port = (b.app.server.address() as AddressInfo).port
  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/whatsapp/events?companyId=${companyId}`, { headers: { 'x-api-key': key } })
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })

  const keyId = (await a.app.access.keys.list()).find((row) => row.companyIds.includes(companyId))!.id
  const revokedAt = performance.now()
  const revoked = await a.app.inject({ method: 'DELETE', url: `/api/admin/keys/${keyId}`, headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(revoked.statusCode, 200)
  t.ok(await waitFor(async () => (await status()).statusCode === 401, 1_000), 'refused on the other replica within 1 s')
  t.equal(await closed, 1008, 'its WebSocket closed (policy violation)')
  t.ok(performance.now() - revokedAt < 1_000, `within ${Math.round(performance.now() - revokedAt)} ms`)
})

t.test('WebSocket: scoped to the company, tickets are single-use, QR events only with link', async (t) => {
  const app = await build(t, { config: { ...ACCESS_ON, wsAllowedOrigins: ['https://salon.example'] } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const companyA = uniqueName('a')
  const companyB = uniqueName('b')
  const linkKey = await createKey(app, [companyA], ['events', 'link'])
  const eventsOnly = await createKey(app, [companyA], ['events'])
  app.events.publish(companyA, 'qr', qrData('secret-qr'))
  app.events.publish(companyA, 'message', messageData({ text: 'hello A' }))
  app.events.publish(companyB, 'message', messageData({ text: 'hello B' }))

  type Opened = { types: string[], texts: unknown[], status?: number }
  const open = (query: string, headers: Record<string, string> = {}) => new Promise<Opened>((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/whatsapp/events?${query}`, { headers })
    const types: string[] = []
    const texts: unknown[] = []
    socket.on('message', (data) => {
      const event = JSON.parse(String(data))
      types.push(event.type)
      if (event.data?.text) texts.push(event.data.text)
    })
    socket.on('unexpected-response', (_request, response) => resolve({ types, texts, status: response.statusCode }))
    socket.on('open', () => setTimeout(() => { socket.close(); resolve({ types, texts }) }, 500))
  })

  t.equal((await open(`companyId=${companyB}&since=0`, { 'x-api-key': linkKey })).status, 404, 'A\'s key on B is refused')
  t.equal((await open(`companyId=${companyA}&since=0`)).status, 401, 'no credentials')
  const withLink = await open(`companyId=${companyA}&since=0`, { 'x-api-key': linkKey })
  t.same(withLink.texts, ['hello A'], 'a since=0 replay shows only A\'s events')
  t.ok(withLink.types.includes('qr'), 'QR events with link')
  const withoutLink = await open(`companyId=${companyA}&since=0`, { 'x-api-key': eventsOnly })
  t.ok(withoutLink.types.includes('message'))
  t.notOk(withoutLink.types.includes('qr'), 'no QR events without link')

  const issue = async (companyId: string, key = linkKey) => app.inject({
    method: 'POST', url: '/api/whatsapp/events/ticket', headers: { 'x-api-key': key }, payload: { companyId }
  })
  t.equal((await issue(companyB)).statusCode, 404, 'no ticket for a foreign company')
  const { ticket, expiresAt } = (await issue(companyA)).json()
  t.ok(Date.parse(expiresAt) - Date.now() <= 60_000)
  t.equal((await open(`companyId=${companyB}&ticket=${ticket}`)).status, 404, 'a ticket is bound to its company')
  const second = (await issue(companyA)).json().ticket
  const browser = await open(`companyId=${companyA}&since=0&ticket=${second}`, { origin: 'https://salon.example' })
  t.same(browser.texts, ['hello A'], 'a browser with a ticket')
  t.equal((await open(`companyId=${companyA}&since=0&ticket=${second}`)).status, 401, 'a ticket works once')
  const third = (await issue(companyA)).json().ticket
  t.equal((await open(`companyId=${companyA}&ticket=${third}`, { origin: 'https://evil.example' })).status, 403, 'a foreign origin is refused')
})

t.test('JWT (HS256 and JWKS): bad tokens are 401; companies and scopes come from the claims', async (t) => {
  const companyId = uniqueName('acme')
  const secretApp = await build(t, {
    config: { ...ACCESS_ON, authJwtSecret: JWT_SECRET, authJwtIssuer: 'idp', authJwtAudience: 'wa-gateway' }
  })
  const key = new TextEncoder().encode(JWT_SECRET)
  type SignOptions = { exp?: string | number, iss?: string, aud?: string, secret?: Uint8Array }
  const sign = (claims: Record<string, unknown>, options: SignOptions = {}) => {
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(options.iss ?? 'idp')
      .setAudience(options.aud ?? 'wa-gateway')
    if (options.exp !== undefined) jwt.setExpirationTime(options.exp)
    return jwt.sign(options.secret ?? key)
  }
  const status = async (token: string, company = companyId) => (await secretApp.inject({
    method: 'GET', url: `/api/whatsapp/sessions/${company}/status`, headers: { authorization: `Bearer ${token}` }
  })).statusCode
  const good = { companies: [companyId], scopes: 'read events' }
  t.equal(await status(await sign(good, { exp: '5m' })), 200)
  t.equal(await status(await sign(good, { exp: Math.floor(Date.now() / 1000) - 60 })), 401, 'expired')
  t.equal(await status(await sign(good)), 401, 'no exp')
  const otherSecret = new TextEncoder().encode('another-secret-of-at-least-32-chars!')
  t.equal(await status(await sign(good, { exp: '5m', secret: otherSecret })), 401, 'wrong signature')
  t.equal(await status(await sign(good, { exp: '5m', aud: 'other' })), 401, 'wrong audience')
  t.equal(await status(await sign(good, { exp: '5m', iss: 'other' })), 401, 'wrong issuer')
  t.equal(await status(await sign(good, { exp: '5m' }), uniqueName('other')), 404, 'a company outside the claim')
  t.equal(await status(await sign({ companies: [companyId], scopes: ['send'] }, { exp: '5m' })), 403, 'a scope outside the claim')

  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }
  const jwks = createServer((_request, response) => response
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ keys: [jwk] })))
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { jwks.close() })
  const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`
  const jwksApp = await build(t, { config: { ...ACCESS_ON, authJwtJwksUrl: jwksUrl } })
  const token = await new SignJWT({ companies: '*', scopes: ['read'] })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setExpirationTime('5m')
    .sign(privateKey)
  const viaJwks = await jwksApp.inject({
    method: 'GET',
    url: `/api/whatsapp/sessions/${companyId}/status`,
    headers: { authorization: `Bearer ${token}` }
  })
  t.equal(viaJwks.statusCode, 200, 'a token signed by a key of the JWKS')
  const admin = await jwksApp.inject({ method: 'GET', url: '/api/admin/keys', headers: { authorization: `Bearer ${token}` } })
  t.equal(admin.statusCode, 403, 'every company, but no admin scope')
})

t.test('lists show only the principal\'s companies; MAX_COMPANIES caps provisioning', async (t) => {
  const app = await build(t, { config: { ...ACCESS_ON, maxCompanies: 2 } })
  const [a, b, c] = [uniqueName('a'), uniqueName('b'), uniqueName('c')]
  const admin = { authorization: `Bearer ${ADMIN}` }
  for (const companyId of [a, b]) {
    const response = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, headers: admin })
    t.equal(response.statusCode, 200, `${companyId} initialized`)
  }
  const third = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${c}/initialize`, headers: admin })
  t.equal(third.statusCode, 409)
  t.equal(third.json().error.code, 'LIMIT_REACHED')
  const again = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${a}/initialize`, headers: admin })
  t.equal(again.statusCode, 200, 'a known company again')

  const key = await createKey(app, [a], ['read'])
  const listed = await app.inject({ method: 'GET', url: '/api/whatsapp/sessions', headers: { 'x-api-key': key } })
  t.same(listed.json().sessions.map((session: { companyId: string }) => session.companyId), [a])
  const all = await app.inject({ method: 'GET', url: '/api/whatsapp/sessions', headers: admin })
  t.same(all.json().sessions.map((session: { companyId: string }) => session.companyId).sort(), [a, b].sort())
})

t.test('/metrics needs METRICS_TOKEN, or the admin key when none is set', async (t) => {
  const withToken = await build(t, { config: { ...ACCESS_ON, metricsToken: 'prometheus-token-123' } })
  t.equal((await withToken.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
  const scraped = await withToken.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer prometheus-token-123' } })
  t.equal(scraped.statusCode, 200)
  const withoutToken = await build(t, { config: ACCESS_ON })
  t.equal((await withoutToken.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
  t.equal((await withoutToken.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 200)
})

t.test('the API limit: a key accepted before has its own budget; made-up keys count against their IP', async (t) => {
  // Five from this IP: creating the key and its first use (neither known yet), then three guesses.
  const app = await build(t, { config: { ...ACCESS_ON, apiRateLimitMax: 5 } })
  const key = await createKey(app, [uniqueName('acme')], ['read'])
  const get = (value: string) => app.inject({
    method: 'GET', url: '/api/phone/normalize?phone=89001234567', headers: { 'x-api-key': value }
  })
  t.equal((await get(key)).statusCode, 200, 'the real key, accepted')
  const guesses = []
  for (let i = 0; i < 4; i++) guesses.push((await get(`wak_guess_${i}`)).statusCode)
  t.same(guesses, [401, 401, 401, 429], 'a new made-up key each time is still limited by IP')
  t.equal((await get(key)).statusCode, 200, 'the known key is not held back by them')
})

t.test('message history and lookups need events, as docs/access.md says: read alone is refused', async (t) => {
  const app = await build(t, { config: ACCESS_ON })
  const companyId = uniqueName('a')
  const readOnly = await createKey(app, [companyId], ['read'])
  const events = await createKey(app, [companyId], ['events'])
  for (const route of ['/api/whatsapp/sessions/:companyId/messages', '/api/whatsapp/sessions/:companyId/messages/:messageId']) {
    const declared = app.access.routes().find((one) => one.method === 'GET' && one.url === route)
    t.match(declared, { access: { scope: 'events' } }, `${route}: events`)
  }
  for (const url of [`/api/whatsapp/sessions/${companyId}/messages`, `/api/whatsapp/sessions/${companyId}/messages/3EB0NOSUCH`]) {
    const refused = await app.inject({ method: 'GET', url, headers: { 'x-api-key': readOnly } })
    t.equal(refused.statusCode, 403, `${url} with read only`)
    t.match(refused.json(), { success: false, error: { code: 'FORBIDDEN' } })
  }
  const page = await app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/messages`, headers: { 'x-api-key': events } })
  t.equal(page.statusCode, 200, page.body)
  t.same(page.json().messages, [], 'events reads the (empty) history')
  const missing = await app.inject({
    method: 'GET', url: `/api/whatsapp/sessions/${companyId}/messages/3EB0NOSUCH`, headers: { 'x-api-key': events }
  })
  t.equal(missing.statusCode, 404, 'events looks a message up (none here)')
})

t.test('a ticket is worth no more than its key: refused once it is revoked, closed if the revocation lands while it opens', async (t) => {
  const app = await build(t, { config: ACCESS_ON })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const companyId = uniqueName('acme')
  const issue = async (key: string) => (await app.inject({
    method: 'POST', url: '/api/whatsapp/events/ticket', headers: { 'x-api-key': key }, payload: { companyId }
  })).json().ticket as string
  const revoke = async (key: string) => {
    const { id } = (await app.access.keys.list()).find((row) => row.revokedAt === null && row.companyIds.includes(companyId))!
    const revoked = await app.inject({ method: 'DELETE', url: `/api/admin/keys/${id}`, headers: { authorization: `Bearer ${ADMIN}` } })
    if (revoked.statusCode !== 200) throw new Error(`not revoked: ${revoked.body} (${key.length})`)
  }
  /** Opens the events WebSocket with a ticket: its HTTP refusal, or the close code it gets within 2 s (undefined: still open). */
  const open = (ticket: string) => new Promise<{ status?: number, closed?: number }>((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/whatsapp/events?companyId=${companyId}&ticket=${ticket}`)
    socket.on('unexpected-response', (_request, response) => resolve({ status: response.statusCode }))
    socket.on('close', (code) => resolve({ closed: code }))
    socket.on('open', () => setTimeout(() => { resolve({}); socket.close() }, 2_000))
  })

  // Taken before the revocation, used after it.
  const first = await createKey(app, [companyId], ['events'])
  const early = await issue(first)
  await revoke(first)
  t.same(await open(early), { status: 401 }, 'a ticket of a revoked key is refused')

  // Redeemed (the key still valid) just before the revocation reaches this replica, opened just after.
  const second = await createKey(app, [companyId], ['events'])
  const racing = await issue(second)
  const secondId = (await app.access.keys.list()).find((row) => row.revokedAt === null && row.companyIds.includes(companyId))!.id
  let broadcastArrived!: () => void
  const arrived = new Promise<void>((resolve) => { broadcastArrived = resolve })
  app.access.onRevoked((keyId) => { if (keyId === secondId) broadcastArrived() })
  const redeem = app.access.tickets.redeem.bind(app.access.tickets)
  app.access.tickets.redeem = async (ticket: string) => {
    const principal = await redeem(ticket)
    await revoke(second)
    // The revocation's broadcast, which this replica also handles, arrives before the socket opens.
    await arrived
    return principal
  }
  t.same(await open(racing), { closed: 1008 }, 'the socket opened by the ticket is closed (policy violation)')
})
