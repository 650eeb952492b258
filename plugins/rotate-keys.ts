import { withMigratedDatabase } from '../core/migrate.ts'
import { plugins } from './index.ts'
import { resealAll, Sealer, sealingKeys, type SessionPoolOptions } from './session-pool/index.ts'

// `npm run rotate-keys`: seals every stored creds and key under the first key of AUTH_STATE_KEYS
// (list the new key first and keep the old ones after it until this has run).
await withMigratedDatabase(plugins, async (orm, config, log) => {
  const { authStateKeys } = config as unknown as SessionPoolOptions
  const sealer = new Sealer(await sealingKeys(authStateKeys, config.dataDir, log))
  const resealed = await resealAll(() => orm.em.fork(), sealer)
  log.info({ resealed, keyId: sealer.currentKeyId }, 'auth state sealed under the current key')
})
