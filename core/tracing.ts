import { SpanKind, SpanStatusCode, context, trace, type Span } from '@opentelemetry/api'

export const TRACER_NAME = 'wa-gateway'

/** Runs `work` inside a new span (a child of the active one) and ends it with the outcome. */
export async function inSpan<T> (
  name: string,
  kind: SpanKind,
  attributes: Record<string, string | number | boolean>,
  work: (span: Span) => Promise<T>
): Promise<T> {
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
