import t from 'tap'
import { initAuthCreds } from '@whiskeysockets/baileys'
import pino from 'pino'
import type { LedgerPort } from '../plugins/ownership/index.ts'
import { WhatsAppRefusal, type SocketAuth } from '../plugins/session-pool/socket-port.ts'
import type { BlocklistEvent, PictureChange } from '../plugins/session-pool/profiles-port.ts'
import { lidOf } from '../plugins/session-pool/test-groups.ts'
import { TestWhatsApp, type TestSocket } from '../plugins/session-pool/test-socket.ts'
import { waitFor } from './helpers/wait.ts'

// The test double's profiles and block lists, through the socket port as a session uses it, and the
// controls tests use to act as contacts and as the number's phone (TestWhatsApp.profiles).

const ANNA = '79110000001'
const BORIS = '79110000002'
const SHOP = '79110000005'
const EVENT_TIMEOUT_MS = 2_000

const log = pino({ level: 'silent' })
const pn = (phone: string) => `${phone}@s.whatsapp.net`

function anyLedger (): LedgerPort {
  return { open: async () => true, close: async () => {} }
}

/** A company linked by scanning its QR, then connected as a session reconnects after the 515. */
async function linkCompany (whatsapp: TestWhatsApp, companyId: string) {
  const auth: SocketAuth = { creds: initAuthCreds(), keys: { get: async () => ({}), set: async () => {} } }
  const linking = whatsapp.factory('replica')({ companyId, auth, log }) as TestSocket
  if (!await waitFor(() => linking.state === 'qr', EVENT_TIMEOUT_MS, 1)) throw new Error(`${companyId} showed no QR`)
  if (!whatsapp.scan(companyId)) throw new Error(`${companyId} could not be scanned`)
  const socket = whatsapp.factory('replica')({ companyId, auth, log }) as TestSocket
  if (!await waitFor(() => socket.state === 'open', EVENT_TIMEOUT_MS, 1)) throw new Error(`${companyId} did not open`)
  const events: BlocklistEvent[] = []
  socket.on('blocklist', (batch) => events.push(...batch))
  t.teardown(() => socket.end())
  return { socket, phone: socket.phone!, events }
}

const refusal = (promise: Promise<unknown>) =>
  promise.then(() => 'answered', (err: unknown) => err instanceof WhatsAppRefusal ? err.code : `not a refusal: ${String(err)}`)

t.test('own profile: about and picture set and read back as the simulator answers them', async (t) => {
  const whatsapp = new TestWhatsApp(anyLedger())
  const { socket, phone } = await linkCompany(whatsapp, 'own')

  t.same(await socket.profiles.about(pn(phone)), { text: null, setAt: null })
  t.same(await refusal(socket.profiles.pictureUrl(pn(phone), 'image')), 404, 'no picture: 404')
  await socket.profiles.setAbout('Салон «Лотос»')
  t.match(await socket.profiles.about(pn(phone)), { text: 'Салон «Лотос»', setAt: Number })
  t.same(await refusal(socket.profiles.setAbout('x'.repeat(140))), 406, 'WhatsApp\'s 139 characters')
  await socket.profiles.setPicture(Buffer.from('a picture'))
  const url = await socket.profiles.pictureUrl(pn(phone), 'image')
  const expiry = Number.parseInt(new URL(url).searchParams.get('oe')!, 16)
  t.ok(expiry > Date.now() / 1000 + 3600, 'the URL carries its expiry as oe=')
  await socket.profiles.removePicture()
  t.same(await refusal(socket.profiles.pictureUrl(pn(phone), 'preview')), 404)
  t.equal(socket.profiles.ownName(), null, 'no name told yet')
  await socket.profiles.setName('Салон «Лотос»')
  t.equal(whatsapp.profiles.profile(phone).name, 'Салон «Лотос»', 'the double holds the name set')
  t.equal(socket.profiles.ownName(), 'Салон «Лотос»', 'and the connection answers it')
  // The phone renames the number (another device): the connection answers its name.
  whatsapp.profiles.profile(phone).name = 'Лотос'
  t.equal(socket.profiles.ownName(), 'Лотос', 'the push name the test gave')
  socket.end()
  t.same(await refusal(socket.profiles.setName('Лотос 2')), 'not a refusal: Error: Connection Closed', 'a closed connection fails')
  t.equal(whatsapp.profiles.profile(phone).name, 'Лотос', 'and changes nothing')
})

t.test('contacts: pictures by phone and LID, privacy and blocks hide them, business profiles', async (t) => {
  const whatsapp = new TestWhatsApp(anyLedger())
  const { socket, phone } = await linkCompany(whatsapp, 'contacts')
  const changes: PictureChange[] = []
  socket.on('pictures', (batch) => changes.push(...batch))
  whatsapp.profiles.setPicture(ANNA, Buffer.from('Anna'), 600)
  whatsapp.profiles.profile(ANNA).about = { text: 'На работе', setAt: 1_700_000_000 }
  whatsapp.profiles.profile(SHOP).business = { description: 'Цветы', category: 'Florist', email: null, websites: [], address: null }

  t.match(await socket.profiles.pictureUrl(pn(ANNA), 'image'), /oe=[0-9A-F]+$/)
  t.same(await refusal(socket.profiles.pictureUrl(`${lidOf(BORIS)}@lid`, 'image')), 400, 'a LID the double was never told of')
  t.same(await refusal(socket.profiles.pictureUrl(pn(BORIS), 'image')), 404, 'no picture')
  t.same(await refusal(socket.profiles.pictureUrl(`${lidOf(BORIS)}@lid`, 'image')), 404, 'once its number was named, its LID names it')
  t.same(await socket.profiles.about(pn(ANNA)), { text: 'На работе', setAt: 1_700_000_000 })
  t.same(await socket.profiles.businessProfile(pn(SHOP)),
    { description: 'Цветы', category: 'Florist', email: null, websites: [], address: null })
  t.equal(await socket.profiles.businessProfile(pn(ANNA)), undefined)

  whatsapp.profiles.setPicture(ANNA, undefined)
  t.ok(await waitFor(() => changes.length === 2, EVENT_TIMEOUT_MS, 1))
  t.same(changes, [{ jid: pn(ANNA), removed: false }, { jid: pn(ANNA), removed: true }], 'picture changes are told to open connections')
  whatsapp.profiles.setPicture(ANNA, Buffer.from('Anna again'))
  whatsapp.profiles.profile(ANNA).hidesAbout = true
  t.same(await socket.profiles.about(pn(ANNA)), { text: null, setAt: null }, 'a hidden about')
  whatsapp.profiles.block(ANNA, phone, true)
  t.same(await refusal(socket.profiles.pictureUrl(pn(ANNA), 'image')), 401, 'Anna blocked the number: her picture is hidden')
})

t.test('blocking: the connection\'s own changes and the phone\'s are blocklist events; the list by phone', async (t) => {
  const whatsapp = new TestWhatsApp(anyLedger())
  const { socket, phone, events } = await linkCompany(whatsapp, 'blocking')

  await socket.profiles.setBlocked(pn(ANNA), true)
  await socket.profiles.setBlocked(pn(ANNA), true)
  t.same(await socket.profiles.blocklist(), [pn(ANNA)])
  whatsapp.profiles.block(phone, BORIS, true)
  t.ok(await waitFor(() => events.length === 2, EVENT_TIMEOUT_MS, 1), 'one event per change, none for a repeat')
  t.same(events, [
    { action: 'block', jids: [pn(ANNA)], otherDevice: false },
    { action: 'block', jids: [pn(BORIS)], otherDevice: true }
  ])
  await socket.profiles.setBlocked(pn(ANNA), false)
  t.same(whatsapp.profiles.blocked(phone), [BORIS])
  t.same(await refusal(socket.profiles.setBlocked(pn(phone), true)), 406, 'not itself')
  socket.end()
  t.same(await refusal(socket.profiles.blocklist()), 'not a refusal: Error: Connection Closed', 'a closed connection fails')
})
