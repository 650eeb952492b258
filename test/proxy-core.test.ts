import t from 'tap'
import { describeProxy, parseProxyUrl, proxyFailureOf, redactProxyUrl, rendezvousPick } from '../core/proxy.ts'
import { loadGatewayConfig } from '../plugins/index.ts'

t.test('proxy URLs: the four schemes with a host, default ports, nothing else', async (t) => {
  t.equal(parseProxyUrl('http://user:p%40ss@proxy.example:3128')?.href, 'http://user:p%40ss@proxy.example:3128/')
  t.equal(parseProxyUrl('socks5h://10.0.0.1')?.port, '1080', 'SOCKS defaults to 1080')
  t.equal(describeProxy(parseProxyUrl('http://proxy.example')!).port, 80)
  t.equal(describeProxy(parseProxyUrl('https://proxy.example')!).port, 443)
  for (const bad of ['ftp://proxy:21', 'socks4://proxy:1080', 'http://', 'not a url', 'http://proxy:3128/path', 'http://proxy:3128?x=1']) {
    t.equal(parseProxyUrl(bad), undefined, `${bad} is refused`)
  }
  const url = parseProxyUrl('socks5://anna:secret@127.0.0.1:1081')!
  t.same(describeProxy(url), { scheme: 'socks5', host: '127.0.0.1', port: 1081, username: 'anna', hasPassword: true })
  t.equal(redactProxyUrl(url), 'socks5://anna:***@127.0.0.1:1081', 'the password never shows')
})

t.test('rendezvous hashing: a company keeps its proxy; adding one moves about 1/n of the companies, removing one only its own',
  async (t) => {
    const proxies = ['http://p1:3128', 'http://p2:3128', 'http://p3:3128', 'http://p4:3128']
    const companies = Array.from({ length: 4_000 }, (_, index) => `salon-${index}`)
    const before = new Map(companies.map((company) => [company, rendezvousPick(company, proxies)!]))
    t.same(companies.map((company) => rendezvousPick(company, [...proxies].reverse())), companies.map((company) => before.get(company)),
      'the same pick whatever the list\'s order')
    const counts = proxies.map((proxy) => [...before.values()].filter((picked) => picked === proxy).length)
    t.ok(counts.every((count) => count > 800 && count < 1_200), `spread evenly: ${counts.join(', ')}`)
    const added = [...proxies, 'http://p5:3128']
    const moved = companies.filter((company) => rendezvousPick(company, added) !== before.get(company))
    t.ok(moved.length > 600 && moved.length < 1_000, `a fifth proxy takes about a fifth: ${moved.length}`)
    t.ok(moved.every((company) => rendezvousPick(company, added) === 'http://p5:3128'), 'and only to itself')
    const removed = proxies.slice(1)
    const movedOnRemoval = companies.filter((company) => rendezvousPick(company, removed) !== before.get(company))
    t.ok(movedOnRemoval.every((company) => before.get(company) === 'http://p1:3128'), 'removing p1 moves only its companies')
    t.equal(rendezvousPick('salon-1', []), undefined)
  })

t.test('a proxy\'s failures are told apart: refused credentials, and a proxy that cannot be reached', async (t) => {
  t.equal(proxyFailureOf(new Error('Unexpected server response: 407')), 'proxy_auth_failed')
  t.equal(proxyFailureOf(new Error('WebSocket Error (Unexpected server response: 401)')), 'proxy_auth_failed',
    'tinyproxy\'s wrong password')
  t.equal(proxyFailureOf({ message: 'WebSocket Error (Socks5 Authentication failed)' }), 'proxy_auth_failed')
  t.equal(proxyFailureOf({ message: 'fetch failed', cause: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:9' } }),
    'proxy_unreachable')
  t.equal(proxyFailureOf({ message: 'Connection Failure', data: { code: 'ECONNRESET' } }), 'proxy_unreachable')
  t.equal(proxyFailureOf(new Error('Stream Errored (conflict)')), undefined, 'WhatsApp\'s own closes are not the proxy\'s')
})

t.test('the deployment\'s proxies: validated, and a bad one is refused without its credentials', async (t) => {
  const config = loadGatewayConfig({ WA_PROXY_URL: 'socks5h://u:p@10.0.0.1:1080', WA_PROXY_URLS: 'http://a:1@p1:3128, http://p2:3128' })
  t.equal(config.waProxyUrl, 'socks5h://u:p@10.0.0.1:1080')
  t.same(config.waProxyUrls, ['http://a:1@p1:3128/', 'http://p2:3128/'])
  let refusal: Error | undefined
  try {
    loadGatewayConfig({ WA_PROXY_URLS: 'http://p1:3128,ftp://user:hunter2@p2:21' })
  } catch (err) {
    refusal = err as Error
  }
  t.match(refusal?.message, /WA_PROXY_URLS/, 'refused')
  t.notMatch(refusal?.message, /hunter2/, 'the password is not repeated')
})
