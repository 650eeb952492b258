import { loadConfig } from './config.ts'
import { migrate, openOrm } from './plugins/db.ts'
import { createLogger } from './logger.ts'
import { startEmbeddedServices } from './embedded/index.ts'
import { resolvePlugins, type PluginModule } from './plugin-set.ts'

/** `npm run migrate`: applies every enabled plugin's migrations, the same list the service applies at start. */
export async function migrateAll (modules: PluginModule[]): Promise<void> {
  const config = loadConfig(process.env, modules)
  const log = createLogger(config)
  const embedded = await startEmbeddedServices(config, log, { nats: false, postgres: true })
  try {
    const plugins = resolvePlugins(modules, config.disabledPlugins)
    const orm = await openOrm(embedded.config, {
      entities: plugins.flatMap((plugin) => plugin.module.entities ?? []),
      migrations: plugins.flatMap((plugin) => plugin.module.migrations ?? [])
    })
    try {
      const applied = await migrate(orm, embedded.config.databaseUrl!)
      log.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date')
    } finally {
      await orm.close()
    }
  } finally {
    await embedded.stop()
  }
}
