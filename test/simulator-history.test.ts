import t from 'tap'
import { downloadMediaMessage, proto, type WAMessage } from '@whiskeysockets/baileys'
import { startSimulator } from './helpers/simulator.ts'
import { linkForHistory, type HistoryConnection } from './helpers/history-link.ts'
import { waitFor } from './helpers/wait.ts'
import { historyFileOf } from '../simulator/history.ts'
import type { ChatInput } from '../simulator/history.ts'

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
      { id: 'G1', fromMe: false, participant: pn(VERA), text: 'morning all', timestamp: now - 4 * DAY },
      { id: 'G2', fromMe: true, text: 'morning', timestamp: now - 4 * DAY + 60 }
    ]
  }
]

/** Waits until the sync type's chunk with progress 100 reached the device's history sets. */
const finished = (connection: HistoryConnection, syncType: proto.HistorySync.HistorySyncType) =>
  waitFor(() => connection.histories.some((set) => set.syncType === syncType && set.progress === 100), STEP_MS)

t.test('a newly linked device gets the recent history: bootstrap, push names, recent; chats, contacts and LID mappings', async (t) => {
  const { simulator, url } = await startSimulator(t)
  simulator.history.of(SALON).add(CHATS)
  const device = await linkForHistory(t, simulator, url, SALON, false)
  t.ok(await finished(device, HistorySyncType.RECENT), 'the RECENT sync reached progress 100')
  const expected = [HistorySyncType.INITIAL_BOOTSTRAP, HistorySyncType.PUSH_NAME, HistorySyncType.RECENT]
  t.same(device.histories.map((set) => set.syncType), expected,
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
  t.equal(byId.get('G1')?.key.participant, pn(VERA), 'a group message its participant')

  const chats = device.histories.flatMap((set) => set.chats)
  t.same(new Set(chats.map((chat) => chat.id)), new Set([pn(ANNA), boris, GROUP]), 'the three chats')
  t.match(chats.find((chat) => chat.id === boris), { pnJid: pn(BORIS), name: 'Boris' }, 'the LID chat names its phone')
  const mappings = device.histories.flatMap((set) => set.lidPnMappings ?? [])
  t.ok(mappings.some((mapping) => mapping.lid === boris && mapping.pn === pn(BORIS)), 'the LID mapping')
  const pushNames = device.histories.find((set) => set.syncType === HistorySyncType.PUSH_NAME)?.contacts
  t.same(pushNames, [{ id: pn(ANNA), notify: 'Anna' }, { id: pn(BORIS), notify: 'Boris' }], 'the contacts\' push names')
  t.ok(await waitFor(() => simulator.history.syncs(SALON)[0]?.chunks.every((chunk) => chunk.acknowledged), STEP_MS),
    'every chunk acknowledged (hist_sync receipts)')
  t.match(simulator.history.syncs(SALON), [{ device: device.device, planned: 3 }])
})

t.test('with syncFullHistory the older messages follow in FULL chunks, and history media downloads', async (t) => {
  const { simulator, url } = await startSimulator(t)
  simulator.history.of(SALON).add(CHATS)
  const device = await linkForHistory(t, simulator, url, SALON, true)
  t.ok(await finished(device, HistorySyncType.FULL), 'the FULL sync reached progress 100')
  const full = device.histories.filter((set) => set.syncType === HistorySyncType.FULL).flatMap((set) => set.messages).map(summary)
  t.same(full.map((message) => message.id), ['A1', 'B1'], 'the messages older than the recent window')
  t.same(new Set(messagesOf(device).map((message) => message.key.id)), new Set(CHATS.flatMap((chat) => chat.messages.map((m) => m.id))),
    'every message the phone held, each once')
  t.equal(messagesOf(device).length, 8)

  for (const id of ['A4', 'B2']) {
    const message = messagesOf(device).find((candidate) => candidate.key.id === id)!
    const file = await downloadMediaMessage(message, 'buffer', {})
    t.same(file, historyFileOf(id), `${id}'s file downloads with downloadMediaMessage`)
  }
})
