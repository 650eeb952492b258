import { randomUUID } from 'node:crypto'
import { defineEntity, p } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { ApiKeyInfo, Scope } from '../../contracts/index.ts'
import { BoundedMap } from '../bounded-map.ts'
import type { Principal } from './principal.ts'
import { hashSecret, newApiKey } from './secrets.ts'

/** A company API key: only its SHA-256 is stored; the key itself is shown once, when it is created. */
export const ApiKeySchema = defineEntity({
  name: 'ApiKey',
  tableName: 'api_keys',
  properties: {
    id: p.string().primary(),
    name: p.string(),
    keyHash: p.string().unique(),
    companyIds: p.json<string[]>(),
    scopes: p.json<Scope[]>(),
    createdAt: p.datetime().onCreate(() => new Date()),
    revokedAt: p.datetime().nullable()
  }
})
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey)

export class CreateApiKeys extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists api_keys (
      id varchar(64) primary key,
      name varchar(128) not null,
      key_hash char(64) not null unique,
      company_ids jsonb not null,
      scopes jsonb not null,
      created_at timestamptz not null default now(),
      revoked_at timestamptz null
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists api_keys')
  }
}

export const keyMigrations = [{ name: 'core_001_api_keys', class: CreateApiKeys }]

/** How long a key lookup is reused: a revocation reaches every replica within this even if its broadcast is lost. */
const LOOKUP_REUSE_MS = 1_000
/** Distinct presented keys whose lookup is remembered (valid or not). */
const LOOKUPS_REMEMBERED = 10_000

function infoOf (row: ApiKey): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    companyIds: row.companyIds,
    scopes: row.scopes,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt ? row.revokedAt.toISOString() : null
  }
}

/**
 * Company API keys in PostgreSQL. A lookup by the key's hash is remembered for a second (and the
 * lookup in flight shared), so checking a key costs a hash and a map read on the hot path.
 */
export class ApiKeyStore {
  readonly #em: () => EntityManager
  readonly #lookups = new BoundedMap<string, { at: number, principal: Promise<Principal | undefined> }>(LOOKUPS_REMEMBERED)

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  async create (request: { name: string, companyIds: string[], scopes: Scope[] }): Promise<{ key: string, info: ApiKeyInfo }> {
    const key = newApiKey()
    const em = this.#em()
    const row = em.create(ApiKey, {
      id: randomUUID(),
      name: request.name,
      keyHash: hashSecret(key),
      companyIds: request.companyIds,
      scopes: request.scopes,
      revokedAt: null
    })
    await em.flush()
    return { key, info: infoOf(row) }
  }

  async list (): Promise<ApiKeyInfo[]> {
    const rows = await this.#em().find(ApiKey, {}, { orderBy: { createdAt: 'asc' } })
    return rows.map(infoOf)
  }

  /** Marks the key revoked; false when there is no such key. */
  async revoke (id: string): Promise<boolean> {
    const em = this.#em()
    const row = await em.findOne(ApiKey, { id })
    if (!row) return false
    row.revokedAt ??= new Date()
    await em.flush()
    // Refused here at once; the other replicas forget when the revocation's broadcast reaches them.
    this.forget()
    return true
  }

  /** Whether the key with this id exists and is not revoked, read from the database now (never remembered). */
  async isActive (id: string): Promise<boolean> {
    return await this.#em().count(ApiKey, { id, revokedAt: null }) > 0
  }

  /** The principal a presented key stands for, or undefined (unknown or revoked). */
  lookup (keyHash: string): Promise<Principal | undefined> {
    const now = performance.now()
    const known = this.#lookups.get(keyHash)
    if (known && now - known.at < LOOKUP_REUSE_MS) return known.principal
    const principal = this.#find(keyHash)
    this.#lookups.set(keyHash, { at: now, principal })
    // A failed lookup (the database is down) is not remembered.
    principal.catch(() => { this.#lookups.delete(keyHash) })
    return principal
  }

  /** Drops every remembered lookup (a key was revoked somewhere). */
  forget (): void {
    this.#lookups.clear()
  }

  async #find (keyHash: string): Promise<Principal | undefined> {
    const row = await this.#em().findOne(ApiKey, { keyHash, revokedAt: null })
    if (!row) return undefined
    return { id: `key:${row.id}`, kind: 'key', keyId: row.id, companies: row.companyIds, scopes: new Set(row.scopes) }
  }
}
