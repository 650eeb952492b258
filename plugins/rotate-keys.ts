import { withMigratedDatabase } from '../core/migrate.ts'
import { Sealer, sealingKeys } from '../core/sealing.ts'
import { plugins } from './index.ts'
import { resealAll } from './session-pool/index.ts'
import { resealSecrets } from './webhooks/index.ts'
import { resealPollSecrets } from './polls/index.ts'
import { resealProxies } from './proxy/index.ts'

// `npm run rotate-keys`: seals every stored creds, key, webhook and poll secret and proxy URL under the first key of
// AUTH_STATE_KEYS (list the new key first and keep the old ones after it until this has run).
await withMigratedDatabase(plugins, async (orm, config, log) => {
  const sealer = new Sealer(await sealingKeys(config.authStateKeys, config.dataDir, log))
  const resealed = await resealAll(() => orm.em.fork(), sealer)
  const secrets = await resealSecrets(() => orm.em.fork(), sealer)
  const pollSecrets = await resealPollSecrets(() => orm.em.fork(), sealer)
  const proxies = await resealProxies(() => orm.em.fork(), sealer)
  log.info({ resealed, webhookSecrets: secrets, pollSecrets, proxies, keyId: sealer.currentKeyId },
    'auth state, webhook and poll secrets and proxy URLs sealed under the current key')
})
