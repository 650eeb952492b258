import t from 'tap'
import type { BaileysEventMap, WASocket } from '@whiskeysockets/baileys'
import { startSimulator } from './helpers/simulator.ts'
import { linkDirectly } from './helpers/baileys-direct.ts'
import { waitFor } from './helpers/wait.ts'

const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const STEP_MS = 10_000

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const until = (condition: () => boolean) => waitFor(condition, STEP_MS)

/** Baileys' chat events, in order. */
function chatEvents (socket: WASocket) {
  const updates: BaileysEventMap['chats.update'] = []
  const deletes: string[] = []
  socket.ev.on('chats.update', (batch) => updates.push(...batch))
  socket.ev.on('chats.delete', (ids) => deletes.push(...ids))
  return { updates, deletes }
}

/** Waits until the phone's app-state key reached the device (Baileys keeps its id in the creds). */
const keyShared = (creds: { myAppStateKeyId?: string }) => until(() => Boolean(creds.myAppStateKeyId))

t.test('the device\'s chat changes reach WhatsApp as app-state patches the phone reads', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, creds } = await linkDirectly(t, simulator, url, SALON)
  t.ok(await keyShared(creds), 'the phone shared its app-state sync key at linking')

  await socket.chatModify({ archive: true, lastMessages: [] }, pn(ANNA))
  t.same(simulator.appState.chats(SALON)[pn(ANNA)], { archived: true }, 'archived, as the phone reads the patch')
  t.equal(simulator.appState.version(SALON, 'regular_low'), 1, 'the collection is at version 1')

  await socket.chatModify({ pin: true }, pn(ANNA))
  const until8 = Date.now() + 8 * 3600_000
  await socket.chatModify({ mute: until8 }, pn(ANNA))
  await socket.chatModify({ markRead: false, lastMessages: [] }, pn(ANNA))
  t.same(simulator.appState.chats(SALON)[pn(ANNA)], { archived: true, pinned: true, mutedUntil: until8, read: false },
    'pin (regular_low), mute (regular_high) and unread, each on top of the collection\'s latest version')
  t.equal(simulator.appState.version(SALON, 'regular_low'), 3)
  t.equal(simulator.appState.version(SALON, 'regular_high'), 1)

  await socket.chatModify({ archive: false, lastMessages: [] }, pn(ANNA))
  await socket.chatModify({ mute: null }, pn(ANNA))
  t.match(simulator.appState.chats(SALON)[pn(ANNA)], { archived: false, mutedUntil: null }, 'undone alike')

  await socket.chatModify({ delete: true, lastMessages: [] }, pn(BORIS))
  t.same(simulator.appState.chats(SALON)[pn(BORIS)], { deleted: true }, 'a deleted chat')
})

t.test('the phone\'s chat changes reach the device by server_sync: chats.update and chats.delete', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, creds, connect, device } = await linkDirectly(t, simulator, url, SALON)
  t.ok(await keyShared(creds))
  const seen = chatEvents(socket)

  await simulator.appState.phoneChanges(SALON, pn(ANNA), { action: 'archive' })
  t.ok(await until(() => seen.updates.some((update) => update.id === pn(ANNA) && update.archived === true)), 'archived on the phone')
  await simulator.appState.phoneChanges(SALON, pn(ANNA), { action: 'pin' })
  t.ok(await until(() => seen.updates.some((update) => update.id === pn(ANNA) && typeof update.pinned === 'number' && update.pinned > 0)),
    'pinned, with the phone\'s time')
  const muteUntil = Date.now() + 3600_000
  await simulator.appState.phoneChanges(SALON, pn(ANNA), { action: 'mute', until: muteUntil })
  t.ok(await until(() => seen.updates.some((update) => update.id === pn(ANNA) && update.muteEndTime === muteUntil)), 'muted until')
  await simulator.appState.phoneChanges(SALON, pn(ANNA), { action: 'unread' })
  t.ok(await until(() => seen.updates.some((update) => update.id === pn(ANNA) && update.unreadCount === -1)), 'marked unread')
  await simulator.appState.phoneChanges(SALON, pn(BORIS), { action: 'delete' })
  t.ok(await until(() => seen.deletes.includes(pn(BORIS))), 'deleted')

  // The device builds on the phone's patches: its own change after them is taken.
  await socket.chatModify({ archive: false, lastMessages: [] }, pn(ANNA))
  t.match(simulator.appState.chats(SALON)[pn(ANNA)], { archived: false, pinned: true, read: false })

  // Offline meanwhile: the notification waits for the next login, which fetches the change.
  socket.end(undefined)
  await until(() => simulator.liveDevices().length === 0)
  await simulator.appState.phoneChanges(SALON, pn(VERA), { action: 'archive' })
  const { events } = await connect()
  t.ok(await until(() => events.of('chats.update').flat().some((update) => update.id === pn(VERA) && update.archived === true)),
    'the change made while the device was offline arrives at its next login')
  t.ok(simulator.log.some((entry) => entry.detail === `1 kept messages handed to ${device}`),
    'only the notification was kept: the device acknowledged the key share (category="peer", a peer_msg receipt)')
})

t.test('a patch that does not build on the latest version, or is no patch under the shared key, is refused', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, creds } = await linkDirectly(t, simulator, url, SALON)
  t.ok(await keyShared(creds))
  await simulator.appState.phoneChanges(SALON, pn(ANNA), { action: 'archive' })
  const patchAt = (version: string, bytes: Uint8Array) => socket.query({
    tag: 'iq',
    attrs: { to: 's.whatsapp.net', type: 'set', xmlns: 'w:sync:app:state' },
    content: [{
      tag: 'sync',
      attrs: {},
      content: [{
        tag: 'collection',
        attrs: { name: 'regular_low', version, return_snapshot: 'false' },
        content: [{ tag: 'patch', attrs: {}, content: bytes }]
      }]
    }]
  }).then(() => 'taken', (err: { data?: unknown }) => err.data)
  t.equal(await patchAt('0', new Uint8Array([8, 1])), 409, 'behind the collection: conflict')
  t.equal(await patchAt('1', new Uint8Array([0xff, 0xff])), 400, 'not a patch')
  t.equal(await patchAt('1', new Uint8Array()), 400, 'no MAC, no key')
  t.equal(simulator.appState.version(SALON, 'regular_low'), 1, 'nothing was taken')
})
