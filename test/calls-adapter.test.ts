import t, { type Test } from 'tap'
import { lidOf } from '../simulator/accounts.ts'
import { controlApi } from '../simulator/control.ts'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import type { WaSocket } from '../plugins/session-pool/socket-port.ts'
import type { CallEvent } from '../plugins/session-pool/calls-port.ts'
import { startSimulator } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

// The gateway's own Baileys adapter (baileysFactory, the WaSocket port) against the simulator's calls.
const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const STEP_MS = 10_000

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const lid = (phone: string) => `${lidOf(phone)}@lid`
const until = (condition: () => boolean) => waitFor(condition, STEP_MS)

function recording (socket: WaSocket) {
  const calls: CallEvent[] = []
  socket.on('calls', (batch) => calls.push(...batch))
  return { calls, has: (expected: (call: CallEvent) => boolean) => until(() => calls.some(expected)) }
}

async function controlOf (t: Test, simulator: WhatsAppSimulator) {
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  return async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const response = await control.inject({ method, url, ...(payload ? { payload } : {}) })
    return { status: response.statusCode, body: response.json() }
  }
}

t.test('a contact\'s voice call: offer then terminate, by phone JID; a video call that times out', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const { calls, has } = recording(socket)
  const control = await controlOf(t, simulator)

  const placed = await control('POST', `/contacts/${ANNA}/calls`, { to: SALON })
  t.match(placed, { status: 200, body: { callId: /^[0-9A-F]{32}$/, call: { devices: 1, queued: 0, state: 'ringing' } } })
  const { callId } = placed.body as { callId: string }
  t.ok(await has((call) => call.id === callId && call.status === 'offer'), 'the offer')
  t.match(calls[0], {
    id: callId, from: pn(ANNA), creator: pn(ANNA), status: 'offer', video: false, group: false, offline: false, timestamp: Number
  })
  t.notOk('callerPhone' in calls[0], 'a caller by phone JID has no caller_pn')
  t.match(await control('POST', `/calls/${callId}/terminate`), { status: 200, body: { call: { state: 'terminated' } } })
  t.ok(await has((call) => call.id === callId && call.status === 'terminate'), 'the caller hung up')
  t.match(calls.at(-1), { from: pn(ANNA), video: false, offline: false })

  const video = await control('POST', `/contacts/${BORIS}/calls`, { to: SALON, video: true })
  const videoId = (video.body as { callId: string }).callId
  t.ok(await has((call) => call.id === videoId && call.status === 'offer'))
  t.match(calls.find((call) => call.id === videoId), { video: true, from: pn(BORIS) }, 'a video call')
  await control('POST', `/calls/${videoId}/timeout`)
  t.ok(await has((call) => call.id === videoId && call.status === 'timeout'), 'nobody answered: timeout')
  t.match(calls.at(-1), { video: true }, 'later steps keep what the offer said (Baileys\' offer cache)')

  const answered = (await control('POST', `/contacts/${ANNA}/calls`, { to: SALON })).body as { callId: string }
  t.ok(await has((call) => call.id === answered.callId && call.status === 'offer'))
  await control('POST', `/calls/${answered.callId}/accept`)
  t.ok(await has((call) => call.id === answered.callId && call.status === 'accept'), 'answered on the phone: accept')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})

t.test('a caller by LID, with its phone (caller_pn) and without; a group call', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const { calls, has } = recording(socket)
  const control = await controlOf(t, simulator)

  const byLid = (await control('POST', `/contacts/${ANNA}/calls`, { to: SALON, byLid: true })).body as { callId: string }
  t.ok(await has((call) => call.id === byLid.callId))
  t.match(calls.find((call) => call.id === byLid.callId), { from: lid(ANNA), creator: lid(ANNA), callerPhone: pn(ANNA) },
    'named by LID, with the phone WhatsApp told')

  const hidden = (await control('POST', `/contacts/${BORIS}/calls`, { to: SALON, byLid: true, hidePhone: true })).body as { callId: string }
  t.ok(await has((call) => call.id === hidden.callId))
  t.notOk(calls.find((call) => call.id === hidden.callId)?.callerPhone, 'no caller_pn and a LID the connection never mapped: no phone')

  const group = '120363000000000001@g.us'
  const inGroup = (await control('POST', `/contacts/${BORIS}/calls`, { to: SALON, group, video: true })).body as { callId: string }
  t.ok(await has((call) => call.id === inGroup.callId))
  t.match(calls.find((call) => call.id === inGroup.callId), { group: true, groupJid: group, video: true, from: pn(BORIS) }, 'a group call')
})

t.test('rejecting: the simulator records the rejection by the linked device; a call made while offline comes offline', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const { socket, creds, keys, device } = await link(SALON)
  const { has } = recording(socket)
  const control = await controlOf(t, simulator)

  const placed = (await control('POST', `/contacts/${ANNA}/calls`, { to: SALON, byLid: true })).body as { callId: string }
  t.ok(await has((call) => call.id === placed.callId && call.status === 'offer'))
  const started = performance.now()
  await socket.calls.reject(placed.callId, lid(ANNA))
  t.ok(performance.now() - started < 5_000, 'the rejection was answered (Baileys waits 60 s for an answer otherwise)')
  t.match(await control('GET', `/calls/${placed.callId}`), { body: { call: { state: 'rejected', rejectedBy: device } } },
    'WhatsApp took the rejection from the linked device')
  t.match(await control('GET', `/accounts/${SALON}/calls`), { body: { calls: [{ id: placed.callId, state: 'rejected' }] } })

  await socket.end()
  t.ok(await until(() => simulator.liveDevices().length === 0))
  const missed = await control('POST', `/contacts/${BORIS}/calls`, { to: SALON, video: true })
  t.match(missed.body, { call: { devices: 0, queued: 1 } }, 'kept for the offline device')
  const missedId = (missed.body as { callId: string }).callId
  await control('POST', `/calls/${missedId}/terminate`)
  const again = connect(creds, keys)
  const offline = recording(again.socket)
  t.ok(await until(() => again.updates.some((update) => update.connection === 'open')))
  t.ok(await offline.has((call) => call.id === missedId && call.status === 'terminate'), 'the offer and its end come at login')
  t.match(offline.calls.filter((call) => call.id === missedId), [
    { status: 'offer', offline: true, video: true, from: pn(BORIS) },
    { status: 'terminate', offline: true }
  ], 'both marked offline, in order')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})
