import fp from 'fastify-plugin'
import { Type } from 'typebox'
import { withDeadline } from '../deadline.ts'

export type ReadinessCheck = () => Promise<void>

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A probe or a scrape (/healthz, /readyz, /metrics): never traced. Only a public probe that checks
     * no credential (/healthz, /readyz) is exempt from the API rate limit.
     */
    probe?: boolean
    /** The route checks a credential itself though its access policy is `public` (/metrics with METRICS_TOKEN). */
    checksCredentials?: boolean
  }
  interface FastifyInstance {
    /** Adds a dependency that /readyz checks; the check throws (or times out) when it is not reachable. */
    addReadinessCheck: (name: string, check: ReadinessCheck) => void
    checkReadiness: () => Promise<ReadinessReport>
  }
}

export interface ReadinessReport {
  ready: boolean
  checks: Record<string, { ok: boolean, reason?: string }>
}

/** How long one run of the checks answers every probe. */
const READINESS_REUSE_MS = 1_000

const CheckResult = Type.Object({ ok: Type.Boolean(), reason: Type.Optional(Type.String()) })
const ReadinessReply = Type.Object({
  success: Type.Boolean(),
  ready: Type.Boolean(),
  replica: Type.String(),
  checks: Type.Record(Type.String(), CheckResult)
})

export default fp(async (app) => {
  const checks = new Map<string, ReadinessCheck>()
  app.decorate('addReadinessCheck', (name: string, check: ReadinessCheck) => {
    checks.set(name, check)
  })
  // A flood of probes (or of health requests) runs the checks at most once a second: the answer
  // is never older than that, and the checks in flight are shared.
  let last: { at: number, report: Promise<ReadinessReport> } | undefined
  app.decorate('checkReadiness', () => {
    const now = performance.now()
    if (last && now - last.at < READINESS_REUSE_MS) return last.report
    last = { at: now, report: runChecks() }
    return last.report
  })
  const runChecks = async (): Promise<ReadinessReport> => {
    const entries = await Promise.all([...checks].map(async ([name, check]) => {
      try {
        await withDeadline(check(), app.config.readinessTimeoutMs, `${name} did not answer within ${app.config.readinessTimeoutMs} ms`)
        return [name, { ok: true }] as const
      } catch (err) {
        return [name, { ok: false, reason: (err as Error).message }] as const
      }
    }))
    const report = Object.fromEntries(entries)
    return { ready: entries.every(([, result]) => result.ok), checks: report }
  }

  app.get('/healthz', {
    config: { probe: true, access: 'public' },
    schema: {
      operationId: 'liveness',
      tags: ['health'],
      summary: 'Liveness: the process serves HTTP',
      response: { 200: Type.Object({ success: Type.Boolean(), status: Type.String() }) }
    }
  }, async () => ({ success: true, status: 'alive' }))

  app.get('/readyz', {
    config: { probe: true, access: 'public' },
    schema: {
      operationId: 'readiness',
      tags: ['health'],
      summary: 'Readiness: 200 only while NATS and PostgreSQL answer, 503 with the reason otherwise',
      response: { 200: ReadinessReply, 503: ReadinessReply }
    }
  }, async (_request, reply) => {
    const report = await app.checkReadiness()
    return reply.code(report.ready ? 200 : 503).send({ success: report.ready, replica: app.config.replicaId, ...report })
  })
}, { name: 'health', dependencies: ['config'] })
