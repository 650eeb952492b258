import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type EventEnvelope } from '../contracts/index.ts'
import { lidOf } from '../simulator/accounts.ts'
import { controlApi } from '../simulator/control.ts'
import { COMPANY_PHONE, linkedGateway } from './helpers/linked-gateway.ts'
import { jpeg, png, webp } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const SHOP = '79110000005'
const VERA = '79110000003'
const NOBODY = '79119999999'
const STEP_MS = 10_000

/**
 * Profiles and blocking end to end: the gateway's HTTP API and typed client, real Baileys on the
 * simulator, whose accounts have profiles and block lists of their own.
 */
t.test('the number\'s own profile: about and picture set through the API, read back, and what WhatsApp holds', async (t) => {
  const { simulator, replica, companyId } = await linkedGateway(t)
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })

  const before = await api('GET', '/profile')
  t.equal(before.statusCode, 200, before.body)
  t.match(before.json(), { phone: COMPANY_PHONE, about: { text: null }, picture: { status: 'none', url: null }, business: null })

  t.equal((await api('PATCH', '/profile', { about: 'Салон «Лотос»: стрижки 10:00–20:00' })).statusCode, 200)
  const picture = await api('PUT', '/profile/picture', { data: (await png(300, 200)).toString('base64') })
  t.equal(picture.statusCode, 200, picture.body)
  t.equal(simulator.profiles.profile(COMPANY_PHONE).about?.text, 'Салон «Лотос»: стрижки 10:00–20:00', 'WhatsApp holds the about')
  const stored = simulator.profiles.profile(COMPANY_PHONE).picture
  t.ok(stored?.jpeg.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff])), 'and the picture, as a JPEG')

  const after = (await api('GET', '/profile')).json()
  t.match(after, { about: { text: 'Салон «Лотос»: стрижки 10:00–20:00' }, picture: { status: 'set' } })
  t.ok(Math.abs(Date.parse(after.about.setAt) - Date.now()) < 60_000, 'with when the about was set')
  const served = await fetch(after.picture.url)
  t.ok(Buffer.from(await served.arrayBuffer()).equals(stored!.jpeg), 'the URL serves the picture')
  t.ok(Date.parse(after.picture.expiresAt) > Date.now() + 3600_000, `expiresAt from the URL's oe= (${after.picture.expiresAt})`)

  // A business number sees its business profile among its own.
  simulator.profiles.profile(COMPANY_PHONE).business = { description: 'Салон красоты', category: 'Beauty' }
  t.match((await api('GET', '/profile')).json().business, { description: 'Салон красоты', category: 'Beauty', websites: [] })

  t.equal((await api('DELETE', '/profile/picture')).statusCode, 200)
  t.match((await api('GET', '/profile')).json().picture, { status: 'none', url: null })

  // Bad input: a picture that is no JPEG or PNG, an about over WhatsApp's 139 characters.
  const gif = await api('PUT', '/profile/picture', { data: Buffer.from('GIF89a not really').toString('base64') })
  t.equal(gif.statusCode, 415, gif.body)
  t.match(gif.json(), { success: false, error: { code: 'UNSUPPORTED_MEDIA' } })
  t.equal((await api('PUT', '/profile/picture', { data: (await webp()).toString('base64') })).statusCode, 415, 'a WebP')
  t.match((await api('PATCH', '/profile', { about: 'x'.repeat(140) })).json(), { error: { code: 'VALIDATION_ERROR' } })
})

t.test('the number\'s name: set through the API as an app-state patch; the phone\'s change learned through app-state sync', async (t) => {
  const { simulator, replica, companyId, settings } = await linkedGateway(t)
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const whatsappName = async () => (await control.inject({ method: 'GET', url: `/accounts/${COMPANY_PHONE}/profile` })).json().name
  const nameTold = () =>
    simulator.log.filter((entry) => entry.kind === 'app-state' && entry.detail.includes('patched critical_block')).length

  // Announcing availability without a name (Baileys needs one: the number stands in) leaves the name unknown.
  t.equal((await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/presence`, payload: { presence: 'available' }
  })).statusCode, 200)
  t.ok(await waitFor(() => simulator.account(COMPANY_PHONE).availability === 'available', STEP_MS), 'announced')
  t.equal((await api('GET', '/profile')).json().name, null, 'no name until one is set')

  const renamed = await api('PATCH', '/profile', { name: 'Салон «Лотос»' })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.equal(nameTold(), 1, 'one patch to critical_block')
  t.equal(await whatsappName(), 'Салон «Лотос»', 'WhatsApp holds the name (the control API\'s profile)')
  t.equal((await api('GET', '/profile')).json().name, 'Салон «Лотос»', 'GET /profile answers it')

  // Name and about at once.
  t.equal((await api('PATCH', '/profile', { name: 'Лотос', about: 'Стрижки 10:00–20:00' })).statusCode, 200)
  t.equal(await whatsappName(), 'Лотос')
  t.equal(simulator.profiles.profile(COMPANY_PHONE).about?.text, 'Стрижки 10:00–20:00')

  // The phone renames the number: its linked devices hear of it (server_sync), and the gateway learns the name.
  const phone = await control.inject({ method: 'PUT', url: `/accounts/${COMPANY_PHONE}/profile`, payload: { name: 'Лотос на Невском' } })
  t.equal(phone.statusCode, 200, phone.body)
  t.equal(phone.json().name, 'Лотос на Невском')
  t.ok(await waitFor(async () => (await api('GET', '/profile')).json().name === 'Лотос на Невском', STEP_MS),
    'GET /profile answers the phone\'s name')

  // Over NATS, the typed client renames it too; a name built on the phone's patch (Baileys synced it first).
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  t.match(await client.updateProfile(companyId, { name: 'Лотос 💇' }), { success: true })
  t.equal(await whatsappName(), 'Лотос 💇')
  t.equal((await client.profile(companyId)).name, 'Лотос 💇')
  t.equal(simulator.log.filter((entry) => entry.kind === 'app-state' && entry.detail.includes('refused')).length, 0, 'no patch refused')

  // Bad input: over WhatsApp's 25 characters, empty, blank, nothing to change; over NATS as over HTTP.
  for (const body of [{ name: 'Ж'.repeat(26) }, { name: '' }, { name: '   ' }, {}, { name: 7 }]) {
    const refused = await api('PATCH', '/profile', body)
    t.equal(refused.statusCode, 400, `${JSON.stringify(body)}: ${refused.body}`)
    t.match(refused.json(), { success: false, error: { code: 'VALIDATION_ERROR' } })
  }
  await t.rejects(client.updateProfile(companyId, { name: 'Ж'.repeat(26) }), { code: 'VALIDATION_ERROR' }, 'a long name over NATS')
  t.equal(await whatsappName(), 'Лотос 💇', 'nothing refused reached WhatsApp')
  t.equal(nameTold(), 3, 'three patches from the gateway, none for the refused names')
})

t.test('contacts\' profiles: picture cached until it expires, about, business, privacy, by phone or LID; bad phones are 400', async (t) => {
  const { simulator, replica, companyId, settings } = await linkedGateway(t)
  const api = (url: string) => replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}${url}` })
  const annaPicture = await jpeg(200, 200)
  simulator.profiles.setPicture(ANNA, annaPicture)
  simulator.profiles.profile(ANNA).about = { text: 'Люблю короткие стрижки', setAt: 1_790_000_000 }
  simulator.profiles.profile(SHOP).business = {
    description: 'Цветы с доставкой', category: 'Florist', email: 'shop@example.com', website: 'https://shop.example.com', address: 'Невский, 1'
  }
  const pictureQueries = () => simulator.log.filter((entry) =>
    entry.kind === 'recv' && entry.detail.includes('"xmlns":"w:profile:picture"') && entry.detail.includes('"type":"get"')).length

  const first = await api(`/contacts/${encodeURIComponent('+7 911 000-00-01')}/profile`)
  t.equal(first.statusCode, 200, first.body)
  const anna = first.json()
  t.match(anna, {
    contact: { jid: `${ANNA}@s.whatsapp.net`, phone: ANNA },
    picture: { status: 'set', cached: false },
    about: { text: 'Люблю короткие стрижки', setAt: new Date(1_790_000_000_000).toISOString() },
    business: null
  })
  t.ok(Buffer.from(await (await fetch(anna.picture.url)).arrayBuffer()).equals(annaPicture), 'her picture')
  const queries = pictureQueries()
  const again = (await api(`/contacts/${ANNA}/profile`)).json()
  t.same(again.picture, { ...anna.picture, cached: true }, 'the second read comes from the cache')
  t.equal(pictureQueries(), queries, 'without a query to WhatsApp')
  // She changes her picture: WhatsApp tells the number, and the cached URL is dropped.
  const newPicture = await jpeg(150, 150)
  simulator.profiles.setPicture(ANNA, newPicture)
  const fresh = async () => (await api(`/contacts/${ANNA}/picture/image`)).json().picture
  t.ok(await waitFor(async () => (await fresh()).cached === false, STEP_MS), 'asked again after her change')
  t.ok(Buffer.from(await (await fetch((await fresh()).url)).arrayBuffer()).equals(newPicture), 'her new picture')
  const preview = (await api(`/contacts/${ANNA}/picture/preview`)).json()
  t.match(preview, { quality: 'preview', picture: { status: 'set', cached: false } }, 'the preview is a picture of its own')

  // A URL about to expire is not kept: the next read asks WhatsApp again.
  simulator.profiles.setPicture(BORIS, await jpeg(), 30)
  t.match((await api(`/contacts/${BORIS}/profile`)).json().picture, { status: 'set', cached: false })
  t.match((await api(`/contacts/${BORIS}/profile`)).json().picture, { status: 'set', cached: false }, 'expiring within the minute')

  // By LID, and a business account.
  const byLid = (await api(`/contacts/${lidOf(SHOP)}@lid/profile`)).json()
  t.match(byLid, {
    contact: { jid: `${lidOf(SHOP)}@lid`, lid: `${lidOf(SHOP)}@lid` },
    picture: { status: 'none' },
    business: { description: 'Цветы с доставкой', category: 'Florist', email: 'shop@example.com', websites: ['https://shop.example.com'] }
  })

  // Hidden by privacy: what WhatsApp refuses (401) is a status, not an error.
  simulator.profiles.profile('79110000006').hidesPicture = true
  simulator.profiles.setPicture('79110000006', await jpeg())
  t.match((await api('/contacts/79110000006/profile')).json(), { picture: { status: 'hidden', url: null } })

  // Over NATS, the typed client says the same.
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  t.match(await client.contactPicture(companyId, ANNA), { picture: { status: 'set', cached: true } })
  t.match(await client.contactProfile(companyId, SHOP), { business: { category: 'Florist' } })
  await t.rejects(client.contactProfile(companyId, 'not a phone'), { code: 'INVALID_PHONE' }, 'a bad phone over NATS')

  t.equal((await api('/contacts/not-a-phone/profile')).statusCode, 400, 'a bad phone')
  t.equal((await api('/contacts/12@lid/picture/preview')).statusCode, 200, 'a LID nobody has: no picture')
  t.equal((await api('/contacts/x@lid/profile')).statusCode, 400, 'a malformed LID')
  t.equal((await api('/contacts/120363025246125486@g.us/profile')).statusCode, 400, 'a group is no contact')
  t.equal((await api(`/contacts/${ANNA}/picture/huge`)).statusCode, 400, 'an unknown quality')
})

t.test('blocking: block and unblock through the API, the list, and blocklist_update events from the API and from the phone', async (t) => {
  const { simulator, replica, companyId, events, settings } = await linkedGateway(t, {}, { notOnWhatsApp: [NOBODY] })
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const blocklistEvents = () => events.events.filter((event) => event.type === 'blocklist_update') as EventEnvelope[]

  t.same((await api('GET', '/blocklist')).json().blocked, [], 'nobody blocked')
  const blocked = await api('POST', '/blocklist', { phone: '+7 (911) 000-00-01', action: 'block' })
  t.equal(blocked.statusCode, 200, blocked.body)
  t.match(blocked.json(), { contact: { phone: ANNA, jid: `${ANNA}@s.whatsapp.net` }, blocked: true })
  t.same(simulator.profiles.blocked(COMPANY_PHONE), [ANNA], 'WhatsApp holds the block')
  t.match((await api('GET', '/blocklist')).json().blocked, [{ phone: ANNA }])
  t.ok(await waitFor(() => blocklistEvents().length === 1, STEP_MS), 'blocklist_update')
  t.match(blocklistEvents()[0].data, { action: 'block', contacts: [{ phone: ANNA }], otherDevice: false })

  // The phone blocks Boris: WhatsApp tells the linked device, and the gateway tells its clients.
  simulator.profiles.block(COMPANY_PHONE, BORIS, true)
  t.ok(await waitFor(() => blocklistEvents().length === 2, STEP_MS), 'the phone\'s block is an event too')
  t.match(blocklistEvents()[1].data, { action: 'block', contacts: [{ phone: BORIS, jid: `${BORIS}@s.whatsapp.net` }], otherDevice: true })
  // The LID WhatsApp paired the phone with is a mapping the history keeps (stored as it comes).
  const listed = async () => (await api('GET', '/blocklist')).json().blocked as { phone: string, lid: string | null }[]
  t.ok(await waitFor(async () => (await listed())[1]?.lid === `${lidOf(BORIS)}@lid`, STEP_MS), 'Boris listed with his LID')
  t.match(await listed(), [{ phone: ANNA }, { phone: BORIS }], 'the list by phone')

  // WhatsApp delivers nothing from a contact the number blocked; Vera (not blocked) still gets through.
  const dropped = await simulator.deliver({ from: BORIS, to: COMPANY_PHONE, text: 'Почему вы не отвечаете?' })
  t.match(dropped, { devices: 0, queued: 0, blocked: true }, 'Boris\'s message reaches no device')
  await simulator.deliver({ from: VERA, to: COMPANY_PHONE, text: 'Я всё ещё тут' })
  t.ok(await waitFor(() => events.events.some((event) => event.type === 'message' && event.data.text === 'Я всё ещё тут'), STEP_MS),
    'Vera\'s message arrives')
  t.notOk(events.events.some((event) => event.type === 'message' && event.data.phone === BORIS), 'no message event from Boris')

  // Anna blocked the number: her picture is hidden from it.
  simulator.profiles.setPicture(ANNA, await jpeg())
  simulator.profiles.block(ANNA, COMPANY_PHONE, true)
  t.match((await api('GET', `/contacts/${ANNA}/profile`)).json().picture, { status: 'hidden' })

  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  t.match(await client.updateBlocklist(companyId, { phone: ANNA, action: 'unblock' }), { blocked: false })
  t.same(simulator.profiles.blocked(COMPANY_PHONE), [BORIS])
  t.ok(await waitFor(() => blocklistEvents().length === 3, STEP_MS))
  t.match(blocklistEvents()[2].data, { action: 'unblock', contacts: [{ phone: ANNA }], otherDevice: false })
  t.equal((await client.blocklist(companyId)).blocked.length, 1)

  t.equal((await api('POST', '/blocklist', { phone: COMPANY_PHONE, action: 'block' })).statusCode, 400, 'not itself')
  t.equal((await api('POST', '/blocklist', { phone: 'abc', action: 'block' })).statusCode, 400, 'a bad phone')
  const nobody = await api('POST', '/blocklist', { phone: NOBODY, action: 'block' })
  t.equal(nobody.statusCode, 404, nobody.body)
  t.match(nobody.json(), { error: { code: 'NOT_FOUND' } }, 'a number not on WhatsApp')
  t.equal((await api('POST', '/blocklist', { phone: ANNA, action: 'mute' })).statusCode, 400, 'an unknown action')
})
