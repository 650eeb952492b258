import t from 'tap'
import pg from 'pg'
import type { EventEnvelope } from '../contracts/index.ts'
import { controlApi } from '../simulator/control.ts'
import { COMPANY_PHONE } from './helpers/linked-gateway.ts'
import { recordEvents, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { baileysOn, startSimulator } from './helpers/simulator.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79111240101'
const BORIS = '79111240102'
const STEP_MS = 30_000
const DAY = 86_400
const pn = (phone: string) => `${phone}@s.whatsapp.net`
const ago = (days: number) => Math.floor(Date.now() / 1000) - Math.round(days * DAY)

type SyncData = { syncType: string, chunk: number, progress: number | null, messages: number, done: boolean, requestId?: string }
const syncsOf = (events: EventEnvelope[]) => events.filter((event) => event.type === 'history_sync').map((event) => ({
  ...(event.data as SyncData), epoch: event.epoch
}))

/**
 * History sync end to end, with real Baileys on the simulator: a phone that already has chats links
 * its number, and its chats, names and messages (a file fetched only when asked for) reach the chat
 * list and the history, with progress on the way; older messages come on request.
 */
t.test('a linked phone\'s chats reach the chat list and the history, files on demand, older messages on request', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { ...baileysOn(simulator, url), messageRetentionDays: 365 })
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const seeded = await control.inject({
    method: 'POST',
    url: `/accounts/${COMPANY_PHONE}/history`,
    payload: {
      chats: [
        {
          jid: pn(ANNA),
          name: 'Анна Петрова',
          messages: [
            { id: 'ANNA-OLD-1', fromMe: false, text: 'Прошлой весной', timestamp: ago(130) },
            { id: 'ANNA-OLD-2', fromMe: true, text: 'Ждём вас снова', timestamp: ago(129) },
            { id: 'ANNA-1', fromMe: false, text: 'Здравствуйте, можно на стрижку?', timestamp: ago(3) },
            { id: 'ANNA-2', fromMe: true, text: 'Да, в пятницу в 15:00', timestamp: ago(2.9) },
            { id: 'ANNA-3', fromMe: false, text: 'Вот фото', media: { kind: 'image' }, timestamp: ago(2.8) }
          ]
        },
        {
          jid: pn(BORIS),
          lid: true,
          name: 'Борис',
          messages: [{ id: 'BORIS-1', fromMe: false, text: 'Во сколько вы открываетесь?', timestamp: ago(1) }]
        }
      ]
    }
  })
  t.equal(seeded.statusCode, 200, seeded.body)
  const lid = `${simulator.account(BORIS).lid}@lid`

  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const api = (method: 'GET' | 'POST', path: string, payload?: Record<string, unknown>) =>
    replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${path}`, ...(payload ? { payload } : {}) })
  const init = await api('POST', '/initialize')
  simulator.scan(init.json().qr, COMPANY_PHONE)
  t.ok(await events.waitFor('connected', 1, STEP_MS), 'linked')
  t.ok(await waitFor(() => syncsOf(events.events).some((sync) => sync.done), STEP_MS), 'the sync ended')
  const syncs = syncsOf(events.events)
  t.same(syncs.map((sync) => sync.syncType), ['initial_bootstrap', 'push_name', 'recent'], 'each chunk as the phone sent it')
  t.equal(syncs.reduce((sum, sync) => sum + sync.messages, 0), 4, 'the four recent messages, each once (the older ones stay on the phone)')
  t.same(syncs.map((sync) => sync.done), [false, false, true])

  const chats = (await api('GET', '/chats')).json().chats
  t.match(chats, [
    { chat: pn(BORIS), name: 'Борис', lastMessage: { messageId: 'BORIS-1', phone: BORIS, lid, direction: 'in' }, unreadCount: 1 },
    { chat: pn(ANNA), name: 'Анна Петрова', lastMessage: { messageId: 'ANNA-3', kind: 'media', media: { kind: 'image', onDemand: true } } }
  ], 'newest first, named, the LID chat under its phone')
  const anna = (await api('GET', `/messages?chat=${ANNA}`)).json().messages
  t.same(anna.map((row: { messageId: string }) => row.messageId), ['ANNA-3', 'ANNA-2', 'ANNA-1'])
  t.match(anna[1], { direction: 'out', text: 'Да, в пятницу в 15:00', state: 'read' })
  t.match((await api('GET', '/status')).json().historySync, { mode: 'recent', state: 'done', progress: 100, pending: 0, messages: 4 })

  const fetched = await api('POST', '/messages/ANNA-3/media')
  t.equal(fetched.statusCode, 200, fetched.body)
  const media = fetched.json().media
  t.match(media, { kind: 'image', objectId: /./, size: 300 }, 'the file, fetched when asked for')
  const file = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/media/${media.objectId}` })
  t.equal(file.statusCode, 200)
  t.ok(file.rawPayload.toString().startsWith('history file of ANNA-3'), 'the phone\'s file, decrypted')
  t.match((await api('GET', '/messages/ANNA-3')).json().message.media, { objectId: media.objectId }, 'the history names it now')

  const asked = await api('POST', `/chats/${ANNA}/history`, { count: 10 })
  t.equal(asked.statusCode, 200, asked.body)
  t.match(asked.json(), { chat: pn(ANNA), before: 'ANNA-1' })
  t.ok(await waitFor(() => syncsOf(events.events).some((sync) => sync.syncType === 'on_demand'), STEP_MS), 'the phone answered')
  t.match(syncsOf(events.events).find((sync) => sync.syncType === 'on_demand'), { messages: 2, requestId: asked.json().requestId })
  const older = (await api('GET', `/messages?chat=${ANNA}`)).json().messages
  t.same(older.map((row: { messageId: string }) => row.messageId), ['ANNA-3', 'ANNA-2', 'ANNA-1', 'ANNA-OLD-2', 'ANNA-OLD-1'])
})

t.test('a takeover in the middle of a sync loses and doubles nothing: the new holder imports what the old one was told', async (t) => {
  const CHATS = 150
  const PER_CHAT = 20
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const baileys = baileysOn(simulator, url)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const seeded = await control.inject({
    method: 'POST',
    url: `/accounts/${COMPANY_PHONE}/history`,
    payload: { generate: { chats: CHATS, messagesPerChat: PER_CHAT, days: 20, lidShare: 0.3 }, messagesPerChunk: 100 }
  })
  t.equal(seeded.statusCode, 200, seeded.body)

  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const first = await startSessionReplica(t, settings, baileys)
  const init = await first.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  simulator.scan(init.json().qr, COMPANY_PHONE)
  t.ok(await events.waitFor('connected', 1, STEP_MS), 'linked on the first replica')
  t.ok(await waitFor(() => syncsOf(events.events).length >= 6, STEP_MS, 5), 'a few chunks imported')
  await first.close()
  const second = await startSessionReplica(t, settings, baileys)
  t.ok(await events.waitFor('connected', 2, STEP_MS), 'the second replica resumed the company without a QR')
  t.ok(await waitFor(() => syncsOf(events.events).some((sync) => sync.done), 60_000), 'the sync ended on the second replica')
  await second.app.history.settled(companyId)

  const syncs = syncsOf(events.events)
  const epochs = [...new Set(syncs.map((sync) => sync.epoch))]
  t.equal(epochs.length, 2, 'chunks imported under both leases')
  const db = new pg.Client({ connectionString: settings.databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  const rows = (await db.query<{ message_id: string }>('select message_id from whatsapp_messages where company_id = $1', [companyId])).rows
  const expected = Array.from({ length: CHATS }, (_, chat) => Array.from({ length: PER_CHAT }, (_, n) => `H${chat}-${n}`)).flat()
  const stored = new Set(rows.map((row) => row.message_id))
  t.equal(expected.filter((id) => !stored.has(id)).length, 0, 'no message lost')
  t.equal(rows.length, expected.length, 'none doubled')
  t.equal(syncs.reduce((sum, sync) => sum + sync.messages, 0), expected.length, 'each counted by exactly one chunk\'s event')

  const phone = (await control.inject({ method: 'GET', url: `/accounts/${COMPANY_PHONE}/history` })).json()
  const sent = phone.syncs.flatMap((sync: { chunks: { syncType: string, acknowledged: boolean }[] }) => sync.chunks)
  t.ok(sent.every((chunk: { acknowledged: boolean }) => chunk.acknowledged), 'the phone saw every chunk acknowledged')
  const chunks = (await db.query<{ state: string, count: string }>(
    'select state, count(*) as count from whatsapp_history_chunks where company_id = $1 group by state', [companyId])).rows
  t.same(chunks.map((row) => [row.state, Number(row.count)]), [['imported', sent.length]], 'every chunk the phone sent imported once')
  t.match((await second.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/history` })).json().sync,
    { state: 'done', pending: 0, messages: expected.length })
})

t.test('history.sync "full" at initialize: the phone sends its older messages too (WhatsApp\'s FULL chunks)', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { ...baileysOn(simulator, url), messageRetentionDays: 365 })
  const seeded = await controlApi(simulator).inject({
    method: 'POST',
    url: `/accounts/${COMPANY_PHONE}/history`,
    payload: {
      chats: [{
        jid: pn(ANNA),
        name: 'Анна',
        messages: [
          { id: 'FULL-OLD', fromMe: false, text: 'Полгода назад', timestamp: ago(180) },
          { id: 'FULL-NEW', fromMe: false, text: 'Вчера', timestamp: ago(1) }
        ]
      }]
    }
  })
  t.equal(seeded.statusCode, 200)
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const init = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, payload: { history: { sync: 'full' } }
  })
  simulator.scan(init.json().qr, COMPANY_PHONE)
  t.ok(await events.waitFor('connected', 1, STEP_MS), 'linked')
  t.ok(await waitFor(() => syncsOf(events.events).some((sync) => sync.syncType === 'full' && sync.done), STEP_MS), 'the full sync ended')
  const rows = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/messages?chat=${ANNA}` })).json()
  t.same(rows.messages.map((row: { messageId: string }) => row.messageId), ['FULL-NEW', 'FULL-OLD'], 'the recent and the older message')
  t.match((await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/history` })).json().sync,
    { mode: 'full', state: 'done' })
})
