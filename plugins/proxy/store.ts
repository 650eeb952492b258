import type { EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { Sealer } from '../../core/sealing.ts'

/** Each company's own proxy, its URL sealed (it carries the proxy's password), bound to the company's row. */
export class CreateProxies extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_proxies (
      company_id varchar(64) primary key,
      url jsonb not null,
      updated_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_proxies')
  }
}

export const proxyMigrations = [{ name: 'proxy_001_proxies', class: CreateProxies }]

const rowOf = (companyId: string) => `proxy/${companyId}`

export class ProxyStore {
  readonly #em: () => EntityManager
  readonly #sealer: Sealer

  constructor (em: () => EntityManager, sealer: Sealer) {
    this.#em = em
    this.#sealer = sealer
  }

  async get (companyId: string): Promise<string | undefined> {
    const rows = await this.#em().getConnection().execute<{ url: unknown }[]>(
      'select url from whatsapp_proxies where company_id = ?', [companyId])
    return rows[0] ? this.#sealer.open(rows[0].url, rowOf(companyId)) : undefined
  }

  async set (companyId: string, url: string): Promise<void> {
    const sealed = JSON.stringify(this.#sealer.seal(url, rowOf(companyId)))
    await this.#em().getConnection().execute(`insert into whatsapp_proxies (company_id, url) values (?, ?::jsonb)
      on conflict (company_id) do update set url = excluded.url, updated_at = now()`, [companyId, sealed], 'run')
  }

  /** True when the company had a proxy of its own. */
  async remove (companyId: string): Promise<boolean> {
    const rows = await this.#em().getConnection().execute<{ company_id: string }[]>(
      'delete from whatsapp_proxies where company_id = ? returning company_id', [companyId])
    return rows.length > 0
  }

  /** Seals every stored URL under the current key (`npm run rotate-keys`); returns how many. */
  async reseal (): Promise<number> {
    const rows = await this.#em().getConnection().execute<{ company_id: string, url: unknown }[]>(
      'select company_id, url from whatsapp_proxies')
    let resealed = 0
    for (const row of rows) {
      if ((row.url as { k?: string }).k === this.#sealer.currentKeyId) continue
      await this.set(row.company_id, this.#sealer.open(row.url, rowOf(row.company_id)))
      resealed++
    }
    return resealed
  }
}
