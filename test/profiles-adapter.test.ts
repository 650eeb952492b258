import t from 'tap'
import { lidOf } from '../simulator/accounts.ts'
import { controlApi } from '../simulator/control.ts'
import { WhatsAppRefusal } from '../plugins/session-pool/socket-port.ts'
import type { BlocklistEvent, PictureChange } from '../plugins/session-pool/profiles-port.ts'
import { startSimulator } from './helpers/simulator.ts'
import { jpeg, png } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

// The gateway's own Baileys adapter (baileysFactory, the WaSocket port's profiles) against the simulator.
const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const SHOP = '79110000005'
const STEP_MS = 10_000

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const lid = (phone: string) => `${lidOf(phone)}@lid`
/** The code of a refusal (a WhatsAppRefusal), or what else the call did. */
const refusal = (promise: Promise<unknown>) =>
  promise.then(() => 'answered', (err: unknown) => err instanceof WhatsAppRefusal ? err.code : `not a refusal: ${String(err)}`)

t.test('own profile: about and picture set through Baileys, read back by the number and seen by the simulator', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)

  t.same(await refusal(socket.profiles.pictureUrl(pn(SALON), 'image')), 404, 'no picture yet: 404')
  await socket.profiles.setAbout('Стрижки и укладки, 10:00–20:00')
  const about = await socket.profiles.about(pn(SALON))
  t.equal(about.text, 'Стрижки и укладки, 10:00–20:00')
  t.ok(about.setAt && Math.abs(about.setAt - Date.now() / 1000) < 60, 'with when it was set')

  // Baileys scales the picture to a 640 px JPEG itself; a PNG goes in as well.
  const changes: PictureChange[] = []
  socket.on('pictures', (batch) => changes.push(...batch))
  await socket.profiles.setPicture(await png(800, 600))
  const stored = simulator.profiles.profile(SALON).picture
  t.ok(stored?.jpeg.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff])), 'WhatsApp got a JPEG')
  const url = await socket.profiles.pictureUrl(pn(SALON), 'image')
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+\/v\/.+\.jpg\?.*oe=[0-9A-F]+/, 'a URL with its expiry')
  const response = await fetch(url)
  t.equal(response.status, 200)
  t.equal(response.headers.get('content-type'), 'image/jpeg')
  t.ok(Buffer.from(await response.arrayBuffer()).equals(stored!.jpeg), 'the URL serves the picture')

  await socket.profiles.removePicture()
  t.equal(simulator.profiles.profile(SALON).picture, undefined, 'removed')
  t.same(changes, [], 'the device that changed its picture is not told of it')
  t.same(await refusal(socket.profiles.pictureUrl(pn(SALON), 'preview')), 404)
  t.equal(socket.profiles.ownName(), null, 'the simulator tells no push name at linking')
})

t.test('own name: an app-state patch WhatsApp keeps, which the number\'s other device and the phone\'s rename reach', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const gateway = await link(SALON)
  const frontDesk = await link(SALON)
  t.not(gateway.device, frontDesk.device, 'two linked devices of the number')
  const savedNames: (string | undefined)[] = []
  gateway.socket.on('creds', (creds) => savedNames.push(creds.me?.name))

  // Asked right after linking: the adapter waits for the phone's app-state key if it has not come yet.
  await gateway.socket.profiles.setName('Салон «Лотос»')
  t.equal(simulator.account(SALON).pushName, 'Салон «Лотос»', 'WhatsApp holds the name')
  t.equal(gateway.socket.profiles.ownName(), 'Салон «Лотос»', 'the device that set it answers it')
  t.ok(savedNames.includes('Салон «Лотос»'), 'in the creds it saves')
  t.ok(await waitFor(() => frontDesk.socket.profiles.ownName() === 'Салон «Лотос»', STEP_MS), 'the other device syncs it (server_sync)')

  // The phone renames the number: both devices learn it.
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const renamed = await control.inject({ method: 'PUT', url: `/accounts/${SALON}/profile`, payload: { name: 'Лотос' } })
  t.equal(renamed.json().name, 'Лотос', renamed.body)
  t.ok(await waitFor(() => gateway.socket.profiles.ownName() === 'Лотос' && frontDesk.socket.profiles.ownName() === 'Лотос', STEP_MS),
    'both devices answer the phone\'s name')
  // The next name builds on the phone's patch (Baileys syncs the collection first).
  await frontDesk.socket.profiles.setName('Лотос на Невском')
  t.equal(simulator.account(SALON).pushName, 'Лотос на Невском')
  t.ok(await waitFor(() => gateway.socket.profiles.ownName() === 'Лотос на Невском', STEP_MS))
  t.equal(simulator.appState.version(SALON, 'critical_block'), 3, 'three patches to critical_block')

  // The phone renames the number just as the gateway does: WhatsApp refuses the gateway's patch, built on
  // an older version (409); the adapter makes it again on top of the phone's, and the gateway's name stands.
  const refused = () => simulator.log.filter((entry) => entry.kind === 'app-state' && entry.detail.includes('refused: 409')).length
  simulator.appState.raceNextRename(SALON, 'Лотос (с телефона)')
  await gateway.socket.profiles.setName('Лотос, Невский 1')
  t.equal(refused(), 1, 'the racing patch was refused once')
  t.equal(simulator.account(SALON).pushName, 'Лотос, Невский 1', 'the gateway\'s name stands')
  t.equal(simulator.appState.version(SALON, 'critical_block'), 5, 'the phone\'s patch and the gateway\'s, one after the other')
  t.ok(await waitFor(() => frontDesk.socket.profiles.ownName() === 'Лотос, Невский 1', STEP_MS), 'the other device agrees')
  t.equal(gateway.socket.profiles.ownName(), 'Лотос, Невский 1')
})

t.test('contacts: picture by phone and by LID, about, privacy refusals, business profiles', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const changes: PictureChange[] = []
  socket.on('pictures', (batch) => changes.push(...batch))
  const annaPicture = await jpeg(120, 120)
  simulator.profiles.setPicture(ANNA, annaPicture, 3600)
  t.ok(await waitFor(() => changes.length === 1, STEP_MS), 'WhatsApp tells of her new picture')
  t.same(changes, [{ jid: pn(ANNA), removed: false }])
  simulator.profiles.profile(ANNA).about = { text: 'На работе', setAt: 1_700_000_000 }
  simulator.profiles.profile(SHOP).business = {
    description: 'Цветы с доставкой', category: 'Florist', email: 'shop@example.com', website: 'https://shop.example.com'
  }

  const byPhone = await socket.profiles.pictureUrl(pn(ANNA), 'image')
  const byLid = await socket.profiles.pictureUrl(lid(ANNA), 'preview')
  for (const url of [byPhone, byLid]) {
    t.ok(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(annaPicture), 'her picture, by phone and by LID')
  }
  const expiry = Number.parseInt(new URL(byPhone).searchParams.get('oe')!, 16)
  t.ok(Math.abs(expiry - (Date.now() / 1000 + 3600)) < 60, `oe= is when the URL expires (${expiry})`)
  t.same(await socket.profiles.about(pn(ANNA)), { text: 'На работе', setAt: 1_700_000_000 })
  t.same(await socket.profiles.about(pn(BORIS)), { text: null, setAt: null }, 'no about set')
  t.same(await refusal(socket.profiles.pictureUrl(pn(BORIS), 'image')), 404, 'no picture: 404')

  simulator.profiles.profile(ANNA).hidesPicture = true
  simulator.profiles.profile(ANNA).hidesAbout = true
  t.same(await refusal(socket.profiles.pictureUrl(pn(ANNA), 'image')), 401, 'a hidden picture: 401')
  t.same(await socket.profiles.about(pn(ANNA)), { text: null, setAt: null }, 'a hidden about reads as none')

  t.same(await socket.profiles.businessProfile(pn(SHOP)), {
    description: 'Цветы с доставкой', category: 'Florist', email: 'shop@example.com', websites: ['https://shop.example.com'], address: null
  })
  t.equal(await socket.profiles.businessProfile(pn(ANNA)), undefined, 'not a business')
  simulator.profiles.setPicture(ANNA, undefined)
  t.ok(await waitFor(() => changes.length === 2, STEP_MS))
  t.same(changes[1], { jid: pn(ANNA), removed: true }, 'and of its removal')
})

t.test('blocking: block and unblock by phone, the list by phone, the phone\'s own blocks as events', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const events: BlocklistEvent[] = []
  socket.on('blocklist', (batch) => events.push(...batch))

  t.same(await socket.profiles.blocklist(), [], 'nobody blocked')
  await socket.profiles.setBlocked(pn(ANNA), true)
  t.same(simulator.profiles.blocked(SALON), [ANNA], 'WhatsApp holds the block')
  t.same(await socket.profiles.blocklist(), [pn(ANNA)], 'listed by phone')
  t.same(events, [{ action: 'block', jids: [pn(ANNA)], otherDevice: false }], 'the connection\'s own change is an event')

  // The phone blocks Boris: WhatsApp tells the linked device with an account_sync notification.
  simulator.profiles.block(SALON, BORIS, true)
  t.ok(await waitFor(() => events.length === 2, STEP_MS), 'the phone\'s block reaches the device')
  t.same(events[1], { action: 'block', jids: [pn(BORIS)], otherDevice: true }, 'Boris by phone, though the number never wrote to him')
  t.same(await socket.profiles.blocklist(), [pn(ANNA), pn(BORIS)])

  await socket.profiles.setBlocked(pn(ANNA), false)
  t.same(simulator.profiles.blocked(SALON), [BORIS])
  t.same(events[2], { action: 'unblock', jids: [pn(ANNA)], otherDevice: false })
  t.same(await refusal(socket.profiles.setBlocked(pn(SALON), true)), 406, 'the number cannot block itself')
})

t.test('the phone\'s block list changes while the device is offline reach it at its next login; the control API', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const { socket, creds, keys } = await link(SALON)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const call = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
    const response = await control.inject({ method, url, ...(payload ? { payload } : {}) })
    return { status: response.statusCode, body: response.json() }
  }

  await socket.end()
  t.ok(await waitFor(() => simulator.liveDevices().length === 0, STEP_MS))
  const phoneBlocks = (contact: string, action: string) => call('POST', `/accounts/${SALON}/blocklist`, { contact, action })
  t.match(await phoneBlocks(ANNA, 'block'), { status: 200, body: { blocked: [ANNA] } })
  t.match(await phoneBlocks(BORIS, 'block'), { status: 200 })
  t.match(await phoneBlocks(ANNA, 'unblock'), { status: 200, body: { blocked: [BORIS] } })
  const again = connect(creds, keys)
  const events: BlocklistEvent[] = []
  again.socket.on('blocklist', (batch) => events.push(...batch))
  t.ok(await waitFor(() => events.length === 3, STEP_MS), 'the three changes, kept for the device')
  t.same(events, [
    { action: 'block', jids: [pn(ANNA)], otherDevice: true },
    { action: 'block', jids: [pn(BORIS)], otherDevice: true },
    { action: 'unblock', jids: [pn(ANNA)], otherDevice: true }
  ], 'in order')
  t.same(await again.socket.profiles.blocklist(), [pn(BORIS)])
  t.match(await call('GET', `/accounts/${SALON}/blocklist`), { body: { blocked: [BORIS] } })

  // The control API sets what a contact shows: a JPEG only, with a short-lived URL that the media server stops serving.
  t.match(await call('PUT', `/accounts/${ANNA}/profile`, { picture: Buffer.from('GIF89a').toString('base64') }), { status: 415 })
  const set = await call('PUT', `/accounts/${ANNA}/profile`, {
    name: 'Анна', about: 'На работе', picture: (await jpeg()).toString('base64'), pictureTtlSeconds: 1, business: { description: 'Маникюр' }
  })
  t.match(set, {
    status: 200, body: { name: 'Анна', about: { text: 'На работе' }, picture: { ttlSeconds: 1 }, business: { description: 'Маникюр' } }
  })
  const url = await again.socket.profiles.pictureUrl(pn(ANNA), 'image')
  t.equal((await fetch(url)).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 2_100))
  t.equal((await fetch(url)).status, 403, 'past its oe= the URL is refused, as WhatsApp\'s CDN does')
  t.match(await call('PUT', `/accounts/${ANNA}/profile`, { picture: null, about: null, business: null }),
    { body: { picture: null, about: null, business: null } })
})
