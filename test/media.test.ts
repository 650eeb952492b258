import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, mediaObjectName, MEDIA_KINDS, type EventEnvelope } from '../contracts/index.ts'
import { isPublicAddress } from '../plugins/media/url-fetch.ts'
import { filesOfEveryKind, jpeg, mp4, oggOpus, sha256Hex, wav } from './helpers/media-files.ts'
import { uniqueName } from './helpers/services.ts'
import { COMPANY_PHONE, CONTACT, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'

/** A multipart body as a browser's FormData makes it. */
async function multipartOf (fields: Record<string, string>, file?: { data: Buffer, name: string, type: string }, fileFirst = false) {
  const form = new FormData()
  if (file && fileFirst) form.append('file', new Blob([file.data], { type: file.type }), file.name)
  for (const [name, value] of Object.entries(fields)) form.append(name, value)
  if (file && !fileFirst) form.append('file', new Blob([file.data], { type: file.type }), file.name)
  const response = new Response(form)
  return { payload: Buffer.from(await response.arrayBuffer()), headers: { 'content-type': response.headers.get('content-type')! } }
}

t.test('sending every kind by base64 `data`: the contact gets each file byte-exact', async (t) => {
  const gateway = await linkedGateway(t)
  const files = await filesOfEveryKind()
  for (const kind of MEDIA_KINDS) {
    const file = files[kind]
    const response = await gateway.send({
      phone: `+${CONTACT}`,
      media: {
        kind,
        data: file.data.toString('base64'),
        mimetype: file.mimetype,
        ...('fileName' in file ? { fileName: file.fileName } : {})
      },
      idempotencyKey: `media-${kind}`
    })
    t.equal(response.statusCode, 200, `${kind}: ${response.body}`)
    t.match(response.json(), { accepted: true, phone: CONTACT })
  }
  t.ok(await waitFor(() => gateway.received().length === MEDIA_KINDS.length, 10_000))
  for (const [index, kind] of MEDIA_KINDS.entries()) {
    t.match(gateway.received()[index].media, { kind, sha256: sha256Hex(files[kind].data), size: files[kind].data.length }, kind)
  }
  // The same idempotency key again: the first result, nothing sent twice.
  const again = await gateway.send({
    phone: `+${CONTACT}`,
    media: { kind: 'image', data: files.image.data.toString('base64') },
    idempotencyKey: 'media-image'
  })
  t.match(again.json(), { duplicate: true })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(gateway.received().length, MEDIA_KINDS.length, 'no second image')
})

t.test('sending by multipart upload, by objectId (put in the bucket over NATS) and over NATS', async (t) => {
  const gateway = await linkedGateway(t)
  const photo = await jpeg(320, 240)
  const form = await multipartOf(
    { phone: CONTACT, kind: 'image', caption: 'Мастер Анна' },
    { data: photo, name: 'anna.jpg', type: 'image/jpeg' }
  )
  const uploaded = await gateway.replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${gateway.companyId}/send`, payload: form.payload, headers: form.headers
  })
  t.equal(uploaded.statusCode, 200, uploaded.body)
  t.ok(await waitFor(() => gateway.received().length === 1, 10_000))
  t.match(gateway.received()[0].media, { kind: 'image', caption: 'Мастер Анна', sha256: sha256Hex(photo) })

  // A NATS client puts the file in the bucket itself and sends its objectId.
  const voice = oggOpus(3)
  await gateway.bucket.putBlob({ name: mediaObjectName(gateway.companyId, 'voice-note-0001') }, voice)
  const byObject = await gateway.send({ phone: CONTACT, media: { kind: 'audio', objectId: 'voice-note-0001', ptt: true } })
  t.equal(byObject.statusCode, 200, byObject.body)
  t.ok(await waitFor(() => gateway.received().length === 2, 10_000))
  t.match(gateway.received()[1].media, { kind: 'audio', ptt: true, mimetype: 'audio/ogg; codecs=opus', sha256: sha256Hex(voice) })

  const nc = await connect({ servers: gateway.settings.natsUrl })
  t.teardown(() => nc.close())
  // The typed client: a file of any size goes into the bucket, the send names it.
  const { natsNamespace: namespace, mediaBucket } = gateway.settings
  const client = createGatewayClient(nc, { namespace, mediaBucket, timeoutMs: 15_000 })
  const video = mp4(3 * 1024 * 1024)
  const objectId = await client.putMedia(gateway.companyId, video)
  const sentVideo = await client.send(gateway.companyId, { phone: CONTACT, media: { kind: 'video', objectId, caption: 'Как пройти' } })
  t.match(sentVideo, { accepted: true })
  t.ok(await waitFor(() => gateway.received().length === 3, 10_000))
  t.match(gateway.received()[2].media, { kind: 'video', caption: 'Как пройти', size: video.length, sha256: sha256Hex(video) })
  const back = await client.getMedia(gateway.companyId, objectId)
  t.equal(sha256Hex(Buffer.from(await new Response(back).arrayBuffer())), sha256Hex(video), 'and reads it back')
  const doc = (await filesOfEveryKind()).document
  const reply = await nc.request(`${gateway.settings.natsNamespace}.cmd.${gateway.companyId}.send`, JSON.stringify({
    phone: CONTACT, media: { kind: 'document', data: doc.data.toString('base64'), fileName: 'price.pdf', caption: 'Прайс' }
  }), { timeout: 15_000 })
  t.match(reply.json(), { success: true, accepted: true })
  t.ok(await waitFor(() => gateway.received().length === 4, 10_000))
  t.match(gateway.received()[3].media, { kind: 'document', fileName: 'price.pdf', caption: 'Прайс', sha256: sha256Hex(doc.data) })
})

t.test('sending by URL: fetched safely, streamed, and refused clearly when it cannot be', async (t) => {
  const photo = await jpeg()
  const server = createServer((request, response) => {
    if (request.url === '/photo.jpg') return response.writeHead(200, { 'content-type': 'image/jpeg' }).end(photo)
    if (request.url === '/redirect') return response.writeHead(302, { location: '/photo.jpg' }).end()
    if (request.url === '/big') {
      return response.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(20 * 1024 * 1024) }).end()
    }
    if (request.url === '/stall') return undefined
    response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  // A gateway that may reach this machine's test server.
  const open = await linkedGateway(t, { mediaUrlAllowPrivate: true, mediaFetchTimeoutMs: 1_000 })
  const fetched = await open.send({ phone: CONTACT, media: { kind: 'image', url: `${base}/redirect` } })
  t.equal(fetched.statusCode, 200, fetched.body)
  t.ok(await waitFor(() => open.received().length === 1, 10_000))
  t.match(open.received()[0].media, { kind: 'image', sha256: sha256Hex(photo) })
  const failures = [
    [`${base}/missing.jpg`, 422, 'MEDIA_UNREACHABLE', /answered 404/],
    [`${base}/big`, 413, 'MEDIA_TOO_LARGE', /limit/],
    [`${base}/stall`, 422, 'MEDIA_UNREACHABLE', /longer than 1000 ms/],
    ['ftp://127.0.0.1/photo.jpg', 400, 'MEDIA_URL_FORBIDDEN', /http or https/]
  ] as const
  for (const [url, status, code, message] of failures) {
    const response = await open.send({ phone: CONTACT, media: { kind: 'image', url } })
    t.equal(response.statusCode, status, url)
    t.match(response.json(), { success: false, error: { code, message } }, url)
  }

  // The default: nothing inside the network.
  const guarded = await linkedGateway(t)
  for (const url of [`${base}/photo.jpg`, 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/x', 'http://10.1.2.3/x']) {
    const response = await guarded.send({ phone: CONTACT, media: { kind: 'image', url } })
    t.equal(response.statusCode, 400, url)
    t.match(response.json(), { error: { code: 'MEDIA_URL_FORBIDDEN', message: /not a public address/ } }, url)
  }
  t.equal(guarded.received().length, 0, 'nothing was sent')
  t.equal(await guarded.objects(), 0, 'nothing was stored')
})

t.test('addresses a media URL may not reach', async (t) => {
  for (const address of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.100.100.200', '0.0.0.0',
    '::1', '::', 'fe80::1', 'fd00:ec2::254', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '224.0.0.1']) {
    t.notOk(isPublicAddress(address), address)
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '2001:4860:4860::8888', '::ffff:8.8.8.8']) t.ok(isPublicAddress(address), address)
})

t.test('bad media input: a 4xx with the error shape, nothing sent, nothing stored', async (t) => {
  const gateway = await linkedGateway(t, { mediaMaxBytes: 64 * 1024 })
  const photo = await jpeg()
  const photoData = photo.toString('base64')
  const pdfData = (await filesOfEveryKind()).document.data.toString('base64')
  const cases = [
    ['two sources', { kind: 'image', data: photoData, url: 'https://example.com/a.jpg' }, 400, 'VALIDATION_ERROR'],
    ['no source', { kind: 'image' }, 400, 'VALIDATION_ERROR'],
    ['a document sent as an image', { kind: 'image', data: pdfData }, 415, 'UNSUPPORTED_MEDIA'],
    ['a declared type that is not the file\'s', { kind: 'image', data: photoData, mimetype: 'image/png' }, 415, 'UNSUPPORTED_MEDIA'],
    ['a JPEG as a sticker', { kind: 'sticker', data: photoData }, 415, 'UNSUPPORTED_MEDIA'],
    ['over MEDIA_MAX_BYTES', { kind: 'document', data: Buffer.alloc(70 * 1024, 1).toString('base64') }, 413, 'MEDIA_TOO_LARGE'],
    ['not base64', { kind: 'image', data: '***' }, 400, 'VALIDATION_ERROR'],
    ['an unknown objectId', { kind: 'image', objectId: 'never-stored-01' }, 404, 'NOT_FOUND'],
    ['an unknown kind', { kind: 'hologram', data: photoData }, 400, 'VALIDATION_ERROR'],
    ['ptt on an image', { kind: 'image', data: photoData, ptt: true }, 400, 'VALIDATION_ERROR']
  ] as const
  for (const [name, media, status, code] of cases) {
    const response = await gateway.send({ phone: CONTACT, media })
    t.equal(response.statusCode, status, `${name}: ${response.body}`)
    t.match(response.json(), { success: false, error: { code, message: String } }, name)
  }
  const both = await gateway.send({ phone: CONTACT, message: 'hi', media: { kind: 'image', data: photo.toString('base64') } })
  t.match(both.json(), { error: { code: 'VALIDATION_ERROR', message: /exactly one of `message`, `media`/ } })
  const neither = await gateway.send({ phone: CONTACT })
  t.equal(neither.statusCode, 400)

  const url = `/api/whatsapp/sessions/${gateway.companyId}/send`
  const broken = await gateway.replica.app.inject({
    method: 'POST', url, headers: { 'content-type': 'multipart/form-data; boundary=XYZ' }, payload: '--XYZ\r\nContent-Disposition: form-da'
  })
  t.equal(broken.statusCode, 400, `a broken multipart body: ${broken.body}`)
  t.match(broken.json(), { success: false, error: { code: String } })
  const fileFirst = await multipartOf({ phone: CONTACT, kind: 'image' }, { data: photo, name: 'a.jpg', type: 'image/jpeg' }, true)
  const misordered = await gateway.replica.app.inject({ method: 'POST', url, payload: fileFirst.payload, headers: fileFirst.headers })
  t.equal(misordered.statusCode, 400)
  t.match(misordered.json(), { error: { code: 'VALIDATION_ERROR', message: /must come before the file/ } })
  const tooBig = await multipartOf(
    { phone: CONTACT, kind: 'document' },
    { data: Buffer.alloc(200 * 1024, 7), name: 'big.bin', type: 'application/pdf' }
  )
  const refused = await gateway.replica.app.inject({ method: 'POST', url, payload: tooBig.payload, headers: tooBig.headers })
  t.equal(refused.statusCode, 413, refused.body)

  t.equal(gateway.received().length, 0, 'nothing was sent')
  t.equal(await gateway.objects(), 0, 'nothing was stored')
})

t.test('voice notes: other audio is converted to ogg/opus with ffmpeg, and refused clearly without it', async (t) => {
  const gateway = await linkedGateway(t)
  const converted = await gateway.send({ phone: CONTACT, media: { kind: 'audio', data: wav(2).toString('base64'), ptt: true } })
  t.equal(converted.statusCode, 200, converted.body)
  t.ok(await waitFor(() => gateway.received().length === 1, 10_000))
  t.match(gateway.received()[0].media, { kind: 'audio', ptt: true, mimetype: 'audio/ogg; codecs=opus' })
  t.notOk(gateway.received()[0].media?.error)

  const without = await linkedGateway(t, { ffmpegPath: '/nonexistent/ffmpeg' })
  const refused = await without.send({ phone: CONTACT, media: { kind: 'audio', data: wav(1).toString('base64'), ptt: true } })
  t.equal(refused.statusCode, 422)
  t.match(refused.json(), { error: { code: 'MEDIA_CONVERSION_UNAVAILABLE', message: /ogg\/opus/ } })
  const asIs = await without.send({ phone: CONTACT, media: { kind: 'audio', data: oggOpus(1).toString('base64'), ptt: true } })
  t.equal(asIs.statusCode, 200, 'an ogg/opus voice note needs no conversion')
})

t.test('receiving: the file is in the bucket, the event names it, and the HTTP route streams it', async (t) => {
  const gateway = await linkedGateway(t)
  const files = await filesOfEveryKind()
  for (const kind of MEDIA_KINDS) {
    const file = files[kind]
    await gateway.simulator.deliver({
      from: CONTACT,
      to: COMPANY_PHONE,
      text: kind === 'image' ? 'вот фото' : undefined,
      media: {
        kind,
        data: file.data,
        mimetype: file.mimetype,
        ...('fileName' in file ? { fileName: file.fileName } : {}),
        ptt: kind === 'audio'
      }
    })
  }
  t.ok(await gateway.events.waitFor('message', MEDIA_KINDS.length, 15_000))
  const messages = gateway.events.events.filter((event: EventEnvelope) => event.type === 'message')
  for (const [index, kind] of MEDIA_KINDS.entries()) {
    const media = (messages[index].data as { media: { objectId: string } & Record<string, unknown> }).media
    t.match(
      media,
      { kind, mimetype: files[kind].mimetype, size: files[kind].data.length, sha256: sha256Hex(files[kind].data), objectId: String },
      kind
    )
    const download = await gateway.replica.app.inject({
      method: 'GET', url: `/api/whatsapp/sessions/${gateway.companyId}/media/${media.objectId}`
    })
    t.equal(download.statusCode, 200)
    t.equal(download.headers['content-type'], files[kind].mimetype)
    t.equal(sha256Hex(download.rawPayload), sha256Hex(files[kind].data), `${kind}: byte-exact over HTTP`)
    // NATS consumers read the bucket directly.
    t.equal(sha256Hex((await gateway.bucket.getBlob(mediaObjectName(gateway.companyId, media.objectId)))!), sha256Hex(files[kind].data))
  }
  t.match((messages[0].data as { media: unknown }).media, { caption: 'вот фото' })
  t.match((messages[3].data as { media: unknown }).media, { fileName: 'booking.pdf' })

  const missing = await gateway.replica.app.inject({
    method: 'GET', url: `/api/whatsapp/sessions/${gateway.companyId}/media/no-such-object`
  })
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { success: false, error: { code: 'NOT_FOUND' } })
  const firstObjectId = (messages[0].data as { media: { objectId: string } }).media.objectId
  const otherCompany = await gateway.replica.app.inject({
    method: 'GET', url: `/api/whatsapp/sessions/${uniqueName('other')}/media/${firstObjectId}`
  })
  t.equal(otherCompany.statusCode, 404, 'a company sees only its own files')
})

t.test('an old message whose file WhatsApp dropped: fetched after the phone uploads it again, or described with why not', async (t) => {
  const gateway = await linkedGateway(t, { mediaReuploadTimeoutMs: 1_000 })
  const photo = await jpeg()
  await gateway.simulator.deliver({
    from: CONTACT,
    to: COMPANY_PHONE,
    media: { kind: 'image', data: photo, mimetype: 'image/jpeg', expired: true }
  })
  t.ok(await gateway.events.waitFor('message', 1, 15_000))
  const first = gateway.events.events.filter((event) => event.type === 'message')[0].data as {
    media: { objectId?: string, sha256?: string }
  }
  t.match(first.media, { kind: 'image', sha256: sha256Hex(photo), objectId: String }, 'fetched after the re-upload')
  t.ok(gateway.simulator.log.some((entry) => entry.kind === 'media' && entry.detail.startsWith('re-upload of')), 'the phone was asked')

  gateway.simulator.account(COMPANY_PHONE).reuploadsMedia = false
  await gateway.simulator.deliver({
    from: CONTACT,
    to: COMPANY_PHONE,
    media: { kind: 'image', data: photo, mimetype: 'image/jpeg', expired: true }
  })
  t.ok(await gateway.events.waitFor('message', 2, 15_000), 'the message is published all the same')
  const second = gateway.events.events.filter((event) => event.type === 'message')[1].data as { media: Record<string, unknown> }
  t.match(second.media, { kind: 'image', mimetype: 'image/jpeg', error: { code: 'MEDIA_UNAVAILABLE', message: /did not upload it again/ } })
  t.notOk(second.media.objectId)
})
