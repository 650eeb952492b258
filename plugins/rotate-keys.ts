import { withMigratedDatabase } from '../core/migrate.ts'
import { Sealer, sealingKeys } from '../core/sealing.ts'
import { plugins } from './index.ts'
import { resealAll } from './session-pool/index.ts'
import { resealSecrets } from './webhooks/index.ts'
import { resealPollSecrets } from './polls/index.ts'

// `npm run rotate-keys`: seals every stored creds, key, webhook and poll secret under the first key of
// AUTH_STATE_KEYS (list the new key first and keep the old ones after it until this has run).
await withMigratedDatabase(plugins, async (orm, config, log) => {
  const sealer = new Sealer(await sealingKeys(config.authStateKeys, config.dataDir, log))
  const resealed = await resealAll(() => orm.em.fork(), sealer)
  const secrets = await resealSecrets(() => orm.em.fork(), sealer)
  const pollSecrets = await resealPollSecrets(() => orm.em.fork(), sealer)
  log.info({ resealed, webhookSecrets: secrets, pollSecrets, keyId: sealer.currentKeyId },
    'auth state, webhook and poll secrets sealed under the current key')
})
