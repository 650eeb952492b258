/**
 * A webhook receiver on loopback that verifies every delivery with the Standard Webhooks library,
 * records what it accepted, and answers as the test scripts it (500, 429 with Retry-After, silence…).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { Webhook } from 'standardwebhooks'

export interface Received {
  id: string
  seq: number
  type: string
  companyId: string
  /** The lease epoch the event carries (0: none applies). */
  epoch: number
  at: number
}

export type Answer = 'ok' | { status: number, retryAfterS?: number } | 'hang'

export async function startReceiver (t: Test, options: { delayMs?: number } = {}) {
  const accepted: Received[] = []
  const attempts: { id: string, at: number, verified: boolean }[] = []
  let secret: string | undefined
  let script: Answer[] = []
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString()
        let verified = false
        let event: { id: string, seq: number, type: string, companyId: string, epoch: number } | undefined
        try {
          event = new Webhook(secret!).verify(body, request.headers as Record<string, string>) as typeof event
          verified = true
        } catch {}
        attempts.push({ id: String(request.headers['webhook-id']), at: Date.now(), verified })
        if (!verified || !event) return response.writeHead(400).end('bad signature')
        const answer = script.shift() ?? 'ok'
        if (answer === 'hang') return
        if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs))
        if (answer === 'ok') {
          accepted.push({ id: event.id, seq: event.seq, type: event.type, companyId: event.companyId, epoch: event.epoch, at: Date.now() })
          return response.writeHead(204).end()
        }
        response.writeHead(answer.status, answer.retryAfterS ? { 'retry-after': String(answer.retryAfterS) } : {}).end('no')
      })()
    })
  }
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    accepted,
    attempts,
    /** The webhook's secret, as its creation answered it. */
    useSecret: (value: string) => { secret = value },
    /** What the next deliveries get, in order; then 2xx. */
    answer: (answers: Answer[]) => { script = [...answers] }
  }
}
