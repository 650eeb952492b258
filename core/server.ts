import fp from 'fastify-plugin'
import closeWithGrace from 'close-with-grace'
import pino, { type Logger } from 'pino'
import { ConfigError, loadConfig, type Config } from './config.ts'
import app, { createServer } from './app.ts'
import { startEmbeddedServices } from './embedded/index.ts'
import { createLogger } from './logger.ts'
import { onShutdownSignals, SHUTDOWN_SIGNALS } from './shutdown-signals.ts'
import type { PluginModule } from './plugin-set.ts'
import { telemetryHandle } from './telemetry-handle.ts'
import { withAdminKey } from './access/admin-key.ts'

const EXIT_BAD_CONFIG = 2

/** Something started before the app that changes its configuration (WA_SANDBOX's simulator). */
export type Prelude = (config: Config, log: Logger) => Promise<{ config: Config, stop: () => Promise<void> }>

export interface ServeOptions {
  plugins: PluginModule[]
  /** With WA_SANDBOX on: starts the sandbox. Loaded only then, so production never loads simulator code. */
  sandbox?: () => Promise<Prelude>
}

/** What the entry file runs: configuration, embedded services if needed, the app, then graceful shutdown. */
export async function serve (options: ServeOptions): Promise<void> {
  let config: Config
  let log: Logger
  try {
    config = loadConfig(process.env, options.plugins)
    log = createLogger(config)
    config = await withAdminKey(config, log)
  } catch (err) {
    if (err instanceof ConfigError) {
      pino().fatal(`invalid configuration: ${err.message}`)
      process.exit(EXIT_BAD_CONFIG)
    }
    throw err
  }
  const sandbox = config.waSandbox && options.sandbox ? await (await options.sandbox())(config, log) : undefined
  const embedded = await startEmbeddedServices(sandbox?.config ?? config, log)
  const fastify = createServer(embedded.config)

  let closing: Promise<void> | undefined
  const shutdown = () => {
    closing ??= (async () => {
      try {
        await fastify.close()
      } finally {
        await embedded.stop()
        await sandbox?.stop()
        await telemetryHandle.shutdown?.().catch((err: unknown) => log.warn({ err }, 'the last spans could not be exported'))
      }
    })()
    return closing
  }

  // close-with-grace bounds the shutdown and handles errors and the other signals; SIGINT and SIGTERM are
  // handled here, where a copy of the same Ctrl-C is told from a second one (core/shutdown-signals.ts).
  let requestedBy: NodeJS.Signals | undefined
  const grace = closeWithGrace({ delay: config.shutdownTimeoutMs, logger: log, skip: [...SHUTDOWN_SIGNALS] }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'shutting down after an uncaught error')
    else log.info({ signal: signal ?? requestedBy }, 'shutting down')
    await shutdown()
  })
  onShutdownSignals({
    shutdown: (signal) => {
      requestedBy = signal
      grace.close()
    },
    again: (signal) => {
      log.warn({ signal }, 'signalled again: exiting before the shutdown has finished')
      process.exit(1)
    }
  })

  try {
    await fastify.register(fp(app, { name: 'wa-gateway' }), { config: embedded.config, plugins: options.plugins })
    await fastify.listen({ host: config.httpHost, port: config.httpPort })
  } catch (err) {
    log.fatal({ err }, 'start-up failed')
    await shutdown().catch(() => {})
    process.exitCode = 1
  }
}
