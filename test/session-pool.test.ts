import t from 'tap'
import type { Test } from 'tap'
import { CloseCode } from '../plugins/session-pool/session.ts'
import { createGatewayClient } from '../contracts/index.ts'
import { inProcessLedger } from '../plugins/ownership/test-transport.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'
import { holderOf, recordEvents, sessionCluster, startSessionReplica } from './helpers/sessions.ts'

const SETTLE_MS = 10_000

t.test('initialize → QR → scan → connected → send reaches the contact; restart resumes without a QR', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const first = await startSessionReplica(t, settings)

  const init = await first.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.equal(init.statusCode, 200)
  const body = init.json()
  t.match(body, { success: true, companyId, status: 'qr', message: 'Please scan the QR code with WhatsApp' })
  t.match(body.qr, /^https:\/\/wa\.me\/settings\/linked_devices#[^,]+,[^,]+,[^,]+,[^,]+$/, 'QR in the linked-devices form')
  t.match(body.qrDataUrl, /^data:image\/png;base64,/)
  t.ok(body.qrTerminal.length > 100, 'terminal rendering')
  t.ok(await events.waitFor('qr'), 'qr event published')

  t.ok(first.app.testWhatsApp!.scan(companyId), 'the phone scans the QR')
  t.ok(await events.waitFor('connected'), 'connected after the 515 restart')
  const status = await first.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })
  t.match(status.json(), {
    success: true, connected: true, status: 'open', holder: first.id, health: { healthy: true, phoneNumber: /@s\.whatsapp\.net$/ }
  })
  t.equal((await first.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/health` })).statusCode, 200)

  const send = await first.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '8 (900) 123-45-67', message: 'Ждём вас завтра в 10:00' }
  })
  t.equal(send.statusCode, 200)
  t.match(send.json(), { success: true, companyId, phone: '79001234567', messageId: /^3EB0/, timestamp: String })
  t.same(first.app.testWhatsApp!.sent.get(companyId)?.map(({ to, text }) => ({ to, text })),
    [{ to: '79001234567@s.whatsapp.net', text: 'Ждём вас завтра в 10:00' }], 'the contact received exactly that text')
  t.ok(await events.waitFor('message_status'), 'delivery receipt published')

  // Inbound messages become events.
  first.app.testWhatsApp!.deliver(companyId, {
    from: '123456789012345@lid', fromAlt: '79001234567@s.whatsapp.net', text: 'Спасибо!', pushName: 'Анна'
  })
  t.ok(await events.waitFor('message'))
  t.match(events.events.find((event) => event.type === 'message')!.data, {
    phone: '79001234567',
    jid: '79001234567@s.whatsapp.net',
    lid: '123456789012345@lid',
    text: 'Спасибо!',
    messageId: String,
    timestamp: String
  })

  // A restarted replica resumes from the creds in PostgreSQL: no QR.
  const qrsBefore = events.types().filter((type) => type === 'qr').length
  await first.close()
  const second = await startSessionReplica(t, settings)
  t.ok(await events.waitFor('connected', 2, SETTLE_MS), 'connected again after the restart')
  t.equal(events.types().filter((type) => type === 'qr').length, qrsBefore, 'without a new QR')
  t.match((await second.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json(),
    { connected: true, holder: second.id })
  t.same(inProcessLedger.overlaps.filter((overlap) => overlap.companyId === companyId), [], 'zero overlaps')
})

t.test('bad input gets clear 4xx errors; sending never creates a session', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const nobody = uniqueName('nobody')
  const notHeld = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${nobody}/send`, payload: { phone: '79001234567', message: 'hi' }
  })
  t.equal(notHeld.statusCode, 503)
  t.match(notHeld.json(), { success: false, error: { code: 'NOT_CONNECTED' } })
  t.notOk(replica.app.sessionPool.get(nobody), 'no session was created')
  for (const [payload, field] of [
    // Neither `message` nor `media`: the send rule names the field.
    [{ phone: '79001234567' }, '/message'],
    [{ phone: '79001234567', message: 'x'.repeat(4097) }, 'body/message'],
    [{ phone: '', message: 'hi' }, 'body/phone'],
    [{ phone: 79001234567, message: 'hi' }, 'body/phone']
  ] as const) {
    const response = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${nobody}/send`, payload })
    t.equal(response.statusCode, 400, JSON.stringify(payload).slice(0, 60))
    t.match(response.json(), { success: false, error: { code: 'VALIDATION_ERROR', details: [{ field }] } })
  }
  for (const bad of ['a.b', '*', '%5Bobject%20Object%5D', '..%2Fx']) {
    const response = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${bad}/status` })
    t.equal(response.statusCode, 400, `companyId ${decodeURIComponent(bad)}`)
  }
  const unhealthy = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${nobody}/health` })
  t.equal(unhealthy.statusCode, 503)
  t.match(unhealthy.json(), { success: false, healthy: false, error: { code: 'NOT_CONNECTED' } })
})

async function linkedCompany (t: Test) {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('co')
  const events = await recordEvents(t, settings, companyId)
  const replica = await startSessionReplica(t, settings)
  await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  replica.app.testWhatsApp!.scan(companyId)
  t.ok(await events.waitFor('connected'), 'linked and connected')
  return { settings, companyId, events, replica }
}

t.test('close codes: 515 reconnects at once, 428 backs off and reconnects', async (t) => {
  const { companyId, events, replica } = await linkedCompany(t)
  replica.app.testWhatsApp!.drop(companyId, CloseCode.restartRequired)
  t.ok(await events.waitFor('connected', 2), '515: connected again')
  const status = async () => (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json()
  t.equal((await status()).lastError, null, 'the restart after linking (515) is no error')
  replica.app.testWhatsApp!.drop(companyId, CloseCode.connectionClosed)
  t.ok(await events.waitFor('connected', 3), '428: connected again after backoff')
  t.equal(replica.app.sessionPool.get(companyId)?.status().reconnectAttempts, 0, 'attempts reset once open')
  t.match((await status()).lastError, { reason: 'disconnected', code: CloseCode.connectionClosed, at: String },
    'the drop is its last error')
  const listed = (await replica.app.inject({ method: 'GET', url: '/api/whatsapp/sessions' })).json()
    .sessions.find((session: { companyId: string }) => session.companyId === companyId)
  t.match(listed, {
    connected: true,
    holder: replica.id,
    epoch: Number,
    phoneNumber: /@s\.whatsapp\.net$/,
    lastActivity: String,
    lastError: { reason: 'disconnected', code: CloseCode.connectionClosed }
  }, 'the list carries the holder\'s epoch, the phone, activity and the last error')
})

t.test('close code 440: no reconnect, the company goes offline and its lease is released', async (t) => {
  const { companyId, events, replica } = await linkedCompany(t)
  replica.app.testWhatsApp!.drop(companyId, CloseCode.connectionReplaced)
  t.ok(await events.waitFor('connection_replaced'))
  t.ok(await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS), 'lease released')
  t.equal(events.types().filter((type) => type === 'connected').length, 1, 'no reconnect')
  const list = (await replica.app.inject({ method: 'GET', url: '/api/whatsapp/sessions' })).json()
  t.match(list.sessions.find((session: { companyId: string }) => session.companyId === companyId), { desired: 'offline', connected: false })
})

t.test('close code 401: auth state wiped, logout event, next initialize shows a QR', async (t) => {
  const { companyId, events, replica } = await linkedCompany(t)
  replica.app.testWhatsApp!.drop(companyId, CloseCode.loggedOut)
  t.ok(await events.waitFor('logout'))
  const credsRows = async () => (await replica.app.orm.em.fork().execute(
    'select count(*)::int as n from whatsapp_auth where company_id = ?', [companyId], 'get') as { n: number }).n
  t.ok(await waitFor(async () => await credsRows() === 0, SETTLE_MS), 'creds wiped')
  await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS)
  const again = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.match(again.json(), { status: 'qr' }, 'a new QR is needed')
})

t.test('close codes 403 and 411 stop with an error event', async (t) => {
  for (const code of [CloseCode.forbidden, CloseCode.multideviceMismatch]) {
    const { companyId, events, replica } = await linkedCompany(t)
    replica.app.testWhatsApp!.drop(companyId, code)
    t.ok(await events.waitFor('error'), `${code}: error event`)
    t.ok(await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS), `${code}: stopped and released`)
    t.equal(events.types().filter((type) => type === 'connected').length, 1, `${code}: no reconnect`)
  }
})

t.test('transient closes past the attempt limit end with reconnect_failed', async (t) => {
  const { companyId, events, replica } = await linkedCompany(t)
  const whatsapp = replica.app.testWhatsApp!
  // WhatsApp stays unavailable: every reconnect is closed before it opens.
  whatsapp.refuse(companyId, CloseCode.unavailableService)
  whatsapp.drop(companyId, CloseCode.unavailableService)
  t.ok(await events.waitFor('reconnect_failed', 1, SETTLE_MS))
  t.match(events.events.find((event) => event.type === 'reconnect_failed')!.data, { attempts: 3 })
  t.equal(events.events.filter((event) => event.type === 'disconnected' && event.data.code === CloseCode.unavailableService).length, 4,
    'the drop and three failed attempts')
  whatsapp.refuse(companyId, undefined)
  t.ok(await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS), 'released')
})

t.test('a request sent to a replica that does not hold the company is served by the holder', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('co')
  const events = await recordEvents(t, settings, companyId)
  const replicas = [await startSessionReplica(t, settings), await startSessionReplica(t, settings)]
  await replicas[0].app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.ok(await waitFor(() => holderOf(replicas, companyId) !== undefined, SETTLE_MS))
  holderOf(replicas, companyId)!.testWhatsApp!.scan(companyId)
  t.ok(await events.waitFor('connected'))
  const holder = holderOf(replicas, companyId)!
  const other = replicas.find((replica) => replica.app !== holder)!
  const send = await other.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '+44 7911 123456', message: 'hello' }
  })
  t.equal(send.statusCode, 200)
  t.equal(holder.testWhatsApp!.sent.get(companyId)?.at(-1)?.to, '447911123456@s.whatsapp.net', 'sent by the holder')
  const status = (await other.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json()
  t.equal(status.holder, holder.config.replicaId)

  // Other services use the typed client from contracts/.
  const client = createGatewayClient(other.app.nats, { namespace: settings.natsNamespace })
  t.match(await client.send(companyId, { phone: '79001234567', message: 'через NATS' }),
    { success: true, companyId, phone: '79001234567', messageId: String })
  t.match(await client.status(companyId), { connected: true, holder: holder.config.replicaId })
  await t.rejects(client.send(uniqueName('nobody'), { phone: '79001234567', message: 'x' }),
    { name: 'GatewayClientError', code: 'NOT_CONNECTED' })
  await t.rejects(client.send(companyId, { phone: 'abc', message: 'x' }), { code: 'INVALID_PHONE' })

  // WebSocket on the replica that does not hold the company still sees the holder's events.
  await other.app.ready()
  const ws = await other.app.injectWS(`/api/whatsapp/events?companyId=${companyId}`)
  const seen: { type: string, data: { text?: string } }[] = []
  ws.on('message', (data: Buffer) => seen.push(JSON.parse(data.toString())))
  t.ok(await waitFor(() => seen.some((event) => event.type === 'subscribed'), SETTLE_MS))
  holder.testWhatsApp!.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'видно везде' })
  t.ok(await waitFor(() => seen.some((event) => event.type === 'message' && event.data.text === 'видно везде'), SETTLE_MS),
    'the inbound message reaches a WebSocket on the other replica')
  ws.terminate()
})

t.test('WebSocket events: live, and replayed with ?since=', async (t) => {
  const { companyId, replica } = await linkedCompany(t)
  await replica.app.ready()
  const live = await replica.app.injectWS(`/api/whatsapp/events?companyId=${companyId}`)
  const received: { type: string, seq: number, companyId: string }[] = []
  live.on('message', (data: Buffer) => received.push(JSON.parse(data.toString())))
  t.ok(await waitFor(() => received.some((event) => event.type === 'subscribed'), SETTLE_MS), 'told it is live')
  replica.app.testWhatsApp!.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'первое' })
  t.ok(await waitFor(() => received.some((event) => event.type === 'message'), SETTLE_MS), 'live message event')
  const seen = received.find((event) => event.type === 'message')!
  t.match(seen, { type: 'message', companyId, seq: Number })
  live.terminate()

  // Missed while disconnected: replayed after the last seq seen.
  replica.app.testWhatsApp!.deliver(companyId, { from: '79001234567@s.whatsapp.net', text: 'второе' })
  await new Promise((resolve) => setTimeout(resolve, 200))
  const again = await replica.app.injectWS(`/api/whatsapp/events?companyId=${companyId}&since=${seen.seq}`)
  const replayed: { type: string, data: { text: string } }[] = []
  again.on('message', (data: Buffer) => replayed.push(JSON.parse(data.toString())))
  t.ok(await waitFor(() => replayed.some((event) => event.type === 'message' && event.data.text === 'второе'), SETTLE_MS),
    'the missed message is replayed')
  t.notOk(replayed.some((event) => event.type === 'message' && event.data.text === 'первое'), 'what was seen is not')
  again.terminate()
})

t.test('a phone number in initialize asks for a pairing code instead of a QR', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('pair')
  const events = await recordEvents(t, settings, companyId)
  const replica = await startSessionReplica(t, settings)
  const response = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, payload: { phoneNumber: '8 900 123-45-67' }
  })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.match(body, { success: true, status: 'pairing_code', pairingCode: /^[A-Z0-9]{8}$/ })
  const expiresIn = Date.parse(body.expiresAt) - Date.now()
  t.ok(expiresIn > 55_000 && expiresIn <= 60_000, `the code expires after 60 s (${expiresIn} ms left)`)
  t.equal(events.types().filter((type) => type === 'qr').length, 0, 'no QR event')
  t.ok(replica.app.testWhatsApp!.scan(companyId), 'the phone enters the code')
  t.ok(await events.waitFor('connected'))
  const bad = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, payload: { phoneNumber: 'call me' }
  })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error.code, 'INVALID_PHONE')
})

t.test('QR references running out while unpaired (408) stop the session until a new initialize', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('qr')
  const events = await recordEvents(t, settings, companyId)
  const replica = await startSessionReplica(t, settings)
  Object.assign(replica.app.testWhatsApp!.options, { qrIntervalMs: 300, qrRefs: 3 })
  await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.ok(await events.waitFor('error', 1, SETTLE_MS))
  t.match(events.events.find((event) => event.type === 'error')!.data, { code: 408, reason: 'qr_expired' })
  t.equal(events.types().filter((type) => type === 'qr').length, 3, 'every reference was shown')
  t.ok(await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS), 'stopped and released')
  const again = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  t.match(again.json(), { status: 'qr' }, 'a new initialize starts over')
})

t.test('the circuit breaker opens after repeated failures and holds off reconnects', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('breaker')
  const events = await recordEvents(t, settings, companyId)
  const replica = await startSessionReplica(t, settings, { breakerThreshold: 3, reconnectMaxAttempts: 10, breakerCooldownMs: 60_000 })
  await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  replica.app.testWhatsApp!.scan(companyId)
  t.ok(await events.waitFor('connected'))
  replica.app.testWhatsApp!.refuse(companyId, CloseCode.connectionClosed)
  replica.app.testWhatsApp!.drop(companyId, CloseCode.connectionClosed)
  t.ok(await waitFor(() => events.events.some((event) => event.type === 'error' && event.data.reason === 'circuit_open'), SETTLE_MS),
    'breaker opened')
  const disconnects = events.types().filter((type) => type === 'disconnected').length
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(events.types().filter((type) => type === 'disconnected').length, disconnects, 'no attempts while it is open')
  const status = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/status` })).json()
  t.match(status, { connected: false, status: 'breaker_open' })
  t.ok(replica.app.ownership.holds(companyId), 'the lease is kept: nobody else should hammer it either')
})

t.test('an inbound message redelivered (e.g. after a failover) is stored once', async (t) => {
  const { companyId, replica } = await linkedCompany(t)
  replica.app.testWhatsApp!.deliver(companyId, { id: 'WAMSG-1', from: '79001234567@s.whatsapp.net', text: 'раз' })
  replica.app.testWhatsApp!.deliver(companyId, { id: 'WAMSG-1', from: '79001234567@s.whatsapp.net', text: 'раз' })
  replica.app.testWhatsApp!.deliver(companyId, { id: 'WAMSG-2', from: '79001234567@s.whatsapp.net', text: 'два' })
  const stored: string[] = []
  const follower = await replica.app.events.follow(replica.app.subjects.event(companyId, 'message'), 0, (event) => {
    stored.push(event.data.messageId as string)
  })
  t.teardown(() => follower.stop())
  t.ok(await waitFor(() => stored.includes('WAMSG-2'), SETTLE_MS))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(stored, ['WAMSG-1', 'WAMSG-2'], 'the duplicate was dropped by the stream')
})

t.test('NATS control subjects: any replica lists sessions and initializes', async (t) => {
  const settings = await sessionCluster(t)
  const companyId = uniqueName('ctl')
  const replica = await startSessionReplica(t, settings)
  const init = await replica.app.bus.request<{ status: string, qr: string }>(replica.app.subjects.initialize(companyId), {})
  t.match(init, { success: true, companyId, status: 'qr', qr: /^https:\/\/wa\.me\// })
  const list = await replica.app.bus.request<{ sessions: { companyId: string, desired: string, holder: string | null }[] }>(
    replica.app.subjects.sessionsList, {})
  t.match(list.sessions.find((session) => session.companyId === companyId), { desired: 'online', holder: replica.id })
  const bad = await replica.app.bus.request(replica.app.subjects.initialize(companyId), { phoneNumber: 42 }).catch((err: unknown) => err)
  t.match(bad, { code: 'VALIDATION_ERROR' })
})

t.test('DELETE logs out and wipes the auth state, whether or not a replica holds the company', async (t) => {
  const { companyId, events, replica } = await linkedCompany(t)
  const authRows = async (id: string) => (await replica.app.orm.em.fork().execute<{ n: number }>(
    'select count(*)::int as n from whatsapp_auth where company_id = ?', [id], 'get')).n
  // The creds are written as Baileys updates them, not before `connected` is told: wait for the row.
  t.ok(await waitFor(async () => await authRows(companyId) === 1, 5_000, 20), 'creds stored after linking')
  const held = await replica.app.inject({ method: 'DELETE', url: `/api/whatsapp/sessions/${companyId}` })
  t.equal(held.statusCode, 200)
  t.match(held.json(), { success: true, companyId })
  t.ok(await events.waitFor('logout'), 'logout event')
  t.ok(await waitFor(async () => await authRows(companyId) === 0, SETTLE_MS), 'auth state wiped')
  t.ok(await waitFor(() => !replica.app.ownership.holds(companyId), SETTLE_MS), 'released')

  const offline = await replica.app.inject({ method: 'DELETE', url: `/api/whatsapp/sessions/${uniqueName('offline')}` })
  t.equal(offline.statusCode, 200, 'a company nobody holds can be logged out too')
  const bad = await replica.app.inject({ method: 'GET', url: '/api/whatsapp/events?companyId=a.b' })
  t.equal(bad.statusCode, 400, 'the WebSocket refuses a bad companyId before upgrading')
  t.equal(bad.json().error.code, 'VALIDATION_ERROR')
})
