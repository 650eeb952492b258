import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type CallRecord, type EventEnvelope } from '../contracts/index.ts'
import { lidOf } from '../simulator/accounts.ts'
import { linkedGateway } from './helpers/linked-gateway.ts'
import { startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const GLEB = '79110000004'
const STEP_MS = 10_000
const REPLY = 'Мы не принимаем звонки: напишите нам здесь, и мы ответим.'

const lid = (phone: string) => `${lidOf(phone)}@lid`

/**
 * Calls end to end: simulated contacts call the company's number (real Baileys on the simulator),
 * the gateway reports each step as a `call` event over NATS, records it, declines ringing calls as
 * the company's settings say (and texts the caller once), and declines one through the API.
 */
t.test('calls reported, declined by the API and automatically with a text; settings and the record', async (t) => {
  const { simulator, replica, companyId, events, settings } = await linkedGateway(t)
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never,
    url: `/api/whatsapp/sessions/${companyId}${url}`,
    ...(payload !== undefined ? { payload: payload as never } : {})
  })
  const calls = () => events.events.filter((event) => event.type === 'call') as EventEnvelope[]
  const step = (callId: string, status: string, extra: (data: Record<string, unknown>) => boolean = () => true) =>
    waitFor(() => calls().some((event) => event.data.callId === callId && event.data.status === status && extra(event.data)), STEP_MS)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })

  t.same((await api('GET', '/call-settings')).json(), { success: true, companyId, settings: { rejectCalls: false, replyText: null } },
    'off unless set')

  // A call with nothing set: reported as it rings and as it ends, and left ringing.
  const first = simulator.calls.call({ from: ANNA, to: '79001230101' })!
  t.ok(await step(first.id, 'offer'), 'the offer is a call event')
  t.match(calls().find((event) => event.data.callId === first.id)!.data, {
    from: `${ANNA}@s.whatsapp.net`, phone: ANNA, lid: null, video: false, groupId: null, offline: false, timestamp: String
  })
  simulator.calls.step(first.id, 'terminate')
  t.ok(await step(first.id, 'terminate'), 'and its end')
  t.equal(simulator.calls.get(first.id)!.state, 'terminated', 'nobody declined it')

  // Declined through the API (by its id alone): the caller's phone sees the linked device decline it.
  const video = simulator.calls.call({ from: BORIS, to: '79001230101', video: true })!
  t.ok(await step(video.id, 'offer'))
  const rejected = await api('POST', `/calls/${video.id}/reject`)
  t.same(rejected.json(), { success: true, companyId, callId: video.id, rejected: true, status: 'reject' }, rejected.body)
  t.match(simulator.calls.get(video.id), { state: 'rejected', rejectedBy: /^79001230101:\d+$/ }, 'WhatsApp took the rejection')
  t.ok(await step(video.id, 'reject', (data) => data.rejectedBy === 'api' && data.video === true), 'a reject event, by the API')
  t.match((await client.rejectCall(companyId, video.id)), { rejected: false, status: 'reject' }, 'again (typed client): over already')
  const unknown = await api('POST', '/calls/0123456789ABCDEF0123456789ABCDEF/reject')
  t.match({ status: unknown.statusCode, body: unknown.json() }, { status: 404, body: { success: false, error: { code: 'NOT_FOUND' } } })
  t.equal((await api('POST', '/calls/not-a-call!/reject')).statusCode, 400, 'a malformed call id')

  // The settings: validated, and the same over HTTP and NATS.
  for (const bad of [{}, { rejectCalls: 'yes' }, { rejectCalls: true, replyText: '' }, { rejectCalls: true, extra: 1 },
    { rejectCalls: true, replyText: 'x'.repeat(4097) }]) {
    const refused = await api('PUT', '/call-settings', bad)
    const answer = { status: refused.statusCode, body: refused.json() }
    t.match(answer, { status: 400, body: { success: false, error: { code: 'VALIDATION_ERROR' } } },
      `refused: ${JSON.stringify(bad).slice(0, 60)}`)
  }
  t.same(await client.setCallSettings(companyId, { rejectCalls: true, replyText: REPLY }),
    { success: true, companyId, settings: { rejectCalls: true, replyText: REPLY } })
  t.same((await api('GET', '/call-settings')).json().settings, { rejectCalls: true, replyText: REPLY }, 'HTTP reads what NATS set')

  // Declined automatically, and the caller (by LID, with the phone WhatsApp told) gets the text once.
  const byLid = simulator.calls.call({ from: VERA, to: '79001230101', byLid: true })!
  t.ok(await step(byLid.id, 'reject', (data) => data.rejectedBy === 'auto'), 'declined as it rang')
  t.match(calls().find((event) => event.data.callId === byLid.id)!.data, { from: lid(VERA), phone: VERA, lid: lid(VERA), status: 'offer' })
  t.match(simulator.calls.get(byLid.id), { state: 'rejected' })
  t.ok(await waitFor(() => simulator.received(VERA).some((message) => message.text === REPLY), STEP_MS), 'the caller got the text')
  simulator.calls.step(byLid.id, 'terminate')
  t.ok(await step(byLid.id, 'terminate'))
  t.equal(simulator.received(VERA).filter((message) => message.text === REPLY).length, 1, 'once')
  t.ok(events.events.some((event) => event.type === 'message_sent' && event.data.text === REPLY && event.data.phone === VERA),
    'the text went the outbound way (message_sent)')

  // A group call: declined too, naming its group.
  const group = '120363000000000077@g.us'
  const inGroup = simulator.calls.call({ from: GLEB, to: '79001230101', group })!
  t.ok(await step(inGroup.id, 'reject', (data) => data.rejectedBy === 'auto' && data.groupId === group), 'a group call, declined')
  t.ok(await waitFor(() => simulator.received(GLEB).some((message) => message.text === REPLY), STEP_MS), 'its caller answered')

  // The record: most recent first, paged, the same through the typed client. The reply's id is recorded
  // once the text was sent, which may be a moment after the caller's phone got it.
  const replyRecorded = async () => Boolean((await api('GET', '/calls?limit=1')).json().calls[0]?.replyMessageId)
  t.ok(await waitFor(replyRecorded, STEP_MS), 'the group call\'s reply is on record')
  const page1 = (await api('GET', '/calls?limit=2')).json()
  t.equal(page1.calls.length, 2)
  t.ok(page1.next, 'a next page')
  const page2 = (await api('GET', `/calls?limit=2&before=${encodeURIComponent(page1.next)}`)).json()
  const all = [...page1.calls, ...page2.calls] as CallRecord[]
  t.same(all.map((call) => call.callId), [inGroup.id, byLid.id, video.id, first.id], 'every call, newest first')
  t.equal(page2.next, null)
  t.match(all, [
    { from: `${GLEB}@s.whatsapp.net`, groupId: group, status: 'reject', rejectedBy: 'auto', replyMessageId: String },
    { from: lid(VERA), phone: VERA, lid: lid(VERA), status: 'terminate', rejectedBy: 'auto', replyMessageId: String },
    { from: `${BORIS}@s.whatsapp.net`, video: true, status: 'reject', rejectedBy: 'api', replyMessageId: null },
    { from: `${ANNA}@s.whatsapp.net`, phone: ANNA, status: 'terminate', rejectedBy: null, offline: false }
  ])
  t.same((await client.calls(companyId, { limit: 10 })).calls, all, 'the typed client reads the same record')
  t.equal((await api('GET', '/calls?before=nonsense')).statusCode, 400, 'a malformed cursor')
})

t.test('a call told offline is only reported; a call still ringing at a handoff is declined from the record', async (t) => {
  const { simulator, replica, companyId, events, settings } = await linkedGateway(t)
  // A call still ringing when its holder goes: the next holder knows it only from the record.
  const ringing = simulator.calls.call({ from: BORIS, to: '79001230101', byLid: true })!
  t.ok(await waitFor(() => events.events.some((event) => event.type === 'call' && event.data.callId === ringing.id), STEP_MS))
  const set = await replica.app.inject({
    method: 'PUT', url: `/api/whatsapp/sessions/${companyId}/call-settings`, payload: { rejectCalls: true, replyText: REPLY }
  })
  t.equal(set.statusCode, 200)
  await replica.close()
  t.ok(await waitFor(() => simulator.liveDevices().length === 0, STEP_MS), 'the number\'s device went offline')
  const missed = simulator.calls.call({ from: ANNA, to: '79001230101', video: true })!
  t.match(missed, { devices: 0, queued: 1 }, 'WhatsApp kept it for the device')
  simulator.calls.step(missed.id, 'terminate')

  const connected = events.events.filter((event) => event.type === 'connected').length
  const again = await startSessionReplica(t, settings, {
    waTransport: 'baileys',
    waWsUrl: `ws://127.0.0.1:${simulator.port!}/ws/chat`,
    waVersion: [2, 3000, 1023223821],
    waCertPublicKey: simulator.identity.publicKeyHex
  })
  t.ok(await events.waitFor('connected', connected + 1, 20_000), 'another replica connected the company')
  const told = () => events.events.filter((event) => event.type === 'call' && event.data.callId === missed.id)
  t.ok(await waitFor(() => told().length === 2, STEP_MS), 'the offer and its end')
  t.match(told().map((event) => event.data), [
    { status: 'offer', offline: true, video: true, phone: ANNA }, { status: 'terminate', offline: true }
  ])
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(simulator.calls.get(missed.id)!.state, 'terminated', 'not declined')
  t.notOk(told().some((event) => event.data.rejectedBy), 'no reject event')
  t.same(simulator.received(ANNA), [], 'and no text: the call was over')
  const record = (await again.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/calls` })).json()
  t.match(record.calls, [
    { callId: missed.id, offline: true, status: 'terminate', rejectedBy: null, replyMessageId: null },
    { callId: ringing.id, offline: false, status: 'offer', from: lid(BORIS) }
  ])

  const declined = await again.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/calls/${ringing.id}/reject` })
  t.match(declined.json(), { rejected: true, status: 'reject' }, 'the new holder declined a call the old one was told')
  t.match(simulator.calls.get(ringing.id), { state: 'rejected' }, 'naming the caller as the offer did (its LID)')
})
