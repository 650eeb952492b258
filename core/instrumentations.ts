import type { Span } from '@opentelemetry/api'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'

/**
 * HTTP spans (@fastify/otel, attached to every Fastify instance as it is created) and PostgreSQL
 * spans. An HTTP span is named by OpenTelemetry's conventions, method and route
 * (`POST /api/whatsapp/sessions/:companyId/send`); spans of each hook and handler add nothing a
 * reader of a trace needs, so they are left out. Probes and scrapes (`config: { probe: true }`)
 * would drown the traces that matter.
 */
export function gatewayInstrumentations () {
  return [
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      instrumentHooks: false,
      instrumentHandler: false,
      // It is given the whole route options, config included (its type names only url and method).
      ignorePaths: (route) => (route as { config?: { probe?: boolean } }).config?.probe === true,
      requestHook: (span: Span, request) => {
        span.updateName(request.routeOptions.url ? `${request.method} ${request.routeOptions.url}` : request.method)
      }
    }),
    new PgInstrumentation({ requireParentSpan: true })
  ]
}
