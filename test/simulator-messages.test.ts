import t from 'tap'
import { lidOf } from '../simulator/accounts.ts'
import { initAuthCreds } from '@whiskeysockets/baileys'
import type { InboundMessage, Receipt } from '../plugins/session-pool/socket-port.ts'
import { memoryKeys, startSimulator } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

const SALON = '79001234567'
const CLIENT = '79111111111'
const jid = (phone: string) => `${phone}@s.whatsapp.net`
const STEP_MS = 10_000

t.test('what a linked device sends reaches the contact decrypted, exactly, with delivery and read receipts', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket, device } = await link(SALON)
  const receipts: Receipt[] = []
  socket.on('receipts', (batch) => receipts.push(...batch))

  const text = 'Здравствуйте! Запись на 15:00 подтверждена ✅\nАдрес: ул. Ленина, 1'
  const sent = await socket.sendText(jid(CLIENT), text)
  t.ok(await waitFor(() => simulator.received(CLIENT).length === 1, STEP_MS), 'the contact received one message')
  t.match(simulator.received(CLIENT)[0], { id: sent.messageId, from: device, kind: 'text', text },
    'exactly that text, under the id Baileys returned')

  const reaction = await socket.react(jid(CLIENT), { id: 'INBOUND-1', fromMe: false }, '❤️')
  const removal = await socket.react(jid(CLIENT), { id: 'INBOUND-1', fromMe: false }, '')
  t.ok(await waitFor(() => simulator.received(CLIENT).length === 3, STEP_MS))
  t.match(simulator.received(CLIENT)[1], {
    id: reaction.messageId, kind: 'reaction', reaction: { messageId: 'INBOUND-1', emoji: '❤️', fromMe: false }
  }, 'the reaction, on the message it names')
  t.match(simulator.received(CLIENT)[2], {
    id: removal.messageId, kind: 'reaction', reaction: { messageId: 'INBOUND-1', emoji: '' }
  }, 'and its removal')

  const others = ['79220000001', '79220000002', '79220000003', '79220000004']
  const parallel = await Promise.all(others.map((phone) => socket.sendText(jid(phone), `только для ${phone}`)))
  t.ok(await waitFor(() => others.every((phone) => simulator.received(phone).length === 1), STEP_MS),
    'parallel sends to four contacts all arrived')
  others.forEach((phone, index) => t.match(simulator.received(phone), [{ id: parallel[index].messageId, text: `только для ${phone}` }],
    `${phone} got only its own message`))
  t.equal(simulator.received(CLIENT).length, 3, 'and nothing more went to the first contact')

  t.ok(await waitFor(() => receipts.some((receipt) => receipt.id === sent.messageId && receipt.status === 'delivered'), STEP_MS),
    'delivery receipt from the contact')
  t.equal(simulator.read(CLIENT, SALON, [sent.messageId]), 1, 'the contact reads it on one linked device')
  t.ok(await waitFor(() => receipts.some((receipt) => receipt.id === sent.messageId && receipt.status === 'read'), STEP_MS), 'read receipt')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no decryption or protocol error')
  await socket.end()
})

t.test('a contact writes back: plaintext before any session, Signal-encrypted once the device opened one; ' +
  'the device reports reading it', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const inbound: InboundMessage[] = []
  socket.on('messages', (batch) => inbound.push(...batch))

  const first = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Добрый день, можно записаться?', pushName: 'Анна' })
  t.match(first, { devices: 1, encrypted: 0 }, 'no session yet: plaintext')
  t.ok(await waitFor(() => inbound.length === 1, STEP_MS))
  t.match(inbound[0], { id: first.id, from: jid(CLIENT), text: 'Добрый день, можно записаться?', pushName: 'Анна' })

  await socket.sendText(jid(CLIENT), 'Конечно! На какое время?')
  t.ok(await waitFor(() => simulator.received(CLIENT).length === 1, STEP_MS))
  const second = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Спасибо большое!' })
  t.match(second, { devices: 1, encrypted: 1 }, 'the session the device opened carries the reply encrypted')
  t.ok(await waitFor(() => inbound.length === 2, STEP_MS))
  t.match(inbound[1], { id: second.id, from: jid(CLIENT), text: 'Спасибо большое!' }, 'decrypted by Baileys')

  await socket.markRead(jid(CLIENT), [second.id])
  const receipts = () => simulator.account(CLIENT).receipts
  t.ok(await waitFor(() => receipts().some((receipt) => receipt.messageId === second.id && receipt.type === 'read'), STEP_MS),
    'read receipt reached the contact')
  t.ok(receipts().some((receipt) => receipt.messageId === first.id && receipt.type === 'delivered'), 'and a delivery receipt for the first')
  t.match(await simulator.deliver({ from: CLIENT, to: '79009999999', text: 'никого' }), { devices: 0, queued: 0 },
    'an account with no linked device receives nothing')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
  await socket.end()
})

t.test('messages to a linked device that is offline are kept and handed over when it logs in again', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const linked = await link(SALON)
  await linked.socket.end()
  t.ok(await waitFor(() => simulator.liveDevices().length === 0, STEP_MS), 'the device is offline')
  const kept = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Вы тут?' })
  t.match(kept, { devices: 0, queued: 1 }, 'kept for the offline device')
  const again = connect(linked.creds, linked.keys)
  const inbound: InboundMessage[] = []
  again.socket.on('messages', (batch) => inbound.push(...batch))
  t.ok(await waitFor(() => inbound.length === 1, STEP_MS), 'handed over at login')
  t.match(inbound[0], { id: kept.id, text: 'Вы тут?', from: jid(CLIENT) })
  t.ok(await waitFor(() => again.updates.some((update) => update.connection === 'open'), STEP_MS))
  await again.socket.end()
})

t.test('a message the device did not acknowledge before its connection broke comes again at the next login', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const linked = await link(SALON)
  const sent = simulator.deliver({ from: CLIENT, to: SALON, text: 'Перезвоните мне' })
  t.ok(simulator.drop(linked.device), 'the connection breaks at once')
  const { id } = await sent
  const again = connect(linked.creds, linked.keys)
  const inbound: InboundMessage[] = []
  again.socket.on('messages', (batch) => inbound.push(...batch))
  t.ok(await waitFor(() => inbound.some((message) => message.id === id), STEP_MS), 'delivered after the reconnect')
  t.ok(await waitFor(() => again.updates.some((update) => update.connection === 'open'), STEP_MS))
  await again.socket.end()
})

t.test('a message the device acknowledged with its delivery receipt is not handed over again at the next login; ' +
  'one it never got is', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const linked = await link(SALON)
  const live: InboundMessage[] = []
  linked.socket.on('messages', (batch) => live.push(...batch))
  const first = await simulator.deliver({ from: CLIENT, to: SALON, text: 'Запишите меня на пятницу' })
  t.ok(await waitFor(() => live.some((message) => message.id === first.id), STEP_MS), 'the live device got it')
  // Baileys answers a message it decrypted with a receipt, not an <ack> (messages-recv.js handleMessage).
  const receipts = () => simulator.account(CLIENT).receipts
  const receipted = () => receipts().some((receipt) => receipt.messageId === first.id && receipt.type === 'delivered')
  t.ok(await waitFor(receipted, STEP_MS), 'and sent its delivery receipt')
  await linked.socket.end()
  t.ok(await waitFor(() => simulator.liveDevices().length === 0, STEP_MS), 'the device is offline')
  const second = await simulator.deliver({ from: CLIENT, to: SALON, text: 'И ещё вопрос' })
  t.match(second, { devices: 0, queued: 1 })

  const again = connect(linked.creds, linked.keys)
  const inbound: InboundMessage[] = []
  again.socket.on('messages', (batch) => inbound.push(...batch))
  t.ok(await waitFor(() => inbound.some((message) => message.id === second.id), STEP_MS), 'the message it never got is handed over')
  t.ok(await waitFor(() => again.updates.some((update) => update.connection === 'open'), STEP_MS))
  // Kept messages go out in order, the older first: the first message would have come before the second.
  t.same(inbound.map((message) => message.id), [second.id], 'the receipted one is not delivered again')
  t.ok(simulator.log.some((entry) => entry.detail === `1 kept messages handed to ${linked.device}`), 'one message was kept, not two')
  await again.socket.end()
})

t.test('linking by pairing code: a wrong code is refused, the right one links, and the device logs in', async (t) => {
  const { simulator, connect } = await startSimulator(t)
  const creds = initAuthCreds()
  const keys = memoryKeys()
  const linking = connect(creds, keys)
  t.ok(await waitFor(() => linking.updates.some((update) => update.qr), STEP_MS), 'waiting for a link')
  t.match(await simulator.enterPairingCode(SALON, 'ABCD1234'), { linked: false, reason: 'no-request' }, 'no code was asked for yet')

  const code = await linking.socket.requestPairingCode(SALON)
  t.match(code, /^[1-9A-HJ-NP-TV-Z]{8}$/, `an 8-character code (${code})`)
  t.ok(await waitFor(() => simulator.log.some((entry) => entry.detail === `code requested for ${SALON}`), STEP_MS))
  const wrong = code === 'ZZZZZZZZ' ? 'YYYYYYYY' : 'ZZZZZZZZ'
  t.match(await simulator.enterPairingCode(SALON, wrong), { linked: false, reason: 'wrong-code' }, 'a wrong code does not link')
  const linked = await simulator.enterPairingCode(SALON, code.toLowerCase())
  t.match(linked, { linked: true, device: new RegExp(`^${SALON}:\\d+$`) },
    'the right code links (case-insensitive, as the phone accepts it)')
  t.ok(await waitFor(() => linking.updates.some((update) => update.closeCode === 515), STEP_MS), 'restart requested')
  t.equal(creds.registered, true, 'the client marked itself registered')

  const live = connect(creds, keys)
  t.ok(await waitFor(() => live.updates.some((update) => update.connection === 'open'), STEP_MS), 'the code-linked device logs in')
  t.same(simulator.liveDevices(), [linked.linked ? linked.device : ''])
  await live.socket.end()
})

t.test('creds that asked for a code but never finished are refused at login (401), as WhatsApp refuses them', async (t) => {
  const { connect } = await startSimulator(t)
  const creds = initAuthCreds()
  const linking = connect(creds)
  t.ok(await waitFor(() => linking.updates.some((update) => update.qr), STEP_MS))
  await linking.socket.requestPairingCode(SALON)
  t.ok(creds.me, 'requestPairingCode set creds.me')
  await linking.socket.end()
  const again = connect(creds)
  t.ok(await waitFor(() => again.updates.some((update) => update.connection === 'close'), STEP_MS))
  t.equal(again.updates.find((update) => update.connection === 'close')!.closeCode, 401)
})

t.test('onWhatsApp answers from the simulator\'s directory, with the LID of a number on WhatsApp', async (t) => {
  const { link } = await startSimulator(t, { notOnWhatsApp: ['79990000000'] })
  const { socket } = await link(SALON)
  t.same(await socket.onWhatsApp([jid(CLIENT), jid('79990000000')]), [
    { jid: jid(CLIENT), exists: true, lid: `${lidOf(CLIENT)}@lid` }, { jid: jid('79990000000'), exists: false }
  ])
  await socket.end()
})
