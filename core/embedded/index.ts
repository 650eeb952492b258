import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { startNatsServer } from './nats.ts'
import { startEmbeddedPostgres } from './postgres.ts'

export interface EmbeddedServices {
  config: Config
  stop: () => Promise<void>
}

/**
 * Fills in NATS_URL and DATABASE_URL when they are unset by starting local servers under
 * DATA_DIR; with both set, it starts nothing. `need` leaves out a server the caller does not use.
 */
export async function startEmbeddedServices (
  config: Config,
  log: Logger,
  need = { nats: true, postgres: true }
): Promise<EmbeddedServices> {
  const stops: (() => Promise<void>)[] = []
  const stop = async () => {
    for (const stopOne of stops.reverse()) await stopOne().catch((err: unknown) => log.warn({ err }, 'stopping an embedded service failed'))
  }
  try {
    let { natsUrl, databaseUrl } = config
    if (!natsUrl && need.nats) {
      const nats = await startNatsServer({ storeDir: join(config.dataDir, 'nats'), startTimeoutMs: config.embeddedStartTimeoutMs, log })
      stops.push(nats.stop)
      natsUrl = nats.url
      log.info({ natsUrl }, 'NATS_URL is unset: started an embedded nats-server with JetStream')
    }
    if (!databaseUrl && need.postgres) {
      const postgres = await startEmbeddedPostgres(join(config.dataDir, 'pg'), log, config.embeddedStartTimeoutMs)
      stops.push(postgres.stop)
      databaseUrl = postgres.url
      log.info({ databaseUrl: databaseUrl.replace(/:[^:@/]+@/, ':***@') }, 'DATABASE_URL is unset: started an embedded PostgreSQL')
    }
    return { config: { ...config, natsUrl, databaseUrl }, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
