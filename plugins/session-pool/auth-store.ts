import { setTimeout as sleep } from 'node:timers/promises'
import { BoundedMap } from '../../core/bounded-map.ts'
import type { Sealer } from '../../core/sealing.ts'
import { credsRow, keyRow } from './sealing.ts'
import { loadBaileys, type Baileys } from './baileys.ts'
import { defineEntity, p } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { AuthenticationCreds, SignalDataSet, SignalDataTypeMap, SignalKeyStore } from '@whiskeysockets/baileys'
import type { FastifyBaseLogger } from 'fastify'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { fencedTransaction } from '../ownership/index.ts'

/** Baileys' creds, one row per company; `epoch` is the lease epoch of the holder that wrote them. */
export const WhatsappAuthSchema = defineEntity({
  name: 'WhatsappAuth',
  tableName: 'whatsapp_auth',
  properties: {
    companyId: p.string().primary(),
    creds: p.json<Record<string, unknown>>(),
    epoch: p.bigint('number').default(0),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date())
  }
})
export class WhatsappAuth extends WhatsappAuthSchema.class {}
WhatsappAuthSchema.setClass(WhatsappAuth)

/** Baileys' Signal keys (pre-keys, sessions, sender keys, app-state keys, LID mappings, …). */
export const WhatsappKeySchema = defineEntity({
  name: 'WhatsappKey',
  tableName: 'whatsapp_keys',
  properties: {
    companyId: p.string().primary(),
    type: p.string().primary(),
    keyId: p.string().primary(),
    value: p.json<unknown>()
  }
})
export class WhatsappKey extends WhatsappKeySchema.class {}
WhatsappKeySchema.setClass(WhatsappKey)

export class CreateAuthState extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_auth (
      company_id varchar(64) primary key,
      creds jsonb not null,
      epoch bigint not null default 0,
      updated_at timestamptz not null default now()
    )`)
    this.addSql(`create table if not exists whatsapp_keys (
      company_id varchar(64) not null,
      type varchar(64) not null,
      key_id varchar(255) not null,
      value jsonb not null,
      primary key (company_id, type, key_id)
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_keys')
    this.addSql('drop table if exists whatsapp_auth')
  }
}

export const authMigrations = [{ name: 'session_pool_001_auth_state', class: CreateAuthState }]

/** Removes a company's creds and keys outside any lease (a logout of a company nobody holds). */
export async function wipeAuth (em: EntityManager, companyId: string): Promise<void> {
  await em.nativeDelete(WhatsappKey, { companyId })
  await em.nativeDelete(WhatsappAuth, { companyId })
}

/** Absent keys remembered per company (see PostgresAuthStore.#absent). */
const ABSENT_KEYS_REMEMBERED = 10_000

/** A value as Baileys' own stores write it (Buffers as `{ type: 'Buffer', data }`), sealed for its row. */
function sealedJson (baileys: Baileys, sealer: Sealer, value: unknown, row: string): string {
  return JSON.stringify(sealer.seal(JSON.stringify(value, baileys.BufferJSON.replacer), row))
}

/** A stored value opened and revived (Buffers again). */
function openedJson<T> (baileys: Baileys, sealer: Sealer, stored: unknown, row: string): T {
  return JSON.parse(sealer.open(stored, row), baileys.BufferJSON.reviver) as T
}

/** Baileys' multi-file store revives these with protobuf; a plain object would lose its Long/bytes fields. */
function revive<T extends keyof SignalDataTypeMap> (baileys: Baileys, type: T, value: unknown): SignalDataTypeMap[T] {
  if (type !== 'app-state-sync-key') return value as SignalDataTypeMap[T]
  return baileys.proto.Message.AppStateSyncKeyData.fromObject(value as object) as unknown as SignalDataTypeMap[T]
}

/** Baileys' SignalKeyStore, with the promises this store always returns. */
export interface PostgresKeyStore extends SignalKeyStore {
  get: <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => Promise<{ [id: string]: SignalDataTypeMap[T] }>
  set: (data: SignalDataSet) => Promise<void>
  clear: () => Promise<void>
}

export interface AuthStoreOptions {
  companyId: string
  /** The lease epoch every write is fenced with. */
  epoch: number
  /** Forks an EntityManager for each operation (the store outlives any one request). */
  em: () => EntityManager
  log: FastifyBaseLogger
  attempts: number
  backoffMs: number
  /** Seals every value before it is written, opens it when read (AES-256-GCM, AUTH_STATE_KEYS). */
  sealer: Sealer
}

/**
 * Baileys' auth state in PostgreSQL. `keys.set()` is one transaction; every write is fenced by the
 * lease epoch (a stale holder gets FENCED) and retried with backoff on database errors, so a key
 * write is either stored or its failure surfaces to Baileys, never dropped.
 */
export class PostgresAuthStore {
  readonly #options: AuthStoreOptions
  readonly #baileys: Baileys
  creds: AuthenticationCreds
  /** Set by a logout: the device no longer exists, so late writes from its socket are dropped. */
  #wiped = false
  readonly #inFlight = new Set<Promise<void>>()

  private constructor (options: AuthStoreOptions, baileys: Baileys, creds: AuthenticationCreds) {
    this.#options = options
    this.#baileys = baileys
    this.creds = creds
  }

  static async open (options: AuthStoreOptions): Promise<PostgresAuthStore> {
    const [baileys, row] = await Promise.all([loadBaileys(), options.em().findOne(WhatsappAuth, { companyId: options.companyId })])
    const creds = row
      ? openedJson<AuthenticationCreds>(baileys, options.sealer, row.creds, credsRow(options.companyId))
      : baileys.initAuthCreds()
    return new PostgresAuthStore(options, baileys, creds)
  }

  /** Whether these creds belong to a linked device (an abandoned pairing leaves `me` without `account`). */
  get paired (): boolean {
    return Boolean(this.creds.account)
  }

  /** Starts over with fresh creds (e.g. after an abandoned pairing attempt); not yet saved. */
  resetCreds (): void {
    this.creds = this.#baileys.initAuthCreds()
  }

  /**
   * Keys known not to exist. Baileys looks up absent keys on every send (LID mappings of phone
   * numbers, sessions not yet made), which its cache does not remember; only this store writes the
   * company's keys while it holds the lease, so an absence stays true until it writes one.
   */
  readonly #absent = new BoundedMap<string, true>(ABSENT_KEYS_REMEMBERED)

  #rememberAbsent (key: string): void {
    this.#absent.set(key, true)
  }

  // The key queries are the hottest SQL of a send (Baileys reads and writes Signal state for every
  // message): written as plain SQL through the EntityManager's connection, they skip the query
  // builder and entity hydration, measured at about a third of a gateway's CPU under bench:sessions.
  readonly keys: PostgresKeyStore = {
    get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
      const found: { [id: string]: SignalDataTypeMap[T] } = {}
      const wanted = ids.filter((id) => !this.#absent.has(`${type}/${id}`))
      if (wanted.length === 0) return found
      const { companyId, sealer } = this.#options
      // Retried like writes: a key read failing during a short PostgreSQL outage would make Baileys
      // refuse an inbound message it cannot decrypt.
      const rows = await this.#retried('read keys', () => this.#options.em().execute<{ key_id: string, value: string }[]>(
        'select key_id, value::text as value from whatsapp_keys where company_id = ? and type = ?' +
          ` and key_id in (${wanted.map(() => '?').join(', ')})`,
        [this.#options.companyId, type, ...wanted], 'all'))
      for (const row of rows) {
        const opened = openedJson(this.#baileys, sealer, JSON.parse(row.value), keyRow(companyId, type, row.key_id))
        found[row.key_id] = revive(this.#baileys, type, opened)
      }
      for (const id of wanted) if (!(id in found)) this.#rememberAbsent(`${type}/${id}`)
      return found
    },
    set: async (data: SignalDataSet) => {
      const upserts: [string, string, string][] = []
      const deletes: [string, string][] = []
      const { companyId, sealer } = this.#options
      for (const [type, entries] of Object.entries(data)) {
        for (const [keyId, value] of Object.entries(entries ?? {})) {
          if (value === null || value === undefined) deletes.push([type, keyId])
          else upserts.push([type, keyId, sealedJson(this.#baileys, sealer, value, keyRow(companyId, type, keyId))])
        }
      }
      if (upserts.length === 0 && deletes.length === 0) return
      await this.#write('keys', async (tx) => {
        if (upserts.length > 0) {
          await tx.execute(
            `insert into whatsapp_keys (company_id, type, key_id, value) values ${upserts.map(() => '(?, ?, ?, ?::jsonb)').join(', ')}
             on conflict (company_id, type, key_id) do update set value = excluded.value`,
            upserts.flatMap(([type, keyId, value]) => [companyId, type, keyId, value]), 'run')
        }
        if (deletes.length > 0) {
          await tx.execute(
            `delete from whatsapp_keys where company_id = ? and (type, key_id) in (${deletes.map(() => '(?, ?)').join(', ')})`,
            [companyId, ...deletes.flat()], 'run')
        }
      })
      for (const [type, keyId] of upserts) this.#absent.delete(`${type}/${keyId}`)
      for (const [type, keyId] of deletes) this.#rememberAbsent(`${type}/${keyId}`)
    },
    clear: async () => {
      await this.#write('clear keys', async (tx) => {
        await tx.nativeDelete(WhatsappKey, { companyId: this.#options.companyId })
      })
      this.#absent.clear()
    }
  }

  /** Saves the whole creds object (Baileys merges each update into it). */
  async saveCreds (): Promise<void> {
    const { companyId, epoch, sealer } = this.#options
    const creds = sealedJson(this.#baileys, sealer, this.creds, credsRow(companyId))
    await this.#write('creds', async (tx) => {
      const result = await tx.execute(
        `insert into whatsapp_auth (company_id, creds, epoch, updated_at) values (?, ?::jsonb, ?, now())
         on conflict (company_id) do update set creds = excluded.creds, epoch = excluded.epoch, updated_at = now()
         where whatsapp_auth.epoch <= excluded.epoch`,
        [companyId, creds, epoch], 'run')
      if ((result as { affectedRows?: number }).affectedRows !== 1) {
        throw new GatewayError(ErrorCode.FENCED, `creds of ${companyId} were written under a newer epoch than ${epoch}`)
      }
    })
  }

  /**
   * Logout: the company's creds and keys are gone. Baileys may still be writing (a LID mapping
   * stored just after login, say); those writes are let finish first and later ones are dropped,
   * so nothing of the unlinked device is left behind.
   */
  async wipe (): Promise<void> {
    const { companyId } = this.#options
    this.#wiped = true
    await Promise.allSettled([...this.#inFlight])
    await this.#run('wipe', async (tx) => {
      await tx.nativeDelete(WhatsappKey, { companyId })
      await tx.nativeDelete(WhatsappAuth, { companyId })
    })
    this.creds = this.#baileys.initAuthCreds()
  }

  async #write (what: string, work: (tx: EntityManager) => Promise<void>): Promise<void> {
    if (this.#wiped) {
      this.#options.log.debug({ companyId: this.#options.companyId, what }, 'auth-state write after logout dropped')
      return
    }
    const write = this.#run(what, work)
    this.#inFlight.add(write)
    try {
      await write
    } finally {
      this.#inFlight.delete(write)
    }
  }

  async #run (what: string, work: (tx: EntityManager) => Promise<void>): Promise<void> {
    const { companyId, epoch } = this.#options
    await this.#retried(what, () => fencedTransaction(this.#options.em(), companyId, epoch, work))
  }

  /** Runs a database step again with backoff when PostgreSQL fails it (never when fenced); the last failure surfaces. */
  async #retried<T> (what: string, step: () => Promise<T>): Promise<T> {
    const { companyId, attempts, backoffMs, log } = this.#options
    for (let attempt = 1; ; attempt++) {
      try {
        return await step()
      } catch (err) {
        if (err instanceof GatewayError && err.code === ErrorCode.FENCED) throw err
        if (attempt >= attempts) {
          log.error({ err, companyId, what, attempt }, 'auth-state operation failed; giving up and surfacing the error')
          throw err
        }
        log.warn({ err, companyId, what, attempt }, 'auth-state operation failed; retrying')
        await sleep(backoffMs * 2 ** (attempt - 1))
      }
    }
  }
}
