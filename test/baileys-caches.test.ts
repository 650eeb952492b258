import t from 'tap'
import { WebSocketServer } from 'ws'
import pino from 'pino'
import makeWASocket, { initAuthCreds, proto } from '@whiskeysockets/baileys'
import { ExpiringStore, growRetryCachesLazily, sharedBaileysCaches } from '../plugins/session-pool/baileys-caches.ts'
import { BUFFER_POOL_BYTES, loadBaileys } from '../plugins/session-pool/baileys.ts'

t.test('an expiring store forgets an entry its lifetime after it was last set, and keeps at most its bound', async (t) => {
  let now = 0
  const store = new ExpiringStore(1_000, 3, () => now)
  store.set('a', 1)
  now = 600
  store.set('b', 2)
  t.equal(store.get('a'), 1, 'alive before its lifetime has passed')
  now = 1_000
  t.equal(store.get('a'), undefined, 'gone once it has')
  t.equal(store.get('b'), 2)
  store.set('b', 3)
  now = 1_700
  t.equal(store.get('b'), 3, 'setting again starts its lifetime again')
  store.set('c', 4)
  store.set('d', 5)
  store.set('e', 6)
  t.equal(store.size, 3, 'no more than the bound')
  t.equal(store.get('b'), undefined, 'the oldest went first')
  t.same(['c', 'd', 'e'].map((key) => store.get(key)), [4, 5, 6])
  store.delete('c')
  t.equal(store.get('c'), undefined)
  now = 10_000
  store.set('f', 7)
  t.equal(store.size, 1, 'expired entries are dropped as new ones come, without a timer')
})

t.test('sockets share one store per cache and never see each other\'s entries', async (t) => {
  const caches = sharedBaileysCaches()
  const first = caches.forSocket()
  const second = caches.forSocket()
  first.msgRetryCounterCache.set('3EB0AA:79001234567@s.whatsapp.net', 2)
  t.equal(first.msgRetryCounterCache.get('3EB0AA:79001234567@s.whatsapp.net'), 2)
  t.equal(second.msgRetryCounterCache.get('3EB0AA:79001234567@s.whatsapp.net'), undefined, 'the same key of another socket is its own')
  first.userDevicesCache.mset([{ key: '79001234567', value: [{ user: '79001234567', device: 0 }] }])
  second.userDevicesCache.set('79001234567', [])
  t.same(await first.userDevicesCache.mget(['79001234567', '79007654321']),
    { 79001234567: [{ user: '79001234567', device: 0 }], 79007654321: undefined })
  t.same(second.userDevicesCache.get('79001234567'), [])
  first.userDevicesCache.mdel(['79001234567'])
  t.equal(first.userDevicesCache.get('79001234567'), undefined)
  t.same(second.userDevicesCache.get('79001234567'), [], 'a deletion is of the socket\'s own entry')
  t.equal(caches.stores.userDevices.size, 1, 'both sockets\' entries are in one store')
})

t.test('a Baileys socket\'s retry manager gets caches that grow as entries come, with the same bound and index', async (t) => {
  // A server that hangs up: the socket needs no connection for this.
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  server.on('connection', (socket) => socket.close())
  const { port } = server.address() as { port: number }
  const sock = makeWASocket({
    auth: { creds: initAuthCreds(), keys: { get: async () => ({}), set: async () => {} } },
    waWebSocketUrl: `ws://127.0.0.1:${port}/ws/chat`,
    version: [2, 3000, 1023223821],
    logger: pino({ level: 'silent' }) as never
  })
  t.teardown(() => sock.end(undefined))
  const manager = sock.messageRetryManager as unknown as {
    recentMessagesMap: { max: number, maxSize: number, size: number }
    baseKeys: { max: number, maxSize: number }
    messageKeyIndex: Map<string, string>
  }
  const bounds = { recentMessages: manager.recentMessagesMap.max, baseKeys: manager.baseKeys.max }
  t.ok(bounds.recentMessages > 0 && bounds.baseKeys > 0,
    `Baileys' own caches allocate their max up front (${bounds.recentMessages}, ${bounds.baseKeys})`)
  t.equal(growRetryCachesLazily(sock), 2, 'both replaced: this Baileys release still has them')
  t.same({ max: manager.recentMessagesMap.max, maxSize: manager.recentMessagesMap.maxSize }, { max: 0, maxSize: bounds.recentMessages })
  t.same({ max: manager.baseKeys.max, maxSize: manager.baseKeys.maxSize }, { max: 0, maxSize: bounds.baseKeys })

  const message = proto.Message.create({ conversation: 'Добрый день' })
  const retry = sock.messageRetryManager!
  for (let index = 0; index <= bounds.recentMessages; index++) retry.addRecentMessage('79001234567@s.whatsapp.net', `ID${index}`, message)
  t.equal(manager.recentMessagesMap.size, bounds.recentMessages, 'still bounded')
  t.equal(retry.getRecentMessage('79001234567@s.whatsapp.net', 'ID0'), undefined, 'the oldest went')
  t.equal(manager.messageKeyIndex.has('ID0'), false, 'and its index entry with it (the manager\'s dispose still runs)')
  t.equal(retry.getRecentMessage('79001234567@s.whatsapp.net', `ID${bounds.recentMessages}`)?.message, message)
  retry.saveBaseKey('79001234567.0', 'ID1', new Uint8Array([1, 2, 3]))
  t.ok(retry.hasSameBaseKey('79001234567.0', 'ID1', new Uint8Array([1, 2, 3])))
  t.equal(growRetryCachesLazily(sock), 0, 'a second call replaces nothing: they grow lazily already, and hold entries')
})

t.test('once Baileys is loaded, a small Buffer kept by a session pins a slab of 8 KB, not Node 24\'s 64 KB', async (t) => {
  await loadBaileys()
  t.equal(Buffer.poolSize, BUFFER_POOL_BYTES)
  // The slab in use when it was set is used up first (by anything: here, by small allocations).
  let used = 0
  while (Buffer.allocUnsafe(64).buffer.byteLength > BUFFER_POOL_BYTES && used < 65_536) used += 64
  t.ok(used < 65_536, `the 64 KB slab was used up after ${used} more bytes`)
  // A key as the auth store revives it: a pooled Buffer that outlives the slab's other Buffers.
  const key = Buffer.from('q83vEjRWeJq8E1kJKwI1cHX8fF4zQq2DcM3eDUPXzA4=', 'base64')
  t.ok(key.buffer.byteLength <= BUFFER_POOL_BYTES, `its slab is ${key.buffer.byteLength} bytes`)
})
