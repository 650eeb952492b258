import type { MikroORM } from '@mikro-orm/postgresql'
import type { Logger } from 'pino'
import { loadConfig, type Config } from './config.ts'
import { migrate, openOrm } from './plugins/db.ts'
import { createLogger } from './logger.ts'
import { startEmbeddedServices } from './embedded/index.ts'
import { resolvePlugins, schemaOf, type PluginModule } from './plugin-set.ts'

/**
 * Runs `work` against the migrated database of this configuration (the embedded PostgreSQL when
 * DATABASE_URL is unset), then closes everything: `npm run migrate` and maintenance tools.
 */
export async function withMigratedDatabase (
  modules: PluginModule[],
  work: (orm: MikroORM, config: Config & Record<string, unknown>, log: Logger) => Promise<void>
): Promise<void> {
  const config = loadConfig(process.env, modules)
  const log = createLogger(config)
  const embedded = await startEmbeddedServices(config, log, { nats: false, postgres: true })
  try {
    const orm = await openOrm(embedded.config, schemaOf(resolvePlugins(modules, config.disabledPlugins)))
    try {
      const applied = await migrate(orm, embedded.config.databaseUrl!)
      log.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date')
      await work(orm, config, log)
    } finally {
      await orm.close()
    }
  } finally {
    await embedded.stop()
  }
}

/** `npm run migrate`: applies every enabled plugin's migrations, the same list the service applies at start. */
export function migrateAll (modules: PluginModule[]): Promise<void> {
  return withMigratedDatabase(modules, async () => {})
}
