import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'

/**
 * A pending request to link by pairing code. `initialize` may reach any replica, and the holder may
 * change before the phone is linked, so the request waits here for whichever replica connects.
 */
export class CreatePairingRequests extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_pairing (
      company_id varchar(64) primary key,
      phone varchar(16) not null,
      requested_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_pairing')
  }
}

export const pairingMigrations = [{ name: 'session_pool_002_pairing', class: CreatePairingRequests }]

export async function requestPairing (em: EntityManager, companyId: string, phone: string | undefined): Promise<void> {
  if (phone === undefined) {
    await em.execute('delete from whatsapp_pairing where company_id = ?', [companyId], 'run')
    return
  }
  await em.execute(
    `insert into whatsapp_pairing (company_id, phone) values (?, ?)
     on conflict (company_id) do update set phone = excluded.phone, requested_at = now()`,
    [companyId, phone], 'run')
}

export async function pendingPairing (em: EntityManager, companyId: string): Promise<string | undefined> {
  const row = await em.execute<{ phone: string }>('select phone from whatsapp_pairing where company_id = ?', [companyId], 'get')
  return row?.phone
}
