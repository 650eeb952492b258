import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import Fastify, { LogController } from 'fastify'
import { SETUP_PATIENCE_MS } from './nats/kv.ts'
import fp from 'fastify-plugin'
import { lazyCompilers } from './lazy-schemas.ts'
import type { Config } from './config.ts'
import { resolvePlugins, schemaOf, type PluginModule } from './plugin-set.ts'
import { pickSettings } from './settings.ts'
import { privateLogOptions } from './log-privacy.ts'
import configPlugin from './plugins/config.ts'
import routesPlugin from './plugins/routes.ts'
import accessPlugin from './plugins/access.ts'
import errorsPlugin from './plugins/errors.ts'
import docsPlugin from './plugins/docs.ts'
import healthPlugin from './plugins/health.ts'
import natsPlugin from './plugins/nats.ts'
import dbPlugin from './plugins/db.ts'
import busPlugin from './plugins/bus.ts'
import eventsPlugin from './plugins/events.ts'
import sealingPlugin from './plugins/sealing.ts'

export interface AppOptions {
  /** The flat configuration loadConfig made: the core's settings and every plugin's. */
  config: Config
  plugins: PluginModule[]
}

/** The whole service as one plugin: core plugins first, then the enabled plugins in dependency order, each with its settings. */
export default async function app (fastify: FastifyInstance, options: AppOptions) {
  const plugins = resolvePlugins(options.plugins, options.config.disabledPlugins)
  await fastify.register(configPlugin, { config: options.config })
  await fastify.register(routesPlugin)
  await fastify.register(errorsPlugin)
  await fastify.register(docsPlugin)
  await fastify.register(healthPlugin)
  await fastify.register(natsPlugin)
  await fastify.register(dbPlugin, schemaOf(plugins))
  await fastify.register(busPlugin)
  await fastify.register(accessPlugin)
  await fastify.register(eventsPlugin)
  await fastify.register(sealingPlugin)
  for (const plugin of plugins) {
    const settings = plugin.module.settings ? pickSettings(plugin.module.settings, options.config) : {}
    await fastify.register(plugin.module.default, settings)
  }
  fastify.log.info({ plugins: plugins.map((plugin) => plugin.name) }, 'plugins loaded')
}

/** Server options shared by the server file and the tests' build helper. */
/** Beyond the elections' patience: the rest of a plugin's start (its migrations, a first read). */
const PLUGIN_TIMEOUT_MARGIN_MS = 15_000

function serverOptions (config: Config): FastifyServerOptions {
  return {
    logger: { level: config.logLevel, base: { replica: config.replicaId }, ...privateLogOptions },
    // Two log lines per request cost the HTTP path a fifth of its throughput (bench:send); traces
    // and metrics cover requests, so they are logged only when asked for.
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    // Keep-alive sockets would otherwise hold a graceful shutdown open until they time out.
    forceCloseConnections: true,
    // Fastify takes a number of hops too (proxy-addr), though its type does not say so.
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    return503OnClosing: true,
    // A plugin that makes JetStream buckets waits out leader elections for up to SETUP_PATIENCE_MS
    // (replicas of a new cluster all start at once); Fastify's own 10 s would end the start first.
    pluginTimeout: SETUP_PATIENCE_MS + PLUGIN_TIMEOUT_MARGIN_MS,
    schemaController: { compilersFactory: lazyCompilers }
  }
}

/** A bare Fastify instance with the service's options and TypeBox validation (compiled per route at its first request). */
export function createServer (config: Config) {
  return Fastify(serverOptions(config))
}

/** Builds a ready app; only the server entry makes it listen. */
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
