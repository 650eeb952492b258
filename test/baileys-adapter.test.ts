import t from 'tap'
import { WebSocketServer } from 'ws'
import pino from 'pino'
import { initAuthCreds } from '@whiskeysockets/baileys'
import { baileysFactory } from '../plugins/session-pool/baileys-adapter.ts'
import type { ConnectionUpdate } from '../plugins/session-pool/socket-port.ts'
import { waitFor } from './helpers/wait.ts'

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
  const factory = baileysFactory({ wsUrl: `ws://127.0.0.1:${port}/ws/chat`, version: [2, 3000, 1023223821] })
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
