import t from 'tap'
import v8 from 'node:v8'
import vm from 'node:vm'
import { WebSocketServer } from 'ws'
import pino from 'pino'
import { initAuthCreds } from '@whiskeysockets/baileys'
import { baileysFactory, baileysLogger } from '../plugins/session-pool/baileys-adapter.ts'
import type { ConnectionUpdate } from '../plugins/session-pool/socket-port.ts'
import { waitFor } from './helpers/wait.ts'
import { startSimulator } from './helpers/simulator.ts'

t.test('real Baileys, pointed at a local server that hangs up, reports connecting then a close code', async (t) => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  let connections = 0
  server.on('connection', (socket) => {
    connections++
    socket.close()
  })
  const { port } = server.address() as { port: number }
  const factory = baileysFactory({ wsUrl: `ws://127.0.0.1:${port}/ws/chat`, version: [2, 3000, 1023223821], closeTimeoutMs: 2_000 })
  const keys: Record<string, unknown> = {}
  const socket = factory({
    companyId: 'acme',
    auth: { creds: initAuthCreds(), keys: { get: async () => ({}), set: async (data) => { Object.assign(keys, data) } } },
    log: pino({ level: 'silent' })
  })
  const updates: ConnectionUpdate[] = []
  socket.on('connection', (update) => updates.push(update))
  t.ok(await waitFor(() => updates.some((update) => update.connection === 'close'), 10_000), 'closed')
  t.equal(connections, 1, 'it connected to WA_WS_URL, not to WhatsApp')
  const closed = updates.find((update) => update.connection === 'close')!
  t.type(closed.closeCode, 'number', `close code ${closed.closeCode} taken from Baileys' Boom error`)
  await socket.end()
})

t.test('Baileys\' expected noise (the 515 after a link, the disabled history sync) is logged at debug; ' +
  'real problems keep their level', async (t) => {
  const lines: { level: number, msg: string }[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const logger = baileysLogger(log as never, { lid: () => '636112347719:2@lid' }).child({ module: 'baileys' })
  logger.error({ fullErrorNode: { tag: 'stream:error', attrs: { code: '515' } } }, 'stream errored out')
  logger.error({ fullErrorNode: { tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict' }] } }, 'stream errored out')
  logger.warn('⚠️ DANGER: DISABLING ALL SYNC BY shouldSyncHistoryMsg PREVENTS BAILEYS FROM ACCESSING INITIAL LID MAPPINGS')
  logger.warn({ jid: 'x' }, 'failed to assert sessions for newly mapped LIDs')
  // A group's sender key to the sending device itself (rc14 in LID groups) is expected; to anyone else it is not.
  logger.error({ jid: '636112347719:2@lid', err: new Error('No sessions') }, 'Failed to encrypt for recipient')
  logger.error({ jid: '777000111222:1@lid', err: new Error('No sessions') }, 'Failed to encrypt for recipient')
  t.same(lines.map((line) => [line.level, line.msg]), [
    [20, 'stream errored out'],
    [50, 'stream errored out'],
    [20, '⚠️ DANGER: DISABLING ALL SYNC BY shouldSyncHistoryMsg PREVENTS BAILEYS FROM ACCESSING INITIAL LID MAPPINGS'],
    [40, 'failed to assert sessions for newly mapped LIDs'],
    [20, 'Failed to encrypt for recipient'],
    [50, 'Failed to encrypt for recipient']
  ])
  t.equal(logger.level, 'debug', 'Baileys reads the level to skip work')
})

t.test('a real Baileys socket writes nothing once its lease deadline has passed: the first frame too late cuts it', async (t) => {
  const { simulator, link } = await startSimulator(t)
  let deadline = Infinity
  const { socket, updates } = await link('79001230077', () => deadline)
  const contact = '79005550077'
  await socket.sendText(`${contact}@s.whatsapp.net`, 'in time')
  t.ok(await waitFor(() => simulator.received(contact).length === 1, 5_000), 'a message in time reaches the contact')
  // The lease's deadline passes (the fence's timer has not run: a stalled loop, say).
  deadline = performance.now()
  const late = await socket.sendText(`${contact}@s.whatsapp.net`, 'too late').then(() => true, () => false)
  t.notOk(late, 'the send past the deadline fails')
  t.ok(await waitFor(() => updates.some((update) => update.connection === 'close'), 5_000), 'the socket is cut')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(simulator.received(contact).map((message) => message.text), ['in time'], 'and WhatsApp never got the late message')
})

t.test('an ended socket is not kept by the key cache of its auth store, which the next socket reuses (a 515 restart)', async (t) => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  server.on('connection', (socket) => socket.close())
  const { port } = server.address() as { port: number }
  const factory = baileysFactory({ wsUrl: `ws://127.0.0.1:${port}/ws/chat`, version: [2, 3000, 1023223821], closeTimeoutMs: 2_000 })
  const auth = { creds: initAuthCreds(), keys: { get: async () => ({}), set: async () => {} } }
  const open = async () => {
    const options = { companyId: 'acme', auth: { ...auth }, log: pino({ level: 'silent' }) }
    const socket = factory(options)
    const updates: ConnectionUpdate[] = []
    socket.on('connection', (update) => updates.push(update))
    t.ok(await waitFor(() => updates.some((update) => update.connection === 'close'), 10_000), 'closed by the server')
    await socket.end()
    return new WeakRef(options)
  }
  // The first socket made the key cache; the second reuses it.
  const first = await open()
  const second = await open()
  const collected = await waitFor(async () => {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    return first.deref() === undefined && second.deref() === undefined
  }, 5_000, 100)
  t.ok(collected, 'both sockets\' options (and with them their sockets) were collected')
})
