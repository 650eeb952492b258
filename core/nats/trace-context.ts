import type { MsgHdrs } from '@nats-io/nats-core'
import { headers as createHeaders } from '@nats-io/nats-core'
import { context, propagation, type Context, type Span, type SpanKind, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api'
import { inSpan, tracing, UNTRACED_SPAN } from '../tracing.ts'
import { FixedHeaders } from './fixed-headers.ts'
import { subjectPattern } from '../../contracts/index.ts'

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? [...carrier.keys()] : []),
  get: (carrier, key) => carrier?.get(key) || undefined
}
const headerSetter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value)
}

/** A header value longer than this is cut: an error message quoting a huge input must not bloat every reply. */
const MAX_HEADER_VALUE = 1_024

/**
 * A value NATS accepts as a header: nats.js throws on CR or LF (an error message quoting the input
 * would otherwise end the process), so control characters become spaces and long values are cut.
 */
export function headerSafe (value: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must go
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, ' ')
  return clean.length > MAX_HEADER_VALUE ? `${clean.slice(0, MAX_HEADER_VALUE - 1)}…` : clean
}

/** Headers for an outgoing message: the given values (made header-safe) plus the active W3C trace context (`traceparent`). */
export function tracedHeaders (values: Record<string, string> = {}): MsgHdrs {
  const headers = createHeaders()
  for (const key in values) headers.set(key, headerSafe(values[key]!))
  if (tracing()) propagation.inject(context.active(), headers, headerSetter)
  return headers
}

/**
 * Headers of a stream publish the gateway makes (an event's id, epoch, replica): kept as they go on
 * the wire (`FixedHeaders`), or nats.js's own set when a trace context is injected into them.
 */
export function publishHeaders (values: Record<string, string>): MsgHdrs {
  if (tracing()) return tracedHeaders(values)
  const safe: Record<string, string> = {}
  for (const key in values) safe[key] = headerSafe(values[key]!)
  return new FixedHeaders(safe)
}

/** Headers only when there is something to carry (a trace, or values): an empty set still costs encoding on both ends. */
export function tracedHeadersIfAny (values?: Record<string, string>): MsgHdrs | undefined {
  // Nothing to carry, and no trace to: no header set made only to be found empty (every reply of a holder).
  if (!tracing() && (values === undefined || Object.keys(values).length === 0)) return undefined
  const headers = tracedHeaders(values)
  return headers.keys().length > 0 ? headers : undefined
}

/** The trace context a received message carries, to continue its trace. */
export function traceContextOf (headers: MsgHdrs | undefined): Context {
  return propagation.extract(context.active(), headers, headerGetter)
}

export type MessagingOperation = 'send' | 'process' | 'publish' | 'receive'

/** Runs `work` in a messaging span (`messagingSpan`), named only when spans go anywhere. */
export async function inMessagingSpan<T> (
  subject: string, operation: MessagingOperation, replica: string, kind: SpanKind, work: (span: Span) => Promise<T>
): Promise<T> {
  if (!tracing()) return await work(UNTRACED_SPAN)
  const described = messagingSpan(subject, operation, replica)
  return inSpan(described.name, kind, described.attributes, work)
}

/**
 * A NATS span's name and attributes by OpenTelemetry's messaging conventions: the operation and the
 * subject's pattern (`send <namespace>.cmd.{companyId}.send`), so spans of every company group together.
 */
export function messagingSpan (subject: string, operation: MessagingOperation, replica: string) {
  const pattern = subjectPattern(subject)
  return {
    name: `${operation} ${pattern}`,
    attributes: {
      'messaging.system': 'nats',
      'messaging.destination.name': subject,
      'messaging.destination.template': pattern,
      'messaging.operation.name': operation,
      'wa.replica': replica
    }
  }
}
