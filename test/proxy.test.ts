import t from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { controlApi } from '../simulator/control.ts'
import type { EventEnvelope } from '../contracts/index.ts'
import { COMPANY_PHONE, CONTACT } from './helpers/linked-gateway.ts'
import { jpeg } from './helpers/media-files.ts'
import { startMicrosocks, startTinyproxy, type ProxyServer } from './helpers/proxy-servers.ts'
import { recordEvents, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { baileysOn, startSimulator } from './helpers/simulator.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const STEP_MS = 30_000
const PROXY_ADDRESS = '127.0.0.2'

type ErrorData = { reason: string, message?: string }
const errorsOf = (events: EventEnvelope[]) => events.filter((event) => event.type === 'error').map((event) => event.data as ErrorData)

/**
 * A company's WhatsApp traffic through its proxy, end to end with real Baileys and real proxy servers
 * (Debian's tinyproxy for HTTP CONNECT, microsocks for SOCKS5, both with a password), whose outgoing
 * connections leave from 127.0.0.2; the simulator accepts only that address, so anything that went
 * around the proxy (the WebSocket, an upload, a download) would be refused and fail the test.
 */
for (const kind of ['http', 'socks5'] as const) {
  t.test(`through ${kind === 'http' ? 'tinyproxy (HTTP CONNECT)' : 'microsocks (SOCKS5)'}: link, text and media both ways, a check;` +
    ' the proxy stopping and coming back, wrong credentials', async (t) => {
    const proxy: ProxyServer = kind === 'http'
      ? await startTinyproxy(t, { user: 'salon', password: 'proxy-secret-1' })
      : await startMicrosocks(t, { user: 'salon', password: 's3cret:with@odd/chars' })
    const { simulator, url } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
    const settings = await sessionCluster(t)
    const replica = await startSessionReplica(t, settings, {
      ...baileysOn(simulator, url),
      reconnectBaseMs: 200,
      mediaUrlAllowPrivate: true
    })
    // A file server on loopback that says where each request came from (a send's `media.url`).
    const fileRequests: string[] = []
    const photo = await jpeg()
    const files = createServer((request, response) => {
      fileRequests.push((request.socket.remoteAddress ?? '').replace(/^::ffff:/, ''))
      response.writeHead(200, { 'content-type': 'image/jpeg' }).end(photo)
    }).listen(0, '127.0.0.1')
    await once(files, 'listening')
    t.teardown(() => files.close())
    // The phone has a chat already: its history comes as a blob from the media server, through the proxy too.
    const seeded = await controlApi(simulator).inject({
      method: 'POST',
      url: `/accounts/${COMPANY_PHONE}/history`,
      payload: {
        chats: [{
          jid: `${CONTACT}@s.whatsapp.net`,
          name: 'Анна',
          messages: [{ fromMe: false, text: 'Добрый день', timestamp: Math.floor(Date.now() / 1000) - 600 }]
        }]
      }
    })
    t.equal(seeded.statusCode, 200)
    const companyId = uniqueName('salon')
    const events = await recordEvents(t, settings, companyId)
    const api = (method: 'GET' | 'POST' | 'PUT', path: string, payload?: Record<string, unknown>) =>
      replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${path}`, ...(payload ? { payload } : {}) })

    const init = await api('POST', '/initialize', { proxy: proxy.url })
    t.equal(init.statusCode, 200, 'initialize with the company\'s proxy')
    t.ok(simulator.scan(init.json().qr, COMPANY_PHONE), 'the phone scanned the QR')
    t.ok(await events.waitFor('connected', 1, STEP_MS), 'linked through the proxy')
    const synced = () => events.events.some((event) => event.type === 'history_sync' && (event.data as { done: boolean }).done)
    t.ok(await waitFor(synced, STEP_MS), 'the phone\'s history imported (its blobs fetched through the proxy)')

    t.equal((await api('POST', '/send', { phone: CONTACT, message: 'Ваша запись подтверждена' })).statusCode, 200)
    t.equal((await api('POST', '/send', { phone: CONTACT, media: { kind: 'image', data: photo.toString('base64') } })).statusCode, 200)
    const fileUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}/photo.jpg`
    t.equal((await api('POST', '/send', { phone: CONTACT, media: { kind: 'image', url: fileUrl } })).statusCode, 200)
    t.same(fileRequests, [PROXY_ADDRESS], 'the file a send names by URL was fetched through the proxy')
    t.ok(await waitFor(() => simulator.received(CONTACT).length === 3, STEP_MS), 'the contact got the text and both photos (uploaded)')
    t.match(simulator.received(CONTACT).map((message) => message.kind), ['text', 'media', 'media'])
    const media = { kind: 'image' as const, data: photo, mimetype: 'image/jpeg' }
    await simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Вот фото', media })
    t.ok(await events.waitFor('message', 1, STEP_MS), 'the contact\'s photo arrived')
    const inbound = events.events.find((event) => event.type === 'message')!.data as { media?: { objectId?: string, error?: unknown } }
    t.ok(inbound.media?.objectId, 'and was downloaded (through the proxy: nothing else may reach the media server)')

    const peers = simulator.peers()
    t.same(peers.filter((peer) => peer.refused), [], 'no connection went around the proxy')
    t.ok(peers.every((peer) => peer.address === PROXY_ADDRESS), 'every connection came from the proxy\'s address')
    t.ok(peers.some((peer) => peer.server === 'ws') && peers.some((peer) => peer.server === 'media'), 'the WebSocket and the media server')
    t.ok(proxy.tunnels() >= peers.length, `the proxy's log counts every tunnel (${proxy.tunnels()} for ${peers.length} connections)`)

    const shown = await api('GET', '/proxy')
    t.match(shown.json(), {
      proxy: { source: 'company', scheme: kind, host: '127.0.0.1', port: proxy.port, username: 'salon', hasPassword: true }
    })
    t.notMatch(shown.body, /secret/, 'never its password')
    const check = await api('GET', '/proxy/check')
    t.match(check.json(), { ok: true, roundTripMs: Number, endpoint: url }, 'a tunnel to the WhatsApp endpoint, timed')

    // The proxy goes away: the connection breaks, and reconnecting through it fails as the proxy's fault.
    await proxy.stop()
    t.ok(await waitFor(() => errorsOf(events.events).some((error) => error.reason === 'proxy_unreachable'), STEP_MS),
      'an error event: proxy_unreachable')
    const status = (await api('GET', '/status')).json()
    t.match(status, { connected: false, lastError: { reason: 'proxy_unreachable' } }, 'the session\'s last error says so')
    t.equal(events.events.filter((event) => event.type === 'reconnect_failed').length, 0, 'the session keeps trying (with backoff)')
    await proxy.start()
    t.ok(await events.waitFor('connected', 2, STEP_MS), 'connected again once the proxy is back')

    // Wrong credentials: the company's proxy changes, the holder reconnects through it and is refused.
    const wrong = await api('PUT', '/proxy', { url: proxy.urlWith('salon', 'not-the-password') })
    t.equal(wrong.statusCode, 200, 'the proxy changed')
    t.ok(await waitFor(() => errorsOf(events.events).some((error) => error.reason === 'proxy_auth_failed'), STEP_MS),
      'an error event: proxy_auth_failed')
    t.match((await api('GET', '/status')).json(), { lastError: { reason: 'proxy_auth_failed' } })
    t.match((await api('GET', '/proxy/check')).json(), { ok: false, failure: 'proxy_auth_failed' }, 'the check says the same')
    t.equal((await api('PUT', '/proxy', { url: proxy.url })).statusCode, 200)
    t.ok(await events.waitFor('connected', 3, STEP_MS), 'the right credentials: connected again, without a new QR')
    t.same(simulator.peers().filter((peer) => peer.refused), [], 'still nothing around the proxy')
    const leaked = events.events.some((event) => JSON.stringify(event).includes('not-the-password'))
    t.notOk(leaked, 'no event carries a password')
  })
}

t.test('a company without a proxy is unaffected: it connects directly while another goes through its proxy', async (t) => {
  const proxy = await startTinyproxy(t, { user: 'salon', password: 'proxy-secret-2' })
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, baileysOn(simulator, url))
  const link = async (phone: string, proxyUrl?: string) => {
    const companyId = uniqueName('salon')
    const events = await recordEvents(t, settings, companyId)
    const init = await replica.app.inject({
      method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize`, payload: proxyUrl ? { proxy: proxyUrl } : {}
    })
    simulator.scan(init.json().qr, phone)
    t.ok(await events.waitFor('connected', 1, STEP_MS), `${phone} linked`)
    return companyId
  }
  const proxied = await link('79001230201', proxy.url)
  const tunnelsAfterFirst = proxy.tunnels()
  const direct = await link('79001230202')
  t.equal(proxy.tunnels(), tunnelsAfterFirst, 'the direct company opened no tunnel')
  const fromOf = (phone: string) => new Set(simulator.peers().filter((peer) => peer.device?.startsWith(phone)).map((peer) => peer.address))
  t.same([...fromOf('79001230201')], [PROXY_ADDRESS], 'the proxied company through its proxy')
  t.same([...fromOf('79001230202')], ['127.0.0.1'], 'the other directly')
  const shown = await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${direct}/proxy` })
  t.same(shown.json().proxy, null, 'no proxy')
  t.equal((await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${proxied}/proxy` })).json().proxy.source, 'company')
})

t.test('WA_PROXY_URLS: a company without its own proxy goes through its pick from the list, the same one each time', async (t) => {
  const proxies = [
    await startTinyproxy(t, { user: 'salon', password: 'proxy-secret-3' }),
    await startMicrosocks(t, { user: 'salon', password: 'proxy-secret-4' })
  ]
  const { simulator, url } = await startSimulator(t, { allowedPeers: [PROXY_ADDRESS] })
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { ...baileysOn(simulator, url), waProxyUrls: proxies.map((proxy) => proxy.url) })
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const shown = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/proxy` })).json()
  t.equal(shown.proxy.source, 'list', 'its pick from the list')
  const picked = proxies.find((proxy) => proxy.port === shown.proxy.port)!
  const other = proxies.find((proxy) => proxy !== picked)!
  const init = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  simulator.scan(init.json().qr, COMPANY_PHONE)
  t.ok(await events.waitFor('connected', 1, STEP_MS), 'linked through the list\'s proxy')
  t.ok(picked.tunnels() > 0, 'the picked proxy carried it')
  t.equal(other.tunnels(), 0, 'the other one nothing')
  t.same(simulator.peers().filter((peer) => peer.refused), [], 'nothing went around it')
  const again = (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/proxy` })).json()
  t.equal(again.proxy.port, picked.port, 'the same pick when asked again')
})
