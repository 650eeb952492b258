import type { TSchema } from 'typebox'

/*
 * The endpoints of the gateway's NATS micro service (NATS ADR-32) and what each has handled: the bus
 * lists every request/reply subject here and counts every request it answers. What `$SRV.INFO` and
 * `$SRV.STATS` answer is built from this (core/nats/service-discovery.ts); nothing here touches NATS.
 */

/** An endpoint as the bus declares it. */
export interface EndpointDeclaration {
  /** `<namespace>.…`; a `*` token stands for any company (`wa.cmd.*.send`). */
  subject: string
  /** The queue group replicas share, or none when every subscriber (or only the holder) answers. */
  queue?: string
  request: TSchema
  reply: TSchema
}

/** ADR-32's EndpointInfo. Metadata values are strings (ADR-33), so the schemas travel as JSON text. */
export interface EndpointInfo {
  name: string
  subject: string
  queue_group: string
  metadata: { request_schema: string, reply_schema: string }
}

/** ADR-32's EndpointStats; times in nanoseconds. */
export interface EndpointStats {
  name: string
  subject: string
  queue_group: string
  num_requests: number
  num_errors: number
  last_error: string
  processing_time: number
  average_processing_time: number
}

interface Endpoint {
  info: EndpointInfo
  tokens: string[]
  numRequests: number
  numErrors: number
  lastError: string
  processingNanos: number
}

/**
 * The endpoint's name (ADR-32 allows `[A-Za-z0-9_-]`): its subject without the namespace and the
 * company wildcard, so `wa.ctl.*.auto-reactions.get` is `ctl-auto-reactions-get`.
 */
export function endpointName (subject: string): string {
  return subject.split('.').slice(1).filter((token) => token !== '*').join('-')
}

/** Whether a literal subject is one the pattern subscribes to (`*` one token, a last `>` the rest). */
function matches (pattern: string[], subject: string[]): boolean {
  for (let index = 0; index < pattern.length; index++) {
    if (pattern[index] === '>' && index === pattern.length - 1) return subject.length > index
    if (index >= subject.length || (pattern[index] !== '*' && pattern[index] !== subject[index])) return false
  }
  return pattern.length === subject.length
}

export class ServiceEndpoints {
  readonly #endpoints: Endpoint[] = []

  /** Lists an endpoint; a subject listed already keeps its first declaration and counts. */
  add (declaration: EndpointDeclaration): void {
    if (this.#endpoints.some((endpoint) => endpoint.info.subject === declaration.subject)) return
    this.#endpoints.push({
      info: {
        name: endpointName(declaration.subject),
        subject: declaration.subject,
        queue_group: declaration.queue ?? '',
        metadata: { request_schema: JSON.stringify(declaration.request), reply_schema: JSON.stringify(declaration.reply) }
      },
      tokens: declaration.subject.split('.'),
      numRequests: 0,
      numErrors: 0,
      lastError: '',
      processingNanos: 0
    })
  }

  /**
   * Counts one handled request under the endpoint whose subject it matches (`wa.cmd.acme.send` under
   * `wa.cmd.*.send`). A message no endpoint describes (a broadcast, an unknown command) is not counted.
   */
  record (subject: string, processingNanos: number, error?: string): void {
    const tokens = subject.split('.')
    const endpoint = this.#endpoints.find((candidate) => matches(candidate.tokens, tokens))
    if (!endpoint) return
    endpoint.numRequests++
    endpoint.processingNanos += processingNanos
    if (error === undefined) return
    endpoint.numErrors++
    endpoint.lastError = error
  }

  info (): EndpointInfo[] {
    return this.#endpoints.map((endpoint) => endpoint.info)
  }

  stats (): EndpointStats[] {
    return this.#endpoints.map(({ info, numRequests, numErrors, lastError, processingNanos }) => ({
      name: info.name,
      subject: info.subject,
      queue_group: info.queue_group,
      num_requests: numRequests,
      num_errors: numErrors,
      last_error: lastError,
      processing_time: processingNanos,
      // ADR-32: truncated to a whole number, 0 before the first request.
      average_processing_time: numRequests === 0 ? 0 : Math.trunc(processingNanos / numRequests)
    }))
  }
}
