import t from 'tap'
import { createHash } from 'node:crypto'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type EventEnvelope } from '../contracts/index.ts'
import { lidOf } from '../simulator/accounts.ts'
import { COMPANY_PHONE, linkedGateway } from './helpers/linked-gateway.ts'
import { jpeg, mp4, pdf, sha256Hex } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const STEP_MS = 15_000

/** Contacts 79120000000, 79120000001, …: a history's worth of people. */
const contacts = (count: number) => Array.from({ length: count }, (_, index) => `7912${String(index).padStart(7, '0')}`)

/**
 * Status posts end to end: the gateway's HTTP API and typed client, real Baileys on the simulator,
 * whose simulated contacts (and the company's own phone) open what the company posts, and post back.
 */
t.test('posts: a text to a list, an image, every contact of the history in batches; bad input is 4xx', async (t) => {
  const gateway = await linkedGateway(t)
  const { simulator, replica, companyId } = gateway
  const post = (payload: unknown, headers: Record<string, string> = {}) => replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/status`, payload: payload as never, headers
  })
  const posts = () => simulator.status.posts(COMPANY_PHONE)

  // A text on a green background in a script font, to three contacts in any notation.
  const recipients = [ANNA, '+7 911 000-00-02', VERA]
  const text = await post({ text: 'Скидка 20% до пятницы', backgroundColor: '#1E8A5C', font: 'fb_script', recipients })
  t.equal(text.statusCode, 200, text.body)
  t.match(text.json(), { success: true, companyId, kind: 'text', recipients: 3, batches: 1, batchSize: 10, messageId: /^[0-9A-F]+$/ })
  t.ok(await waitFor(() => posts().length === 1, STEP_MS))
  const [first] = posts()
  t.equal(first.id, text.json().messageId)
  t.same(Object.keys(first.recipients).sort(), [ANNA, BORIS, VERA], 'each contact opened it')
  t.same(first.ownDevices, [0], 'and the company\'s own phone')
  t.same(first.failures, [])
  t.match(first.content, { kind: 'text', text: 'Скидка 20% до пятницы', backgroundArgb: 0xff1e8a5c, font: 2 })

  // An image with a caption: each contact's phone downloads and opens it.
  const photo = await jpeg()
  const image = await post({ media: { kind: 'image', data: photo.toString('base64'), caption: 'Новый зал' }, recipients: [ANNA, BORIS] })
  t.equal(image.statusCode, 200, image.body)
  t.match(image.json(), { kind: 'image', recipients: 2, batches: 1 })
  t.ok(await waitFor(() => posts().length === 2, STEP_MS))
  t.match(posts()[1].content, { kind: 'media', media: { kind: 'image', caption: 'Новый зал', sha256: sha256Hex(photo) } })
  t.same(Object.keys(posts()[1].recipients).sort(), [ANNA, BORIS])

  // The same idempotency key posts once.
  const once = { text: 'Один раз', recipients: [ANNA] }
  const key = { 'idempotency-key': `status-${companyId}` }
  const firstTry = await post(once, key)
  const retry = await post(once, key)
  t.equal(retry.statusCode, 200)
  t.match(retry.json(), { duplicate: true, messageId: firstTry.json().messageId })
  t.ok(await waitFor(() => posts().length === 3, STEP_MS))
  t.equal(posts().filter((one) => one.content.text === 'Один раз').length, 1, 'posted once')

  // Every contact of the history: 23 people wrote to the salon; a post to them goes in three batches under one id.
  const people = contacts(23)
  for (const phone of people) await simulator.deliver({ from: phone, to: COMPANY_PHONE, text: 'Здравствуйте' })
  t.ok(await gateway.events.waitFor('message', 23, STEP_MS), 'their messages are in the history')
  await replica.app.conversations.flush()
  const everyone = await post({ text: 'Мы открылись после ремонта', audience: 'contacts' })
  t.equal(everyone.statusCode, 200, everyone.body)
  t.match(everyone.json(), { recipients: 23, batches: 3 })
  t.ok(await waitFor(() => posts().length === 4 && posts()[3].batches === 3, STEP_MS))
  const toAll = posts()[3]
  t.equal(toAll.id, everyone.json().messageId, 'one id across the batches')
  t.same(Object.keys(toAll.recipients).sort(), people, 'every contact of the history')
  t.same(toAll.ownDevices, [0])
  t.equal(toAll.skdms, 24, 'every device got the sender key with the post (23 contacts and the own phone)')

  // Over NATS, the typed client posts too.
  const nc = await connect({ servers: gateway.settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: gateway.settings.natsNamespace })
  const overNats = await client.postStatus(companyId, { text: 'Через NATS', recipients: [VERA], font: 1 })
  t.match(overNats, { success: true, recipients: 1, batches: 1 })

  // A video, staged as a send's.
  const clip = mp4()
  const video = await post({ media: { kind: 'video', data: clip.toString('base64'), caption: 'Процесс' }, recipients: [BORIS] })
  t.equal(video.statusCode, 200, video.body)
  t.match(video.json(), { kind: 'video', recipients: 1 })
  t.ok(await waitFor(() => posts().length === 6, STEP_MS))
  t.match(posts()[5].content, { kind: 'media', media: { kind: 'video', caption: 'Процесс', sha256: sha256Hex(clip) } })

  // Bad input answers 4xx with the one error shape, and posts nothing.
  const refused = async (payload: unknown, status: number, code: string) => {
    const answer = await post(payload)
    t.equal(answer.statusCode, status, `${JSON.stringify(payload).slice(0, 80)}: ${answer.body}`)
    t.match(answer.json(), { success: false, error: { code } })
  }
  const before = posts().length
  await refused({ text: 'Никому' }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Никому', recipients: [] }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Себе', recipients: [COMPANY_PHONE] }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Обоим', recipients: [ANNA], audience: 'contacts' }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Цвет', backgroundColor: '#12345', recipients: [ANNA] }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Цвет', backgroundColor: 'green', recipients: [ANNA] }, 400, 'VALIDATION_ERROR')
  await refused({ text: 'Шрифт', font: 4, recipients: [ANNA] }, 400, 'VALIDATION_ERROR')
  await refused({ recipients: [ANNA] }, 400, 'VALIDATION_ERROR')
  const both = { text: 'И то и другое', media: { kind: 'image', data: photo.toString('base64') }, recipients: [ANNA] }
  await refused(both, 400, 'VALIDATION_ERROR')
  await refused({ media: { kind: 'image', data: photo.toString('base64') }, backgroundColor: '#000000', recipients: [ANNA] },
    400, 'VALIDATION_ERROR')
  await refused({ media: { kind: 'document', data: pdf().toString('base64') }, recipients: [ANNA] }, 400, 'VALIDATION_ERROR')
  await refused({ media: { kind: 'image', data: pdf().toString('base64') }, recipients: [ANNA] }, 415, 'UNSUPPORTED_MEDIA')
  await refused({ text: 'Кому?', recipients: ['not a phone'] }, 400, 'INVALID_PHONE')
  t.equal(posts().length, before, 'none was posted')
})

t.test('contacts\' posts are status events: a text with colour and font, a photo downloadable; never a chat', async (t) => {
  const { simulator, replica, companyId, events } = await linkedGateway(t)
  const statusEvents = () => events.events.filter((event) => event.type === 'status') as EventEnvelope[]

  const text = await simulator.status.post({
    from: ANNA, to: [COMPANY_PHONE], text: 'Открылись!', backgroundArgb: 0xff336699, font: 1, pushName: 'Анна'
  })
  t.ok(await waitFor(() => statusEvents().length === 1, STEP_MS), 'a status event')
  t.match(statusEvents()[0].data, {
    statusId: text.id,
    phone: ANNA,
    lid: `${lidOf(ANNA)}@lid`,
    pushName: 'Анна',
    kind: 'text',
    text: 'Открылись!',
    backgroundColor: '#FF336699',
    font: 1,
    offline: false
  })
  t.notOk((statusEvents()[0].data as { media?: unknown }).media)

  const photo = await jpeg(80, 60)
  const image = await simulator.status.post({
    from: BORIS, to: [COMPANY_PHONE], text: 'Наш зал', media: { kind: 'image', data: photo, mimetype: 'image/jpeg' }
  })
  t.ok(await waitFor(() => statusEvents().length === 2, STEP_MS))
  const media = statusEvents()[1].data as { kind: string, text: string, media: { objectId: string, sha256: string, kind: string } }
  t.match(media, { statusId: image.id, phone: BORIS, kind: 'media', text: 'Наш зал', media: { kind: 'image', mimetype: 'image/jpeg' } })
  t.equal(media.media.sha256, sha256Hex(photo), 'the photo is in the media bucket')
  const download = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/media/${media.media.objectId}` })
  t.equal(download.statusCode, 200)
  t.equal(createHash('sha256').update(download.rawPayload).digest('hex'), sha256Hex(photo), 'and downloads')

  t.ok(await waitFor(() => simulator.account(BORIS).receipts.some((receipt) => receipt.messageId === image.id), STEP_MS),
    'the company\'s device acknowledged Boris\'s post')
  await replica.app.conversations.flush()
  const history = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/messages` })).json().messages as
    { messageId: string }[]
  t.notOk(history.some((message) => message.messageId === text.id || message.messageId === image.id), 'no status is in the chat history')
  t.same(events.events.filter((event) => event.type === 'message'), [], 'nor a message event')
})

t.test('a post to 50 contacts: time and batches', async (t) => {
  const { simulator, replica, companyId } = await linkedGateway(t)
  const people = contacts(50)
  const post = () => replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/status`, payload: { text: 'Акция для всех', recipients: people }
  })
  const timings: number[] = []
  for (let run = 0; run < 3; run++) {
    const started = performance.now()
    const answer = await post()
    timings.push(performance.now() - started)
    t.equal(answer.statusCode, 200, answer.body)
    t.match(answer.json(), { recipients: 50, batches: 5 })
  }
  t.ok(await waitFor(() => simulator.status.posts(COMPANY_PHONE).length === 3, STEP_MS))
  for (const one of simulator.status.posts(COMPANY_PHONE)) {
    t.equal(Object.keys(one.recipients).length, 50, 'all 50 opened it')
    t.equal(one.batches, 5)
  }
  t.comment(`a status to 50 contacts (5 batches of 10, 51 devices): ${timings.map((ms) => `${Math.round(ms)} ms`).join(', ')}` +
    ' (the first includes the contacts\' pre-key fetches and new Signal sessions)')
})
