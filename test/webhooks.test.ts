import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/nats-core'
import { jetstream } from '@nats-io/jetstream'
import type { EventEnvelope } from '../contracts/index.ts'
import { clusterEnv, clusterSettings, startReplica } from './helpers/cluster.ts'
import { startReplicaProcess, exitOf } from './helpers/replica-process.ts'
import { uniqueName } from './helpers/services.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'
import { startSimulator } from './helpers/simulator.ts'
import { recordEvents, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'
import { publishEvent } from './helpers/publish-event.ts'

const FAST_WEBHOOKS = { webhookAllowPrivate: true, webhookTimeoutMs: 1_000, webhookRetryBaseMs: 100 }
const CONSUMER_START_MS = 10_000
/** Attempts reach the delivery log in batches (plugins/webhooks LOG_EVERY_MS), after the receiver has answered. */
const LOG_WRITTEN_MS = 5_000

interface DeliveryLog {
  deliveries: { status: number | null, attempt: number, error: string | null }[]
  deadLetters: { eventId: string, seq: number }[]
}

/** Reads a path of the gateway's API as JSON: an in-process app, or a replica process at its URL. */
type ReadJson = (path: string) => Promise<unknown>
const readApp = (app: { inject: (options: { method: 'GET', url: string }) => Promise<{ json: () => unknown }> }): ReadJson =>
  async (path) => (await app.inject({ method: 'GET', url: path })).json()

/**
 * Whether the webhook's consumer has started within CONSUMER_START_MS: its view shows a backlog once the
 * consumer exists. A new webhook's consumer starts with the events published after it exists, so an event
 * published sooner is never delivered; when that happens depends on the webhooks' sync, slower under load.
 */
async function consuming (read: ReadJson, companyId: string, webhookId: string): Promise<boolean> {
  return waitFor(async () => {
    const view = await read(`/api/whatsapp/sessions/${companyId}/webhooks/${webhookId}`) as { webhook?: { backlog?: number } }
    return view.webhook?.backlog !== undefined
  }, CONSUMER_START_MS)
}

/** Events as the gateway stores them, written straight to the stream (a backlog without WhatsApp). */
async function publishEvents (natsUrl: string, namespace: string, companyId: string, count: number): Promise<string[]> {
  const nc = await connect({ servers: natsUrl })
  const js = jetstream(nc)
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const id = `test:${companyId}:${i}:${uniqueName('e')}`
    const event: EventEnvelope = {
      id,
      type: 'message_status',
      companyId,
      timestamp: new Date().toISOString(),
      replica: 'test',
      epoch: 1,
      data: { n: i }
    }
    const headers = natsHeaders()
    headers.set('Nats-Msg-Id', id)
    await js.publish(`${namespace}.evt.${companyId}.message_status`, JSON.stringify(event), { headers })
    ids.push(id)
  }
  await nc.close()
  return ids
}

t.test('a webhook judges by epoch: a fenced holder\'s late "held by nobody" is not delivered after the new holder\'s "acquired"',
  async (t) => {
    const settings = await clusterSettings(t)
    // Two replicas take turns delivering the webhook's events: what one delivered, the other knows.
    const [first] = await Promise.all([startReplica(t, settings, FAST_WEBHOOKS), startReplica(t, settings, FAST_WEBHOOKS)])
    const companyId = uniqueName('salon')
    const receiver = await startReceiver(t)
    const created = await first.app.inject({
      method: 'POST', url: `/api/whatsapp/sessions/${companyId}/webhooks`, payload: { url: receiver.url }
    })
    const { webhook, secret } = created.json() as { webhook: { id: string }, secret: string }
    receiver.useSecret(secret)
    t.ok(await consuming(readApp(first.app), companyId, webhook.id), 'the webhook\'s consumer started')

    const events: Omit<EventEnvelope, 'timestamp' | 'replica'>[] = [
      {
        id: uniqueName('acquired'), type: 'owner_changed', companyId, epoch: 7, data: { holder: 'replica-b', epoch: 7, reason: 'acquired' }
      },
      // The fenced holder's, retried through a NATS cut: stored after the new holder's.
      { id: uniqueName('fenced'), type: 'owner_changed', companyId, epoch: 6, data: { holder: null, epoch: 6, reason: 'fenced' } },
      { id: uniqueName('closing'), type: 'disconnected', companyId, epoch: 6, data: { code: null } },
      // A message it published before it stopped is still a message.
      { id: uniqueName('message'), type: 'message', companyId, epoch: 6, data: { messageId: 'IN-OLD', text: 'привет' } },
      { id: uniqueName('unleased'), type: 'error', companyId, epoch: 0, data: { reason: 'not_from_a_holder' } },
      { id: uniqueName('connected'), type: 'connected', companyId, epoch: 7, data: { phoneNumber: null } }
    ]
    for (const event of events) await publishEvent(settings.natsUrl, settings.natsNamespace, event)
    const last = events.at(-1)!.id
    t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === last), 10_000), 'the last event delivered')
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.same(receiver.accepted.map((got) => got.id), [events[0].id, events[3].id, events[4].id, events[5].id],
      'the stale owner_changed and disconnected are not delivered; the message and the unleased event are')
    t.same(receiver.accepted.map((got) => got.epoch), [7, 6, 0, 7], 'every payload carries its epoch')
  })

t.test('every event of a sandbox flow reaches a company webhook, signed, in stream order', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const settings = await clusterSettings(t)
  const replica = await startSessionReplica(t, settings, {
    ...FAST_WEBHOOKS,
    waTransport: 'baileys',
    waWsUrl: url,
    waVersion: [2, 3000, 1023223821],
    waCertPublicKey: simulator.identity.publicKeyHex
  })
  const { app } = replica
  const companyId = uniqueName('salon')
  const receiver = await startReceiver(t)
  const created = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/webhooks`, payload: { url: receiver.url } })
  t.equal(created.statusCode, 200, created.body)
  const { webhook, secret } = created.json() as { webhook: { id: string }, secret: string }
  t.match(secret, /^whsec_/)
  receiver.useSecret(secret)
  t.ok(await consuming(readApp(app), companyId, webhook.id), 'the webhook\'s consumer started')

  const events = await recordEvents(t, settings, companyId)
  const init = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  simulator.scan(init.json().qr, '79001230201')
  t.ok(await events.waitFor('connected', 1, 15_000))
  const sent = await app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '79111230202', message: 'Привет' }
  })
  t.equal(sent.statusCode, 200)
  const inbound = await simulator.deliver({ from: '79111230202', to: '79001230201', text: 'Спасибо!' })
  t.ok(await events.waitFor('message', 1, 10_000))
  const reaction = await app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/reaction`,
    payload: { phone: '79111230202', emoji: '❤️', messageId: inbound.id }
  })
  t.equal(reaction.statusCode, 200)
  t.ok(await events.waitFor('message_sent', 2, 10_000))
  await new Promise((resolve) => setTimeout(resolve, 500))

  const published = events.events.map((event) => event.id)
  t.ok(await waitFor(() => published.every((id) => receiver.accepted.some((got) => got.id === id)), 10_000),
    `all ${published.length} events delivered (${receiver.accepted.length} accepted)`)
  t.ok(receiver.attempts.every((attempt) => attempt.verified), 'every delivery carries a valid Standard Webhooks signature')
  const seqs = receiver.accepted.map((got) => got.seq)
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'in stream order')
  const deliveriesUrl = `/api/whatsapp/sessions/${companyId}/webhooks/${webhook.id}/deliveries`
  const logged = async () => (await readApp(app)(deliveriesUrl) as DeliveryLog).deliveries
  t.ok(await waitFor(async () => (await logged()).length >= published.length, LOG_WRITTEN_MS), 'every delivery logged')
  t.match((await logged())[0], { status: 204, attempt: 1 }, 'the newest accepted at its first attempt')
})

t.test('a failing receiver: retried with backoff and Retry-After, delivered once it recovers; too old, dead-lettered and replayable',
  async (t) => {
    const settings = await clusterSettings(t)
    const replica = await startReplica(t, settings, { ...FAST_WEBHOOKS, webhookMaxAgeMs: 4_000 })
    const { app } = replica
    const companyId = uniqueName('salon')
    const receiver = await startReceiver(t)
    const created = await app.inject({
      method: 'POST',
      url: `/api/whatsapp/sessions/${companyId}/webhooks`,
      payload: { url: receiver.url }
    })
    const { webhook, secret } = created.json() as { webhook: { id: string }, secret: string }
    receiver.useSecret(secret)
    t.ok(await consuming(readApp(app), companyId, webhook.id), 'the webhook\'s consumer started')

    receiver.answer([{ status: 500 }, { status: 429, retryAfterS: 1 }, 'hang'])
    const [first] = await publishEvents(settings.natsUrl, settings.natsNamespace, companyId, 1)
    t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === first), 10_000), 'delivered once the receiver recovered')
    const tries = receiver.attempts.filter((attempt) => attempt.id === first)
    t.equal(tries.length, 4, '500, 429, a timeout, then 2xx')
    t.ok(tries[2].at - tries[1].at >= 900, `Retry-After: 1 honoured (${tries[2].at - tries[1].at} ms)`)
    const deliveriesUrl = `/api/whatsapp/sessions/${companyId}/webhooks/${webhook.id}/deliveries`
    const history = async () => await readApp(app)(deliveriesUrl) as DeliveryLog
    // The receiver counts the 2xx when it answers; the gateway logs the attempt after it has read the answer.
    t.ok(await waitFor(async () => (await history()).deliveries.length >= tries.length, LOG_WRITTEN_MS), 'every attempt logged')
    t.same((await history()).deliveries.map((attempt) => attempt.status).reverse(), [500, 429, null, 204])
    const webhookUrl = `/api/whatsapp/sessions/${companyId}/webhooks/${webhook.id}`
    const view = async () => (await readApp(app)(webhookUrl) as { webhook: { backlog?: number } }).webhook
    // Acknowledged once the 2xx is read, so the backlog may still count the event for a moment.
    t.ok(await waitFor(async () => (await view()).backlog === 0, LOG_WRITTEN_MS), 'nothing left to deliver')
    t.match(await view(), { id: webhook.id, backlog: 0, paused: false })

    // A receiver down for longer than WEBHOOK_MAX_AGE: the event goes to the dead letters; a replay delivers it.
    receiver.answer(Array.from({ length: 100 }, () => ({ status: 503 })))
    const [second] = await publishEvents(settings.natsUrl, settings.natsNamespace, companyId, 1)
    const deadLetters = async () => (await history()).deadLetters
    t.ok(await waitFor(async () => (await deadLetters()).some((letter) => letter.eventId === second), 15_000),
      'dead-lettered after WEBHOOK_MAX_AGE')
    const { seq } = (await deadLetters()).find((letter) => letter.eventId === second)!
    receiver.answer([])
    const replayed = await app.inject({
      method: 'POST',
      url: `/api/whatsapp/sessions/${companyId}/webhooks/${webhook.id}/replay`,
      payload: { since: seq - 1 }
    })
    t.equal(replayed.statusCode, 200, replayed.body)
    t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === second), 10_000), 'delivered by the replay')
  })

t.test('bad webhook input: a 4xx with the error shape, nothing stored', async (t) => {
  const settings = await clusterSettings(t)
  const replica = await startReplica(t, settings, { webhookAllowPrivate: false })
  const { app } = replica
  const companyId = uniqueName('salon')
  const url = `/api/whatsapp/sessions/${companyId}/webhooks`
  for (const [payload, field] of [
    [{ url: 'ftp://example.com/hook' }, '/url'],
    [{ url: 'http://127.0.0.1:9/hook' }, '/url'],
    [{ url: 'http://169.254.169.254/latest' }, '/url'],
    [{ url: 'https://example.com/hook', events: ['message', 'no_such_event'] }, '/events'],
    [{ url: 'https://example.com/hook', secret: 'not-a-secret' }, 'body/secret']
  ] as const) {
    const response = await app.inject({ method: 'POST', url, payload })
    t.equal(response.statusCode, 400, JSON.stringify(payload))
    t.match(response.json(), { success: false, error: { code: 'VALIDATION_ERROR', details: [{ field }] } })
  }
  t.same((await app.inject({ method: 'GET', url })).json(), { success: true, webhooks: [] }, 'nothing stored')
  const foreign = await app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${uniqueName('other')}/webhooks/wh_${'0'.repeat(32)}` })
  t.equal(foreign.statusCode, 404)
})

t.test('SIGKILL of the replica delivering a backlog: every event still arrives, redeliveries keep their id', {
  timeout: 120_000
}, async (t) => {
  const settings = await clusterSettings(t)
  const env = { ...clusterEnv(settings), WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_TIMEOUT_MS: '1000', DISABLED_PLUGINS: 'reactions,metrics' }
  const first = await startReplicaProcess({ ...env, REPLICA_ID: uniqueName('wh-a') })
  t.teardown(() => { first.kill('SIGKILL') })
  const companyId = uniqueName('salon')
  const receiver = await startReceiver(t, { delayMs: 30 })
  const created = await fetch(`${first.url}/api/whatsapp/sessions/${companyId}/webhooks`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: receiver.url })
  })
  const { webhook, secret } = await created.json() as { webhook: { id: string }, secret: string }
  receiver.useSecret(secret)
  const readFirst: ReadJson = async (path) => (await fetch(`${first.url}${path}`)).json()
  t.ok(await consuming(readFirst, companyId, webhook.id), 'the webhook\'s consumer started')
  const ids = await publishEvents(settings.natsUrl, settings.natsNamespace, companyId, 200)
  t.ok(await waitFor(() => receiver.accepted.length >= 20, 20_000), 'the first replica is delivering')
  const second = await startReplicaProcess({ ...env, REPLICA_ID: uniqueName('wh-b') })
  t.teardown(() => { second.kill('SIGKILL') })
  const exited = exitOf(first)
  first.kill('SIGKILL')
  await exited
  const deliveredBeforeKill = receiver.accepted.length
  const arrived = await waitFor(() => ids.every((id) => receiver.accepted.some((got) => got.id === id)), 60_000)
  const distinct = new Set(receiver.accepted.map((got) => got.id)).size
  t.ok(arrived, `every event arrived (${distinct} of ${ids.length}; ${deliveredBeforeKill} before the kill)`)
  const duplicates = receiver.accepted.length - new Set(receiver.accepted.map((got) => got.id)).size
  t.ok(duplicates <= 1, `${duplicates} redelivered with the same id`)
  // In order: each event after the one before it, a redelivery repeating at most the one just before.
  const seqs = receiver.accepted.map((got) => got.seq)
  t.ok(seqs.every((seq, index) => index === 0 || seq >= seqs[index - 1] || seqs.indexOf(seq) < index),
    `in stream order: ${seqs.slice(0, 5).join(',')}…`)
})

t.test('a webhook failing for WEBHOOK_DISABLE_AFTER is paused, says so in an event, and resumes on request', async (t) => {
  const settings = await clusterSettings(t)
  const replica = await startReplica(t, settings, { ...FAST_WEBHOOKS, webhookDisableAfterMs: 1_500 })
  const { app } = replica
  const companyId = uniqueName('salon')
  const receiver = await startReceiver(t)
  const created = await app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/webhooks`, payload: { url: receiver.url } })
  const { webhook, secret } = created.json() as { webhook: { id: string }, secret: string }
  receiver.useSecret(secret)
  t.ok(await consuming(readApp(app), companyId, webhook.id), 'the webhook\'s consumer started')
  const events = await recordEvents(t, settings, companyId)
  receiver.answer(Array.from({ length: 1_000 }, () => ({ status: 503 })))
  const [stuck] = await publishEvents(settings.natsUrl, settings.natsNamespace, companyId, 1)
  const webhookUrl = `/api/whatsapp/sessions/${companyId}/webhooks/${webhook.id}`
  const view = async () => ((await app.inject({ method: 'GET', url: webhookUrl })).json() as
    { webhook: { paused: boolean, pausedReason: string | null } }).webhook
  t.ok(await waitFor(async () => (await view()).paused, 10_000), 'paused')
  t.match(await view(), { pausedReason: /failing since/ })
  t.ok(await events.waitFor('webhook_paused', 1, 5_000), 'a webhook_paused event')
  const attemptsWhenPaused = receiver.attempts.length
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.equal(receiver.attempts.length, attemptsWhenPaused, 'no delivery while paused')

  receiver.answer([])
  const resumed = await app.inject({ method: 'PATCH', url: webhookUrl, payload: { paused: false } })
  t.match(resumed.json(), { webhook: { paused: false, failingSince: null } })
  t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === stuck), 10_000), 'the waiting event is delivered after the resume')
})

t.test('linking events follow link: a webhook registered or changed without link never receives qr or pairing_code', async (t) => {
  const ADMIN = `admin-${'w'.repeat(40)}`
  const settings = await clusterSettings(t)
  const { app } = await startReplica(t, settings, { ...FAST_WEBHOOKS, authMode: 'keys', adminApiKey: ADMIN })
  const companyId = uniqueName('salon')
  const keyWith = async (scopes: string[]) => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/admin/keys',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: { companyIds: [companyId], scopes, name: 'test' }
    })
    t.equal(response.statusCode, 200, response.body)
    return response.json().key as string
  }
  const eventsOnly = await keyWith(['events'])
  const linking = await keyWith(['events', 'link'])
  const url = `/api/whatsapp/sessions/${companyId}/webhooks`
  const register = async (key: string, payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url, headers: { 'x-api-key': key }, payload })

  // Asking for linking events without link is refused outright, with the one error shape, and stores nothing.
  for (const events of [['qr'], ['message', 'pairing_code']]) {
    const refused = await register(eventsOnly, { url: 'http://127.0.0.1:9/hook', events })
    t.equal(refused.statusCode, 400, `${events.join(', ')} without link`)
    t.match(refused.json(), { success: false, error: { code: 'VALIDATION_ERROR', details: [{ field: '/events' }] } })
  }
  t.same((await app.inject({ method: 'GET', url, headers: { 'x-api-key': eventsOnly } })).json(), { success: true, webhooks: [] })

  const allWithout = await startReceiver(t) // every event type, registered without link
  const allWith = await startReceiver(t) // every event type, registered with link
  const redirected = await startReceiver(t) // registered with link, then aimed elsewhere by a key without it
  const use = async (receiver: Awaited<ReturnType<typeof startReceiver>>, key: string, target = receiver.url) => {
    const created = await register(key, { url: target })
    t.equal(created.statusCode, 200, created.body)
    receiver.useSecret(created.json().secret)
    return created.json().webhook.id as string
  }
  await use(allWithout, eventsOnly)
  await use(allWith, linking)
  const moved = await use(redirected, linking, 'http://127.0.0.1:9/hook')
  const patched = await app.inject({
    method: 'PATCH', url: `${url}/${moved}`, headers: { 'x-api-key': eventsOnly }, payload: { url: redirected.url }
  })
  t.equal(patched.statusCode, 200, patched.body)
  const sneaky = await app.inject({
    method: 'PATCH', url: `${url}/${moved}`, headers: { 'x-api-key': eventsOnly }, payload: { events: ['qr'] }
  })
  t.equal(sneaky.statusCode, 400, 'nor can a key without link add them to a webhook\'s events')
  // Each webhook's consumer starts (and restarts after the change) on its own time, slower under load:
  // a warm-up message, published until every receiver has one, shows all three are delivering.
  const receivers = [allWithout, allWith, redirected]
  let warm = false
  for (let attempt = 0; attempt < 30 && !warm; attempt++) {
    const warmUp = uniqueName('warm')
    const warmUpEvent = { id: warmUp, type: 'message', companyId, epoch: 1, data: { messageId: warmUp } }
    await publishEvent(settings.natsUrl, settings.natsNamespace, warmUpEvent)
    warm = await waitFor(() => receivers.every((receiver) => receiver.accepted.some((got) => got.id === warmUp)), 1_000)
  }
  t.ok(warm, 'every webhook is delivering')
  const seenBefore = receivers.map((receiver) => receiver.accepted.length)
  const typesSince = (index: number) => receivers[index].accepted.slice(seenBefore[index]).map((got) => got.type)

  const events = [
    { id: uniqueName('qr'), type: 'qr', companyId, epoch: 1, data: { qr: 'secret-qr' } },
    { id: uniqueName('code'), type: 'pairing_code', companyId, epoch: 1, data: { code: 'ABCD-EFGH' } },
    { id: uniqueName('message'), type: 'message', companyId, epoch: 1, data: { messageId: 'IN-1', text: 'привет' } }
  ] as const
  for (const event of events) await publishEvent(settings.natsUrl, settings.natsNamespace, event)
  const last = events.at(-1)!.id
  for (const receiver of receivers) {
    t.ok(await waitFor(() => receiver.accepted.some((got) => got.id === last), 10_000), 'the message is delivered')
  }
  t.same(typesSince(1), ['qr', 'pairing_code', 'message'], 'registered with link: linking events too')
  t.same(typesSince(0), ['message'], 'registered without link: no qr, no pairing_code')
  t.same(typesSince(2), ['message'], 'changed by a key without link: no qr, no pairing_code')
})
