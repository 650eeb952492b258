import { loadConfig } from '../core/config.ts'
import { createLogger } from '../core/logger.ts'
import { startEmbeddedServices } from '../core/embedded/index.ts'
import { migrate, openOrm } from '../core/plugins/db.ts'
import { resolvePlugins } from '../core/plugin-set.ts'
import { plugins } from './index.ts'
import { resealAll, Sealer, sealingKeys, type SessionPoolOptions } from './session-pool/index.ts'

// `npm run rotate-keys`: seals every stored creds and key under the first key of AUTH_STATE_KEYS
// (list the new key first and keep the old ones after it until this has run).
const config = loadConfig(process.env, plugins) as ReturnType<typeof loadConfig> & SessionPoolOptions
const log = createLogger(config)
const embedded = await startEmbeddedServices(config, log, { nats: false, postgres: true })
try {
  const enabled = resolvePlugins(plugins, config.disabledPlugins)
  const orm = await openOrm(embedded.config, {
    entities: enabled.flatMap((plugin) => plugin.module.entities ?? []),
    migrations: enabled.flatMap((plugin) => plugin.module.migrations ?? [])
  })
  try {
    await migrate(orm, embedded.config.databaseUrl!)
    const sealer = new Sealer(await sealingKeys(config.authStateKeys, config.dataDir, log))
    const resealed = await resealAll(() => orm.em.fork(), sealer)
    log.info({ resealed, key: sealer.currentKeyId }, 'auth state sealed under the current key')
  } finally {
    await orm.close()
  }
} finally {
  await embedded.stop()
}
