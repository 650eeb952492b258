import { lookup } from 'node:dns/promises'
import type { Agent as HttpAgent, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { BoundedMap } from '../bounded-map.ts'
import { BlockList, isIP, type LookupFunction } from 'node:net'

// Not `import { … } from 'node:http'`: an ES import of node:http reads every export of the module, and
// its WebSocket, CloseEvent and MessageEvent getters load Node's bundled undici (with http2, zlib and
// web streams), some 13 MB in a bare process, which an idle replica never uses.
const { Agent: HttpAgentClass, request: httpRequest } = process.getBuiltinModule('node:http')

/**
 * Addresses a URL a client gave (a media URL, a webhook) may not reach: what is not the public
 * internet (loopback, private, carrier-grade NAT, link-local with the cloud metadata services,
 * multicast, reserved). IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry; the
 * forms that embed or translate to an IPv4 address some other way (IPv4-compatible ::/96, 6to4
 * 2002::/16, NAT64 64:ff9b::/96 and the local-use 64:ff9b:1::/48) and the deprecated site-local
 * fec0::/10 are refused whole.
 */
const NOT_PUBLIC = new BlockList()
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]
] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv4')
for (const [network, prefix] of [
  ['::', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7],
  ['fe80::', 10], ['fec0::', 10], ['ff00::', 8]
] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv6')

export function isPublicAddress (address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1]
  if (mapped) return !NOT_PUBLIC.check(mapped, 'ipv4')
  const family = isIP(address)
  if (family === 0) return false
  return !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** Kept-alive connections per checked address: a webhook's deliveries reuse theirs. */
const AGENTS = new BoundedMap<string, HttpAgent>(1_000)
const SOCKETS_PER_ADDRESS = 8

/**
 * An agent whose connections go to the address that was checked, whatever DNS says next (its
 * `lookup` answers that address only), kept alive for the next request to the same one.
 */
function agentFor (url: URL, pinned: { address: string, family: number }): HttpAgent {
  const key = `${url.protocol}//${url.hostname}:${url.port}@${pinned.address}`
  let agent = AGENTS.get(key)
  if (!agent) {
    const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
      if (lookupOptions.all) (callback as unknown as (err: null, all: { address: string, family: number }[]) => void)(null, [pinned])
      else callback(null, pinned.address, pinned.family)
    }
    const options = { keepAlive: true, maxSockets: SOCKETS_PER_ADDRESS, lookup }
    agent = url.protocol === 'https:' ? new HttpsAgent(options) : new HttpAgentClass(options)
    AGENTS.set(key, agent)
  }
  return agent
}

export interface SafeRequestOptions {
  method?: 'GET' | 'POST'
  headers?: OutgoingHttpHeaders
  body?: Buffer
  allowPrivate: boolean
  connectTimeoutMs: number
  /** Covers the whole exchange, the response body included (the caller reads it before the deadline). */
  signal: AbortSignal
  totalTimeoutMs: number
  /**
   * The company's proxy's agent: the request goes through it (the target is still checked here; the
   * proxy resolves the name itself). Unset: directly, to the address checked (pinned).
   */
  proxyAgent?: HttpAgent
}

/** Why a safe request did not get an answer: the target is not allowed, or could not be reached. */
export class SafeRequestError extends Error {
  readonly reason: 'forbidden' | 'unreachable'
  constructor (reason: 'forbidden' | 'unreachable', message: string) {
    super(message)
    this.name = 'SafeRequestError'
    this.reason = reason
  }
}

/**
 * One HTTP(S) request to a URL somebody else chose, without letting it reach inside the network:
 * http(s) only; every address the host resolves to must be public (checked before connecting, and
 * the connection is pinned to the checked address so a second DNS answer cannot differ); a connect
 * timeout and the caller's total deadline. Redirects are the caller's to follow (or not).
 */
/**
 * The target a URL names, checked: http(s), and (unless `allowPrivate`) every address its host
 * resolves to public. Throws SafeRequestError saying why not. Callers that store a URL (webhooks)
 * check it with this when it is given; safeRequest checks it again at each request.
 */
export async function checkTarget (
  url: string, allowPrivate: boolean
): Promise<{ parsed: URL, addresses: { address: string, family: number }[] }> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new SafeRequestError('forbidden', 'not a URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new SafeRequestError('forbidden', `it must be http or https, not ${parsed.protocol}`)
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '')
  let addresses: { address: string, family: number }[]
  try {
    addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true })
  } catch {
    throw new SafeRequestError('unreachable', `its host ${host} does not resolve`)
  }
  if (!allowPrivate) {
    const inside = addresses.find((entry) => !isPublicAddress(entry.address))
    // Which address it is stays unsaid: a refusal must not tell a caller what an internal name resolves to.
    if (inside) throw new SafeRequestError('forbidden', 'its host is not a public address')
  }
  return { parsed, addresses }
}

export async function safeRequest (url: string, options: SafeRequestOptions): Promise<IncomingMessage> {
  const { parsed, addresses } = await checkTarget(url, options.allowPrivate)
  const [pinned] = addresses
  const send = parsed.protocol === 'https:' ? httpsRequest : httpRequest
  const { signal } = options
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = send(parsed, {
      method: options.method ?? 'GET',
      agent: options.proxyAgent ?? agentFor(parsed, pinned),
      signal,
      headers: { 'user-agent': 'wa-gateway', ...options.headers, ...(options.body ? { 'content-length': options.body.length } : {}) }
    })
    const connectTimer = setTimeout(() => {
      request.destroy(new SafeRequestError('unreachable', `its host did not accept a connection within ${options.connectTimeoutMs} ms`))
    }, options.connectTimeoutMs)
    request.once('socket', (socket) => {
      // A kept-alive socket is connected already.
      if (!socket.connecting) clearTimeout(connectTimer)
      else socket.once(parsed.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer))
    })
    request.once('response', (response) => {
      clearTimeout(connectTimer)
      resolve(response)
    })
    request.once('error', (err) => {
      clearTimeout(connectTimer)
      if (err instanceof SafeRequestError) reject(err)
      else if (signal.aborted) reject(new SafeRequestError('unreachable', `it took longer than ${options.totalTimeoutMs} ms`))
      else reject(new SafeRequestError('unreachable', `it could not be reached: ${err.message}`))
    })
    request.end(options.body)
  })
}
