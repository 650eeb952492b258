import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'

/** One key of AUTH_STATE_KEYS: its id (stored beside every value it seals) and 32 bytes. */
export interface SealingKey {
  id: string
  key: Buffer
}

/** What a sealed value looks like in the jsonb columns. */
interface Sealed {
  sealed: 1
  /** The id of the key that sealed it. */
  k: string
  iv: string
  tag: string
  data: string
}

const ALGORITHM = 'aes-256-gcm'
const IV_BYTES = 12
/** The whole GCM tag: a shorter one (GCM accepts 4 to 16 bytes unless told) is refused, not checked. */
const TAG_BYTES = 16
const KEY_FILE = 'auth-state-key'
/** Rows re-sealed per transaction by the start-up migration and by rotate-keys. */
const BATCH = 500

/** Parses `id:base64,id:base64`: the first key seals, all of them open. */
export function parseSealingKeys (raw: string): SealingKey[] | undefined {
  const keys = raw.split(',').map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    const [id, encoded] = entry.split(':')
    const key = Buffer.from(encoded ?? '', 'base64')
    return /^[A-Za-z0-9_-]{1,32}$/.test(id ?? '') && key.length === 32 ? { id, key } : undefined
  })
  return keys.length > 0 && keys.every((key) => key !== undefined) && new Set(keys.map((key) => key!.id)).size === keys.length
    ? keys as SealingKey[]
    : undefined
}

export function isSealed (value: unknown): value is Sealed {
  return typeof value === 'object' && value !== null && (value as { sealed?: unknown }).sealed === 1
}

/**
 * Baileys' creds and Signal keys are sealed with AES-256-GCM before they reach PostgreSQL, so read
 * access to the database or a backup does not clone a linked device. Each value is bound to its row
 * (company, type, id) as additional data: a sealed value copied into another row does not open.
 */
export class Sealer {
  readonly #keys: Map<string, Buffer>
  readonly #current: SealingKey

  constructor (keys: SealingKey[]) {
    if (keys.length === 0) throw new Error('no auth-state key')
    this.#keys = new Map(keys.map((key) => [key.id, key.key]))
    this.#current = keys[0]
  }

  get currentKeyId (): string {
    return this.#current.id
  }

  seal (plain: string, row: string): Sealed {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv(ALGORITHM, this.#current.key, iv, { authTagLength: TAG_BYTES }).setAAD(Buffer.from(row))
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return {
      sealed: 1,
      k: this.#current.id,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64')
    }
  }

  /** The plain JSON text of a stored value; a value stored before sealing existed is returned as it is. */
  open (stored: unknown, row: string): string {
    if (!isSealed(stored)) return JSON.stringify(stored)
    const key = this.#keys.get(stored.k)
    if (!key) throw new Error(`auth state sealed with key "${stored.k}", which AUTH_STATE_KEYS does not hold`)
    const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(stored.iv, 'base64'), { authTagLength: TAG_BYTES })
      .setAAD(Buffer.from(row))
    decipher.setAuthTag(Buffer.from(stored.tag, 'base64'))
    return Buffer.concat([decipher.update(Buffer.from(stored.data, 'base64')), decipher.final()]).toString('utf8')
  }

  /** Whether a stored value must be sealed again: plain, or under a key other than the current one. */
  stale (stored: unknown): boolean {
    return !isSealed(stored) || stored.k !== this.#current.id
  }
}

export const credsRow = (companyId: string) => `${companyId}/creds`
export const keyRow = (companyId: string, type: string, keyId: string) => `${companyId}/${type}/${keyId}`

/**
 * The keys the store seals with: AUTH_STATE_KEYS, or outside production one generated once under
 * DATA_DIR (production without AUTH_STATE_KEYS never starts: the setting is required there).
 */
export async function sealingKeys (configured: SealingKey[] | undefined, dataDir: string, log: FastifyBaseLogger): Promise<SealingKey[]> {
  if (configured) return configured
  const file = join(dataDir, KEY_FILE)
  const kept = await readFile(file, 'utf8').then((text) => parseSealingKeys(text.trim()), () => undefined)
  if (kept) return kept
  const generated = `local:${randomBytes(32).toString('base64')}`
  await mkdir(dataDir, { recursive: true })
  try {
    await writeFile(file, `${generated}\n`, { mode: 0o600, flag: 'wx' })
    log.warn({ file }, 'AUTH_STATE_KEYS is unset: generated an auth-state key under DATA_DIR (keep it with the database)')
  } catch {
    // Another replica on the same DATA_DIR wrote it first.
    return parseSealingKeys((await readFile(file, 'utf8')).trim())!
  }
  return parseSealingKeys(generated)!
}

/**
 * Seals every stored value that is plain or under an older key (the start-up migration of rows
 * stored before sealing, and `npm run rotate-keys`), in batches. Returns how many it sealed.
 */
export async function resealAll (em: () => EntityManager, sealer: Sealer): Promise<number> {
  let sealed = 0
  for (;;) {
    const rows = await em().execute<{ company_id: string, type: string, key_id: string, value: unknown }[]>(
      `select company_id, type, key_id, value from whatsapp_keys
       where not jsonb_exists(value, 'sealed') or value->>'k' <> ? limit ${BATCH}`, [sealer.currentKeyId], 'all')
    if (rows.length === 0) break
    let updated = 0
    await em().transactional(async (tx) => {
      for (const row of rows) {
        const plain = sealer.open(row.value, keyRow(row.company_id, row.type, row.key_id))
        const value = JSON.stringify(sealer.seal(plain, keyRow(row.company_id, row.type, row.key_id)))
        // Only if unchanged meanwhile: a holder writing this key now has the newer (sealed) value.
        const result = await tx.execute(
          'update whatsapp_keys set value = ?::jsonb where company_id = ? and type = ? and key_id = ? and value = ?::jsonb',
          [value, row.company_id, row.type, row.key_id, JSON.stringify(row.value)], 'run')
        updated += (result as { affectedRows?: number }).affectedRows ?? 0
      }
    })
    sealed += updated
    // Every row of the batch changed under us (a holder still sealing under an older first key): no
    // progress to be made now; the next start or rotate-keys tries again.
    if (updated === 0) break
  }
  const creds = await em().execute<{ company_id: string, creds: unknown }[]>(
    'select company_id, creds from whatsapp_auth where not jsonb_exists(creds, \'sealed\') or creds->>\'k\' <> ?',
    [sealer.currentKeyId], 'all')
  for (const row of creds) {
    const value = JSON.stringify(sealer.seal(sealer.open(row.creds, credsRow(row.company_id)), credsRow(row.company_id)))
    await em().execute('update whatsapp_auth set creds = ?::jsonb where company_id = ? and creds = ?::jsonb',
      [value, row.company_id, JSON.stringify(row.creds)], 'run')
  }
  return sealed + creds.length
}
