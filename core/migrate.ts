import { loadConfig } from './config.ts'
import { migrate, openOrm } from './plugins/db.ts'
import { createLogger } from './logger.ts'
import { startEmbeddedServices } from './embedded/index.ts'
import { resolveFeatures } from './features.ts'
import { features as featureModules } from '../plugins/index.ts'

/** `npm run migrate`: applies every enabled plugin's migrations, the same list the service applies at start. */
const config = loadConfig()
const log = createLogger(config)
const embedded = await startEmbeddedServices(config, log, { nats: false, postgres: true })
try {
  const features = resolveFeatures(featureModules, config.disabledPlugins)
  const orm = await openOrm(embedded.config, {
    entities: features.flatMap((feature) => feature.module.entities ?? []),
    migrations: features.flatMap((feature) => feature.module.migrations ?? [])
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
