import t from 'tap'
import { postTestStatus } from '../plugins/session-pool/test-status.ts'
import { jpeg, sha256Hex } from './helpers/media-files.ts'
import { companyPreferring, linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

// The status plugin on the test double (WA_TRANSPORT=test): batching, the own number, the request
// through a replica that does not hold the company, and contacts' posts as events.

const jid = (phone: string) => `${phone}@s.whatsapp.net`
const contacts = (count: number) => Array.from({ length: count }, (_, index) => `7913${String(index).padStart(7, '0')}`)

t.test('a post goes in batches of 10 under one id, the own number in the first; contacts\' posts are status events', async (t) => {
  const settings = await sessionCluster(t)
  const holder = await startSessionReplica(t, settings)
  const other = await startSessionReplica(t, settings, { defaultCompanyId: undefined })
  const companyId = companyPreferring(holder, [holder, other])
  const events = await linkCompany(holder, companyId, settings, t)
  const whatsapp = holder.app.testWhatsApp!
  const own = whatsapp.phoneOf(companyId)!
  const batches = () => whatsapp.sentTo(companyId, 'status@broadcast')

  // 25 contacts through the replica that does not hold the company: 3 batches, 11 + 10 + 5 JIDs.
  const people = contacts(25)
  const text = await other.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/status`,
    payload: { text: 'Скидки', backgroundColor: 'ff8800', font: 'system_bold', recipients: [...people, `+${own}`] }
  })
  t.equal(text.statusCode, 200, text.body)
  t.match(text.json(), { recipients: 25, batches: 3, batchSize: 10 })
  t.same(batches().map((batch) => batch.status?.statusJidList), [
    [jid(own), ...people.slice(0, 10).map(jid)], people.slice(10, 20).map(jid), people.slice(20).map(jid)
  ], 'the own number once, in the first batch; the contacts in order')
  t.ok(batches().every((batch) => batch.messageId === text.json().messageId), 'one id')
  t.match(batches()[0], { text: 'Скидки', status: { backgroundArgb: 0xffff8800, font: 6 } })
  t.same(events.events.filter((event) => event.type === 'message_sent'), [], 'a post is no message in a chat')

  // An image: read once, whatever the batches.
  const photo = await jpeg()
  const image = await other.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/status`,
    payload: { media: { kind: 'image', data: photo.toString('base64'), caption: 'Зал' }, recipients: people.slice(0, 12) }
  })
  t.equal(image.statusCode, 200, image.body)
  const imageBatches = batches().filter((batch) => batch.messageId === image.json().messageId)
  t.equal(imageBatches.length, 2)
  t.ok(imageBatches.every((batch) => batch.media?.sha256 === sha256Hex(photo) && batch.media.caption === 'Зал'))

  // Contacts post: by phone, and by LID with the phone beside it; a file the test double cannot serve is described, not lost.
  postTestStatus(whatsapp, companyId, { poster: jid(people[0]), text: 'Привет', backgroundArgb: 0xff000000, font: 0 })
  postTestStatus(whatsapp, companyId, { poster: '123456789012345@lid', posterAlt: jid(people[1]), text: 'Фото', media: { kind: 'image' } })
  t.ok(await waitFor(() => events.events.filter((event) => event.type === 'status').length === 2, 10_000))
  const [first, second] = events.events.filter((event) => event.type === 'status')
  t.match(first.data, { phone: people[0], lid: null, kind: 'text', text: 'Привет', backgroundColor: '#FF000000', font: 0 })
  t.match(second.data, {
    phone: people[1],
    lid: '123456789012345@lid',
    kind: 'media',
    text: 'Фото',
    media: { kind: 'image', error: { code: 'MEDIA_UNAVAILABLE' } }
  })
})
