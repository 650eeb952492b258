import t from 'tap'
import { Readable } from 'node:stream'
import { MEDIA_KINDS } from '../contracts/index.ts'
import type { InboundMessage } from '../plugins/session-pool/socket-port.ts'
import { decryptMedia, encryptMedia } from '../simulator/media.ts'
import { filesOfEveryKind, sha256Hex } from './helpers/media-files.ts'
import { startSimulator } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

const COMPANY_PHONE = '79001230001'
const CONTACT = '79111230002'

const read = async (stream: Readable) => {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

t.test('WhatsApp media encryption: what one side seals the other opens, and any change is caught', async (t) => {
  const plain = Buffer.from('a salon price list')
  const sealed = encryptMedia(plain, 'document')
  t.equal(sealed.body.length % 16, 10, 'AES-CBC blocks and the 10-byte MAC')
  t.same(decryptMedia(sealed.body, 'document', sealed), plain)
  const flipped = Buffer.from(sealed.body)
  flipped[flipped.length - 1] ^= 1
  t.throws(() => decryptMedia(flipped, 'document', { mediaKey: sealed.mediaKey }), /MAC/)
  t.throws(() => decryptMedia(sealed.body, 'document', { ...sealed, fileSha256: Buffer.alloc(32) }), /fileSha256/)
  t.throws(() => decryptMedia(sealed.body, 'image', { mediaKey: sealed.mediaKey }), /MAC/, 'the keys differ per kind')
})

t.test('every kind, both ways, byte-exact, through real Baileys and the simulator\'s media server', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const device = await link(COMPANY_PHONE)
  const files = await filesOfEveryKind()
  const jid = `${CONTACT}@s.whatsapp.net`

  for (const kind of MEDIA_KINDS) {
    const file = files[kind]
    await device.socket.sendMedia(jid, {
      kind,
      stream: Readable.from([file.data]),
      mimetype: file.mimetype,
      caption: kind === 'image' ? 'Ваш мастер' : undefined,
      fileName: 'fileName' in file ? file.fileName : undefined,
      ptt: kind === 'audio'
    })
  }
  t.ok(await waitFor(() => simulator.received(CONTACT).length === MEDIA_KINDS.length, 10_000), 'the contact got one message per kind')
  for (const [index, kind] of MEDIA_KINDS.entries()) {
    const got = simulator.received(CONTACT)[index]
    const file = files[kind]
    t.match(
      got,
      { kind: 'media', media: { kind, mimetype: file.mimetype, size: file.data.length, sha256: sha256Hex(file.data) } },
      `${kind}: uploaded encrypted, MAC and hashes checked, decrypted to the same bytes`
    )
    t.notOk(got.media?.error, `${kind}: no error`)
  }
  t.match(simulator.received(CONTACT)[0].media, { caption: 'Ваш мастер' })
  t.match(simulator.received(CONTACT)[2].media, { ptt: true })
  t.match(simulator.received(CONTACT)[3].media, { fileName: 'booking.pdf' })

  // The contact sends one of each kind: the device downloads and decrypts them.
  const inbound: InboundMessage[] = []
  device.socket.on('messages', (messages) => inbound.push(...messages))
  for (const kind of MEDIA_KINDS) {
    const file = files[kind]
    await simulator.deliver({
      from: CONTACT,
      to: COMPANY_PHONE,
      text: kind === 'video' ? 'как доехать' : undefined,
      media: {
        kind,
        data: file.data,
        mimetype: file.mimetype,
        ...('fileName' in file ? { fileName: file.fileName } : {}),
        ptt: kind === 'audio',
        seconds: 2
      }
    })
  }
  t.ok(await waitFor(() => inbound.length === MEDIA_KINDS.length, 10_000), 'the device got one message per kind')
  for (const message of inbound) {
    const kind = message.media!.kind
    t.match(message.media, { kind, mimetype: files[kind].mimetype, sha256: sha256Hex(files[kind].data) }, `${kind}: described`)
    const bytes = await read(await device.socket.downloadMedia(message.id))
    t.equal(sha256Hex(bytes), sha256Hex(files[kind].data), `${kind}: downloaded byte-exact`)
  }
  t.match(inbound.find((message) => message.media?.kind === 'video')?.media, { caption: 'как доехать', seconds: 2 })
  t.match(inbound.find((message) => message.media?.kind === 'audio')?.media, { ptt: true })
})

t.test('a file WhatsApp dropped (410): the phone uploads it again and the download succeeds', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const device = await link(COMPANY_PHONE)
  const inbound: InboundMessage[] = []
  device.socket.on('messages', (messages) => inbound.push(...messages))
  const photo = (await filesOfEveryKind()).image
  const { id } = await simulator.deliver({
    from: CONTACT,
    to: COMPANY_PHONE,
    media: { kind: 'image', data: photo.data, mimetype: photo.mimetype }
  })
  t.ok(await waitFor(() => inbound.length === 1, 10_000))
  t.ok(simulator.expireMedia(id), 'the media server drops the file')
  const bytes = await read(await device.socket.downloadMedia(id))
  t.equal(sha256Hex(bytes), sha256Hex(photo.data), 'downloaded after the re-upload')
  t.ok(
    simulator.log.some((entry) => entry.kind === 'media' && entry.detail.startsWith(`re-upload of ${id} for`)),
    'the phone uploaded it again'
  )
})

t.test('a phone that never uploads again: the download fails with a clear error, in bounded time', async (t) => {
  const { simulator, link } = await startSimulator(t, { reuploadTimeoutMs: 1_000 })
  const device = await link(COMPANY_PHONE)
  const inbound: InboundMessage[] = []
  device.socket.on('messages', (messages) => inbound.push(...messages))
  const { data, mimetype } = (await filesOfEveryKind()).document
  const { id } = await simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, media: { kind: 'document', data, mimetype } })
  t.ok(await waitFor(() => inbound.length === 1, 10_000))
  simulator.expireMedia(id)
  simulator.account(COMPANY_PHONE).reuploadsMedia = false
  const started = performance.now()
  await t.rejects(device.socket.downloadMedia(id), /did not upload it again within 1000 ms/)
  t.ok(performance.now() - started < 5_000, 'bounded by the re-upload timeout')

  // Only messages this connection received can be fetched.
  await t.rejects(device.socket.downloadMedia('NOT-A-RECENT-ID'), /not a recent media message/)
})
