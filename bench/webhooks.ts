/**
 * bench:webhooks — events delivered by one gateway replica process to a local receiver through
 * webhooks (one per company, COMPANIES companies, each webhook one event at a time in stream
 * order), against the same receiver fed directly by this process as the baseline: the same signed
 * events, one company after another in parallel, one at a time each. Events are written straight
 * into the events stream, so what is measured is delivery. The last line is one JSON object.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/nats-core'
import { jetstream } from '@nats-io/jetstream'
import { Webhook } from 'standardwebhooks'
import type { EventEnvelope } from '../contracts/index.ts'
import { TEST_NATS_URL } from '../test/helpers/services.ts'
import { exitOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment } from './deployment.ts'
import { log, percentile, round } from './report.ts'

const COMPANIES = Number(process.env.BENCH_WEBHOOK_COMPANIES ?? 4)
const EVENTS_PER_COMPANY = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 500)
const TARGET_RATIO = 0.5

// The receiver: verifies every signature (as a real one would), records ids and the delay from the event.
const received = new Map<string, number>()
const latencies: number[] = []
let verifier: Webhook | undefined
const server = createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    try {
      const event = verifier!.verify(Buffer.concat(chunks).toString(), request.headers as Record<string, string>) as EventEnvelope
      received.set(event.id, (received.get(event.id) ?? 0) + 1)
      latencies.push(Date.now() - Date.parse(event.timestamp))
      response.writeHead(204).end()
    } catch {
      response.writeHead(400).end()
    }
  })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`

const deployment = await benchDeployment('webhook')
const { namespace } = deployment
const replica = await startReplicaProcess({ ...deployment.env, WA_TRANSPORT: 'test', WEBHOOK_ALLOW_PRIVATE: '1' })
const nc = await connect({ servers: TEST_NATS_URL })
const js = jetstream(nc)

const eventOf = (companyId: string, n: number): EventEnvelope => ({
  id: `bench:${companyId}:${n}`,
  type: 'message_status',
  companyId,
  timestamp: new Date().toISOString(),
  replica: 'bench',
  epoch: 1,
  data: { n }
})

try {
  const companies = Array.from({ length: COMPANIES }, (_, index) => `bench-${index}`)
  // One secret for every webhook, so one verifier checks every delivery.
  const secret = `whsec_${randomBytes(24).toString('base64')}`
  verifier = new Webhook(secret)
  for (const companyId of companies) {
    await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/webhooks`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: receiverUrl, secret })
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000))

  // Baseline: the receiver fed directly, signed the same way, each company's events one at a time.
  const signer = new Webhook(secret)
  const baselineStarted = performance.now()
  await Promise.all(companies.map(async (companyId) => {
    for (let n = 0; n < EVENTS_PER_COMPANY; n++) {
      const event = { ...eventOf(`${companyId}-direct`, n), seq: n }
      const body = JSON.stringify(event)
      const now = new Date()
      await fetch(receiverUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': event.id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signer.sign(event.id, now, body)
        },
        body
      })
    }
  }))
  const baselineSeconds = (performance.now() - baselineStarted) / 1000
  const baselinePerS = COMPANIES * EVENTS_PER_COMPANY / baselineSeconds
  received.clear()
  latencies.length = 0

  // Through the gateway: the events go into the stream; the replica delivers them.
  const ids: string[] = []
  const started = performance.now()
  await Promise.all(companies.map(async (companyId) => {
    for (let n = 0; n < EVENTS_PER_COMPANY; n++) {
      const event = eventOf(companyId, n)
      const headers = natsHeaders()
      headers.set('Nats-Msg-Id', event.id)
      await js.publish(`${namespace}.evt.${companyId}.message_status`, JSON.stringify(event), { headers })
      ids.push(event.id)
    }
  }))
  await waitFor(() => ids.every((id) => received.has(id)), 300_000, 50)
  const seconds = (performance.now() - started) / 1000
  const delivered = ids.filter((id) => received.has(id)).length
  const eventsPerS = delivered / seconds
  const summary = {
    companies: COMPANIES,
    events: ids.length,
    events_per_s: round(eventsPerS, 1),
    baseline_events_per_s: round(baselinePerS, 1),
    ratio: round(eventsPerS / baselinePerS, 3),
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    lost: ids.length - delivered,
    redelivered: [...received.values()].filter((count) => count > 1).length
  }
  log(`targets: lost 0, ratio ≥ ${TARGET_RATIO} — ${summary.lost === 0 && summary.ratio >= TARGET_RATIO ? 'met' : 'NOT met'}`)
  log(JSON.stringify(summary))
} finally {
  const exited = exitOf(replica)
  replica.kill('SIGTERM')
  await exited
  server.closeAllConnections()
  server.close()
  await nc.close()
  await deployment.remove()
}
