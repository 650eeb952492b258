import t, { type Test } from 'tap'
import { Agent, get } from 'node:https'
import { connect } from 'node:net'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { SocksProxyAgent } from 'socks-proxy-agent'
import WebSocket from 'ws'
import pino from 'pino'
import makeWASocket, { initAuthCreds, type BaileysEventMap } from '@whiskeysockets/baileys'
import { startMicrosocks, startTinyproxy, type ProxyServer } from './helpers/proxy-servers.ts'
import { controlApi } from '../simulator/control.ts'
import { memoryKeys, startSimulator, TEST_WA_VERSION } from './helpers/simulator.ts'
import { waitFor } from './helpers/wait.ts'

// Real proxies connect out from 127.0.0.2; the simulator accepts only that address, so whatever
// reaches it came through a proxy, and a direct connection (from 127.0.0.1) is refused.
const PROXY_ADDRESS = '127.0.0.2'
const USER = 'company-7'
// tinyproxy's BasicAuth takes letters, digits, '-', '.' and '_' only; microsocks any bytes (percent-encoded in the URL).
const HTTP_PASSWORD = 's3cret.pass-7'
const SOCKS_PASSWORD = 's3cret:with@odd/chars'

/** A proxy agent for `url`: HTTP CONNECT or SOCKS5, as the URL says. */
const agentFor = (url: string): Agent => url.startsWith('socks5:') ? new SocksProxyAgent(url) : new HttpsProxyAgent(url)

/**
 * GET over HTTPS (the simulator's CA is trusted by startSimulator): the status and body, or the error.
 * Without a proxy agent, on a new connection every time (Node's global agent would reuse one, and the
 * allow list judges connections, not requests).
 */
const download = (url: string, agent?: Agent) => new Promise<{ status: number, body: Buffer }>((resolve, reject) => {
  const request = get(url, { agent: agent ?? new Agent({ keepAlive: false }) }, (response) => {
    const chunks: Buffer[] = []
    response.on('data', (chunk: Buffer) => chunks.push(chunk))
    response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }))
    response.on('error', reject)
  })
  request.on('error', reject)
})

/** Opens a WebSocket (through `agent` when given): resolves once it is open, and closes it. */
const openWebSocket = (url: string, agent?: Agent) => new Promise<void>((resolve, reject) => {
  const socket = new WebSocket(url, { agent })
  socket.once('open', () => { socket.close(); resolve() })
  socket.once('error', reject)
})

/** The status line a proxy answers a raw CONNECT with (credentials, when given, in Proxy-Authorization). */
function connectStatus (port: number, target: string, credentials?: { user: string, password: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const authorization = credentials
        ? `Proxy-Authorization: Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}\r\n`
        : ''
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authorization}\r\n`)
    })
    let answer = ''
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1')
      if (answer.includes('\r\n')) {
        socket.destroy()
        resolve(answer.slice(0, answer.indexOf('\r\n')))
      }
    })
    socket.once('error', reject)
  })
}

/** The error code a TCP connection to the port ends with (ECONNREFUSED once nothing listens), or 'connected'. */
const tcpOutcome = (port: number) => new Promise<string>((resolve) => {
  const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve('connected') })
  socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
})

const kinds: [string, (t: Test) => Promise<ProxyServer>][] = [
  ['tinyproxy (HTTP CONNECT)', (t) => startTinyproxy(t, { user: USER, password: HTTP_PASSWORD, bind: PROXY_ADDRESS })],
  ['microsocks (SOCKS5)', (t) => startMicrosocks(t, { user: USER, password: SOCKS_PASSWORD, bind: PROXY_ADDRESS })]
]

for (const [name, startProxy] of kinds) {
  t.test(`${name}: media and the WebSocket reach the simulator from the proxy's address; a direct connection is refused`, async (t) => {
    const { simulator, url: wsUrl } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
    const proxy = await startProxy(t)
    t.equal(proxy.tunnels(), 0, 'no tunnel yet')
    const file = Buffer.from('a price list, through a proxy')
    const { url: fileUrl } = simulator.media.host(file)

    const downloaded = await download(fileUrl, agentFor(proxy.url))
    t.equal(downloaded.status, 200)
    t.same(downloaded.body, file, 'the file, as the media server holds it')
    await openWebSocket(wsUrl, agentFor(proxy.url))
    t.equal(proxy.tunnels(), 2, 'the proxy counts a tunnel per connection')

    await t.rejects(download(fileUrl), 'a direct media download is refused')
    await t.rejects(openWebSocket(wsUrl), 'a direct WebSocket is refused')
    const peers = simulator.peers()
    t.same(peers.map(({ server, address, refused }) => ({ server, address, refused })), [
      { server: 'media', address: PROXY_ADDRESS, refused: false },
      { server: 'ws', address: PROXY_ADDRESS, refused: false },
      { server: 'media', address: '127.0.0.1', refused: true },
      { server: 'ws', address: '127.0.0.1', refused: true }
    ])
    t.equal(proxy.tunnels(), 2, 'the direct attempts did not go through the proxy')

    simulator.allowPeers(undefined)
    t.equal((await download(fileUrl)).status, 200, 'with no allow list, a direct connection is accepted again')
    t.same(simulator.peers().at(-1), { ...simulator.peers().at(-1), server: 'media', address: '127.0.0.1', refused: false })
  })

  t.test(`${name}: stopped, its port refuses connections; started again, on the same port, it tunnels again`, async (t) => {
    const { simulator } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
    const proxy = await startProxy(t)
    const { url: fileUrl } = simulator.media.host(Buffer.from('before and after'))
    t.equal((await download(fileUrl, agentFor(proxy.url))).status, 200)

    await proxy.stop()
    t.equal(await tcpOutcome(proxy.port), 'ECONNREFUSED', 'nothing listens on the port')
    await t.rejects(download(fileUrl, agentFor(proxy.url)), /ECONNREFUSED/, 'a request through it fails')

    await proxy.start()
    t.equal((await download(fileUrl, agentFor(proxy.url))).status, 200, 'the same URL works again')
    t.equal(proxy.tunnels(), 2, 'tunnels are counted across the restart')
    const peers = simulator.peers()
    t.ok(peers.length > 0 && peers.every(({ address, refused }) => address === PROXY_ADDRESS && !refused), 'all came through the proxy')
  })
}

t.test('tinyproxy: no credentials are answered 407, wrong ones 401, and no tunnel opens', async (t) => {
  const { simulator } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
  const proxy = await startTinyproxy(t, { user: USER, password: HTTP_PASSWORD, bind: PROXY_ADDRESS })
  const target = simulator.media.hostname
  t.match(await connectStatus(proxy.port, target), /^HTTP\/1\.[01] 407 /, 'no Proxy-Authorization: 407')
  // tinyproxy 1.11 answers a wrong password with 401 (and WWW-Authenticate), not 407: a client must take both as refused credentials.
  t.match(await connectStatus(proxy.port, target, { user: USER, password: 'wrong' }), /^HTTP\/1\.[01] 401 /, 'a wrong password: 401')
  const right = { user: USER, password: HTTP_PASSWORD }
  t.match(await connectStatus(proxy.port, target, right), /^HTTP\/1\.[01] 200 /, 'the right ones open a tunnel')
  const { url: fileUrl } = simulator.media.host(Buffer.from('secret'))
  // https-proxy-agent hands the proxy's own answer to the request when CONNECT fails: no TLS to the target is tried.
  const refused = await download(fileUrl, agentFor(proxy.urlWith(USER, 'wrong')))
  t.equal(refused.status, 401, 'the request gets the proxy\'s answer')
  t.equal(proxy.tunnels(), 1, 'only the CONNECT with the right credentials opened a tunnel')
  t.equal(simulator.peers().length, 1, 'the simulator saw one connection')
})

t.test('microsocks: a wrong password fails SOCKS5 authentication, and no tunnel opens', async (t) => {
  const { simulator } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
  const proxy = await startMicrosocks(t, { user: USER, password: SOCKS_PASSWORD, bind: PROXY_ADDRESS })
  const { url: fileUrl } = simulator.media.host(Buffer.from('secret'))
  await t.rejects(download(fileUrl, agentFor(proxy.urlWith(USER, 'wrong'))), /authentication failed/i)
  await t.rejects(download(fileUrl, agentFor(proxy.urlWith('someone-else', SOCKS_PASSWORD))), /authentication failed/i)
  t.equal(proxy.tunnels(), 0)
  t.same(simulator.peers(), [], 'nothing reached the simulator')
})

t.test('real Baileys links and logs in through microsocks: the simulator names the device on the proxied connection', async (t) => {
  const { simulator, url } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
  const proxy = await startMicrosocks(t, { user: USER, password: SOCKS_PASSWORD, bind: PROXY_ADDRESS })
  const creds = initAuthCreds()
  const keys = memoryKeys()
  const open = () => {
    const socket = makeWASocket({
      auth: { creds, keys },
      logger: pino({ level: 'silent' }) as never,
      waWebSocketUrl: url,
      version: TEST_WA_VERSION,
      agent: new SocksProxyAgent(proxy.url),
      markOnlineOnConnect: false,
      fireInitQueries: false,
      shouldSyncHistoryMessage: () => false
    })
    const updates: Partial<BaileysEventMap['connection.update']>[] = []
    socket.ev.on('connection.update', (update) => updates.push(update))
    t.teardown(() => socket.end(undefined))
    return updates
  }
  const linking = open()
  t.ok(await waitFor(() => linking.some((update) => update.qr), 10_000), 'a QR, through the proxy')
  simulator.scan(linking.find((update) => update.qr)!.qr!, '79001230077')
  t.ok(await waitFor(() => creds.me !== undefined && linking.some((update) => update.connection === 'close'), 10_000), 'linked; restart')
  const live = open()
  t.ok(await waitFor(() => live.some((update) => update.connection === 'open'), 10_000), 'logged in through the proxy')
  const device = creds.me!.id.replace(/@.*/, '')
  const peers = simulator.peers()
  t.ok(peers.every(({ server, address, refused }) => server === 'ws' && address === PROXY_ADDRESS && !refused), 'all from the proxy')
  t.same(peers.map((peer) => peer.device), [undefined, device], 'the linking connection has no device; the login names it')
  t.equal(proxy.tunnels(), 2, 'one tunnel per connection')
})

t.test('the control API: PUT /peers/allowed sets the allow list (null: any), GET /peers lists every connection', async (t) => {
  const { simulator } = await startSimulator(t)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const { url: fileUrl } = simulator.media.host(Buffer.from('direct'))
  t.equal((await download(fileUrl)).status, 200, 'by default any address may connect')

  const allowed = await control.inject({ method: 'PUT', url: '/peers/allowed', payload: { addresses: ['::ffff:127.0.0.2'] } })
  t.same(allowed.json(), { success: true, allowed: [PROXY_ADDRESS] }, 'an IPv4-mapped address is kept as plain IPv4')
  await t.rejects(download(fileUrl), 'now a direct connection is refused')
  const bad = await control.inject({ method: 'PUT', url: '/peers/allowed', payload: { addresses: ['proxy.example'] } })
  t.equal(bad.statusCode, 400, 'only IP addresses')

  const listed = (await control.inject({ method: 'GET', url: '/peers' })).json() as { allowed: string[] | null, connections: unknown[] }
  t.same(listed.allowed, [PROXY_ADDRESS])
  t.match(listed.connections, [
    { server: 'media', address: '127.0.0.1', refused: false, at: Number },
    { server: 'media', address: '127.0.0.1', refused: true, at: Number }
  ])
  t.equal(listed.connections.length, 2)

  await control.inject({ method: 'PUT', url: '/peers/allowed', payload: { addresses: null } })
  t.equal(simulator.allowedPeers(), undefined)
  t.equal((await download(fileUrl)).status, 200, 'any address again')
})
