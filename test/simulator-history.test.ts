import t from 'tap'
import { downloadMediaMessage, jidNormalizedUser, proto, type WAMessage } from '@whiskeysockets/baileys'
import { startSimulator } from './helpers/simulator.ts'
import { linkForHistory, type HistoryConnection } from './helpers/history-link.ts'
import { waitFor } from './helpers/wait.ts'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import { historyFileOf } from '../simulator/history.ts'
import type { ChatInput } from '../simulator/history.ts'
import { controlApi } from '../simulator/control.ts'

const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const GROUP = '120363000000000001@g.us'
const STEP_MS = 15_000
const DAY = 86_400

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const now = Math.floor(Date.now() / 1000)
const { HistorySyncType } = proto.HistorySync

/** Every message the device's history sets carried, in the order they came. */
const messagesOf = (connection: HistoryConnection) => connection.histories.flatMap((set) => set.messages)
const textOf = (message: WAMessage) =>
  message.message?.conversation ?? message.message?.extendedTextMessage?.text ?? message.message?.imageMessage?.caption ??
  message.message?.documentMessage?.caption
const summary = (message: WAMessage) => ({
  id: message.key.id, chat: message.key.remoteJid, fromMe: message.key.fromMe, text: textOf(message), at: Number(message.messageTimestamp)
})

/** Anna (by phone), Boris (by LID), a group; each with a message older than the recent window. */
const CHATS: ChatInput[] = [
  {
    jid: pn(ANNA),
    name: 'Anna',
    messages: [
      { id: 'A1', fromMe: false, text: 'old hello', timestamp: now - 200 * DAY },
      { id: 'A2', fromMe: true, text: 'hi Anna', timestamp: now - 3 * DAY },
      { id: 'A3', fromMe: false, text: 'look https://example.com', timestamp: now - 2 * DAY },
      { id: 'A4', fromMe: false, media: { kind: 'image' }, text: 'a photo', timestamp: now - DAY }
    ]
  },
  {
    jid: pn(BORIS),
    name: 'Boris',
    lid: true,
    messages: [
      { id: 'B1', fromMe: true, text: 'an old one', timestamp: now - 120 * DAY },
      { id: 'B2', fromMe: false, media: { kind: 'document', fileName: 'price.pdf' }, text: 'prices', timestamp: now - 5 * DAY }
    ]
  },
  {
    jid: GROUP,
    name: 'Staff',
    messages: [
      { id: 'G1', fromMe: false, participant: pn(VERA), pushName: 'Vera', text: 'morning all', timestamp: now - 4 * DAY },
      { id: 'G2', fromMe: true, text: 'morning', timestamp: now - 4 * DAY + 60 }
    ]
  }
]

/**
 * Waits until the phone sent every planned chunk, the device acknowledged each, and `messages` messages
 * reached its history sets. Baileys merges the sets it buffers during its initial sync (keeping the last
 * one's syncType, chunkOrder and progress), so chunk by chunk is read from the simulator's record.
 */
async function synced (simulator: WhatsAppSimulator, connection: HistoryConnection, messages: number): Promise<boolean> {
  const done = () => {
    const sync = simulator.history.syncs(SALON)[0]
    return sync !== undefined && sync.chunks.length === sync.planned && sync.chunks.every((chunk) => chunk.acknowledged)
  }
  return await waitFor(done, STEP_MS) && await waitFor(() => messagesOf(connection).length === messages, STEP_MS)
}

/** The chunks sent to the account's first device, as `<syncType> #<chunkOrder> <progress>%`. */
const chunksSent = (simulator: WhatsAppSimulator) =>
  simulator.history.syncs(SALON)[0].chunks.map((chunk) => `${chunk.syncType} #${chunk.chunkOrder} ${chunk.progress}%`)

t.test('a newly linked device gets the recent history: bootstrap, push names, recent; chats, contacts and LID mappings', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const app = controlApi(simulator)
  t.teardown(() => app.close())
  const posted = await app.inject({ method: 'POST', url: `/accounts/${SALON}/history`, payload: { chats: CHATS } })
  t.same(posted.json(), { success: true, chats: 3, messages: 8 }, 'the phone holds the chats the control API gave it')
  const notAJid = { chats: [{ jid: 'nobody', messages: [] }] }
  const refused = await app.inject({ method: 'POST', url: `/accounts/${SALON}/history`, payload: notAJid })
  t.equal(refused.statusCode, 400, 'a chat that is not a JID is refused')
  const device = await linkForHistory(t, simulator, url, SALON, false)
  t.ok(await synced(simulator, device, 6), 'every chunk acknowledged, the recent messages received')
  t.same(chunksSent(simulator), ['INITIAL_BOOTSTRAP #0 100%', 'PUSH_NAME #0 100%', 'RECENT #0 100%'],
    'bootstrap, push names, then recent (no FULL: the device did not ask for it)')

  const received = messagesOf(device).map(summary)
  const boris = `${simulator.account(BORIS).lid}@lid`
  t.same(received, [
    { id: 'A4', chat: pn(ANNA), fromMe: false, text: 'a photo', at: now - DAY },
    { id: 'A3', chat: pn(ANNA), fromMe: false, text: 'look https://example.com', at: now - 2 * DAY },
    { id: 'A2', chat: pn(ANNA), fromMe: true, text: 'hi Anna', at: now - 3 * DAY },
    { id: 'G2', chat: GROUP, fromMe: true, text: 'morning', at: now - 4 * DAY + 60 },
    { id: 'G1', chat: GROUP, fromMe: false, text: 'morning all', at: now - 4 * DAY },
    { id: 'B2', chat: boris, fromMe: false, text: 'prices', at: now - 5 * DAY }
  ], 'the recent messages, each chat newest first, the chats by their last message; none older than 90 days')
  const byId = new Map(messagesOf(device).map((message) => [message.key.id, message]))
  t.ok(byId.get('A3')?.message?.extendedTextMessage, 'a text with a link is an extendedTextMessage')
  t.equal(byId.get('A4')?.pushName, 'Anna', 'a received message carries its sender\'s push name')
  t.equal(byId.get('A2')?.status, proto.WebMessageInfo.Status.READ, 'a sent one its status')
  t.match(byId.get('G1'), { key: { participant: pn(VERA) }, pushName: 'Vera' }, 'a group message its participant and name')

  const chats = device.histories.flatMap((set) => set.chats)
  t.same(new Set(chats.map((chat) => chat.id)), new Set([pn(ANNA), boris, GROUP]), 'the three chats')
  t.match(chats.find((chat) => chat.id === boris), { pnJid: pn(BORIS), name: 'Boris' }, 'the LID chat names its phone')
  // Baileys stores the mappings of every chunk (a merged set leaves them out of the event).
  const mapped = await device.socket.signalRepository.lidMapping.getPNForLID(boris)
  t.equal(jidNormalizedUser(mapped ?? ''), pn(BORIS), 'the LID mapping, stored by Baileys')
  const contacts = device.histories.flatMap((set) => set.contacts)
  t.ok(contacts.some((contact) => contact.id === pn(ANNA) && contact.notify === 'Anna'), 'Anna\'s push name')
  t.ok(contacts.some((contact) => contact.id === pn(BORIS) && contact.notify === 'Boris'), 'Boris\'s push name')
  t.ok(contacts.some((contact) => contact.id === pn(VERA) && contact.notify === 'Vera'), 'the group participant Vera\'s push name')
  t.match(simulator.history.syncs(SALON), [{ device: device.device, planned: 3 }])
  // Baileys counts a finished initial sync (its app-state sync answered) and skips the wait at its next login.
  t.ok(await waitFor(() => device.creds.accountSyncCounter === 1, STEP_MS), 'Baileys finished its initial sync')
})

t.test('with syncFullHistory the older messages follow in FULL chunks, and history media downloads', async (t) => {
  const { simulator, url } = await startSimulator(t)
  simulator.history.of(SALON).add(CHATS)
  const device = await linkForHistory(t, simulator, url, SALON, true)
  t.ok(await synced(simulator, device, 8), 'every chunk acknowledged, every message received')
  t.same(chunksSent(simulator), ['INITIAL_BOOTSTRAP #0 100%', 'PUSH_NAME #0 100%', 'RECENT #0 100%', 'FULL #0 100%'])
  t.equal(simulator.history.syncs(SALON)[0].chunks[3].messages, 2, 'the FULL chunk: the two messages older than the recent window')
  t.same(new Set(messagesOf(device).map((message) => message.key.id)), new Set(CHATS.flatMap((chat) => chat.messages.map((m) => m.id))),
    'every message the phone held, each once')
  t.equal(messagesOf(device).length, 8)

  for (const id of ['A4', 'B2']) {
    const message = messagesOf(device).find((candidate) => candidate.key.id === id)!
    const file = await downloadMediaMessage(message, 'buffer', {})
    t.same(file, historyFileOf(id), `${id}'s file downloads with downloadMediaMessage`)
  }
})

t.test('the control API generates history; chunks hold at most messagesPerChunk, progress rises to 100, nothing twice', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const app = controlApi(simulator)
  t.teardown(() => app.close())
  const posted = await app.inject({
    method: 'POST',
    url: `/accounts/${SALON}/history`,
    payload: { generate: { chats: 40, messagesPerChat: 30, days: 200, lidShare: 0.25, mediaShare: 0.1 }, messagesPerChunk: 100 }
  })
  t.same(posted.json(), { success: true, chats: 40, messages: 1200 })
  const device = await linkForHistory(t, simulator, url, SALON, true)
  t.ok(await synced(simulator, device, 1200), 'every chunk acknowledged, every message received')

  type Chunk = { syncType: string, chunkOrder: number, progress: number, messages: number }
  const report = (await app.inject({ method: 'GET', url: `/accounts/${SALON}/history` })).json() as {
    chats: number, messages: number, syncs: { device: string, chunks: Chunk[] }[]
  }
  t.match(report, { success: true, chats: 40, messages: 1200, syncs: [{ device: device.device }] })
  const chunks = report.syncs[0].chunks
  t.same(chunks.slice(0, 2).map((chunk) => chunk.syncType), ['INITIAL_BOOTSTRAP', 'PUSH_NAME'])
  for (const syncType of ['RECENT', 'FULL']) {
    const ofType = chunks.filter((chunk) => chunk.syncType === syncType)
    t.ok(ofType.length > 1, `several ${syncType} chunks (${ofType.length})`)
    t.same(ofType.map((chunk) => chunk.chunkOrder), ofType.map((_, index) => index), 'in order, counted from 0')
    const progress = ofType.map((chunk) => chunk.progress)
    t.ok(progress.every((value, index) => index === 0 || value > progress[index - 1]), `progress rises: ${progress.join(' ')}`)
    t.equal(progress.at(-1), 100)
  }
  t.same(chunks.map((chunk) => chunk.syncType).filter((type, index, all) => type !== all[index - 1]),
    ['INITIAL_BOOTSTRAP', 'PUSH_NAME', 'RECENT', 'FULL'], 'RECENT before FULL')
  t.ok(chunks.every((chunk) => chunk.messages <= 100), 'no chunk holds more than 100 messages')
  t.equal(chunks.reduce((sum, chunk) => sum + chunk.messages, 0), 1200, 'each message in one chunk')

  const ids = messagesOf(device).map((message) => message.key.id!)
  t.equal(new Set(ids).size, 1200, 'every message, each once')
  t.ok(ids.includes('H0-0') && ids.includes('H39-29'), 'with the generated ids')
  // Each chat's messages arrive newest first across the chunks.
  const byChat = Map.groupBy(messagesOf(device), (message) => message.key.remoteJid)
  t.equal(byChat.size, 40)
  const newestFirst = (messages: WAMessage[]) => messages.every((message, index) =>
    index === 0 || Number(message.messageTimestamp) <= Number(messages[index - 1].messageTimestamp))
  t.ok([...byChat.values()].every(newestFirst), 'a chat\'s messages never out of order')
  t.equal([...byChat.keys()].filter((jid) => jid?.endsWith('@lid')).length, 10, 'a quarter of the chats by LID')
  t.equal(messagesOf(device).filter((message) => message.message?.imageMessage ?? message.message?.documentMessage).length, 120,
    'a tenth of them media')
})

t.test('a device that drops after the first chunk gets the rest at its next login, not the acknowledged one', async (t) => {
  const { simulator, url } = await startSimulator(t, { historyMessagesPerChunk: 50 })
  simulator.history.of(SALON).generate({ chats: 30, messagesPerChat: 10 }, now)
  let dropped = false
  // The connection breaks the moment the bootstrap is acknowledged, before the phone sends the next chunk.
  simulator.history.acknowledgedListeners.add((device, chunk) => {
    if (chunk.syncType !== 'INITIAL_BOOTSTRAP') return
    dropped = simulator.drop(device)
  })
  const first = await linkForHistory(t, simulator, url, SALON, false, true)
  t.ok(await waitFor(() => dropped, STEP_MS), 'dropped after the bootstrap')
  t.same(chunksSent(simulator), ['INITIAL_BOOTSTRAP #0 100%'], 'nothing else sent meanwhile')
  first.socket.end(undefined)

  const second = await first.connect()
  const bootstrapMessages = simulator.history.syncs(SALON)[0].chunks[0].messages
  t.ok(await synced(simulator, second, 300 - bootstrapMessages), 'the rest of the messages came on the next connection')
  const sent = simulator.history.syncs(SALON)[0].chunks
  t.equal(sent.filter((chunk) => chunk.syncType === 'INITIAL_BOOTSTRAP').length, 1, 'the bootstrap was not sent again')
  t.same(sent.slice(1, 3).map((chunk) => chunk.syncType), ['PUSH_NAME', 'RECENT'], 'the sync went on where it stopped')
})

t.test('a chunk the device did not acknowledge before its connection broke comes again at its next login', async (t) => {
  const { simulator, url } = await startSimulator(t, { historyMessagesPerChunk: 50 })
  simulator.history.of(SALON).generate({ chats: 30, messagesPerChat: 10 }, now)
  let lost: string | undefined
  // The connection breaks right as the first RECENT chunk goes out: its receipt never reaches WhatsApp.
  simulator.history.sentListeners.add((device, chunk) => {
    if (chunk.syncType !== 'RECENT' || lost) return
    lost = chunk.messageId
    simulator.drop(device)
  })
  const first = await linkForHistory(t, simulator, url, SALON, false, true)
  t.ok(await waitFor(() => lost !== undefined, STEP_MS), 'dropped as RECENT #0 went out')
  first.socket.end(undefined)
  t.notOk(simulator.history.syncs(SALON)[0].chunks.find((chunk) => chunk.messageId === lost)?.acknowledged, 'not acknowledged')

  const second = await first.connect()
  const bootstrapMessages = simulator.history.syncs(SALON)[0].chunks[0].messages
  t.ok(await synced(simulator, second, 300 - bootstrapMessages), 'RECENT #0 and the rest came on the next connection')
  t.ok(simulator.history.syncs(SALON)[0].chunks.find((chunk) => chunk.messageId === lost)?.acknowledged, 'RECENT #0 acknowledged now')
  t.equal(simulator.history.syncs(SALON)[0].chunks.filter((chunk) => chunk.syncType === 'RECENT' && chunk.chunkOrder === 0).length, 1,
    'the phone made it once: the mailbox delivered it again')
})

t.test('on demand the phone sends the chat\'s older messages, then an empty chunk when there are none', async (t) => {
  const { simulator, url } = await startSimulator(t)
  simulator.history.of(SALON).add(CHATS)
  const device = await linkForHistory(t, simulator, url, SALON, false)
  t.ok(await synced(simulator, device, 6))
  const onDemand = () => device.histories.filter((set) => set.syncType === HistorySyncType.ON_DEMAND)
  const oldest = messagesOf(device).find((message) => message.key.id === 'A2')!
  const requestId = await device.socket.fetchMessageHistory(10, oldest.key, Number(oldest.messageTimestamp) * 1000)
  t.ok(await waitFor(() => onDemand().length === 1, STEP_MS), 'an ON_DEMAND set')
  t.equal(onDemand()[0].peerDataRequestSessionId, requestId, 'it names the request')
  t.same(onDemand()[0].messages.map(summary), [{ id: 'A1', chat: pn(ANNA), fromMe: false, text: 'old hello', at: now - 200 * DAY }],
    'the older message')

  const first = onDemand()[0].messages[0]
  await device.socket.fetchMessageHistory(10, first.key, Number(first.messageTimestamp) * 1000)
  t.ok(await waitFor(() => onDemand().length === 2, STEP_MS))
  t.same(onDemand()[1].messages, [], 'nothing older')
  t.match(simulator.history.syncs(SALON)[0].chunks.at(-1), { syncType: 'ON_DEMAND', conversations: 1, messages: 0 },
    'the conversation, without messages')
})

t.test('100,000 messages in 2,000 chats reach a device in chunks of 5,000', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const app = controlApi(simulator)
  t.teardown(() => app.close())
  const started = Date.now()
  const posted = await app.inject({
    method: 'POST',
    url: `/accounts/${SALON}/history`,
    payload: { generate: { chats: 2_000, messagesPerChat: 50, days: 365, lidShare: 0.3, mediaShare: 0.02 }, messagesPerChunk: 5_000 }
  })
  t.same(posted.json(), { success: true, chats: 2_000, messages: 100_000 })
  const device = await linkForHistory(t, simulator, url, SALON, true)
  t.ok(await waitFor(() => messagesOf(device).length === 100_000, 60_000), 'every message received')
  const chunks = simulator.history.syncs(SALON)[0].chunks
  t.ok(chunks.every((chunk) => chunk.messages <= 5_000), `${chunks.length} chunks of at most 5,000 messages`)
  t.equal(new Set(messagesOf(device).map((message) => message.key.id)).size, 100_000, 'each once')
  t.comment(`generated, synced and processed in ${Date.now() - started} ms`)
})
