import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { HistoryLinkSettings, HistorySyncMode } from '../../contracts/index.ts'
import type { HistorySettings } from './history-port.ts'

/**
 * What a company chose at initialize for its links (the history a link imports), kept for whichever
 * replica connects it next: the choice reaches WhatsApp only when the device registers.
 */
export class CreateLinkSettings extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_link_settings (
      company_id varchar(64) primary key,
      history_sync varchar(8),
      history_days integer,
      history_days_set boolean not null default false,
      updated_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_link_settings')
  }
}

export const linkSettingsMigrations = [{ name: 'session_pool_003_link_settings', class: CreateLinkSettings }]

/** Keeps what initialize chose; a field left out keeps the company's earlier choice (or the deployment's). */
export async function saveLinkSettings (em: EntityManager, companyId: string, history: HistoryLinkSettings): Promise<void> {
  const daysSet = history.days !== undefined
  await em.execute(
    `insert into whatsapp_link_settings (company_id, history_sync, history_days, history_days_set) values (?, ?, ?, ?)
     on conflict (company_id) do update set
       history_sync = coalesce(excluded.history_sync, whatsapp_link_settings.history_sync),
       history_days = case when excluded.history_days_set then excluded.history_days else whatsapp_link_settings.history_days end,
       history_days_set = whatsapp_link_settings.history_days_set or excluded.history_days_set,
       updated_at = now()`,
    [companyId, history.sync ?? null, history.days ?? null, daysSet], 'run')
}

/** The company's history settings: its own choices over the deployment's. */
export async function historySettingsOf (
  em: EntityManager, companyId: string, deployment: { historySync: HistorySyncMode, historySyncDays: number | undefined }
): Promise<HistorySettings> {
  const row = await em.execute<{ history_sync: HistorySyncMode | null, history_days: number | null, history_days_set: boolean }>(
    'select history_sync, history_days, history_days_set from whatsapp_link_settings where company_id = ?', [companyId], 'get')
  return {
    mode: row?.history_sync ?? deployment.historySync,
    days: row?.history_days_set ? row.history_days : deployment.historySyncDays ?? null
  }
}
