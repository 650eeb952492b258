import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanKind, SpanStatusCode, context, trace, type Span } from '@opentelemetry/api'

export const TRACER_NAME = 'wa-gateway'

/** The provider a process has while nothing registered one (no SDK started): its spans go nowhere. */
const NO_PROVIDER = new ProxyTracerProvider().getDelegate()
/** The span work is given when none is made. */
export const UNTRACED_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT)

/**
 * Whether spans go anywhere: an SDK (core/telemetry.ts, or a test's) registered a tracer provider.
 * Without one, the holder skips making spans and naming them; their names and attributes (subject
 * patterns, objects per message) were 4 % of its CPU per send in bench:send.
 */
export function tracing (): boolean {
  const provider = trace.getTracerProvider() as Partial<ProxyTracerProvider>
  return provider.getDelegate?.() !== NO_PROVIDER
}

/** Runs `work` inside a new span (a child of the active one) and ends it with the outcome. */
export async function inSpan<T> (
  name: string,
  kind: SpanKind,
  attributes: Record<string, string | number | boolean>,
  work: (span: Span) => Promise<T>
): Promise<T> {
  if (!tracing()) return await work(UNTRACED_SPAN)
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
