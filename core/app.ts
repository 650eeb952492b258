import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { Config } from './config.ts'
import { resolveFeatures, type FeatureModule } from './features.ts'
import configPlugin from './plugins/config.ts'
import errorsPlugin from './plugins/errors.ts'
import docsPlugin from './plugins/docs.ts'
import healthPlugin from './plugins/health.ts'
import natsPlugin from './plugins/nats.ts'
import dbPlugin from './plugins/db.ts'
import busPlugin from './plugins/bus.ts'

export interface AppOptions {
  config: Config
  features: FeatureModule[]
}

/** The whole service as one plugin: core plugins first, then the enabled features in dependency order. */
export default async function app (fastify: FastifyInstance, options: AppOptions) {
  const features = resolveFeatures(options.features, options.config.disabledPlugins)
  await fastify.register(configPlugin, { config: options.config })
  await fastify.register(errorsPlugin)
  await fastify.register(docsPlugin)
  await fastify.register(healthPlugin)
  await fastify.register(natsPlugin)
  await fastify.register(dbPlugin, {
    entities: features.flatMap((feature) => feature.module.entities ?? []),
    migrations: features.flatMap((feature) => feature.module.migrations ?? [])
  })
  await fastify.register(busPlugin)
  for (const feature of features) await fastify.register(feature.module.default)
  fastify.log.info({ features: features.map((feature) => feature.name) }, 'feature plugins loaded')
}

/** Server options shared by the server file and the tests' build helper. */
function serverOptions (config: Config): FastifyServerOptions {
  return {
    logger: { level: config.logLevel, base: { replica: config.replicaId } },
    // Two log lines per request cost the HTTP path a fifth of its throughput (bench:send); traces
    // and metrics cover requests, so they are logged only when asked for.
    disableRequestLogging: !config.logRequests,
    // Keep-alive sockets would otherwise hold a graceful shutdown open until they time out.
    forceCloseConnections: true,
    return503OnClosing: true
  }
}

/** A bare Fastify instance with the service's options and TypeBox validation. */
export function createServer (config: Config) {
  return Fastify(serverOptions(config)).setValidatorCompiler(TypeBoxValidatorCompiler)
}

/** Builds a ready app; only core/server.ts makes it listen. */
export async function buildApp (options: AppOptions): Promise<FastifyInstance> {
  const fastify = createServer(options.config)
  try {
    await fastify.register(fp(app, { name: 'wa-gateway' }), options)
    await fastify.ready()
  } catch (err) {
    await fastify.close().catch(() => {})
    throw err
  }
  return fastify
}
