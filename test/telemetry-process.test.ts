import t from 'tap'
import type { Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { exitOf, startReplicaProcess } from './helpers/replica-process.ts'
import { sessionCluster } from './helpers/sessions.ts'
import { clusterEnv } from './helpers/cluster.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

interface ExportedSpan { scope: string, name: string, service: string, traceId: string }

/** An OTLP/HTTP (JSON) collector of the test's own: it keeps every span it is sent. */
async function collector (t: Test) {
  const spans: ExportedSpan[] = []
  const server = http.createServer((request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => { body += chunk.toString() })
    request.on('end', () => {
      const payload = JSON.parse(body) as {
        resourceSpans: {
          resource: { attributes: { key: string, value: { stringValue?: string } }[] },
          scopeSpans: { scope: { name: string }, spans: { name: string, traceId: string }[] }[]
        }[]
      }
      for (const resource of payload.resourceSpans) {
        const service = resource.resource.attributes.find((attribute) => attribute.key === 'service.name')?.value.stringValue ?? ''
        for (const scope of resource.scopeSpans) {
          for (const span of scope.spans) spans.push({ scope: scope.scope.name, name: span.name, service, traceId: span.traceId })
        }
      }
      response.setHeader('content-type', 'application/json')
      response.end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { spans, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

t.test('npm start\'s --import ./core/telemetry.ts exports HTTP, NATS and PostgreSQL spans to the OTLP endpoint in OTEL_*', async (t) => {
  const settings = await sessionCluster(t)
  const otlp = await collector(t)
  const replica = await startReplicaProcess({
    ...clusterEnv(settings),
    WA_TRANSPORT: 'test',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '200',
    OTEL_SERVICE_NAME: 'wa-gateway-under-test'
  }, undefined, ['--import', './core/telemetry.ts'])
  t.teardown(() => { replica.kill('SIGKILL') })

  const owner = await fetch(`${replica.url}/api/whatsapp/sessions/${uniqueName('nobody')}/owner`)
  t.equal(owner.status, 503, 'a request that goes over NATS (nobody holds the company)')
  t.equal((await fetch(`${replica.url}/api/whatsapp/sessions`)).status, 200, 'and one that reads PostgreSQL')
  t.ok(
    await waitFor(
      () =>
        otlp.spans.some((span) => span.name.startsWith('send ')) && otlp.spans.some((span) => span.scope.includes('pg')),
      10_000
    ),
    'spans arrived at the collector'
  )
  const http = otlp.spans.find((span) => span.scope.includes('fastify') && span.name === 'GET /api/whatsapp/sessions/:companyId/owner')
  t.ok(http, 'an HTTP span from @fastify/otel, named by method and route')
  t.notOk(otlp.spans.some((span) => span.name.includes(' -> ') || span.name === 'request'), 'no unnamed root and no span per Fastify hook')
  const request = otlp.spans.find((span) => /^send \S+\.cmd\.\{companyId\}\.owner$/.test(span.name))
  t.equal(
    request?.traceId,
    otlp.spans.find((span) => span.scope.includes('fastify') && span.traceId === request?.traceId)?.traceId,
    'the NATS request belongs to an HTTP request\'s trace'
  )
  t.ok(otlp.spans.every((span) => span.service === 'wa-gateway-under-test'), 'the service name from OTEL_SERVICE_NAME')
  t.notOk(otlp.spans.some((span) => span.name.includes('/healthz') || span.name.includes('/readyz')), 'probes are not traced')

  const exit = exitOf(replica)
  replica.kill('SIGTERM')
  t.equal(await exit, 0, 'stops cleanly, flushing the last spans')
})
