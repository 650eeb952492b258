import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { ConfigError } from '../settings.ts'
import { newApiKey } from './secrets.ts'

const ADMIN_KEY_FILE = 'admin-key'

/**
 * The admin key the service runs with. In production it must be configured (ADMIN_API_KEY); a first
 * run elsewhere generates one, keeps it under DATA_DIR and prints it once with a curl line, so the
 * README's two commands still work.
 */
export async function withAdminKey (config: Config, log: Logger, env = process.env): Promise<Config> {
  if (config.authMode === 'off') {
    log.warn('AUTH_MODE=off: every request may act for every company (local experiments only)')
    return config
  }
  if (config.adminApiKey !== undefined) return config
  if (env.NODE_ENV === 'production') {
    throw new ConfigError('ADMIN_API_KEY', 'set when NODE_ENV=production (the admin key: plain, or sha256:<hex>)', '')
  }
  const file = join(config.dataDir, ADMIN_KEY_FILE)
  const kept = await readFile(file, 'utf8').then((text) => text.trim(), () => undefined)
  if (kept) {
    log.info({ file }, 'ADMIN_API_KEY is unset: using the admin key kept under DATA_DIR')
    return { ...config, adminApiKey: kept }
  }
  const key = newApiKey()
  await mkdir(config.dataDir, { recursive: true })
  await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' })
  const port = config.httpPort === 0 ? 3000 : config.httpPort
  log.warn({ file }, 'ADMIN_API_KEY is unset: generated an admin key (printed once, below; kept in the file)')
  process.stdout.write(`\nAdmin key (kept in ${file}):\n  ${key}\nTry it:\n` +
    `  curl -H 'authorization: Bearer ${key}' http://localhost:${port}/api/whatsapp/sessions\n\n`)
  return { ...config, adminApiKey: key }
}
