import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../core/app.ts'
import { configWith, type Config } from '../../core/config.ts'
import type { FeatureModule } from '../../core/features.ts'
import { features as allFeatures } from '../../plugins/index.ts'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './services.ts'

export interface BuildOptions {
  config?: Partial<Config>
  features?: FeatureModule[]
}

/** A test's config: the shared NATS, a database of its own, a unique replica id, quiet logs. */
export async function testConfig (t: Test, overrides: Partial<Config> = {}): Promise<Config> {
  return configWith({
    natsUrl: TEST_NATS_URL,
    databaseUrl: overrides.databaseUrl ?? await createTestDatabase(t),
    replicaId: uniqueName('replica'),
    httpPort: 0,
    logLevel: 'silent',
    ...overrides
  })
}

/** Builds the app as the server does (without listening) and closes it when the test ends. */
export async function build (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  const config = await testConfig(t, options.config)
  const app = await buildApp({ config, features: options.features ?? allFeatures })
  t.teardown(() => app.close())
  return app
}
