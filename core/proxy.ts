import { createHash } from 'node:crypto'
import type { Agent } from 'node:http'
import type { Dispatcher } from 'undici'

/** The proxies a company's traffic may go through: HTTP(S) CONNECT, and SOCKS5 (`socks5h`: the proxy resolves names). */
export const PROXY_SCHEMES = ['http', 'https', 'socks5', 'socks5h'] as const
export type ProxyScheme = (typeof PROXY_SCHEMES)[number]

/** Why a connection through a proxy failed, as a session's `lastError` names it. */
export type ProxyFailure = 'proxy_unreachable' | 'proxy_auth_failed'

/** A proxy URL checked: a scheme of PROXY_SCHEMES, a host and a port, optional credentials, nothing else. */
export function parseProxyUrl (raw: string): URL | undefined {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return undefined
  }
  const scheme = url.protocol.slice(0, -1)
  if (!(PROXY_SCHEMES as readonly string[]).includes(scheme) || !url.hostname) return undefined
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) return undefined
  // SOCKS has no port a URL implies; http and https keep theirs implied (a URL drops 80 and 443).
  if (!url.port && scheme.startsWith('socks')) url.port = '1080'
  return url
}

/** What may be shown of a proxy: never its password. */
export interface ProxyDescription {
  scheme: ProxyScheme
  host: string
  port: number
  username: string | null
  hasPassword: boolean
}

export function describeProxy (url: URL): ProxyDescription {
  return {
    scheme: url.protocol.slice(0, -1) as ProxyScheme,
    host: url.hostname,
    port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : url.protocol === 'http:' ? 80 : 1080,
    username: url.username ? decodeURIComponent(url.username) : null,
    hasPassword: url.password !== ''
  }
}

/** A proxy URL for logs and answers: the password replaced. */
export function redactProxyUrl (url: URL): string {
  const shown = new URL(url.href)
  if (shown.password) shown.password = '***'
  return shown.href.replace(/\/$/, '')
}

/**
 * Everything a connection needs to send its traffic through the proxy: an http(s) Agent (the
 * WebSocket to WhatsApp, and Baileys' media uploads, which use `https.request`) and an undici
 * dispatcher (native fetch: media downloads and history blobs). Kept agents do the tunnelling.
 */
export interface ProxyRoute {
  url: URL
  agent: Agent
  dispatcher: Dispatcher
}

/**
 * The agents are loaded when a first route is made: undici and the proxy agents are about 10 MB of a
 * process that may never see a proxy.
 */
export async function proxyRoute (url: URL): Promise<ProxyRoute> {
  const scheme = url.protocol.slice(0, -1) as ProxyScheme
  const { ProxyAgent, Socks5ProxyAgent } = await import('undici')
  if (scheme === 'http' || scheme === 'https') {
    const { HttpsProxyAgent } = await import('https-proxy-agent')
    return { url, agent: new HttpsProxyAgent(url.href, { keepAlive: true }), dispatcher: new ProxyAgent({ uri: url.href }) }
  }
  const { SocksProxyAgent } = await import('socks-proxy-agent')
  // undici names SOCKS5 `socks5:` and always hands the proxy the host name (what socks5h means).
  const socks = new URL(url.href)
  socks.protocol = 'socks5:'
  return { url, agent: new SocksProxyAgent(url.href), dispatcher: new Socks5ProxyAgent(socks.href) }
}

/**
 * Picks a company's proxy from a list by rendezvous (highest random weight) hashing: each company
 * keeps its proxy while the list changes, except the companies of a proxy taken out, and a proxy
 * added takes about 1/n of the companies from the others.
 */
export function rendezvousPick (key: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string, weight: bigint } | undefined
  for (const candidate of candidates) {
    const weight = createHash('sha256').update(`${candidate}\u0000${key}`).digest().readBigUInt64BE(0)
    if (!best || weight > best.weight) best = { candidate, weight }
  }
  return best?.candidate
}

// tinyproxy answers a wrong password with 401 (407 only when none is given); https-proxy-agent then hands
// the proxy's answer to the WebSocket, which fails with "Unexpected server response: 401".
const AUTH_FAILURE = /\b40[17]\b|authenticat|auth(orization)? (failed|required)|Proxy-Authenticate|rejected the credentials/i
const UNREACHABLE = new RegExp(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT',
  'socket hang up', 'Proxy connection', 'SOCKS', 'Socks5', 'from the proxy'].join('|'), 'i')

/** Whether an error of a connection made through a proxy is the proxy's, and which kind. */
export function proxyFailureOf (err: unknown): ProxyFailure | undefined {
  const messages: string[] = []
  for (let current = err as { message?: unknown, code?: unknown, cause?: unknown, data?: unknown } | undefined, depth = 0;
    current && depth < 5; depth++) {
    messages.push(`${String(current.code ?? '')} ${String(current.message ?? '')}`)
    current = (current.cause ?? current.data) as typeof current
  }
  const text = messages.join(' | ')
  if (AUTH_FAILURE.test(text)) return 'proxy_auth_failed'
  if (UNREACHABLE.test(text)) return 'proxy_unreachable'
  return undefined
}

/** What a check of the tunnel found: the round trip to the endpoint through the proxy, or why there is none. */
export type TunnelCheck =
  | { ok: true, roundTripMs: number, status: number }
  | { ok: false, failure: ProxyFailure | 'endpoint_unreachable', message: string }

/**
 * Opens a tunnel through the proxy (none: directly) to `endpoint` (WhatsApp's WebSocket origin: https for wss, http
 * for ws) and asks it for `/`: any HTTP answer means the proxy let the connection through.
 */
export async function checkTunnel (
  route: ProxyRoute | undefined, endpoint: string, timeoutMs: number
): Promise<TunnelCheck> {
  const target = new URL(endpoint)
  target.protocol = target.protocol === 'wss:' ? 'https:' : target.protocol === 'ws:' ? 'http:' : target.protocol
  const started = performance.now()
  try {
    const response = await fetch(new URL('/', target), {
      ...(route ? { dispatcher: route.dispatcher } : {}), signal: AbortSignal.timeout(timeoutMs)
    } as RequestInit)
    await response.body?.cancel()
    if (response.status === 407) return { ok: false, failure: 'proxy_auth_failed', message: 'the proxy refused the credentials (407)' }
    return { ok: true, roundTripMs: Math.round(performance.now() - started), status: response.status }
  } catch (err) {
    const failure = proxyFailureOf(err) ?? 'endpoint_unreachable'
    const cause = (err as { cause?: { message?: string } }).cause?.message
    return { ok: false, failure, message: cause ?? (err as Error).message }
  }
}
