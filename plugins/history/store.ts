import type { EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { HistorySyncMode, HistorySyncState } from '../../contracts/index.ts'
import type { HistoryNotice } from '../session-pool/index.ts'
import { runWithParameters } from '../../core/sql.ts'

/**
 * Each history chunk the phone told of, kept from the moment it was told until it is imported: a
 * holder that takes the company over reads what its predecessor was told and did not finish.
 */
export class CreateHistoryTables extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_history_chunks (
      company_id varchar(64) not null,
      notice_id varchar(64) not null,
      sync_type varchar(24) not null,
      chunk_order integer not null,
      progress integer,
      notice jsonb not null,
      state varchar(8) not null default 'pending',
      chats integer not null default 0,
      messages integer not null default 0,
      attempts integer not null default 0,
      told_at timestamptz not null default now(),
      imported_at timestamptz,
      primary key (company_id, notice_id)
    )`)
    this.addSql(`create index if not exists whatsapp_history_chunks_pending on whatsapp_history_chunks (company_id, told_at)
      where state = 'pending'`)
    // The chats the imported chunks held, each once (a chat comes in the bootstrap and again later, or split over chunks).
    this.addSql(`create table if not exists whatsapp_history_chats (
      company_id varchar(64) not null,
      chat varchar(80) not null,
      primary key (company_id, chat)
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_history_chunks')
    this.addSql('drop table if exists whatsapp_history_chats')
  }
}

export const historyMigrations = [{ name: 'history_001_chunks', class: CreateHistoryTables }]

/** A chunk that failed this many times is given up (left `failed`, counted in the state); each failure is logged. */
export const MAX_CHUNK_ATTEMPTS = 5

type ChunkRow = { notice: HistoryNotice }
type StateRow = {
  imported: string,
  pending: string,
  failed: string,
  chats: string | null,
  messages: string | null,
  started: Date | null,
  updated: Date | null,
  finished: boolean
}

export class HistoryStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /** Keeps the notices told; true for each one not known before (a chunk told again is not imported twice). */
  async told (companyId: string, notices: HistoryNotice[]): Promise<HistoryNotice[]> {
    if (notices.length === 0) return []
    type Added = { notice_id: string }
    const rows = await runWithParameters<Added>(this.#em(), `insert into whatsapp_history_chunks
      (company_id, notice_id, sync_type, chunk_order, progress, notice)
      select $1, notice->>'id', notice->>'syncType', (notice->>'chunkOrder')::int, (notice->>'progress')::int, notice
      from jsonb_array_elements($2::jsonb) as told (notice)
      on conflict (company_id, notice_id) do nothing returning notice_id`, [companyId, JSON.stringify(notices)])
    const added = new Set(rows.map((row) => row.notice_id))
    return notices.filter((notice) => added.has(notice.id))
  }

  /** Chunks told and not imported, in the order they were told. */
  async pending (companyId: string): Promise<HistoryNotice[]> {
    const rows: ChunkRow[] = await this.#em().getConnection().execute<ChunkRow[]>(
      'select notice from whatsapp_history_chunks where company_id = ? and state = \'pending\' order by told_at, chunk_order', [companyId])
    return rows.map((row) => row.notice)
  }

  /** The chats a slice held (as the chat list names them), each counted once in the sync's state. */
  async chats (companyId: string, chats: string[]): Promise<void> {
    if (chats.length === 0) return
    await runWithParameters(this.#em(), `insert into whatsapp_history_chats (company_id, chat)
      select $1, chat from json_array_elements_text($2::json) as chat on conflict do nothing`, [companyId, JSON.stringify(chats)])
  }

  /** Records a chunk imported; false when it was not pending any more (another holder imported it first). */
  async imported (companyId: string, noticeId: string, counts: { chats: number, messages: number }): Promise<boolean> {
    const rows = await this.#em().getConnection().execute<{ notice_id: string }[]>(`update whatsapp_history_chunks
      set state = 'imported', chats = ?, messages = ?, imported_at = now()
      where company_id = ? and notice_id = ? and state = 'pending' returning notice_id`,
    [counts.chats, counts.messages, companyId, noticeId])
    return rows.length > 0
  }

  /** Counts a failed attempt; after MAX_CHUNK_ATTEMPTS the chunk is given up. Returns whether it stays pending. */
  async failed (companyId: string, noticeId: string): Promise<boolean> {
    const rows = await this.#em().getConnection().execute<{ state: string }[]>(`update whatsapp_history_chunks
      set attempts = attempts + 1, state = case when attempts + 1 >= ? then 'failed' else state end
      where company_id = ? and notice_id = ? returning state`, [MAX_CHUNK_ATTEMPTS, companyId, noticeId])
    return rows[0]?.state === 'pending'
  }

  /** The sync's state from its chunks: on-demand answers count in the totals, not in whether the sync is done. */
  async state (companyId: string, mode: HistorySyncMode): Promise<HistorySyncState> {
    const row = await this.#em().getConnection().execute<StateRow[]>(`select
        count(*) filter (where state = 'imported') as imported,
        count(*) filter (where state = 'pending') as pending,
        count(*) filter (where state = 'failed') as failed,
        (select count(*) from whatsapp_history_chats where company_id = ?) as chats, sum(messages) as messages,
        min(told_at) as started, max(coalesce(imported_at, told_at)) as updated,
        coalesce(bool_or(progress >= 100 and sync_type in ('recent', 'full') and state <> 'pending'), false) as finished
      from whatsapp_history_chunks where company_id = ?`, [companyId, companyId]).then((rows) => rows[0])
    const imported = Number(row?.imported ?? 0)
    const pending = Number(row?.pending ?? 0)
    // How far the sync under way is: the latest chunk's of the main sync (recent, then full), else the bootstrap's.
    const progress = await this.#em().getConnection().execute<{ progress: number | null }[]>(`select progress from whatsapp_history_chunks
      where company_id = ? and sync_type <> 'on_demand' and progress is not null
      order by sync_type in ('recent', 'full') desc, told_at desc, chunk_order desc limit 1`, [companyId])
    const done = pending === 0 && imported > 0 && row?.finished === true
    return {
      mode,
      state: imported + pending === 0 ? 'idle' : done ? 'done' : 'running',
      progress: progress[0]?.progress ?? null,
      chunks: imported,
      pending,
      chats: Number(row?.chats ?? 0),
      messages: Number(row?.messages ?? 0),
      startedAt: row?.started ? new Date(row.started).toISOString() : null,
      updatedAt: row?.updated ? new Date(row.updated).toISOString() : null,
      finishedAt: done && row?.updated ? new Date(row.updated).toISOString() : null
    }
  }
}
