import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from '@nats-io/transport-node'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { Webhook } from 'standardwebhooks'
import { EVENT_DATA, EVENT_TYPES, subjectsFor, type EventType } from '../contracts/index.ts'
import { ASYNCAPI_PATH, asyncApiDocument, componentStemOf } from '../core/docs/asyncapi.ts'
import { asyncApiJudge } from './helpers/asyncapi-judge.ts'
import { build } from './helpers/build.ts'
import type { ClusterSettings } from './helpers/cluster.ts'
import { controlApi } from '../simulator/control.ts'
import { COMPANY_PHONE, CONTACT } from './helpers/linked-gateway.ts'
import { jpeg } from './helpers/media-files.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { startSimulator, TEST_WA_VERSION } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

type Json = Record<string, unknown>

const STEP_MS = 15_000
const ADMIN = `admin-${'x'.repeat(40)}`
const FAST_WEBHOOKS = { webhookAllowPrivate: true, webhookRetryBaseMs: 100, webhookTimeoutMs: 2_000 }

/** The event types each sandbox flow below makes the gateway publish; together, every type there is. */
const SIMULATOR_FLOW: EventType[] = [
  'qr', 'connected', 'disconnected', 'message', 'message_sent', 'message_status', 'logout', 'owner_changed',
  'group_joined', 'group_participants', 'group_update', 'group_left',
  'poll_vote',
  'blocklist_update',
  'call',
  'chat_update',
  'status',
  'history_sync',
  'message_scheduled', 'message_expired', 'message_failed',
  'campaign_progress'
]
const FAILURE_FLOW: EventType[] = [
  'pairing_code', 'error', 'reconnect_failed', 'connection_replaced', 'health_check_failed', 'webhook_paused'
]

interface NatsEvent { subject: string, headers: Record<string, string>, payload: Json }

/** Every event of the companies, as a NATS subscriber gets it: subject, headers and body. */
async function subscribeToEvents (t: Test, settings: ClusterSettings, companyIds: string[]): Promise<NatsEvent[]> {
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const received: NatsEvent[] = []
  for (const companyId of companyIds) {
    nc.subscribe(subjectsFor(settings.natsNamespace).event(companyId, '>'), {
      callback: (_err, msg) => {
        const headers = Object.fromEntries((msg.headers?.keys() ?? []).map((key) => [key, msg.headers!.get(key)]))
        received.push({ subject: msg.subject, headers, payload: msg.json<Json>() })
      }
    })
  }
  await nc.flush()
  return received
}

/** A webhook receiver keeping each delivery as it came (headers and raw body), answering `status`. */
async function startRawReceiver (t: Test, status = 204) {
  const deliveries: { headers: Record<string, string>, body: string }[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      deliveries.push({ headers: request.headers as Record<string, string>, body: Buffer.concat(chunks).toString() })
      response.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, deliveries }
}

const typesOf = (events: NatsEvent[]) => new Set(events.map((event) => event.payload.type as string))
const dataOf = (events: NatsEvent[], type: string) =>
  events.filter((event) => event.payload.type === type).map((event) => event.payload.data as Json)

t.test('the AsyncAPI document is valid AsyncAPI 3.0, built from the contracts, and is what /docs/asyncapi.json serves', async (t) => {
  const document = asyncApiDocument()
  const { document: parsed, diagnostics } = await new Parser().parse(document)
  const described = (severity: DiagnosticSeverity) => diagnostics.filter((diagnostic) => diagnostic.severity === severity)
    .map((diagnostic) => `${diagnostic.code}: ${diagnostic.message} at ${diagnostic.path.join('.')}`)
  t.same(described(DiagnosticSeverity.Error), [], 'no errors')
  // Information and hints pass: the only one is asyncapi-latest-version (3.1.0 exists; the document is 3.0 on purpose).
  t.same(described(DiagnosticSeverity.Warning), [], 'no warnings')
  t.ok(parsed, 'parsed')

  // Every event type, on each of the three ways out, as the parsed model reads the document.
  const channels = parsed!.channels().all()
  const namesOn = (address: string | null) => channels.find((channel) => channel.address() === address)?.messages().all()
    .map((message) => message.name())
  for (const type of EVENT_TYPES) {
    t.same(namesOn(`{namespace}.evt.{companyId}.${type}`), [type], `${type}: a NATS channel at its subject`)
    t.ok(namesOn('/api/whatsapp/events')?.includes(type), `${type}: on the WebSocket`)
    t.ok(namesOn(null)?.includes(type), `${type}: at webhooks`)
  }
  t.equal(namesOn('/api/whatsapp/events')?.[0], 'subscribed', 'the WebSocket\'s first message is listed first')

  // The payload schemas are the contracts' own definitions.
  const schemas = (document.components as { schemas: Record<string, Json> }).schemas
  for (const type of EVENT_TYPES) {
    const contract = JSON.parse(JSON.stringify(EVENT_DATA[type])) as Json
    t.same(schemas[`${componentStemOf(type)}Data`], contract, `${type}: data is contracts/events.ts's schema`)
  }
  t.same(new Set([...SIMULATOR_FLOW, ...FAILURE_FLOW]), new Set(EVENT_TYPES), 'the sandbox flows below publish every event type')

  // Served publicly, for the deployment's namespace.
  const namespace = uniqueName('docs')
  dropNamespaceAfter(t, TEST_NATS_URL, namespace)
  const app = await build(t, { config: { authMode: 'keys', adminApiKey: ADMIN, natsNamespace: namespace } })
  const served = await app.inject({ method: 'GET', url: ASYNCAPI_PATH })
  t.equal(served.statusCode, 200, 'no credentials needed')
  t.match(served.headers['content-type'], /^application\/json/)
  t.same(served.json(), asyncApiDocument({ namespace: app.config.natsNamespace }), 'what the module builds')
  t.match(served.json(), { components: { parameters: { namespace: { default: app.config.natsNamespace } } } })

  const hidden = await build(t, { config: { docsEnabled: false } })
  t.equal((await hidden.inject({ method: 'GET', url: ASYNCAPI_PATH })).statusCode, 404, 'not served without DOCS_ENABLED')
})

t.test('a sandbox flow\'s events (real Baileys on the simulator) are what the document says, on NATS, the WebSocket and a webhook',
  async (t) => {
    const { simulator, url } = await startSimulator(t)
    const settings = await sessionCluster(t)
    const replica = await startSessionReplica(t, settings, {
      waTransport: 'baileys', waWsUrl: url, waVersion: TEST_WA_VERSION, waCertPublicKey: simulator.identity.publicKeyHex, ...FAST_WEBHOOKS
    })
    const { app } = replica
    const companyId = uniqueName('salon')
    const api = `/api/whatsapp/sessions/${companyId}`
    const post = async (path: string, payload: Json) => {
      const response = await app.inject({ method: 'POST', url: `${api}${path}`, payload })
      if (response.statusCode !== 200) throw new Error(`${path} answered ${response.statusCode}: ${response.body}`)
      return response.json() as Json
    }
    const nats = await subscribeToEvents(t, settings, [companyId])
    const seen = (type: string, count = 1) => waitFor(() => dataOf(nats, type).length >= count, STEP_MS)

    const receiver = await startRawReceiver(t)
    const created = await post('/webhooks', { url: receiver.url })
    const webhookId = (created.webhook as { id: string }).id
    const secrets = [created.secret as string]
    t.ok(await waitFor(async () => await app.events.backlogOf(webhookId) !== undefined, STEP_MS), 'the webhook is consuming')

    await app.ready()
    const socket = await app.injectWS(`/api/whatsapp/events?companyId=${companyId}`)
    t.teardown(() => socket.terminate())
    const frames: Json[] = []
    socket.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString()) as Json))
    t.ok(await waitFor(() => frames.length > 0, STEP_MS))
    t.match(frames[0], { type: 'subscribed', companyId, seq: Number }, 'the socket\'s first message')

    // Linking a phone that has a chat (its history is imported), then messages both ways with every kind of
    // outbound message, receipts, a refusal, and a logout.
    const seeded = await controlApi(simulator).inject({
      method: 'POST',
      url: `/accounts/${COMPANY_PHONE}/history`,
      payload: {
        chats: [{
          jid: '79111230199@s.whatsapp.net',
          name: 'Ольга',
          messages: [{ fromMe: false, text: 'Добрый день', timestamp: Math.floor(Date.now() / 1000) - 3_600 }]
        }]
      }
    })
    t.equal(seeded.statusCode, 200, 'the phone has a chat')
    const { qr } = await post('/initialize', {})
    t.ok(simulator.scan(qr as string, COMPANY_PHONE), 'scanned')
    t.ok(await seen('connected'), 'connected')
    t.ok(await waitFor(() => dataOf(nats, 'history_sync').some((data) => data.done === true), STEP_MS), 'its history imported')
    const inbound = await simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Можно на 15:00?', pushName: 'Анна' })
    const photo = { kind: 'image' as const, data: await jpeg(), mimetype: 'image/jpeg' }
    await simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Вот фото', media: photo })
    t.ok(await seen('message', 2), 'two messages received')
    // From here on, deliveries are signed with both secrets (a rotation's overlap).
    secrets.push((await post(`/webhooks/${webhookId}/rotate-secret`, { overlapSeconds: 3_600 })).secret as string)
    const reply = await post('/send', { phone: CONTACT, message: 'Да, записала', quotedMessageId: inbound.id })
    await post('/send', { phone: CONTACT, media: { kind: 'image', data: (await jpeg()).toString('base64'), caption: 'Ваш мастер' } })
    await post('/send', { phone: CONTACT, location: { latitude: 55.7558, longitude: 37.6173, name: 'Салон' } })
    await post('/send', { phone: CONTACT, contact: { name: 'Мастер Анна', phones: ['+7 900 555-12-34'] } })
    await post('/reaction', { phone: CONTACT, emoji: '👍', messageId: inbound.id })
    const typo = await post('/send', { phone: CONTACT, message: 'Ждём вас в 16:00' })
    await post('/edit', { phone: CONTACT, messageId: typo.messageId, text: 'Ждём вас в 15:00' })
    await post('/delete', { phone: CONTACT, messageId: typo.messageId })
    simulator.read(CONTACT, COMPANY_PHONE, [reply.messageId as string])
    // A group: made, written to with a mention, a participant's answer, a member added, renamed, left.
    const group = (await post('/groups', { subject: 'Салон: клиенты', participants: [CONTACT] })).group as { id: string }
    await post('/send', { phone: group.id, message: `@${CONTACT} ждём вас`, mentions: [CONTACT] })
    await simulator.groups.send({ group: group.id, from: CONTACT, text: 'Спасибо!' })
    await post(`/groups/${group.id}/participants`, { action: 'add', participants: ['79111230556'] })
    const renamed = await app.inject({ method: 'PATCH', url: `${api}/groups/${group.id}`, payload: { subject: 'Салон: VIP' } })
    t.equal(renamed.statusCode, 200, renamed.body)
    t.ok(await waitFor(() => dataOf(nats, 'message').some((data) => data.groupId === group.id), STEP_MS), 'a participant wrote')
    t.equal((await app.inject({ method: 'DELETE', url: `${api}/groups/${group.id}` })).statusCode, 200)
    t.ok(await seen('group_left'), 'left the group')
    // A poll, and the contact's vote.
    const poll = await post('/polls', { phone: CONTACT, question: 'Когда удобно?', options: ['15:00', '16:00'] })
    t.ok(await waitFor(() => simulator.received(CONTACT).some((message) => message.id === poll.messageId), STEP_MS), 'the poll arrived')
    await simulator.polls.vote({ from: CONTACT, to: COMPANY_PHONE, pollMessageId: poll.messageId as string, options: ['16:00'] })
    t.ok(await seen('poll_vote'), 'a vote')
    // Blocking through the API, and the phone unblocking: both are blocklist_update events.
    await post('/blocklist', { phone: CONTACT, action: 'block' })
    simulator.profiles.block(COMPANY_PHONE, CONTACT, false)
    t.ok(await seen('blocklist_update', 2), 'block list changes')
    // A contact calls by LID, and hangs up.
    const ringing = simulator.calls.call({ from: CONTACT, to: COMPANY_PHONE, byLid: true })!
    simulator.calls.step(ringing.id, 'terminate')
    t.ok(await waitFor(() => dataOf(nats, 'call').some((data) => data.status === 'terminate'), STEP_MS), 'a call, then its end')
    // The phone archives the contact's chat: the linked device hears of it through app-state sync.
    await simulator.appState.phoneChanges(COMPANY_PHONE, `${CONTACT}@s.whatsapp.net`, { action: 'archive' })
    t.ok(await seen('chat_update'), 'the phone archived a chat')
    // A contact's status post (the company's own posts are in no chat: no event).
    await simulator.status.post({ from: CONTACT, to: [COMPANY_PHONE], text: 'Открылись!', backgroundArgb: 0xff336699, font: 1 })
    t.ok(await seen('status'), 'a contact posted a status')
    // Scheduled messages: one sent at its time, one past its expiresAt, one to the group the number left (it fails).
    const later = (ms: number) => new Date(Date.now() + ms).toISOString()
    const schedule = async (payload: Json) => {
      const response = await app.inject({ method: 'POST', url: `${api}/send`, payload })
      if (response.statusCode !== 202) throw new Error(`a scheduled send answered ${response.statusCode}: ${response.body}`)
      return response.json() as Json
    }
    const reminder = await schedule({ phone: CONTACT, message: 'Ждём вас завтра', sendAt: later(300), scheduleKey: 'booking-1' })
    await schedule({ phone: CONTACT, message: 'Устарело', sendAt: later(-10_000), expiresAt: later(-5_000) })
    await schedule({ phone: group.id, message: 'Всем привет', sendAt: later(300) })
    t.ok(await seen('message_expired'), 'a scheduled message expired')
    t.ok(await seen('message_failed'), 'one to a group the number left failed')
    t.ok(await waitFor(() => dataOf(nats, 'message_sent').some((data) => data.text === 'Ждём вас завтра'), STEP_MS),
      `the reminder ${reminder.id as string} went`)
    // A campaign of two recipients, to its end.
    const campaign = await app.inject({
      method: 'POST',
      url: `${api}/campaigns`,
      payload: {
        name: 'Акция',
        template: { text: 'Скидка для вас, {{name}}' },
        quietHours: 'ignore',
        pacing: { messagesPerMinute: 600 },
        recipients: [{ phone: CONTACT, variables: { name: 'Анна' } }, { phone: '79111230556', variables: { name: 'Олег' } }]
      }
    })
    t.equal(campaign.statusCode, 201, campaign.body)
    t.ok(await waitFor(() => dataOf(nats, 'campaign_progress').some((data) => data.status === 'finished'), STEP_MS), 'a campaign ran')
    simulator.account('79111230555').refusal = '463'
    await post('/send', { phone: '79111230555', message: 'Здравствуйте' })
    const states = () => new Set(dataOf(nats, 'message_status').map((data) => data.state))
    t.ok(await waitFor(() => states().has('read') && states().has('failed'), STEP_MS), 'read, and a refusal')
    t.ok(simulator.logout(simulator.liveDevices()[0]), 'the phone removes the device')
    t.ok(await seen('logout'), 'logged out')
    t.ok(await waitFor(() => dataOf(nats, 'owner_changed').some((data) => data.holder === null), STEP_MS), 'released')

    const ids = nats.map((event) => event.payload.id)
    const deliveredIds = () => new Set(receiver.deliveries.map((delivery) => (JSON.parse(delivery.body) as Json).id))
    t.ok(await waitFor(() => ids.every((id) => deliveredIds().has(id)), STEP_MS), 'the webhook got every event')
    t.ok(await waitFor(() => ids.every((id) => frames.some((frame) => frame.id === id)), STEP_MS), 'the WebSocket got every event')

    const judge = asyncApiJudge(asyncApiDocument(), { namespace: settings.natsNamespace })
    t.same(nats.flatMap((event) => judge.nats(event.subject, event.headers, event.payload)), [], `${nats.length} NATS messages match`)
    t.same(frames.flatMap((frame) => judge.socket(frame)), [], `${frames.length} WebSocket frames match`)
    t.same(receiver.deliveries.flatMap((delivery) => judge.webhook(delivery.headers, JSON.parse(delivery.body) as Json)), [],
      `${receiver.deliveries.length} webhook deliveries match`)

    t.same([...typesOf(nats)].filter((type) => !SIMULATOR_FLOW.includes(type as EventType)), [], 'no type beyond the flow\'s')
    t.same(SIMULATOR_FLOW.filter((type) => !typesOf(nats).has(type)), [], 'every type of the flow')
    t.same(new Set(dataOf(nats, 'message_sent').map((data) => data.kind)),
      new Set(['text', 'media', 'location', 'contact', 'reaction', 'edit', 'delete', 'poll']), 'every kind of outbound message')
    t.ok(dataOf(nats, 'message').some((data) => (data.media as Json | undefined)?.objectId), 'a received file, in the media bucket')
    const verifies = (delivery: { headers: Record<string, string>, body: string }) =>
      secrets.some((secret) => { try { new Webhook(secret).verify(delivery.body, delivery.headers); return true } catch { return false } })
    t.ok(receiver.deliveries.every(verifies), 'every delivery is signed as its headers say')
    t.ok(receiver.deliveries.some((delivery) => delivery.headers['webhook-signature'].split(' ').length === 2),
      'two signatures during the rotation\'s overlap')
  })

t.test('a failure flow\'s events (the test transport) are what the document says', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { ...FAST_WEBHOOKS, healthFailedAfterMs: 300, webhookDisableAfterMs: 1_500 })
  const { app } = replica
  const whatsapp = app.testWhatsApp!
  const companies = ['forbidden', 'exhausted', 'replaced', 'pairing', 'unscanned'].map((prefix) => uniqueName(prefix))
  const [forbidden, exhausted, replaced, pairing, unscanned] = companies
  const nats = await subscribeToEvents(t, settings, companies)

  // A webhook whose receiver always fails: paused after WEBHOOK_DISABLE_AFTER.
  const failing = await startRawReceiver(t, 503)
  const created = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${forbidden}/webhooks`, payload: { url: failing.url } })
  const webhookId = (created.json() as { webhook: { id: string } }).webhook.id
  t.ok(await waitFor(async () => await app.events.backlogOf(webhookId) !== undefined, STEP_MS), 'the webhook is consuming')

  for (const companyId of [forbidden, exhausted, replaced]) await linkCompany(replica, companyId, settings, t)
  whatsapp.drop(forbidden, 403)
  whatsapp.refuse(exhausted, 503)
  whatsapp.drop(exhausted, 503)
  whatsapp.drop(replaced, 440)
  // QR references run out quickly from here: both unlinked companies end with qr_expired.
  Object.assign(whatsapp.options, { qrIntervalMs: 300, qrRefs: 6 })
  const paired = await app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${pairing}/initialize`, payload: { phoneNumber: '79001234567' }
  })
  t.equal(paired.statusCode, 200, paired.body)
  t.equal((await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${unscanned}/initialize` })).statusCode, 200)

  const reasons = () => new Set(dataOf(nats, 'error').map((data) => data.reason))
  t.ok(await waitFor(() => FAILURE_FLOW.every((type) => typesOf(nats).has(type)) && reasons().has('forbidden') &&
    dataOf(nats, 'error').filter((data) => data.reason === 'qr_expired').length === 2, STEP_MS),
  `every type of the flow (${[...typesOf(nats)].join(', ')})`)

  const judge = asyncApiJudge(asyncApiDocument(), { namespace: settings.natsNamespace })
  t.same(nats.flatMap((event) => judge.nats(event.subject, event.headers, event.payload)), [], `${nats.length} NATS messages match`)
  t.match(dataOf(nats, 'reconnect_failed'), [{ code: 503, attempts: 3 }])
  t.match(dataOf(nats, 'webhook_paused'), [{ webhookId, url: failing.url }])
})
