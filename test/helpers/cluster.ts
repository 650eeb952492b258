import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../core/app.ts'
import type { GatewayConfig } from '../../plugins/index.ts'
import { plugins } from '../../plugins/index.ts'
import { dropBucketsAfter, dropStreamsAfter, SOCKET_PLUGINS, testConfig } from './build.ts'
import { dropNamespaceAfter } from './namespace-cleanup.ts'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './services.ts'
import type { LedgerEntry } from '../../plugins/ownership/test-transport.ts'

export const TEST_LEASE_TTL_MS = 2_000

export interface ClusterSettings {
  natsUrl: string
  databaseUrl: string
  leaseBucket: string
  membersBucket: string
  idempotencyBucket: string
  rateBucket: string
  mediaBucket: string
  leaseTtlMs: number
  /** The cluster's subject namespace and events stream (NATS_NAMESPACE, EVENTS_STREAM). */
  natsNamespace: string
  eventsStream: string
}

/** Settings that put several replicas in one cluster: one database, one pair of buckets. */
export async function clusterSettings (t: Test, overrides: Partial<ClusterSettings> = {}): Promise<ClusterSettings> {
  const settings = {
    natsUrl: TEST_NATS_URL,
    databaseUrl: await createTestDatabase(t),
    leaseBucket: uniqueName('leases'),
    membersBucket: uniqueName('members'),
    idempotencyBucket: uniqueName('idempotency'),
    rateBucket: uniqueName('rates'),
    mediaBucket: uniqueName('media'),
    leaseTtlMs: TEST_LEASE_TTL_MS,
    natsNamespace: uniqueName('wa'),
    eventsStream: uniqueName('EVENTS'),
    ...overrides
  }
  dropStreamsAfter(t, settings.natsUrl, [settings.eventsStream, `OBJ_${settings.mediaBucket}`])
  // Resources named after the namespace (the access plugin's tickets bucket, say) go with it.
  dropNamespaceAfter(t, settings.natsUrl, settings.natsNamespace)
  dropBucketsAfter(t, settings.natsUrl, [settings.leaseBucket, settings.membersBucket, settings.idempotencyBucket, settings.rateBucket])
  return settings
}

/** The environment that puts a replica process (plugins/server.ts) in the cluster, as `startReplica` does in-process. */
export function clusterEnv (settings: ClusterSettings): Record<string, string> {
  return {
    NATS_URL: settings.natsUrl,
    DATABASE_URL: settings.databaseUrl,
    LEASE_BUCKET: settings.leaseBucket,
    MEMBERS_BUCKET: settings.membersBucket,
    IDEMPOTENCY_BUCKET: settings.idempotencyBucket,
    RATE_BUCKET: settings.rateBucket,
    MEDIA_BUCKET: settings.mediaBucket,
    LEASE_TTL_MS: String(settings.leaseTtlMs),
    NATS_NAMESPACE: settings.natsNamespace,
    EVENTS_STREAM: settings.eventsStream,
    // Processes of other features' tests are called without credentials; test/access.test.ts checks access.
    AUTH_MODE: 'off',
    // 2 s leases leave a quarter second for a close (the fence starts that much earlier).
    WA_CLOSE_TIMEOUT_MS: '250',
    AUTH_STATE_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`
  }
}

export interface Replica {
  app: FastifyInstance
  id: string
  closed: boolean
  close: () => Promise<void>
}

/** Ownership on its own: the plain ledger transport stands for the connection (no session pool). */
export const OWNERSHIP_ONLY: Partial<GatewayConfig> = {
  disabledPlugins: ['session-pool', ...SOCKET_PLUGINS, 'rate-limit', 'reactions', 'metrics']
}

export async function startReplica (
  t: Test, settings: ClusterSettings, overrides: Partial<GatewayConfig> = OWNERSHIP_ONLY
): Promise<Replica> {
  const config = await testConfig(t, { ...settings, ...overrides })
  const app = await buildApp({ config, plugins })
  const replica: Replica = {
    app,
    id: config.replicaId,
    closed: false,
    close: async () => {
      if (replica.closed) return
      replica.closed = true
      await app.close()
    }
  }
  t.teardown(() => replica.close())
  return replica
}

/** The longest time each company spent with no open connection between a close and the next open. */
export function longestGaps (entries: LedgerEntry[], companies: Set<string>): Map<string, number> {
  const closedAt = new Map<string, number>()
  const gaps = new Map<string, number>()
  for (const entry of entries) {
    if (!companies.has(entry.companyId)) continue
    if (entry.kind === 'close') closedAt.set(entry.companyId, entry.at)
    if (entry.kind === 'open') {
      const since = closedAt.get(entry.companyId)
      if (since !== undefined) gaps.set(entry.companyId, Math.max(gaps.get(entry.companyId) ?? 0, entry.at - since))
      closedAt.delete(entry.companyId)
    }
  }
  return gaps
}
