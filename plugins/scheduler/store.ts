import type { EntityManager } from '@mikro-orm/postgresql'
import { Migration } from '@mikro-orm/migrations'
import {
  ErrorCode, type QuietHours, type SchedulableCommand, type ScheduledListQuery, type ScheduledMessage, type ScheduledState
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { runWithParameters } from '../../core/sql.ts'
import { fencedTransaction } from '../ownership/index.ts'
import { allowedHoursOf, quietHoursOf, type AllowedHours } from './quiet-hours.ts'

/**
 * Scheduled messages, each a row that moves scheduled → sending → sent | failed under the lease's
 * epoch (or expired, cancelled, replaced); and each company's allowed hours.
 */
export class CreateSchedulerTables extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_scheduled (
      id uuid primary key,
      company_id varchar(64) not null,
      schedule_key varchar(200),
      command varchar(16) not null,
      phone varchar(64) not null,
      request jsonb not null,
      status varchar(12) not null default 'scheduled',
      send_at timestamptz not null,
      due_at timestamptz not null,
      expires_at timestamptz,
      quiet_hours varchar(8) not null default 'respect',
      epoch bigint,
      attempts integer not null default 0,
      message_id varchar(128),
      sent_at timestamptz,
      error jsonb,
      created_at timestamptz not null default now(),
      -- Milliseconds, as a page's cursor carries it.
      updated_at timestamptz(3) not null default now()
    )`)
    // What the holders look for four times a second: only pending rows are in it.
    this.addSql(`create index if not exists whatsapp_scheduled_due on whatsapp_scheduled (due_at)
      where status = 'scheduled'`)
    this.addSql('create index if not exists whatsapp_scheduled_by_company on whatsapp_scheduled (company_id, due_at, id)')
    this.addSql('create index if not exists whatsapp_scheduled_recent on whatsapp_scheduled (company_id, updated_at desc, id desc)')
    this.addSql(`create index if not exists whatsapp_scheduled_sending on whatsapp_scheduled (company_id)
      where status = 'sending'`)
    this.addSql(`create index if not exists whatsapp_scheduled_pending on whatsapp_scheduled (company_id)
      where status = 'scheduled'`)
    // One pending message per key: scheduling again with it replaces that one.
    this.addSql(`create unique index if not exists whatsapp_scheduled_key on whatsapp_scheduled (company_id, schedule_key)
      where schedule_key is not null and status in ('scheduled', 'sending')`)
    this.addSql(`create table if not exists whatsapp_quiet_hours (
      company_id varchar(64) primary key,
      timezone varchar(64) not null,
      from_minute integer not null,
      to_minute integer not null,
      updated_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_scheduled')
    this.addSql('drop table if exists whatsapp_quiet_hours')
  }
}

export const schedulerMigrations = [{ name: 'scheduler_001_tables', class: CreateSchedulerTables }]

export interface ScheduledRow {
  id: string
  company_id: string
  schedule_key: string | null
  command: SchedulableCommand
  phone: string
  request: Record<string, unknown>
  status: ScheduledState
  send_at: Date
  due_at: Date
  expires_at: Date | null
  quiet_hours: 'respect' | 'ignore'
  epoch: string | number | null
  attempts: number
  message_id: string | null
  sent_at: Date | null
  error: { code: string, message: string } | null
  created_at: Date
  updated_at: Date
}

export interface NewScheduled {
  id: string
  companyId: string
  scheduleKey: string | null
  command: SchedulableCommand
  phone: string
  request: Record<string, unknown>
  sendAt: Date
  dueAt: Date
  expiresAt: Date | null
  quietHours: 'respect' | 'ignore'
}

/** PostgreSQL's times come back as Date or string, depending on the driver's path: either way, ISO. */
export const iso = (date: Date | string) => new Date(date).toISOString()
const isoOrNull = (date: Date | string | null) => (date === null ? null : iso(date))

export function viewOf (row: ScheduledRow): ScheduledMessage {
  return {
    id: row.id,
    scheduleKey: row.schedule_key,
    command: row.command,
    phone: row.phone,
    status: row.status,
    sendAt: iso(row.send_at),
    dueAt: iso(row.due_at),
    expiresAt: isoOrNull(row.expires_at),
    quietHours: row.quiet_hours,
    attempts: row.attempts,
    messageId: row.message_id,
    sentAt: isoOrNull(row.sent_at),
    error: row.error,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
    request: row.request
  }
}

const UNIQUE_VIOLATION = '23505'
const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === UNIQUE_VIOLATION
const DEFAULT_PAGE = 100
/** Scheduling with a key races another scheduling with it at most this many times before giving up. */
const REPLACE_ATTEMPTS = 3

/** A pending message that is due within the milliseconds of parameter `ms` and has not expired. */
const dueWithin = (ms: string) => `status = 'scheduled' and due_at <= now() + make_interval(secs => ${ms}::float8 / 1000)
  and (expires_at is null or expires_at > now())`

export class SchedulerStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /** How many messages the company has scheduled and not yet sent. */
  async pending (companyId: string): Promise<number> {
    const rows = await this.#em().getConnection().execute<{ count: string }[]>(
      'select count(*) as count from whatsapp_scheduled where company_id = ? and status = \'scheduled\'', [companyId])
    return Number(rows[0]?.count ?? 0)
  }

  /** Stores a new pending message; one still pending under the same key is replaced (its id returned). */
  async add (scheduled: NewScheduled): Promise<{ replaced: string | null }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#em().transactional(async (tx) => {
          let replaced: string | null = null
          if (scheduled.scheduleKey !== null) {
            const rows = await tx.execute<{ id: string }[]>(`update whatsapp_scheduled set status = 'replaced', updated_at = now()
              where company_id = ? and schedule_key = ? and status = 'scheduled' returning id`,
            [scheduled.companyId, scheduled.scheduleKey])
            replaced = rows[0]?.id ?? null
          }
          await tx.execute(`insert into whatsapp_scheduled
            (id, company_id, schedule_key, command, phone, request, send_at, due_at, expires_at, quiet_hours)
            values (?, ?, ?, ?, ?, ?::jsonb, ?, ?, ?, ?)`, [
            scheduled.id, scheduled.companyId, scheduled.scheduleKey, scheduled.command, scheduled.phone,
            JSON.stringify(scheduled.request), scheduled.sendAt, scheduled.dueAt, scheduled.expiresAt, scheduled.quietHours
          ])
          return { replaced }
        })
      } catch (err) {
        if (!isUniqueViolation(err)) throw err
        // The key's message is being sent right now (or a concurrent scheduling just took the key): look again.
        const sending = await this.#em().getConnection().execute<{ id: string }[]>(`select id from whatsapp_scheduled
          where company_id = ? and schedule_key = ? and status = 'sending'`, [scheduled.companyId, scheduled.scheduleKey])
        if (sending.length > 0 || attempt >= REPLACE_ATTEMPTS) {
          throw new GatewayError(ErrorCode.IN_PROGRESS,
            `the message scheduled with key ${scheduled.scheduleKey} is being sent now; it can no longer be replaced`, { retryAfter: 1 })
        }
      }
    }
  }

  async list (companyId: string, query: ScheduledListQuery): Promise<{ rows: ScheduledRow[], next: string | null }> {
    const limit = query.limit ?? DEFAULT_PAGE
    const conditions = ['company_id = $1']
    const parameters: unknown[] = [companyId]
    if (query.status) {
      parameters.push(query.status)
      conditions.push(`status = $${parameters.length}`)
    }
    if (query.before) {
      parameters.push(new Date(query.before))
      conditions.push(`due_at < $${parameters.length}`)
    }
    // A page goes on from the last one's (time, id), in the order asked for.
    const recent = query.order === 'recent'
    const [column, direction, comparison] = recent ? ['updated_at', 'desc', '<'] : ['due_at', 'asc', '>']
    const after = query.cursor === undefined ? undefined : cursorOf(query.cursor)
    if (after) {
      parameters.push(after.at, after.id)
      conditions.push(`(${column}, id) ${comparison} ($${parameters.length - 1}, $${parameters.length}::uuid)`)
    }
    parameters.push(limit + 1)
    const rows = await runWithParameters<ScheduledRow>(this.#em(), `select * from whatsapp_scheduled where ${conditions.join(' and ')}
      order by ${column} ${direction}, id ${direction} limit $${parameters.length}`, parameters)
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    const next = rows.length > limit && last
      ? Buffer.from(`${iso(recent ? last.updated_at : last.due_at)}|${last.id}`).toString('base64url')
      : null
    return { rows: page, next }
  }

  /** The message a key names: the pending one, else the latest with it; or the one with that id. */
  async get (companyId: string, key: string): Promise<ScheduledRow | undefined> {
    const byId = UUID.test(key) ? ' or id = ?::uuid' : ''
    const rows = await this.#em().getConnection().execute<ScheduledRow[]>(`select * from whatsapp_scheduled
      where company_id = ? and (schedule_key = ?${byId})
      order by (status in ('scheduled', 'sending')) desc, created_at desc limit 1`, [companyId, key, ...(byId ? [key] : [])])
    return rows[0]
  }

  /** Cancels the pending message a key (or id) names; undefined when none is pending. */
  async cancel (companyId: string, key: string): Promise<ScheduledRow | undefined> {
    const byId = UUID.test(key) ? ' or id = ?::uuid' : ''
    const rows = await this.#em().getConnection().execute<ScheduledRow[]>(`update whatsapp_scheduled
      set status = 'cancelled', updated_at = now()
      where company_id = ? and (schedule_key = ?${byId}) and status = 'scheduled' returning *`, [companyId, key, ...(byId ? [key] : [])])
    return rows[0]
  }

  /** Pending messages of these companies due within `aheadMs` from now, earliest first. */
  async due (companyIds: string[], limit: number, aheadMs: number): Promise<ScheduledRow[]> {
    return runWithParameters<ScheduledRow>(this.#em(), `select * from whatsapp_scheduled
      where ${dueWithin('$3')} and company_id = any($1::text[])
      order by due_at limit $2`, [companyIds, limit, aheadMs])
  }

  /**
   * The companies with work for a holder, from the two partial indexes: `due`, those with a message
   * due within `aheadMs`; `unfinished`, those with messages `sending` (being sent now, or left so by a
   * predecessor or by a replica before a restart).
   */
  async withWork (aheadMs: number): Promise<{ due: string[], unfinished: string[] }> {
    const rows = await runWithParameters<{ company_id: string, status: string }>(this.#em(), `select distinct company_id, status
      from whatsapp_scheduled where status = 'sending' or (${dueWithin('$1')})`, [aheadMs])
    const of = (status: string) => rows.filter((row) => row.status === status).map((row) => row.company_id)
    return { due: of('scheduled'), unfinished: of('sending') }
  }

  /**
   * Messages an earlier holder of the company began to send and did not finish: pending again, at
   * once. Whether WhatsApp took them is unknown; sent again under the same WhatsApp id, a phone shows one.
   */
  async recover (companyId: string, epoch: number): Promise<number> {
    return fencedTransaction(this.#em(), companyId, epoch, async (tx) => {
      const rows = await tx.execute<{ id: string }[]>(`update whatsapp_scheduled set status = 'scheduled', due_at = least(due_at, now()),
        updated_at = now() where company_id = ? and status = 'sending' and epoch < ? returning id`, [companyId, epoch])
      return rows.length
    })
  }

  /** Takes a pending message for sending under `epoch`; false when it is no longer pending (cancelled, taken). */
  async claim (row: ScheduledRow, epoch: number): Promise<boolean> {
    return fencedTransaction(this.#em(), row.company_id, epoch, async (tx) => {
      const rows = await tx.execute<{ id: string }[]>(`update whatsapp_scheduled
        set status = 'sending', epoch = ?, attempts = attempts + 1, updated_at = now()
        where id = ? and status = 'scheduled' returning id`, [epoch, row.id])
      return rows.length === 1
    })
  }

  /** WhatsApp took it. */
  async sent (row: ScheduledRow, epoch: number, messageId: string): Promise<void> {
    await fencedTransaction(this.#em(), row.company_id, epoch, (tx) => tx.execute(`update whatsapp_scheduled
      set status = 'sent', message_id = ?, sent_at = now(), error = null, updated_at = now()
      where id = ? and status = 'sending' and epoch = ?`, [messageId, row.id, epoch]))
  }

  /** It failed for good. */
  async failed (row: ScheduledRow, epoch: number, error: { code: string, message: string }): Promise<void> {
    await fencedTransaction(this.#em(), row.company_id, epoch, (tx) => tx.execute(`update whatsapp_scheduled
      set status = 'failed', error = ?::jsonb, updated_at = now() where id = ? and status = 'sending' and epoch = ?`,
    [JSON.stringify(error), row.id, epoch]))
  }

  /** Pending again, due at `dueAt` (a retry after a passing failure). */
  async retryAt (row: ScheduledRow, epoch: number, dueAt: Date, error: { code: string, message: string }): Promise<void> {
    await fencedTransaction(this.#em(), row.company_id, epoch, (tx) => tx.execute(`update whatsapp_scheduled
      set status = 'scheduled', due_at = ?, error = ?::jsonb, updated_at = now() where id = ? and status = 'sending' and epoch = ?`,
    [dueAt, JSON.stringify(error), row.id, epoch]))
  }

  /** A pending message waits for the company's allowed hours. */
  async defer (row: ScheduledRow, dueAt: Date): Promise<void> {
    await this.#em().getConnection().execute(`update whatsapp_scheduled set due_at = ?, updated_at = now()
      where id = ? and status = 'scheduled'`, [dueAt, row.id])
  }

  /** Pending messages past their expiresAt (whoever holds the company, or nobody): expired, each once. */
  async expire (limit: number): Promise<ScheduledRow[]> {
    return runWithParameters<ScheduledRow>(this.#em(), `update whatsapp_scheduled set status = 'expired', updated_at = now()
      where id in (select id from whatsapp_scheduled where status = 'scheduled' and expires_at <= now() limit $1 for update skip locked)
      returning *`, [limit])
  }

  async quietHours (companyId: string): Promise<AllowedHours | undefined> {
    const rows = await this.#em().getConnection().execute<{ timezone: string, from_minute: number, to_minute: number }[]>(
      'select timezone, from_minute, to_minute from whatsapp_quiet_hours where company_id = ?', [companyId])
    const row = rows[0]
    return row ? { timezone: row.timezone, from: row.from_minute, to: row.to_minute } : undefined
  }

  async setQuietHours (companyId: string, hours: QuietHours): Promise<QuietHours> {
    const allowed = allowedHoursOf(hours)
    await this.#em().getConnection().execute(`insert into whatsapp_quiet_hours (company_id, timezone, from_minute, to_minute)
      values (?, ?, ?, ?) on conflict (company_id) do update set timezone = excluded.timezone, from_minute = excluded.from_minute,
      to_minute = excluded.to_minute, updated_at = now()`, [companyId, allowed.timezone, allowed.from, allowed.to])
    return quietHoursOf(allowed)
  }

  async removeQuietHours (companyId: string): Promise<void> {
    await this.#em().getConnection().execute('delete from whatsapp_quiet_hours where company_id = ?', [companyId])
  }

  /**
   * Pending messages held for quiet hours become due at their own time again (the hours changed; the
   * dispatcher holds them again if the new hours say so).
   */
  async undefer (companyId: string): Promise<void> {
    await this.#em().getConnection().execute(`update whatsapp_scheduled set due_at = send_at, updated_at = now()
      where company_id = ? and status = 'scheduled' and quiet_hours = 'respect' and due_at > send_at`, [companyId])
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function cursorOf (cursor: string): { at: Date, id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString().split('|')
  const time = new Date(at ?? '')
  if (Number.isNaN(time.getTime()) || !id || !UUID.test(id)) {
    throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'cursor is not the `next` of a page', {
      details: [{ field: 'querystring/cursor', message: 'pass the `next` of the previous page as it was' }]
    })
  }
  return { at: time, id }
}
