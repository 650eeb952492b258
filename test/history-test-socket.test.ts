import t from 'tap'
import type { EventEnvelope } from '../contracts/index.ts'
import type { HistoryChunk, HistoryMessage } from '../plugins/session-pool/index.ts'
import { sessionCluster, startSessionReplica, linkCompany } from './helpers/sessions.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const BORIS_LID = '260000000000002@lid'
const STEP_MS = 10_000
const pn = (phone: string) => `${phone}@s.whatsapp.net`
const DAY = 86_400

/** A message of the phone's history, `daysAgo` days old. */
function message (id: string, from: string, daysAgo: number, text: string, fromMe = false): HistoryMessage {
  const timestamp = Math.floor(Date.now() / 1000) - Math.round(daysAgo * DAY)
  return { id, from, text, timestamp, fromMe, ...(fromMe ? { state: 'read' as const } : {}) }
}

/**
 * The import on the test double: chunks the phone announces go into the history (chats, names, the
 * LID map), a chunk told twice and a message stored before are not doubled, progress is a
 * `history_sync` event per chunk and the session's status, and older messages come on request.
 */
t.test('the phone\'s history chunks are imported once each, with progress, and older messages on request', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  const events = await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const syncs = () => events.events.filter((event) => event.type === 'history_sync').map((event: EventEnvelope) => event.data)

  t.match((await api('GET', '/history')).json(), { sync: { mode: 'recent', state: 'idle', chunks: 0 } }, 'nothing yet')

  // Anna wrote live before the sync: her message comes again in the history and stays one.
  whatsapp.deliver(companyId, { from: ANNA, text: 'Запишите меня', id: 'LIVE-1', pushName: 'Anna' })
  t.ok(await events.waitFor('message', 1, STEP_MS))
  const annaOlder = [message('A-1', pn(ANNA), 20, 'Здравствуйте'), message('A-2', pn(ANNA), 19, 'Добрый день!', true)]
  const first: HistoryChunk = {
    chats: [{ jid: pn(ANNA), name: 'Анна Петрова', unreadCount: 1 }, { jid: BORIS_LID, alt: pn(BORIS), name: 'Борис' }],
    contacts: [],
    messages: [...annaOlder, { ...message('LIVE-1', pn(ANNA), 0, 'Запишите меня'), timestamp: Math.floor(Date.now() / 1000) }],
    lids: [{ lid: BORIS_LID, phone: pn(BORIS) }]
  }
  const second: HistoryChunk = {
    chats: [{ jid: BORIS_LID }],
    contacts: [{ jid: pn(BORIS), notify: 'Boris P.' }],
    messages: [message('B-1', BORIS_LID, 2, 'Можно на завтра?'), message('B-2', BORIS_LID, 1, 'Да, в 15:00', true)],
    lids: [{ lid: BORIS_LID, phone: pn(BORIS) }]
  }
  const told = whatsapp.history.announce(companyId, [
    { syncType: 'initial_bootstrap', chunkOrder: 0, progress: 40, chunk: first },
    { syncType: 'recent', chunkOrder: 1, progress: 100, chunk: second }
  ])
  t.ok(told, 'the company\'s connection is open')
  t.ok(await waitFor(() => syncs().length === 2, STEP_MS), 'a history_sync event per chunk')
  t.match(syncs(), [
    { syncType: 'initial_bootstrap', chunk: 0, progress: 40, chats: 2, messages: 2, done: false },
    { syncType: 'recent', chunk: 1, progress: 100, chats: 1, messages: 2, done: true, totals: { chunks: 2, messages: 4 } }
  ], 'the live message was not counted again')

  // The same chunk told again (WhatsApp delivering it again) is not imported twice.
  whatsapp.history.announce(companyId, [{ syncType: 'recent', chunkOrder: 1, progress: 100, chunk: second }])
  t.ok(await waitFor(() => syncs().length === 3, STEP_MS), 'a new notice is a new chunk (its blob differs)')
  t.match(syncs()[2], { messages: 0 }, 'but its messages were stored already')

  const chats = (await api('GET', '/chats')).json()
  t.match(chats.chats.map((chat: { chat: string }) => chat.chat), [pn(ANNA), pn(BORIS)], 'newest first, Boris by phone')
  t.same(chats.chats.map((chat: { name: string }) => chat.name), ['Анна Петрова', 'Борис'],
    'names as the phone saved them: Boris\'s own (push) name does not replace his saved one')
  const boris = await api('GET', `/messages?chat=${BORIS}`)
  t.equal(boris.statusCode, 200, boris.body)
  t.same(boris.json().messages.map((row: { messageId: string, direction: string, lid: string }) => [row.messageId, row.direction, row.lid]),
    [['B-2', 'out', BORIS_LID], ['B-1', 'in', BORIS_LID]], 'the LID chat under the phone the map gave, both names on each row')
  const anna = (await api('GET', `/messages?chat=${ANNA}`)).json().messages
  t.same(anna.map((row: { messageId: string }) => row.messageId), ['LIVE-1', 'A-2', 'A-1'], 'each message once')
  t.match(anna[1], { direction: 'out', state: 'read', text: 'Добрый день!' })

  const status = (await api('GET', '/status')).json()
  t.match(status.historySync, { state: 'done', progress: 100, chunks: 3, pending: 0, messages: 4 }, 'the session\'s status shows the sync')

  // Older messages on request: the phone answers with an on_demand chunk, imported like the rest.
  whatsapp.history.hold(companyId, pn(ANNA), [
    message('A-0a', pn(ANNA), 22, 'Старое 1'), message('A-0b', pn(ANNA), 21, 'Старое 2'), ...annaOlder
  ])
  const asked = await api('POST', `/chats/${ANNA}/history`, { count: 10 })
  t.equal(asked.statusCode, 200, asked.body)
  t.match(asked.json(), { chat: pn(ANNA), before: 'A-1' }, 'from the chat\'s oldest message')
  t.ok(await waitFor(() => syncs().length === 4, STEP_MS))
  t.match(syncs()[3], { syncType: 'on_demand', messages: 2, requestId: asked.json().requestId })
  const older = (await api('GET', `/messages?chat=${ANNA}`)).json().messages
  t.same(older.map((row: { messageId: string }) => row.messageId), ['LIVE-1', 'A-2', 'A-1', 'A-0b', 'A-0a'])

  const unknown = await api('POST', `/chats/${ANNA}/history`, { before: 'B-1' })
  t.equal(unknown.statusCode, 404, 'a message of another chat is no place to go back from')
  t.equal(unknown.json().error.code, 'NOT_FOUND')
})

t.test('a company that chose no history imports none, and one that chose a limit imports no older', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const quiet = uniqueName('salon')
  const limited = uniqueName('salon')
  for (const [companyId, history] of [[quiet, { sync: 'off' }], [limited, { days: 7 }]] as const) {
    const init = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, payload: { history } })
    t.equal(init.statusCode, 200, 'initialize')
  }
  const events = await Promise.all([quiet, limited].map((companyId) => linkCompany(replica, companyId, settings, t)))
  const whatsapp = replica.app.testWhatsApp!
  const chunk: HistoryChunk = {
    chats: [{ jid: pn(ANNA) }],
    contacts: [],
    messages: [message('OLD', pn(ANNA), 30, 'Месяц назад'), message('NEW', pn(ANNA), 3, 'На днях')],
    lids: []
  }
  for (const companyId of [quiet, limited]) {
    whatsapp.history.announce(companyId, [{ syncType: 'recent', chunkOrder: 0, progress: 100, chunk }])
  }
  t.ok(await events[1].waitFor('history_sync', 1, STEP_MS))
  await replica.app.history.settled()
  t.equal(events[0].events.filter((event) => event.type === 'history_sync').length, 0, 'off: nothing imported')
  const rows = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${limited}/messages?chat=${ANNA}` })).json()
  t.same(rows.messages.map((row: { messageId: string }) => row.messageId), ['NEW'], 'days: 7 leaves out the month-old message')
  const quietStatus = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${quiet}/history` })).json()
  t.match(quietStatus.sync, { mode: 'off', state: 'idle' })
})

t.test('a connection that drops in the middle of a sync, and comes back: every chunk told is imported once', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  const events = await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!
  const CHUNKS = 20
  const PER_CHUNK = 400
  const chunks = Array.from({ length: CHUNKS }, (_, index) => {
    const chat = pn(`7911${String(index).padStart(7, '0')}`)
    return {
      syncType: 'recent' as const,
      chunkOrder: index,
      progress: Math.floor((100 * (index + 1)) / CHUNKS),
      chunk: {
        chats: [{ jid: chat }],
        contacts: [],
        lids: [],
        messages: Array.from({ length: PER_CHUNK }, (_, n) => message(`D${index}-${n}`, chat, 1, `text ${n}`))
      }
    }
  })
  t.ok(whatsapp.history.announce(companyId, chunks), 'twenty chunks told at once')
  t.ok(await events.waitFor('history_sync', 1, STEP_MS), 'the import began')
  // The connection drops with chunks still to import (a transient close: the session reconnects under the same lease).
  whatsapp.drop(companyId, 428)
  t.ok(await events.waitFor('connected', 2, STEP_MS), 'reconnected')
  const syncs = () => events.events.filter((event) => event.type === 'history_sync').map((event) => event.data as { messages: number })
  t.ok(await waitFor(() => syncs().length === CHUNKS, STEP_MS), 'an event per chunk, after the reconnect if not before')
  await replica.app.history.settled(companyId)
  t.equal(syncs().length, CHUNKS, 'none twice')
  t.equal(syncs().reduce((sum, sync) => sum + sync.messages, 0), CHUNKS * PER_CHUNK, 'every message once')
  t.match((await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/history` })).json().sync,
    { state: 'done', pending: 0, chunks: CHUNKS, messages: CHUNKS * PER_CHUNK })
})
