import type { IncomingMessage } from 'node:http'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { Agent as HttpAgent } from 'node:http'
import { safeRequest, SafeRequestError } from '../../core/net/safe-request.ts'

export { isPublicAddress } from '../../core/net/safe-request.ts'

export interface FetchLimits {
  allowPrivate: boolean
  connectTimeoutMs: number
  totalTimeoutMs: number
  maxBytes: number
  /** The company's proxy's agent, when it has one: its URL media is fetched through it too. */
  proxyAgent?: HttpAgent
}

export interface Fetched {
  body: IncomingMessage
  contentType: string | undefined
}

const MAX_REDIRECTS = 3

const unreachable = (message: string) => new GatewayError(ErrorCode.MEDIA_UNREACHABLE, message)

/**
 * Fetches a client's media `url` with core/net/safe-request.ts (public addresses only, pinned, with
 * a connect and a total timeout), following up to three redirects checked the same way, and
 * refusing a declared length over the limit before reading. The body's own length is the caller's
 * to count (a server may lie or not declare it).
 */
export async function fetchMediaUrl (url: string, limits: FetchLimits): Promise<Fetched> {
  const signal = AbortSignal.timeout(limits.totalTimeoutMs)
  let current = url
  for (let redirects = 0; ; redirects++) {
    let response: IncomingMessage
    try {
      response = await safeRequest(current, { ...limits, signal })
    } catch (err) {
      if (!(err instanceof SafeRequestError)) throw err
      const code = err.reason === 'forbidden' ? ErrorCode.MEDIA_URL_FORBIDDEN : ErrorCode.MEDIA_UNREACHABLE
      throw new GatewayError(code, `the media URL cannot be fetched: ${err.message}`)
    }
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
