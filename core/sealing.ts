import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'

/** One key of AUTH_STATE_KEYS: its id (stored beside every value it seals) and 32 bytes. */
export interface SealingKey {
  id: string
  key: Buffer
}

/** What a sealed value looks like in the jsonb columns. */
export interface Sealed {
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
 * Secrets are sealed with AES-256-GCM before they reach PostgreSQL (Baileys' creds and Signal keys,
 * so read access to the database or a backup does not clone a linked device; webhook signing
 * secrets). Each value is bound to its row as additional data: a sealed value copied into another row does not open.
 */
export class Sealer {
  /**
   * The keys as KeyObjects, made once: Node 24.18 and later check a key given as bytes by throwing
   * and catching inside `createCipheriv` (a stack trace each time): a seal and an open took 112 µs
   * with bytes, 39 µs with KeyObjects (Node 24.21, a 400-byte value).
   */
  readonly #keys: Map<string, KeyObject>
  readonly #currentId: string
  readonly #currentKey: KeyObject

  constructor (keys: SealingKey[]) {
    if (keys.length === 0) throw new Error('no auth-state key')
    this.#keys = new Map(keys.map((key) => [key.id, createSecretKey(key.key)]))
    this.#currentId = keys[0]!.id
    this.#currentKey = this.#keys.get(this.#currentId)!
  }

  get currentKeyId (): string {
    return this.#currentId
  }

  seal (plain: string, row: string): Sealed {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv(ALGORITHM, this.#currentKey, iv, { authTagLength: TAG_BYTES }).setAAD(Buffer.from(row))
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return {
      sealed: 1,
      k: this.#currentId,
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
    return !isSealed(stored) || stored.k !== this.#currentId
  }
}

/**
 * The keys secrets are sealed with: AUTH_STATE_KEYS, or outside production one generated once under
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
