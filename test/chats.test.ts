import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { controlApi } from '../simulator/control.ts'
import { createGatewayClient, type ChatSummary, type EventEnvelope } from '../contracts/index.ts'
import { COMPANY_PHONE, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const STEP_MS = 10_000
const pn = (phone: string) => `${phone}@s.whatsapp.net`
const HOUR_MS = 3_600_000

/**
 * Chat state end to end: the gateway's HTTP API and typed client, real Baileys on the simulator,
 * whose phone reads the app-state patches the company's device writes and makes its own.
 */
t.test('archive, pin, mute, read, timer and delete, both ways between the gateway and the phone; the chat list', async (t) => {
  const gateway = await linkedGateway(t)
  const { simulator, replica, companyId, events } = gateway
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const eventsOf = (type: string) => events.events.filter((event) => event.type === type) as EventEnvelope[]
  const chatUpdates = () => eventsOf('chat_update').map((event) => event.data as Record<string, unknown>)
  const listed = async () => (await api('GET', '/chats')).json().chats as ChatSummary[]
  const phoneSees = (phone: string) => simulator.appState.chats(COMPANY_PHONE)[pn(phone)]

  await simulator.deliver({ from: BORIS, to: COMPANY_PHONE, text: 'Добрый день' })
  await simulator.deliver({ from: ANNA, to: COMPANY_PHONE, text: 'Здравствуйте' })
  await simulator.deliver({ from: ANNA, to: COMPANY_PHONE, text: 'Можно на 15:00?' })
  t.ok(await events.waitFor('message', 3, STEP_MS), 'three messages came in')
  t.ok(await waitFor(async () => (await listed()).length === 2, STEP_MS), 'two chats')
  const [anna, boris] = await listed()
  t.match(anna, {
    chat: pn(ANNA),
    archived: false,
    pinned: false,
    mutedUntil: null,
    markedUnread: false,
    disappearingSeconds: 0,
    unreadCount: 2,
    lastMessage: { direction: 'in', phone: ANNA, text: 'Можно на 15:00?' }
  }, 'latest activity first: Anna, her last message, two unread')
  t.match(boris, { chat: pn(BORIS), unreadCount: 1, lastMessage: { text: 'Добрый день' } })

  // The company archives, pins, mutes and reads Anna's chat: patches the phone reads.
  const mutedUntil = new Date(Date.now() + 8 * HOUR_MS).toISOString()
  const everything = { archived: true, pinned: true, mutedUntil, read: true }
  const changed = await api('PATCH', `/chats/${encodeURIComponent('+7 911 000-00-01')}`, everything)
  t.equal(changed.statusCode, 200, changed.body)
  t.same(changed.json().state, {
    chat: pn(ANNA), archived: true, pinned: true, mutedUntil, markedUnread: false, disappearingSeconds: 0
  }, 'the chat named by a phone in any notation; its state then')
  t.same(phoneSees(ANNA), { archived: true, pinned: true, mutedUntil: Date.parse(mutedUntil), read: true }, 'the phone sees it all')
  t.match((await listed())[0], { chat: pn(ANNA), archived: true, pinned: true, mutedUntil, unreadCount: 0 }, 'read: nothing unread')

  // The phone unarchives it and marks it unread: chat_update events, only what changed.
  // One at a time: Baileys folds what one sync brings of a chat into one update.
  await simulator.appState.phoneChanges(COMPANY_PHONE, pn(ANNA), { action: 'unarchive' })
  t.ok(await waitFor(() => chatUpdates().length === 1, STEP_MS), 'a chat_update event')
  await simulator.appState.phoneChanges(COMPANY_PHONE, pn(ANNA), { action: 'unread' })
  t.ok(await waitFor(() => chatUpdates().length === 2, STEP_MS), 'another')
  t.same(chatUpdates(), [{ chat: pn(ANNA), archived: false }, { chat: pn(ANNA), read: false }],
    'the phone\'s changes, and none of the company\'s own')
  t.match((await listed())[0], { chat: pn(ANNA), archived: false, pinned: true, markedUnread: true, unreadCount: 0 }, 'stored')

  // A new message is unread; marking read clears both.
  await simulator.deliver({ from: ANNA, to: COMPANY_PHONE, text: 'Жду ответа' })
  t.ok(await waitFor(async () => (await listed())[0].unreadCount === 1, STEP_MS), 'one unread after the read mark')
  t.equal((await api('PATCH', `/chats/${ANNA}`, { read: true, mutedUntil: null })).statusCode, 200)
  t.match((await listed())[0], { markedUnread: false, unreadCount: 0, mutedUntil: null })
  t.match(phoneSees(ANNA), { read: true, mutedUntil: null }, 'unmuted on the phone too')

  // The disappearing timer is a message to the chat.
  const timer = await api('PATCH', `/chats/${ANNA}`, { disappearingSeconds: 604800 })
  t.equal(timer.statusCode, 200, timer.body)
  t.equal(timer.json().state.disappearingSeconds, 604800)
  t.ok(await waitFor(() => simulator.received(ANNA).length > 0, STEP_MS), 'Anna\'s phone got the timer')
  // Anna turns it off from her phone: a chat_update, and no message.
  const messagesBefore = eventsOf('message').length
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const off = await control.inject({ method: 'POST', url: `/contacts/${ANNA}/disappearing`, payload: { to: COMPANY_PHONE, seconds: 0 } })
  t.equal(off.statusCode, 200, off.body)
  t.ok(await waitFor(() => chatUpdates().some((update) => update.disappearingSeconds === 0), STEP_MS), 'her timer is an event')
  t.same(chatUpdates().at(-1), { chat: pn(ANNA), disappearingSeconds: 0 })
  t.equal(eventsOf('message').length, messagesBefore, 'not a message')
  t.equal((await listed())[0].disappearingSeconds, 0, 'stored')

  // Through NATS with the typed client: unpin, then the list.
  const nc = await connect({ servers: gateway.settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: gateway.settings.natsNamespace })
  t.match((await client.updateChat(companyId, { chat: ANNA, pinned: false })).state, { chat: pn(ANNA), pinned: false })
  t.equal(phoneSees(ANNA).pinned, false)
  const page = await client.chats(companyId, { limit: 1 })
  t.equal(page.chats.length, 1)
  t.match(page.chats[0], { chat: pn(ANNA), pinned: false, disappearingSeconds: 0 })
  const second = await client.chats(companyId, { limit: 1, before: page.next! })
  t.match(second, { chats: [{ chat: pn(BORIS) }], next: null }, 'the next page')

  // The phone pins Boris's chat the moment the company archives it: the company's patch is behind, and
  // is made again on top of the phone's.
  simulator.appState.raceNextPatch(COMPANY_PHONE, pn(BORIS), { action: 'pin' })
  const raced = await api('PATCH', `/chats/${BORIS}`, { archived: true })
  t.equal(raced.statusCode, 200, raced.body)
  t.same(phoneSees(BORIS), { pinned: true, archived: true }, 'both changes stand')
  t.ok(await waitFor(() => chatUpdates().some((update) => update.chat === pn(BORIS) && update.pinned === true), STEP_MS),
    'the phone\'s pin is an event')
  t.ok(simulator.log.some((entry) => entry.detail.endsWith('refused: 409 conflict')), 'the first patch was behind, and refused')

  // Deleting: the company deletes Anna's chat; the phone deletes Boris's. Neither is listed.
  const deleted = await api('DELETE', `/chats/${ANNA}`)
  t.equal(deleted.statusCode, 200, deleted.body)
  t.same(deleted.json(), { success: true, chat: pn(ANNA) })
  t.same(phoneSees(ANNA), { deleted: true })
  await simulator.appState.phoneChanges(COMPANY_PHONE, pn(BORIS), { action: 'delete' })
  t.ok(await waitFor(() => chatUpdates().some((update) => update.deleted), STEP_MS))
  t.same(chatUpdates().at(-1), { chat: pn(BORIS), deleted: true })
  t.ok(await waitFor(async () => (await listed()).length === 0, STEP_MS), 'no chat left in the list')
  t.same(chatUpdates().filter((update) => update.chat === pn(ANNA)).length, 3, 'the company\'s timer and deletion are no events')
  await simulator.deliver({ from: ANNA, to: COMPANY_PHONE, text: 'Снова я' })
  t.ok(await waitFor(async () => (await listed())[0]?.unreadCount === 1, STEP_MS), 'a new message brings the chat back, unread')
})

t.test('bad chat changes are refused before they reach WhatsApp', async (t) => {
  const { replica, companyId, simulator } = await linkedGateway(t)
  const patch = (chat: string, payload: unknown) => replica.app.inject({
    method: 'PATCH', url: `/api/whatsapp/sessions/${companyId}/chats/${encodeURIComponent(chat)}`, payload: payload as never
  })
  const refused = async (chat: string, payload: unknown, status: number, code: string) => {
    const answer = await patch(chat, payload)
    t.equal(answer.statusCode, status, answer.body)
    t.equal(answer.json().error.code, code)
  }
  await refused(ANNA, {}, 400, 'VALIDATION_ERROR')
  await refused(ANNA, { mutedUntil: new Date(Date.now() - HOUR_MS).toISOString() }, 400, 'VALIDATION_ERROR')
  await refused(ANNA, { mutedUntil: 'tomorrow' }, 400, 'VALIDATION_ERROR')
  await refused(ANNA, { disappearingSeconds: 3600 }, 400, 'VALIDATION_ERROR')
  await refused(ANNA, { archived: 'yes' }, 400, 'VALIDATION_ERROR')
  await refused('abc', { archived: true }, 400, 'INVALID_PHONE')
  await refused('12@lid@x', { archived: true }, 400, 'INVALID_PHONE')
  const page = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/chats?before=yesterday` })
  t.equal(page.statusCode, 400, page.body)
  t.same(simulator.appState.chats(COMPANY_PHONE), {}, 'nothing reached the phone')
})
