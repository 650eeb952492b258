import t from 'tap'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { SOCKET_PLUGINS, build } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'
import { messageData, pairingCodeData, qrData } from './helpers/event-data.ts'

/** The core alone: these limits need no plugin. */
const CORE_ONLY = ['metrics', 'reactions', 'rate-limit', 'session-pool', ...SOCKET_PLUGINS, 'conversations', 'ownership', 'phone']

async function listening (app: Awaited<ReturnType<typeof build>>) {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/whatsapp/events`
}

function opened (url: string): Promise<{ socket?: WebSocket, status?: number }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url)
    socket.once('open', () => resolve({ socket }))
    socket.once('unexpected-response', (_request, response) => resolve({ status: response.statusCode }))
  })
}

t.test('WebSocket: connections per company are capped; a frame too large closes the socket', async (t) => {
  const app = await build(t, { config: { disabledPlugins: CORE_ONLY, wsMaxConnectionsPerCompany: 2 } })
  const url = await listening(app)
  const companyId = uniqueName('acme')
  const first = await opened(`${url}?companyId=${companyId}`)
  const second = await opened(`${url}?companyId=${companyId}`)
  t.ok(first.socket && second.socket)
  t.equal((await opened(`${url}?companyId=${companyId}`)).status, 503, 'the third of one company is refused')
  const other = await opened(`${url}?companyId=${uniqueName('beta')}`)
  t.ok(other.socket, 'another company is not affected')
  const closed = new Promise<number>((resolve) => first.socket!.once('close', (code) => resolve(code)))
  first.socket!.send(Buffer.alloc(10_000))
  t.equal(await closed, 1009, 'a 10 kB frame: message too big')
  t.ok(await waitFor(async () => Boolean((await opened(`${url}?companyId=${companyId}`)).socket), 2_000), 'its place is free again')
  for (const socket of [second.socket, other.socket]) socket?.close()
})

t.test('WebSocket: a client that does not read is closed with 1013 and can resume with since', async (t) => {
  const app = await build(t, { config: { disabledPlugins: CORE_ONLY, wsMaxBufferedBytes: 1_024 } })
  const url = await listening(app)
  const companyId = uniqueName('acme')
  const { socket } = await opened(`${url}?companyId=${companyId}`)
  const raw = (socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  raw.pause()
  let code: number | undefined
  socket!.once('close', (closeCode) => { code = closeCode })
  // The kernel's socket buffers take megabytes before the replica has to queue anything itself.
  const big = 'x'.repeat(50_000)
  for (let batch = 0; batch < 20; batch++) {
    for (let i = 0; i < 50; i++) app.events.publish(companyId, 'message', messageData({ text: big }))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  raw.resume()
  t.ok(await waitFor(() => code !== undefined, 10_000))
  t.equal(code, 1013, 'try again later')
})

t.test('linking events are purged from the stream once no longer valid; other events stay', async (t) => {
  const app = await build(t, { config: { disabledPlugins: CORE_ONLY } })
  const companyId = uniqueName('acme')
  const before = await app.events.lastSequence()
  app.events.publish(companyId, 'qr', qrData('old'))
  app.events.publish(companyId, 'pairing_code', pairingCodeData('ABCD1234'))
  app.events.publish(companyId, 'message', messageData({ text: 'stays' }))
  // publish() stores in the background: the purge below must come after all three are in the stream (the app's own).
  t.ok(await waitFor(async () => await app.events.lastSequence() >= before + 3, 5_000), 'all three stored')
  await app.events.purgeLinking(await app.events.lastSequence() + 1)
  const types: string[] = []
  const follower = await app.events.follow(app.subjects.event(companyId, '>'), 0, (event) => types.push(event.type))
  t.teardown(follower.stop)
  t.ok(await waitFor(() => types.length >= 1, 3_000))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(types, ['message'])
})

t.test('the session list comes a page at a time; /readyz runs its checks at most once a second', async (t) => {
  const app = await build(t)
  const ids = Array.from({ length: 5 }, (_, index) => `${uniqueName('co')}-${index}`).sort()
  for (const id of ids) await app.ownership.setDesired(id, 'online')
  const seen: string[] = []
  let after: string | undefined
  for (let page = 0; page < 5; page++) {
    const response = await app.inject({ method: 'GET', url: `/api/whatsapp/sessions?limit=2${after ? `&after=${after}` : ''}` })
    const body = response.json()
    t.ok(body.sessions.length <= 2)
    seen.push(...body.sessions.map((session: { companyId: string }) => session.companyId))
    after = body.next ?? undefined
    if (!after) break
  }
  t.same(seen, ids, 'every company once, in order')
  t.equal((await app.inject({ method: 'GET', url: '/api/whatsapp/sessions?limit=0' })).statusCode, 400)

  let runs = 0
  app.addReadinessCheck('counted', async () => { runs++ })
  await Promise.all(Array.from({ length: 20 }, () => app.inject({ method: 'GET', url: '/readyz' })))
  t.ok(runs <= 1, `20 probes ran the checks ${runs} time(s)`)
})
