import t from 'tap'
import type { EventEnvelope } from '../contracts/index.ts'
import { sessionCluster, startSessionReplica, linkCompany } from './helpers/sessions.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const STEP_MS = 5_000
const pn = (phone: string) => `${phone}@s.whatsapp.net`

/**
 * Chat state on the test double (WA_TRANSPORT=test): the gateway's changes reach the number's
 * model (TestWhatsApp.chats) and nobody's events; the phone's changes and a contact's timer come
 * back as chat_update events with only what changed, and are stored for the chat list.
 */
t.test('the test double keeps a number\'s chat state and tells its connection of the phone\'s changes', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  const events = await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!
  const phone = whatsapp.phoneOf(companyId)!
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const updates = () => events.events.filter((event) => event.type === 'chat_update').map((event: EventEnvelope) => event.data)

  whatsapp.deliver(companyId, { from: ANNA, text: 'Здравствуйте' })
  t.ok(await events.waitFor('message', 1, STEP_MS))
  const changed = await api('PATCH', `/chats/${ANNA}`, { archived: true, pinned: true, disappearingSeconds: 86400 })
  t.equal(changed.statusCode, 200, changed.body)
  t.same(whatsapp.chats.get(phone, pn(ANNA)), {
    archived: true, pinned: true, mutedUntil: null, read: true, disappearingSeconds: 86400
  }, 'the number\'s state, as its phone would show it')

  whatsapp.chats.phoneChanges(phone, pn(ANNA), { kind: 'pin', pinned: false })
  whatsapp.chats.phoneChanges(phone, pn(ANNA), { kind: 'mute', until: Date.parse('2030-01-01T00:00:00.000Z') })
  whatsapp.chats.contactSetsTimer(phone, pn(ANNA), 0)
  t.ok(await waitFor(() => updates().length === 3, STEP_MS), 'three chat_update events')
  t.same(updates(), [
    { chat: pn(ANNA), pinned: false },
    { chat: pn(ANNA), mutedUntil: '2030-01-01T00:00:00.000Z' },
    { chat: pn(ANNA), disappearingSeconds: 0 }
  ], 'only what changed; none for the gateway\'s own change')
  t.ok(await waitFor(async () => (await api('GET', '/chats')).json().chats[0]?.disappearingSeconds === 0, STEP_MS))
  t.match((await api('GET', '/chats')).json().chats, [{
    chat: pn(ANNA),
    archived: true,
    pinned: false,
    mutedUntil: '2030-01-01T00:00:00.000Z',
    unreadCount: 1,
    lastMessage: { text: 'Здравствуйте' }
  }], 'stored for the list')

  whatsapp.deliver(companyId, { from: BORIS, text: 'Добрый день' })
  t.ok(await events.waitFor('message', 2, STEP_MS))
  whatsapp.chats.phoneChanges(phone, pn(BORIS), { kind: 'delete' })
  t.ok(await waitFor(() => updates().length === 4, STEP_MS))
  t.same(updates()[3], { chat: pn(BORIS), deleted: true })
  t.equal((await api('DELETE', `/chats/${ANNA}`)).statusCode, 200)
  t.equal(whatsapp.chats.get(phone, pn(ANNA)), undefined, 'deleted on the number')
  t.ok(await waitFor(async () => (await api('GET', '/chats')).json().chats.length === 0, STEP_MS), 'neither chat listed')
  t.equal(updates().length, 4, 'the gateway\'s deletion is no event')
  // A late receipt for a message the history never had makes a placeholder row: no message of the chat's.
  whatsapp.socketOf(companyId)!.emitLater('receipts', [
    { id: 'LATE0RECEIPT0ANNA', to: pn(ANNA), status: 'delivered', timestamp: Math.floor(Date.now() / 1000) }
  ])
  const placeholder = () => replica.app.orm.em.fork().execute<{ kind: string }[]>(
    'select kind from whatsapp_messages where company_id = ? and message_id = ?', [companyId, 'LATE0RECEIPT0ANNA'], 'all')
  t.ok(await waitFor(async () => (await placeholder()).length === 1, STEP_MS), 'the receipt made its row')
  t.same((await api('GET', '/chats')).json().chats, [], 'and brought back no deleted chat')

  const unlinked = await replica.app.inject({
    method: 'PATCH', url: `/api/whatsapp/sessions/${uniqueName('nobody')}/chats/${ANNA}`, payload: { archived: true }
  })
  t.equal(unlinked.json().error.code, 'NOT_CONNECTED', 'a company nobody holds')
})
