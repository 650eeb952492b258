import type { EntityManager } from '@mikro-orm/postgresql'
import { Migration } from '@mikro-orm/migrations'
import type { Campaign, CampaignCounts, CampaignState, PauseReason } from '../../contracts/index.ts'
import { runWithParameters } from '../../core/sql.ts'
import { fencedTransaction } from '../ownership/index.ts'
import type { PreparedRecipient } from './recipients.ts'

/**
 * Campaigns, and their recipients: each recipient moves queued → sending → sent → delivered → read
 * (or failed, skipped) under the lease's epoch of the holder that sends it.
 */
export class CreateCampaignTables extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists whatsapp_campaigns (
      id uuid primary key,
      company_id varchar(64) not null,
      name varchar(200) not null,
      template jsonb not null,
      start_at timestamptz not null,
      pacing jsonb not null,
      quiet_hours varchar(8) not null,
      auto_pause jsonb not null,
      status varchar(12) not null,
      paused_reason varchar(20),
      total integer not null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      finished_at timestamptz
    )`)
    this.addSql('create index if not exists whatsapp_campaigns_by_company on whatsapp_campaigns (company_id, created_at desc)')
    this.addSql(`create index if not exists whatsapp_campaigns_active on whatsapp_campaigns (company_id, created_at)
      where status in ('scheduled', 'running')`)
    this.addSql(`create table if not exists whatsapp_campaign_recipients (
      campaign_id uuid not null,
      seq integer not null,
      phone varchar(64) not null,
      variables jsonb not null,
      status varchar(10) not null,
      epoch bigint,
      attempts integer not null default 0,
      message_id varchar(128),
      error jsonb,
      sent_at timestamptz,
      delivered_at timestamptz,
      read_at timestamptz,
      updated_at timestamptz not null default now(),
      primary key (campaign_id, seq)
    )`)
    // The next recipient to send, and those a holder left mid-send.
    this.addSql(`create index if not exists whatsapp_campaign_recipients_open on whatsapp_campaign_recipients (campaign_id, seq)
      where status in ('queued', 'sending')`)
    // Receipts name the message.
    this.addSql(`create index if not exists whatsapp_campaign_recipients_message on whatsapp_campaign_recipients (message_id)
      where message_id is not null`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists whatsapp_campaign_recipients')
    this.addSql('drop table if exists whatsapp_campaigns')
  }
}

export const campaignMigrations = [{ name: 'campaigns_001_tables', class: CreateCampaignTables }]

export interface CampaignRow {
  id: string
  company_id: string
  name: string
  template: { text: string | null, media: { kind: string, objectId: string, mimetype: string, fileName?: string } | null }
  start_at: Date | string
  pacing: { messagesPerMinute: number, jitter: number, typingMs: number }
  quiet_hours: 'respect' | 'ignore'
  auto_pause: { failureRate: number, notOnWhatsAppRate: number, window: number }
  status: CampaignState
  paused_reason: PauseReason | null
  total: number
  created_at: Date | string
  updated_at: Date | string
  finished_at: Date | string | null
}

export interface RecipientRow {
  campaign_id: string
  seq: number
  phone: string
  variables: Record<string, string>
  status: 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'skipped'
  attempts: number
  message_id: string | null
  error: { code: string, message: string } | null
  sent_at: Date | string | null
  delivered_at: Date | string | null
  read_at: Date | string | null
}

export type NewCampaign = Omit<CampaignRow, 'status' | 'paused_reason' | 'created_at' | 'updated_at' | 'finished_at'>

const iso = (date: Date | string) => new Date(date).toISOString()
/** Rows inserted per statement: a 100,000-recipient campaign is ten statements. */
const INSERT_BATCH = 10_000
const REPORT_COLUMNS = 'seq, phone, status, message_id, error, sent_at, delivered_at, read_at'
/** Campaigns a company's list shows. */
const LISTED = 100

export function viewOf (row: CampaignRow, counts: CampaignCounts): Campaign {
  const { media } = row.template
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    pausedReason: row.paused_reason,
    template: {
      text: row.template.text,
      media: media ? { kind: media.kind, objectId: media.objectId, mimetype: media.mimetype } : null
    },
    startAt: iso(row.start_at),
    pacing: row.pacing,
    quietHours: row.quiet_hours,
    autoPause: row.auto_pause,
    total: row.total,
    counts,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
    finishedAt: row.finished_at === null ? null : iso(row.finished_at)
  }
}

/** A campaign that should be sending now: running, or scheduled and past its start. */
const SENDING_NOW = "status in ('scheduled', 'running') and start_at <= now()"

export class CampaignStore {
  readonly #em: () => EntityManager

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /** The recipients first, then the campaign that makes them visible: a failure midway leaves nothing a holder would send. */
  async create (campaign: NewCampaign, recipients: PreparedRecipient[]): Promise<void> {
    try {
      for (let start = 0; start < recipients.length; start += INSERT_BATCH) {
        const batch = recipients.slice(start, start + INSERT_BATCH)
        await runWithParameters(this.#em(), `insert into whatsapp_campaign_recipients (campaign_id, seq, phone, variables, status, error)
          select $1::uuid, seq, phone, variables::jsonb, status, error::jsonb
          from unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[]) as incoming (seq, phone, variables, status, error)`, [
          campaign.id,
          batch.map((_recipient, index) => start + index),
          batch.map((recipient) => recipient.phone),
          batch.map((recipient) => JSON.stringify(recipient.variables)),
          batch.map((recipient) => recipient.status),
          batch.map((recipient) => (recipient.error ? JSON.stringify(recipient.error) : null))
        ])
      }
      await this.#em().getConnection().execute(`insert into whatsapp_campaigns
        (id, company_id, name, template, start_at, pacing, quiet_hours, auto_pause, status, total)
        values (?, ?, ?, ?::jsonb, ?, ?::jsonb, ?, ?::jsonb, 'scheduled', ?)`, [
        campaign.id, campaign.company_id, campaign.name, JSON.stringify(campaign.template), campaign.start_at,
        JSON.stringify(campaign.pacing), campaign.quiet_hours, JSON.stringify(campaign.auto_pause), campaign.total
      ])
    } catch (err) {
      await this.#em().getConnection().execute('delete from whatsapp_campaign_recipients where campaign_id = ?', [campaign.id])
        .catch(() => {})
      throw err
    }
  }

  /** Campaigns of the company not yet finished or cancelled. */
  async open (companyId: string): Promise<number> {
    const rows = await this.#em().getConnection().execute<{ count: string }[]>(`select count(*) as count from whatsapp_campaigns
      where company_id = ? and status in ('scheduled', 'running', 'paused')`, [companyId])
    return Number(rows[0]?.count ?? 0)
  }

  async get (companyId: string, id: string): Promise<CampaignRow | undefined> {
    const rows = await this.#em().getConnection().execute<CampaignRow[]>(
      'select * from whatsapp_campaigns where company_id = ? and id = ?', [companyId, id])
    return rows[0]
  }

  async list (companyId: string): Promise<CampaignRow[]> {
    return this.#em().getConnection().execute<CampaignRow[]>(
      'select * from whatsapp_campaigns where company_id = ? order by created_at desc limit ?', [companyId, LISTED])
  }

  /** Where each recipient is: sent counts delivered and read ones too, delivered counts read ones. */
  async counts (campaignId: string): Promise<CampaignCounts> {
    return (await this.countsOf([campaignId])).get(campaignId)!
  }

  /** The counts of several campaigns (a list), in one statement. */
  async countsOf (campaignIds: string[]): Promise<Map<string, CampaignCounts>> {
    const rows = await runWithParameters<{ campaign_id: string, status: RecipientRow['status'], count: string }>(this.#em(),
      `select campaign_id, status, count(*) as count from whatsapp_campaign_recipients
      where campaign_id = any($1::uuid[]) group by campaign_id, status`, [campaignIds])
    return new Map(campaignIds.map((id) => {
      const of = (status: RecipientRow['status']) =>
        Number(rows.find((row) => row.campaign_id === id && row.status === status)?.count ?? 0)
      return [id, {
        queued: of('queued') + of('sending'),
        sent: of('sent') + of('delivered') + of('read'),
        delivered: of('delivered') + of('read'),
        read: of('read'),
        failed: of('failed'),
        skipped: of('skipped')
      }]
    }))
  }

  /** Moves a campaign from one of `from` to `to`; the row as it is now, or undefined when it was in none of them. */
  async transition (companyId: string, id: string, from: CampaignState[], to: CampaignState, reason: PauseReason | null = null) {
    const rows = await runWithParameters<CampaignRow>(this.#em(), `update whatsapp_campaigns
      set status = $3::varchar, paused_reason = $4::varchar, updated_at = now(),
        finished_at = case when $3::varchar in ('finished', 'cancelled') then now() end
      where company_id = $1 and id = $2 and status = any($5::text[]) returning *`, [companyId, id, to, reason, from])
    return rows[0]
  }

  /** A cancelled campaign's recipients not yet sent are skipped. */
  async skipQueued (campaignId: string): Promise<void> {
    await this.#em().getConnection().execute(`update whatsapp_campaign_recipients
      set status = 'skipped', error = '{"code":"CANCELLED","message":"the campaign was cancelled"}'::jsonb, updated_at = now()
      where campaign_id = ? and status = 'queued'`, [campaignId])
  }

  /** The campaigns these companies should be sending now (running, or scheduled and past their start), oldest first. */
  async active (companyIds: string[]): Promise<CampaignRow[]> {
    return runWithParameters<CampaignRow>(this.#em(), `select * from whatsapp_campaigns
      where ${SENDING_NOW} and company_id = any($1::text[])
      order by created_at`, [companyIds])
  }

  /** The companies with a campaign to send now (started, or due to start). */
  async activeCompanies (): Promise<string[]> {
    const rows = await this.#em().getConnection().execute<{ company_id: string }[]>(
      `select distinct company_id from whatsapp_campaigns where ${SENDING_NOW}`)
    return rows.map((row) => row.company_id)
  }

  /** Companies with a campaign active or finished lately: their receipts are worth looking up. */
  async tracked (sinceDays: number): Promise<string[]> {
    const rows = await this.#em().getConnection().execute<{ company_id: string }[]>(`select distinct company_id from whatsapp_campaigns
      where status in ('scheduled', 'running', 'paused') or updated_at > now() - make_interval(days => ?)`, [sinceDays])
    return rows.map((row) => row.company_id)
  }

  /** Recipients an older epoch left mid-send are queued again (sent again under the same WhatsApp id, a phone shows one). */
  async recover (companyId: string, campaignId: string, epoch: number): Promise<number> {
    return fencedTransaction(this.#em(), companyId, epoch, async (tx) => {
      const rows = await tx.execute<{ seq: number }[]>(`update whatsapp_campaign_recipients set status = 'queued', updated_at = now()
        where campaign_id = ? and status = 'sending' and epoch < ? returning seq`, [campaignId, epoch])
      return rows.length
    })
  }

  /** The phones of the next queued recipients (checked for WhatsApp ahead of their turn). */
  async upcoming (campaignId: string, count: number): Promise<{ seq: number, phone: string }[]> {
    return this.#em().getConnection().execute(`select seq, phone from whatsapp_campaign_recipients
      where campaign_id = ? and status = 'queued' order by seq limit ?`, [campaignId, count])
  }

  /**
   * Takes the next queued recipient under `epoch`, with the WhatsApp id its message will have: a
   * receipt (a refusal comes within milliseconds) finds the recipient even before its send is recorded.
   */
  async claimNext (
    companyId: string, campaignId: string, epoch: number, messageIdOf: (seq: number) => string
  ): Promise<RecipientRow | undefined> {
    return fencedTransaction(this.#em(), companyId, epoch, async (tx) => {
      const next = await tx.execute<{ seq: number }[]>(`select seq from whatsapp_campaign_recipients
        where campaign_id = ? and status = 'queued' order by seq limit 1 for update skip locked`, [campaignId])
      if (!next[0]) return undefined
      const rows = await tx.execute<RecipientRow[]>(`update whatsapp_campaign_recipients
        set status = 'sending', epoch = ?, attempts = attempts + 1, message_id = ?, updated_at = now()
        where campaign_id = ? and seq = ? returning *`, [epoch, messageIdOf(next[0].seq), campaignId, next[0].seq])
      return rows[0]
    })
  }

  /** Whether any recipient is still mid-send (by this holder or an unrecovered older one). */
  async sending (campaignId: string): Promise<number> {
    const rows = await this.#em().getConnection().execute<{ count: string }[]>(
      'select count(*) as count from whatsapp_campaign_recipients where campaign_id = ? and status = \'sending\'', [campaignId])
    return Number(rows[0]?.count ?? 0)
  }

  /** Records a recipient's outcome under the epoch that claimed it. */
  async settle (
    companyId: string, recipient: RecipientRow, epoch: number,
    outcome: { status: 'sent', messageId: string } | { status: 'failed' | 'skipped' | 'queued', error: { code: string, message: string } }
  ): Promise<void> {
    await fencedTransaction(this.#em(), companyId, epoch, (tx) => tx.execute(`update whatsapp_campaign_recipients
      set status = ?, message_id = ?, error = ?::jsonb, sent_at = case when ? = 'sent' then now() end, updated_at = now()
      where campaign_id = ? and seq = ? and status = 'sending' and epoch = ?`, [
      outcome.status,
      outcome.status === 'sent' ? outcome.messageId : outcome.status === 'queued' ? recipient.message_id : null,
      outcome.status === 'sent' ? null : JSON.stringify(outcome.error),
      outcome.status,
      recipient.campaign_id, recipient.seq, epoch
    ]))
  }

  /**
   * Receipts for messages of a company's campaigns: delivered and read move forward only; an error
   * receipt (463) fails the recipient, even one whose send is not recorded yet (its `sent` then
   * finds it settled). Returns the campaigns that changed, with the errors among them.
   */
  async receipts (
    companyId: string, receipts: { messageId: string, status: 'delivered' | 'read' | 'error', code?: string }[]
  ): Promise<{ campaignId: string, errors: number }[]> {
    const rows = await runWithParameters<{ campaign_id: string, status: string }>(this.#em(), `update whatsapp_campaign_recipients as r
      set status = case
          when incoming.status = 'error' then 'failed'
          when incoming.status = 'read' then 'read'
          when r.status = 'read' then 'read'
          else 'delivered' end,
        delivered_at = case when incoming.status in ('delivered', 'read') then coalesce(r.delivered_at, now()) else r.delivered_at end,
        read_at = case when incoming.status = 'read' then coalesce(r.read_at, now()) else r.read_at end,
        sent_at = case when incoming.status in ('delivered', 'read') then coalesce(r.sent_at, now()) else r.sent_at end,
        error = case when incoming.status = 'error'
          then jsonb_build_object('code', coalesce(incoming.code, 'ERROR'), 'message', 'WhatsApp refused the message') else r.error end,
        updated_at = now()
      from unnest($2::text[], $3::text[], $4::text[]) as incoming (message_id, status, code), whatsapp_campaigns as c
      where r.message_id = incoming.message_id and c.id = r.campaign_id and c.company_id = $1
        and r.status in ('sending', 'sent', 'delivered', 'read')
      returning r.campaign_id, r.status`, [
      companyId, receipts.map((receipt) => receipt.messageId), receipts.map((receipt) => receipt.status),
      receipts.map((receipt) => receipt.code ?? null)
    ])
    const changed = new Map<string, number>()
    for (const row of rows) changed.set(row.campaign_id, (changed.get(row.campaign_id) ?? 0) + (row.status === 'failed' ? 1 : 0))
    return [...changed].map(([campaignId, errors]) => ({ campaignId, errors }))
  }

  /** A page of the report: recipients after `after`, in order. */
  async report (campaignId: string, after: number, limit: number): Promise<(RecipientRow & { seq: number })[]> {
    return runWithParameters(this.#em(), `select ${REPORT_COLUMNS} from whatsapp_campaign_recipients
      where campaign_id = $1 and seq > $2 order by seq limit $3`, [campaignId, after, limit])
  }
}
