import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { connect } from '@nats-io/transport-node'
import type { GatewayConfig } from '../../plugins/index.ts'
import { subjectsFor, type EventEnvelope } from '../../contracts/index.ts'
import { clusterSettings, startReplica, type ClusterSettings, type Replica } from './cluster.ts'
import { waitFor } from './wait.ts'
import { uniqueName } from './services.ts'
import { rankReplicas } from '../../plugins/ownership/assignment.ts'

/** Fast lifecycles for tests: short backoff, a breaker that opens quickly, quick initialize. */
export const FAST_SESSIONS: Partial<GatewayConfig> = {
  disabledPlugins: [],
  reconnectBaseMs: 50,
  reconnectMaxAttempts: 3,
  breakerThreshold: 10,
  breakerWindowMs: 60_000,
  breakerCooldownMs: 60_000,
  initializeTimeoutMs: 5_000
}

export async function sessionCluster (t: Test): Promise<ClusterSettings> {
  return clusterSettings(t)
}

export function startSessionReplica (t: Test, settings: ClusterSettings, overrides: Partial<GatewayConfig> = {}): Promise<Replica> {
  return startReplica(t, settings, { ...FAST_SESSIONS, ...overrides })
}

/** Records every event of one company from the moment it is called, over a connection of its own. */
export async function recordEvents (t: Test, cluster: { natsUrl: string, natsNamespace: string }, companyId: string) {
  const nc = await connect({ servers: cluster.natsUrl })
  t.teardown(() => nc.close())
  const events: EventEnvelope[] = []
  nc.subscribe(subjectsFor(cluster.natsNamespace).event(companyId, '>'), {
    callback: (_err, msg) => { events.push(msg.json<EventEnvelope>()) }
  })
  await nc.flush()
  return {
    events,
    types: () => events.map((event) => event.type),
    waitFor: (type: string, count = 1, timeoutMs = 5_000) =>
      waitFor(() => events.filter((event) => event.type === type).length >= count, timeoutMs, 10)
  }
}

/** The replica whose pool holds the company's session. */
export function holderOf (replicas: Replica[], companyId: string): FastifyInstance | undefined {
  return replicas.find((replica) => !replica.closed && replica.app.sessionPool.get(companyId))?.app
}

/**
 * Links a new company through `replica` with the test double (initialize, scan) and waits until it is
 * connected. The QR is scanned on whichever of `holders` shows it (the company's holder may be another replica).
 */
export async function linkCompany (
  replica: { app: FastifyInstance }, companyId: string, cluster: { natsUrl: string, natsNamespace: string }, t: Test,
  holders: { app: FastifyInstance }[] = [replica]
) {
  const events = await recordEvents(t, cluster, companyId)
  const init = await replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  if (init.statusCode !== 200) throw new Error(`initialize failed: ${init.body}`)
  // The phone scans once a QR is on screen: the holder may still be opening its socket (or another replica took over).
  const scanned = await waitFor(() => holders.some((holder) => holder.app.testWhatsApp!.scan(companyId)), 10_000, 20)
  if (!scanned) throw new Error(`${companyId} never showed a QR to scan`)
  if (!await events.waitFor('connected', 1, 10_000)) throw new Error(`${companyId} did not connect`)
  return events
}

/**
 * A new company id whose preferred owner among `replicas` is `holder`: balancing never moves it from
 * there, so a test that links it through `holder` may rely on `holder` keeping it.
 */
export function companyPreferring (holder: { id: string }, replicas: { id: string }[], prefix = 'salon'): string {
  for (;;) {
    const companyId = uniqueName(prefix)
    if (rankReplicas(companyId, replicas.map((replica) => replica.id))[0] === holder.id) return companyId
  }
}
