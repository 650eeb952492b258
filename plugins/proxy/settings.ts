import { defineSettings, type ValuesOf } from '../../core/settings.ts'
import { parseProxyUrl } from '../../core/proxy.ts'

const proxyList = (raw: string) => {
  const urls = raw.split(',').map((entry) => entry.trim()).filter(Boolean).map(parseProxyUrl)
  return urls.length > 0 && urls.every((url) => url !== undefined) ? urls.map((url) => url!.href) : undefined
}

/** The proxy plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  waProxyUrl: {
    env: 'WA_PROXY_URL',
    describe: 'The proxy every company\'s WhatsApp traffic goes through unless it has its own (PUT …/proxy) or WA_PROXY_URLS' +
      ' gives it one; unset: direct',
    expected: 'http://, https://, socks5:// or socks5h:// URL, with user:password@ if the proxy asks for them',
    fallback: () => undefined,
    parse: (raw: string) => parseProxyUrl(raw)?.href,
    secret: true
  },
  waProxyUrls: {
    env: 'WA_PROXY_URLS',
    describe: 'Proxies to spread companies over: a company without its own gets one of them, the same one as long as it is' +
      ' listed (rendezvous hashing: adding a proxy moves about 1/n of the companies, removing one moves only its own)',
    expected: 'proxy URLs separated by commas (as WA_PROXY_URL)',
    fallback: () => [] as string[],
    parse: proxyList,
    secret: true
  },
  proxyCheckTimeoutMs: {
    env: 'PROXY_CHECK_TIMEOUT_MS',
    describe: 'How long GET …/proxy/check waits for the tunnel and WhatsApp\'s first answer',
    expected: 'milliseconds, an integer from 100 to 60000',
    fallback: () => 10_000,
    parse: (raw: string) => (/^\d{3,5}$/.test(raw) && Number(raw) >= 100 && Number(raw) <= 60_000 ? Number(raw) : undefined)
  }
})

export type ProxyOptions = ValuesOf<typeof settings>
