import { lookup } from 'node:dns/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { BlockList, isIP, type LookupFunction } from 'node:net'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/**
 * Addresses a media `url` may not reach: what is not the public internet (loopback, private,
 * carrier-grade NAT, link-local with the cloud metadata services, multicast, reserved). IPv4-mapped
 * IPv6 addresses are checked as the IPv4 address they carry.
 */
const NOT_PUBLIC = new BlockList()
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]
] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv4')
for (const [network, prefix] of [
  ['::', 128], ['::1', 128], ['64:ff9b::', 96], ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]
] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv6')

export function isPublicAddress (address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1]
  if (mapped) return !NOT_PUBLIC.check(mapped, 'ipv4')
  const family = isIP(address)
  if (family === 0) return false
  return !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

export interface FetchLimits {
  allowPrivate: boolean
  connectTimeoutMs: number
  totalTimeoutMs: number
  maxBytes: number
}

export interface Fetched {
  body: IncomingMessage
  contentType: string | undefined
}

const MAX_REDIRECTS = 3

const forbidden = (message: string) => new GatewayError(ErrorCode.MEDIA_URL_FORBIDDEN, message)
const unreachable = (message: string) => new GatewayError(ErrorCode.MEDIA_UNREACHABLE, message)

/**
 * Fetches a client's media `url` without letting it reach inside the network: http(s) only, every
 * address the host resolves to must be public (checked before connecting, and the connection is
 * pinned to the checked address so a second DNS answer cannot differ), redirects checked the same
 * way, a connect and a total timeout, and a declared length over the limit refused before reading.
 * The body's own length is the caller's to count (a server may lie or not declare it).
 */
export async function fetchMediaUrl (url: string, limits: FetchLimits): Promise<Fetched> {
  const signal = AbortSignal.timeout(limits.totalTimeoutMs)
  let current = url
  for (let redirects = 0; ; redirects++) {
    const response = await fetchOnce(current, limits, signal)
    const status = response.statusCode ?? 0
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume()
      if (redirects >= MAX_REDIRECTS) throw unreachable(`the media URL redirected more than ${MAX_REDIRECTS} times`)
      current = new URL(response.headers.location, current).toString()
      continue
    }
    if (status < 200 || status >= 300) {
      response.resume()
      throw unreachable(`the media URL answered ${status}`)
    }
    const declared = Number(response.headers['content-length'])
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      response.destroy()
      throw new GatewayError(ErrorCode.MEDIA_TOO_LARGE, `the file at the media URL is ${declared} bytes; the limit is ${limits.maxBytes}`)
    }
    // The total deadline goes on while the body is read.
    const onAbort = () => response.destroy(unreachable(`fetching the media URL took longer than ${limits.totalTimeoutMs} ms`))
    signal.addEventListener('abort', onAbort, { once: true })
    response.once('close', () => signal.removeEventListener('abort', onAbort))
    return { body: response, contentType: response.headers['content-type'] }
  }
}

async function fetchOnce (url: string, limits: FetchLimits, signal: AbortSignal): Promise<IncomingMessage> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw forbidden('the media URL is not a URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw forbidden(`the media URL must be http or https, not ${parsed.protocol}`)
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '')
  let addresses: { address: string, family: number }[]
  try {
    addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true })
  } catch {
    throw unreachable(`the media URL's host ${host} does not resolve`)
  }
  if (!limits.allowPrivate) {
    const inside = addresses.find((entry) => !isPublicAddress(entry.address))
    if (inside) throw forbidden(`the media URL's host resolves to ${inside.address}, which is not a public address`)
  }
  const [pinned] = addresses
  // The connection goes to the address checked above, whatever DNS says next.
  const pinnedLookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all) (callback as unknown as (err: null, all: typeof addresses) => void)(null, [pinned])
    else callback(null, pinned.address, pinned.family)
  }
  const send = parsed.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = send(parsed, { method: 'GET', lookup: pinnedLookup, agent: false, signal, headers: { 'user-agent': 'wa-gateway' } })
    const connectTimer = setTimeout(() => {
      request.destroy(unreachable(`the media URL's host did not accept a connection within ${limits.connectTimeoutMs} ms`))
    }, limits.connectTimeoutMs)
    request.once('socket', (socket) => {
      socket.once(parsed.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer))
    })
    request.once('response', (response) => {
      clearTimeout(connectTimer)
      resolve(response)
    })
    request.once('error', (err) => {
      clearTimeout(connectTimer)
      if (err instanceof GatewayError) reject(err)
      else if (signal.aborted) reject(unreachable(`fetching the media URL took longer than ${limits.totalTimeoutMs} ms`))
      else reject(unreachable(`the media URL could not be fetched: ${err.message}`))
    })
    request.end()
  })
}
