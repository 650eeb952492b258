import t from 'tap'
import { Readable } from 'node:stream'
import { lidOf } from '../simulator/accounts.ts'
import type { InboundMessage, WaSocket } from '../plugins/session-pool/socket-port.ts'
import type { InboundStatus } from '../plugins/session-pool/status-port.ts'
import { startSimulator } from './helpers/simulator.ts'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import { jpeg, sha256Hex } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

// The gateway's own Baileys adapter (baileysFactory, the status port) against the simulator's status@broadcast.
const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const STEP_MS = 10_000
/** How long a socket sends nothing before it counts as settled. */
const QUIET_MS = 300

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const until = (condition: () => boolean) => waitFor(condition, STEP_MS)
/**
 * Waits until the socket has sent nothing for a while (Baileys sends its login queries by itself, a
 * pre-key count and `passive` among them, some time after the connection opens), then asks one query:
 * answered after every one before it (the simulator answers in order). A socket ended before an answer
 * leaves Baileys' 60 s timer for it armed, which holds the test's process open (a run under load did).
 */
const settled = async (socket: WaSocket, simulator: WhatsAppSimulator) => {
  const sent = () => simulator.log.filter((entry) => entry.kind === 'recv').length
  let before = -1
  await waitFor(() => {
    const now = sent()
    const quiet = now === before
    before = now
    return quiet
  }, STEP_MS, QUIET_MS)
  await socket.onWhatsApp([pn(VERA)])
}

t.test('batches under one id reach every listed device and the number\'s own devices; contacts\' posts are statuses', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket, device } = await link(SALON)
  // The salon's number has another device besides its phone (WhatsApp Web), and Anna has two.
  const salonCompanion = simulator.account(SALON).addCompanion()
  const annaCompanion = simulator.account(ANNA).addCompanion()
  const statuses: InboundStatus[] = []
  const messages: InboundMessage[] = []
  socket.on('statuses', (batch) => statuses.push(...batch))
  socket.on('messages', (batch) => messages.push(...batch))

  // A text post in two batches: the own number in the first, as the status plugin does.
  const posted = await socket.status.post({ text: 'Скидка 20% до пятницы', backgroundArgb: 0xff1e8a5c, font: 2 },
    [[pn(SALON), pn(ANNA)], [pn(BORIS)]])
  t.equal(posted.batches, 2)
  t.match(posted.messageId, /^[0-9A-F]{10,}$/)
  t.ok(await until(() => simulator.status.posts(SALON).length === 1 && simulator.status.posts(SALON)[0].batches === 2))
  const [post] = simulator.status.posts(SALON)
  t.equal(post.id, posted.messageId, 'both batches under the id the port answered')
  t.equal(post.from, device, 'posted by the linked device')
  t.same(post.failures, [], 'every listed device opened it')
  t.same(post.recipients, { [ANNA]: [0, annaCompanion], [BORIS]: [0] }, 'each contact\'s every device')
  t.same(post.ownDevices.sort(), [0, salonCompanion], 'the number\'s phone and its other device see it too')
  t.equal(post.skdms, 5, 'every listed device got the sender key with the post')
  t.match(post.content, { kind: 'text', text: 'Скидка 20% до пятницы', backgroundArgb: 0xff1e8a5c, font: 2 })

  // A second post gives every device the key again: status posts keep no sender-key memory.
  const photo = await jpeg()
  const second = await socket.status.post({
    file: { kind: 'image', stream: Readable.from([photo]), mimetype: 'image/jpeg', caption: 'Новый зал' }
  }, [[pn(SALON), pn(ANNA)]])
  t.equal(second.batches, 1)
  t.ok(await until(() => simulator.status.posts(SALON).length === 2))
  const imagePost = simulator.status.posts(SALON)[1]
  t.equal(imagePost.skdms, 4, 'the salon\'s two devices and Anna\'s two')
  t.same(imagePost.failures, [])
  t.match(imagePost.content, { kind: 'media', media: { kind: 'image', caption: 'Новый зал', sha256: sha256Hex(photo) } },
    'Anna\'s phone downloaded and opened the photo')

  // Contacts post: a text with its colour and font, then a photo, as statuses and never as messages.
  const text = await simulator.status.post({
    from: VERA, to: [SALON], text: 'Открылись!', backgroundArgb: 0xff336699, font: 1, pushName: 'Вера'
  })
  t.equal(text.devices, 1, 'the linked device got it')
  t.ok(await until(() => statuses.length === 1))
  const expected = { id: text.id, poster: `${lidOf(VERA)}@lid`, posterAlt: pn(VERA), pushName: 'Вера', text: 'Открылись!' }
  t.match(statuses[0], { ...expected, backgroundArgb: 0xff336699, font: 1 })
  t.notOk(statuses[0].media)
  const image = await simulator.status.post({
    from: VERA, to: [SALON], text: 'Наш зал', media: { kind: 'image', data: photo, mimetype: 'image/jpeg' }
  })
  t.ok(await until(() => statuses.length === 2))
  t.match(statuses[1], { id: image.id, text: 'Наш зал', media: { kind: 'image', mimetype: 'image/jpeg', sha256: sha256Hex(photo) } })
  const chunks: Buffer[] = []
  for await (const chunk of await socket.downloadMedia(image.id)) chunks.push(chunk as Buffer)
  t.equal(sha256Hex(Buffer.concat(chunks)), sha256Hex(photo), 'the posted photo downloads like a message\'s')
  t.ok(await until(() => simulator.account(VERA).receipts.some((receipt) => receipt.messageId === image.id)),
    'the device acknowledged the post to Vera')
  t.same(messages, [], 'no status became an inbound message')
  await settled(socket, simulator)
})

t.test('a post made while the device was offline comes at its next login, marked offline', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const { socket, creds, keys } = await link(SALON)
  await settled(socket, simulator)
  await socket.end()
  const posted = await simulator.status.post({ from: VERA, to: [SALON], text: 'Пока вас не было' })
  t.same({ devices: posted.devices, queued: posted.queued }, { devices: 0, queued: 1 }, 'kept for the device')
  const again = connect(creds, keys)
  const statuses: InboundStatus[] = []
  const messages: InboundMessage[] = []
  again.socket.on('statuses', (batch) => statuses.push(...batch))
  again.socket.on('messages', (batch) => messages.push(...batch))
  t.ok(await until(() => statuses.length === 1), 'handed over at login')
  t.match(statuses[0], { id: posted.id, text: 'Пока вас не было', posterAlt: pn(VERA), offline: true })
  t.same(messages, [], 'and no inbound message')
  await settled(again.socket, simulator)
})
