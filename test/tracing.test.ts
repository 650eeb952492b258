import t from 'tap'
import { context, propagation, trace, SpanKind } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { gatewayInstrumentations } from '../core/instrumentations.ts'

// What core/telemetry.ts sets up with the SDK, with spans kept in memory: in place before any app is built.
const exporter = new InMemorySpanExporter()
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
propagation.setGlobalPropagator(new W3CTraceContextPropagator())
trace.setGlobalTracerProvider(provider)
const instrumentations = gatewayInstrumentations()
for (const instrumentation of instrumentations) {
  instrumentation.setTracerProvider(provider)
  instrumentation.enable()
}
// The app (and pg through it) loads only now, as after core/telemetry.ts: the instrumentations patch it.
const { uniqueName } = await import('./helpers/services.ts')
const { companyPreferring, holderOf, linkCompany, sessionCluster, startSessionReplica } = await import('./helpers/sessions.ts')
const { waitFor } = await import('./helpers/wait.ts')
const { TEST_LEASE_TTL_MS } = await import('./helpers/cluster.ts')
const { setTimeout: sleep } = await import('node:timers/promises')

t.teardown(async () => {
  for (const instrumentation of instrumentations) instrumentation.disable()
  await provider.shutdown()
  trace.disable()
  propagation.disable()
  context.disable()
})

const replicaOf = (span: ReadableSpan) => String(span.attributes['wa.replica'] ?? '')
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

t.test('one trace: HTTP on replica A → NATS request → the holder B → the WhatsApp send → the event it publishes', async (t) => {
  const settings = await sessionCluster(t)
  const first = await startSessionReplica(t, settings)
  const second = await startSessionReplica(t, settings)
  // Linked once both replicas know each other and have settled, so no balancing handoff moves it mid-test.
  const bothLive = () => [first, second]
    .every((replica) => replica.app.ownership.members().filter((member) => member.alive).length === 2)
  t.ok(await waitFor(bothLive, 5_000), 'both replicas see each other')
  await sleep(TEST_LEASE_TTL_MS / 2)
  const companyId = companyPreferring(first, [first, second])
  await linkCompany(first, companyId, settings, t, [first, second])
  t.ok(await waitFor(() => holderOf([first, second], companyId) !== undefined, 5_000), 'held')
  const holder = holderOf([first, second], companyId)!
  const entry = holder === first.app ? second : first
  exporter.reset()

  const response = await entry.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '79001234567', message: 'трассировка' }
  })
  t.equal(response.statusCode, 200)
  let spans: ReadableSpan[] = []
  t.ok(await waitFor(() => {
    spans = exporter.getFinishedSpans()
    return spans.some((span) => /^publish \S+\.evt\.\{companyId\}\.\w+$/.test(span.name) &&
      String(span.attributes['messaging.destination.name']).endsWith('.message_sent'))
  }, 5_000), 'the message_sent event was published')

  const http = spans.find((span) => span.kind === SpanKind.SERVER && span.instrumentationScope.name.includes('fastify') &&
    String(span.attributes['http.route'] ?? span.name).includes('/send'))
  t.ok(http, `an HTTP span on the entry replica (${spans.map((span) => span.name).join(', ')})`)
  t.equal(http!.name, 'POST /api/whatsapp/sessions/:companyId/send', 'named by method and route')
  t.notOk(spans.some((span) => span.name.includes(' -> ')), 'no span per Fastify hook')
  const traceId = http!.spanContext().traceId
  const inTrace = spans.filter((span) => span.spanContext().traceId === traceId)
  const byId = new Map(inTrace.map((span) => [span.spanContext().spanId, span]))
  const ancestors = (span: ReadableSpan) => {
    const chain: ReadableSpan[] = []
    for (let current = byId.get(parentOf(span) ?? ''); current; current = byId.get(parentOf(current) ?? '')) chain.push(current)
    return chain
  }

  const request = inTrace.find(
    (span) =>
      /^send \S+\.cmd\.\{companyId\}\.send$/.test(span.name) &&
      String(span.attributes['messaging.destination.name']).endsWith(`.cmd.${companyId}.send`)
  )
  t.ok(request, 'the NATS request in the same trace')
  t.equal(replicaOf(request!), entry.id, 'made by the entry replica')
  t.ok(ancestors(request!).includes(http!), 'under the HTTP span')

  const handled = inTrace.find(
    (span) =>
      /^process \S+\.cmd\.\{companyId\}\.send$/.test(span.name) &&
      span.kind === SpanKind.SERVER &&
      String(span.attributes['messaging.destination.name']).endsWith(`.cmd.${companyId}.send`)
  )
  t.ok(handled, 'handled in the same trace')
  t.equal(replicaOf(handled!), holder.config.replicaId, 'by the holder, the other replica')
  t.equal(parentOf(handled!), request!.spanContext().spanId, 'its parent is the NATS request (traceparent in the NATS headers)')

  const send = inTrace.find((span) => span.name === 'whatsapp.send')
  t.ok(send, 'the WhatsApp send')
  t.equal(parentOf(send!), handled!.spanContext().spanId, 'under the holder\'s handling')
  t.match(send!.attributes, { 'wa.company': companyId, 'wa.kind': 'text', 'wa.message_id': response.json().messageId })

  const event = inTrace.find(
    (span) =>
      /^publish \S+\.evt\.\{companyId\}\.\w+$/.test(span.name) &&
      String(span.attributes['messaging.destination.name']).endsWith(`.evt.${companyId}.message_sent`)
  )
  t.ok(event, 'the event it publishes, in the same trace')
  t.ok(ancestors(event!).includes(handled!), 'under the holder\'s handling')
  t.equal(replicaOf(event!), holder.config.replicaId)

  const queries = inTrace.filter((span) => span.instrumentationScope.name.includes('pg'))
  t.ok(queries.length === 0 || queries.every((span) => ancestors(span).length > 0), 'database spans, if any, hang off the trace')
})

t.test('the trace context also rides on replies and events a client can read', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  exporter.reset()
  const span = trace.getTracer('test').startSpan('client operation')
  await context.with(trace.setSpan(context.active(), span),
    () => replica.app.bus.request(replica.app.subjects.command(companyId, 'status'), {}))
  span.end()
  const spans = exporter.getFinishedSpans()
  const handled = spans.find(
    (candidate) =>
      candidate.name.startsWith('process ') && String(candidate.attributes['messaging.destination.name']).endsWith('.status')
  )
  t.ok(handled, 'the status command was traced')
  t.equal(handled!.spanContext().traceId, span.spanContext().traceId, 'in the caller\'s trace')
})

t.test('PostgreSQL queries made while handling a request are spans of its trace', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  exporter.reset()
  const response = await replica.app.inject({ method: 'GET', url: '/api/whatsapp/sessions' })
  t.equal(response.statusCode, 200)
  const spans = exporter.getFinishedSpans()
  const http = spans.find((span) => span.kind === SpanKind.SERVER && span.instrumentationScope.name.includes('fastify'))
  const queries = spans.filter((span) =>
    span.instrumentationScope.name.includes('pg') && span.spanContext().traceId === http?.spanContext().traceId)
  t.ok(queries.length > 0, `${queries.length} database spans in the request's trace`)
  t.match(queries[0].attributes, { 'db.system.name': /postgresql/ })
})
