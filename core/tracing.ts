import { SpanKind, SpanStatusCode, context, trace, type Span } from '@opentelemetry/api'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'

export const TRACER_NAME = 'wa-gateway'
/** Probes and scrapes would drown the traces that matter. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics'])

/** HTTP spans (@fastify/otel, attached to every Fastify instance as it is created) and PostgreSQL spans. */
export function gatewayInstrumentations () {
  return [
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      ignorePaths: (route: { url: string }) => UNTRACED_PATHS.has(route.url)
    }),
    new PgInstrumentation({ requireParentSpan: true })
  ]
}

/** Runs `work` inside a new span (a child of the active one) and ends it with the outcome. */
export async function inSpan<T> (name: string, kind: SpanKind, attributes: Record<string, string | number | boolean>, work: (span: Span) => Promise<T>): Promise<T> {
  const span = trace.getTracer(TRACER_NAME).startSpan(name, { kind, attributes })
  try {
    return await context.with(trace.setSpan(context.active(), span), () => work(span))
  } catch (err) {
    span.recordException(err as Error)
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
    throw err
  } finally {
    span.end()
  }
}

export { SpanKind }
