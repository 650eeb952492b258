import { defineEntity, p, type EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { CallRecord, CallSettings, CallStatus } from '../../contracts/index.ts'

/** A company's call settings: off unless the company opts in. */
export const CallSettingSchema = defineEntity({
  name: 'CallSetting',
  tableName: 'call_settings',
  properties: {
    companyId: p.string().primary(),
    rejectCalls: p.boolean(),
    replyText: p.text().nullable(),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date())
  }
})
export class CallSetting extends CallSettingSchema.class {}
CallSettingSchema.setClass(CallSetting)

export class CreateCallTables extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists call_settings (
      company_id varchar(64) primary key,
      reject_calls boolean not null,
      reply_text text,
      updated_at timestamptz not null default now()
    )`)
    this.addSql(`create table if not exists whatsapp_calls (
      company_id varchar(64) not null,
      call_id varchar(64) not null,
      caller varchar(128) not null,
      creator varchar(128) not null,
      phone varchar(32),
      lid varchar(128),
      video boolean not null,
      group_id varchar(128),
      offline boolean not null,
      status varchar(16) not null,
      offered_at timestamptz not null,
      updated_at timestamptz not null,
      rejected_by varchar(8),
      reply_message_id varchar(128),
      -- The order calls were told in: WhatsApp stamps them in whole seconds.
      seq bigserial not null,
      primary key (company_id, call_id)
    )`)
    this.addSql('create index if not exists whatsapp_calls_recent on whatsapp_calls (company_id, offered_at desc, seq desc)')
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_calls')
    this.addSql('drop table if exists call_settings')
  }
}

export const callMigrations = [{ name: 'calls_001_settings_and_record', class: CreateCallTables }]

export interface EffectiveCallSettings {
  rejectCalls: boolean
  replyText: string | null
}

export async function callSettingsOf (em: EntityManager, companyId: string): Promise<EffectiveCallSettings> {
  const row = await em.findOne(CallSetting, { companyId })
  return { rejectCalls: row?.rejectCalls ?? false, replyText: row?.replyText ?? null }
}

export async function saveCallSettings (em: EntityManager, companyId: string, settings: CallSettings): Promise<void> {
  await em.upsert(CallSetting, {
    companyId, rejectCalls: settings.rejectCalls, replyText: settings.replyText ?? null, updatedAt: new Date()
  })
}

/** One step of a call as the record takes it. */
export interface CallStep {
  companyId: string
  callId: string
  caller: string
  creator: string
  phone: string | null
  lid: string | null
  video: boolean
  groupId: string | null
  offline: boolean
  status: CallStatus
  at: Date
}

interface Row {
  seq: string
  call_id: string
  caller: string
  creator: string
  phone: string | null
  lid: string | null
  video: boolean
  group_id: string | null
  offline: boolean
  status: CallStatus
  offered_at: Date | string
  updated_at: Date | string
  rejected_by: 'auto' | 'api' | null
  reply_message_id: string | null
}

const recordOf = (row: Row): CallRecord & { creator: string } => ({
  callId: row.call_id,
  from: row.caller,
  creator: row.creator,
  phone: row.phone,
  lid: row.lid,
  video: row.video,
  groupId: row.group_id,
  offline: row.offline,
  status: row.status,
  offeredAt: new Date(row.offered_at).toISOString(),
  updatedAt: new Date(row.updated_at).toISOString(),
  rejectedBy: row.rejected_by,
  replyMessageId: row.reply_message_id
})

/** A call of a page, with the cursor of the page after it. */
export interface PagedCall {
  record: CallRecord
  cursor: string
}

/** The calls a company received, in PostgreSQL: one row per call, its last step, what the gateway did about it. */
export class CallStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /** A call's step: the first one seen makes the row (an offer, usually); later ones update its status. */
  async step (step: CallStep): Promise<void> {
    await this.#em().getConnection().execute(`insert into whatsapp_calls
      (company_id, call_id, caller, creator, phone, lid, video, group_id, offline, status, offered_at, updated_at)
      values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      on conflict (company_id, call_id) do update set
        status = excluded.status,
        phone = coalesce(whatsapp_calls.phone, excluded.phone),
        group_id = coalesce(whatsapp_calls.group_id, excluded.group_id),
        video = whatsapp_calls.video or excluded.video,
        updated_at = greatest(whatsapp_calls.updated_at, excluded.updated_at)`, [
      step.companyId, step.callId, step.caller, step.creator, step.phone, step.lid, step.video, step.groupId, step.offline,
      step.status, step.at, step.at
    ])
  }

  /** The gateway declined the call (`auto` or `api`). */
  async rejected (companyId: string, callId: string, by: 'auto' | 'api'): Promise<void> {
    await this.#em().getConnection().execute(`update whatsapp_calls set rejected_by = ?, status = 'reject', updated_at = now()
      where company_id = ? and call_id = ?`, [by, companyId, callId])
  }

  async replied (companyId: string, callId: string, messageId: string): Promise<void> {
    await this.#em().getConnection().execute('update whatsapp_calls set reply_message_id = ? where company_id = ? and call_id = ?',
      [messageId, companyId, callId])
  }

  async get (companyId: string, callId: string): Promise<(CallRecord & { creator: string }) | undefined> {
    const rows = await this.#em().getConnection().execute<Row[]>(
      'select * from whatsapp_calls where company_id = ? and call_id = ?', [companyId, callId])
    return rows[0] ? recordOf(rows[0]) : undefined
  }

  /** Most recent first (in the order told within a second), before the `(offered_at, seq)` cursor when given. */
  async page (companyId: string, options: { before?: { at: Date, seq: string }, limit: number }): Promise<PagedCall[]> {
    const params: unknown[] = [companyId]
    let after = ''
    if (options.before) {
      after = 'and (offered_at, seq) < (?, ?)'
      params.push(options.before.at, options.before.seq)
    }
    const rows = await this.#em().getConnection().execute<Row[]>(`select * from whatsapp_calls where company_id = ? ${after}
      order by offered_at desc, seq desc limit ?`, [...params, options.limit])
    return rows.map((row: Row) => {
      const { creator: _creator, ...record } = recordOf(row)
      return { record, cursor: `${new Date(row.offered_at).getTime()}:${row.seq}` }
    })
  }

  /** Drops calls older than `days`, and each company's beyond its `kept` most recent. Returns how many went. */
  async prune (days: number, kept: number): Promise<number> {
    const connection = this.#em().getConnection()
    const old = await connection.execute(
      'delete from whatsapp_calls where offered_at < now() - (? || \' days\')::interval', [String(days)], 'run')
    const surplus = await connection.execute(`delete from whatsapp_calls as calls using (
        select company_id, call_id from (
          select company_id, call_id, row_number() over (partition by company_id order by offered_at desc, seq desc) as rank
          from whatsapp_calls
        ) as ranked where rank > ?
      ) as beyond where calls.company_id = beyond.company_id and calls.call_id = beyond.call_id`, [kept], 'run')
    return affected(old) + affected(surplus)
  }
}

function affected (result: unknown): number {
  return (result as { affectedRows?: number } | undefined)?.affectedRows ?? 0
}
