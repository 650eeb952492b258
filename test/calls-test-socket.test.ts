import t, { type Test } from 'tap'
import type { EventEnvelope } from '../contracts/index.ts'
import { lidOf } from '../plugins/session-pool/test-groups.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

// The calls plugin on the test double (TestWhatsApp.calls): what the double tells and takes, the
// settings' effect, and the record's bounds. test/calls.test.ts does the same with real Baileys.
const ANNA = '79110000001'
const BORIS = '79110000002'
const STEP_MS = 5_000
const REPLY = 'Звонки не принимаем, напишите нам'

async function companyOnTheDouble (t: Test, overrides: Parameters<typeof startSessionReplica>[2] = {}) {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, overrides)
  const companyId = uniqueName('salon')
  const events = await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!
  const api = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => replica.app.inject({
    method, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload } : {})
  })
  const callEvents = (callId: string) => (events.events as EventEnvelope[])
    .filter((event) => event.type === 'call' && event.data.callId === callId).map((event) => event.data)
  return { settings, replica, companyId, events, whatsapp, api, callEvents }
}

t.test('the double rings, the gateway reports; declined and answered once as the settings say; offline ones only reported', async (t) => {
  const { companyId, whatsapp, api, callEvents } = await companyOnTheDouble(t)

  const plain = whatsapp.calls.ring(companyId, { from: ANNA })!
  t.ok(await waitFor(() => callEvents(plain).length === 1, STEP_MS))
  t.match(callEvents(plain)[0], { status: 'offer', from: `${ANNA}@s.whatsapp.net`, phone: ANNA, lid: null, offline: false })
  t.ok(whatsapp.calls.step(plain, 'timeout'))
  t.ok(await waitFor(() => callEvents(plain).some((data) => data.status === 'timeout'), STEP_MS), 'nobody answered')
  t.notOk(whatsapp.calls.get(plain)!.rejectedAt, 'nothing set: not declined')

  t.equal((await api('PUT', '/call-settings', { rejectCalls: true, replyText: REPLY })).statusCode, 200)
  const byLid = whatsapp.calls.ring(companyId, { from: BORIS, byLid: true, video: true })!
  t.ok(await waitFor(() => callEvents(byLid).some((data) => data.rejectedBy === 'auto'), STEP_MS), 'declined as it rang')
  t.match(callEvents(byLid), [
    { status: 'offer', from: `${lidOf(BORIS)}@lid`, phone: BORIS, video: true },
    { status: 'reject', rejectedBy: 'auto', video: true }
  ])
  t.ok(whatsapp.calls.get(byLid)!.rejectedAt, 'the double took the rejection')
  t.ok(await waitFor(() => whatsapp.sentTo(companyId, `${BORIS}@s.whatsapp.net`).length === 1, STEP_MS), 'the caller\'s chat got the text')
  t.match(whatsapp.sentTo(companyId, `${BORIS}@s.whatsapp.net`), [{ text: REPLY }])

  const missed = whatsapp.calls.ring(companyId, { from: ANNA, offline: true })!
  t.ok(await waitFor(() => callEvents(missed).length === 1, STEP_MS))
  t.match(callEvents(missed)[0], { status: 'offer', offline: true })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.notOk(whatsapp.calls.get(missed)!.rejectedAt, 'an offline call is over: not declined')
  t.same(whatsapp.sentTo(companyId, `${ANNA}@s.whatsapp.net`), [], 'nor answered')
  const late = await api('POST', `/calls/${missed}/reject`)
  t.match(late.json(), { rejected: false, status: 'offer' }, 'nor declined by the API')

  // Switched off again: a ringing call is declined by the API only.
  t.equal((await api('PUT', '/call-settings', { rejectCalls: false, replyText: null })).statusCode, 200)
  const manual = whatsapp.calls.ring(companyId, { from: ANNA, group: '120363000000000001@g.us' })!
  t.ok(await waitFor(() => callEvents(manual).length === 1, STEP_MS))
  t.match((await api('POST', `/calls/${manual}/reject`)).json(), { rejected: true, status: 'reject' })
  t.ok(whatsapp.calls.get(manual)!.rejectedAt)
  t.ok(await waitFor(() => callEvents(manual).some((data) => data.rejectedBy === 'api' && data.groupId === '120363000000000001@g.us'),
    STEP_MS), 'the reject event names the group')
  t.same(whatsapp.sentTo(companyId, `${ANNA}@s.whatsapp.net`), [], 'no text without replyText')
  const record = (await api('GET', '/calls')).json()
  t.same(record.calls.map((call: { callId: string }) => call.callId), [manual, missed, byLid, plain], 'newest first')
})

t.test('the record is bounded: each company keeps its CALLS_KEPT_PER_COMPANY most recent calls', async (t) => {
  const { settings, companyId, whatsapp, api } = await companyOnTheDouble(t, { callsKeptPerCompany: 2 })
  const rung: string[] = []
  for (const from of [ANNA, BORIS, ANNA]) {
    rung.push(whatsapp.calls.ring(companyId, { from })!)
    t.ok(await waitFor(async () => (await api('GET', '/calls')).json().calls.length === rung.length, STEP_MS))
  }
  // Pruning runs when a replica starts and every hour after: another replica starting prunes now.
  const other = await startSessionReplica(t, settings, { callsKeptPerCompany: 2 })
  const listed = async () => (await other.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/calls` })).json()
  t.ok(await waitFor(async () => (await listed()).calls.length === 2, STEP_MS), 'the oldest went')
  t.same((await listed()).calls.map((call: { callId: string }) => call.callId), [rung[2], rung[1]])
})
