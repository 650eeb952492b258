import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { buildApp } from '../../core/app.ts'
import type { PluginModule } from '../../core/plugin-set.ts'
import { loadGatewayConfig, plugins as allPlugins, type GatewayConfig } from '../../plugins/index.ts'
import { parseSealingKeys, Sealer } from '../../core/sealing.ts'
import { dropNamespaceAfter } from './namespace-cleanup.ts'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './services.ts'

export interface BuildOptions {
  config?: Partial<GatewayConfig>
  plugins?: PluginModule[]
}

/** The auth-state key tests seal with (AUTH_STATE_KEYS): fixed, so every replica of a test opens what another sealed. */
export const TEST_SEALING_KEYS = parseSealingKeys(`test:${Buffer.alloc(32, 7).toString('base64')}`)!

/** A sealer for tests that build an auth store themselves. */
export const testSealer = () => new Sealer(TEST_SEALING_KEYS)

/** A config for code that needs one without an environment (tests, tools), with overrides applied. */
export function configWith (overrides: Partial<GatewayConfig>): GatewayConfig {
  return { ...loadGatewayConfig({}), ...overrides }
}

/** Removes the streams a test made on the shared NATS server. */
export function dropStreamsAfter (t: Test, natsUrl: string, streams: string[]): void {
  t.teardown(async () => {
    const nc = await connect({ servers: natsUrl })
    const jsm = await jetstreamManager(nc)
    for (const stream of streams) await jsm.streams.delete(stream).catch(() => {})
    await nc.close()
  })
}

/** Removes the KV buckets a test made on the shared NATS server. */
export function dropBucketsAfter (t: Test, natsUrl: string, buckets: string[]): void {
  t.teardown(async () => {
    const nc = await connect({ servers: natsUrl })
    const jsm = await jetstreamManager(nc)
    for (const bucket of buckets) await jsm.streams.delete(`KV_${bucket}`).catch(() => {})
    await nc.close()
  })
}

/**
 * A test's config: the shared NATS with buckets of its own, a database of its own, a unique
 * replica id, quiet logs. Pass `databaseUrl` and bucket names to put several replicas in one cluster.
 */
export async function testConfig (t: Test, overrides: Partial<GatewayConfig> = {}): Promise<GatewayConfig> {
  const config = configWith({
    natsUrl: TEST_NATS_URL,
    replicaId: uniqueName('replica'),
    httpPort: 0,
    // TEST_LOG_LEVEL=warn shows what a replica complains about while a test runs.
    logLevel: (process.env.TEST_LOG_LEVEL ?? 'silent') as GatewayConfig['logLevel'],
    waTransport: 'test',
    // Tests of other features call routes without credentials; test/access.test.ts turns access control on.
    authMode: 'off',
    authStateKeys: TEST_SEALING_KEYS,
    // Tests run 2 s leases (TEST_LEASE_TTL_MS), whose fence leaves a quarter second for a close.
    waCloseTimeoutMs: 250,
    ...overrides,
    databaseUrl: overrides.databaseUrl ?? await createTestDatabase(t),
    leaseBucket: overrides.leaseBucket ?? uniqueName('leases'),
    membersBucket: overrides.membersBucket ?? uniqueName('members'),
    idempotencyBucket: overrides.idempotencyBucket ?? uniqueName('idempotency'),
    rateBucket: overrides.rateBucket ?? uniqueName('rates'),
    mediaBucket: overrides.mediaBucket ?? uniqueName('media'),
    // A namespace of its own: replicas of tests running in parallel never answer each other.
    natsNamespace: overrides.natsNamespace ?? uniqueName('wa'),
    eventsStream: overrides.eventsStream ?? uniqueName('EVENTS')
  })
  // Resources named after the namespace (the access plugin's tickets bucket, say) go with it.
  if (!overrides.natsNamespace) dropNamespaceAfter(t, config.natsUrl!, config.natsNamespace)
  if (!overrides.eventsStream) dropStreamsAfter(t, config.natsUrl!, [config.eventsStream])
  if (!overrides.leaseBucket) dropBucketsAfter(t, config.natsUrl!, [config.leaseBucket, config.membersBucket])
  if (!overrides.idempotencyBucket) dropBucketsAfter(t, config.natsUrl!, [config.idempotencyBucket])
  if (!overrides.rateBucket) dropBucketsAfter(t, config.natsUrl!, [config.rateBucket])
  if (!overrides.mediaBucket) dropStreamsAfter(t, config.natsUrl!, [`OBJ_${config.mediaBucket}`])
  return config
}

/** Builds the app as the server does (without listening) and closes it when the test ends. */
export async function build (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  const config = await testConfig(t, options.config)
  const app = await buildApp({ config, plugins: options.plugins ?? allPlugins })
  t.teardown(() => app.close())
  return app
}

/** The plugins that reach WhatsApp through session-pool's sockets: disabling session-pool disables them too. */
export const SOCKET_PLUGINS = ['groups', 'polls', 'calls', 'profiles', 'chats', 'status', 'history', 'scheduler', 'campaigns']
