import { defineEntity, p, type EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { Sealer } from '../../core/sealing.ts'

/** A webhook: a company's (or, with no company, the deployment's) URL that receives its events. */
export const WebhookSchema = defineEntity({
  name: 'Webhook',
  tableName: 'webhooks',
  properties: {
    id: p.string().primary(),
    companyId: p.string().nullable(),
    url: p.text(),
    events: p.json<string[]>().nullable(),
    secret: p.json<unknown>(),
    previousSecret: p.json<unknown>().nullable(),
    previousSecretUntil: p.datetime().nullable(),
    mayLink: p.boolean(),
    paused: p.boolean(),
    pausedReason: p.text().nullable(),
    failingSince: p.datetime().nullable(),
    replayedAt: p.datetime().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime()
  }
})

export const WebhookDeliverySchema = defineEntity({
  name: 'WebhookDelivery',
  tableName: 'webhook_deliveries',
  properties: {
    id: p.bigint().primary().autoincrement(),
    webhookId: p.string(),
    eventId: p.string(),
    seq: p.bigint(),
    attempt: p.integer(),
    status: p.integer().nullable(),
    latencyMs: p.integer(),
    error: p.text().nullable(),
    at: p.datetime()
  }
})

export const WebhookDeadLetterSchema = defineEntity({
  name: 'WebhookDeadLetter',
  tableName: 'webhook_dead_letters',
  properties: {
    webhookId: p.string().primary(),
    eventId: p.string().primary(),
    seq: p.bigint(),
    type: p.string(),
    companyId: p.string(),
    reason: p.text(),
    at: p.datetime()
  }
})

export class CreateWebhooks extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists webhooks (
      id varchar(40) primary key,
      company_id varchar(64),
      url text not null,
      events jsonb,
      secret varchar(128) not null,
      paused boolean not null default false,
      paused_reason text,
      failing_since timestamptz,
      replayed_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`)
    this.addSql('create index if not exists webhooks_by_company on webhooks (company_id)')
    this.addSql(`create table if not exists webhook_deliveries (
      id bigserial primary key,
      webhook_id varchar(40) not null,
      event_id varchar(200) not null,
      seq bigint not null,
      attempt integer not null,
      status integer,
      latency_ms integer not null,
      error text,
      at timestamptz not null default now()
    )`)
    this.addSql('create index if not exists webhook_deliveries_by_webhook on webhook_deliveries (webhook_id, id desc)')
    this.addSql(`create table if not exists webhook_dead_letters (
      webhook_id varchar(40) not null,
      event_id varchar(200) not null,
      seq bigint not null,
      type varchar(64) not null,
      company_id varchar(64) not null,
      reason text not null,
      at timestamptz not null default now(),
      primary key (webhook_id, event_id)
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists webhook_dead_letters')
    this.addSql('drop table if exists webhook_deliveries')
    this.addSql('drop table if exists webhooks')
  }
}

/**
 * Whether the principal that registered a webhook had `link`: only then may it receive `qr` and
 * `pairing_code`. Deployment-wide webhooks were registered by the admin; a company's older webhook
 * cannot tell who registered it, so it receives no linking events.
 */
export class AddWebhookMayLink extends Migration {
  override async up (): Promise<void> {
    this.addSql('alter table webhooks add column if not exists may_link boolean not null default false')
    this.addSql('update webhooks set may_link = true where company_id is null')
  }

  override async down (): Promise<void> {
    this.addSql('alter table webhooks drop column if exists may_link')
  }
}

/**
 * Signing secrets sealed like the auth state (the start-up reseal seals the plain ones this leaves),
 * and the secret a rotation replaced, signed with beside the new one until its overlap ends.
 */
export class SealWebhookSecrets extends Migration {
  override async up (): Promise<void> {
    this.addSql('alter table webhooks alter column secret type jsonb using to_jsonb(secret)')
    this.addSql('alter table webhooks add column if not exists previous_secret jsonb')
    this.addSql('alter table webhooks add column if not exists previous_secret_until timestamptz')
  }

  override async down (): Promise<void> {
    this.addSql('alter table webhooks drop column if exists previous_secret_until')
    this.addSql('alter table webhooks drop column if exists previous_secret')
  }
}

export const webhookMigrations = [{ name: 'webhooks_001_webhooks', class: CreateWebhooks }]
export const mayLinkMigrations = [{ name: 'webhooks_003_may_link', class: AddWebhookMayLink }]
export const sealedSecretMigrations = [{ name: 'webhooks_004_sealed_secrets', class: SealWebhookSecrets }]

/** What a webhook's secrets are bound to when sealed: its id (the current and the previous alike). */
const secretRow = (id: string) => `webhook/${id}`

/**
 * Seals every webhook secret that is plain (stored before sealing) or under an older key: at start
 * and by `npm run rotate-keys`. Returns how many rows it sealed.
 */
export async function resealSecrets (em: () => EntityManager, sealer: Sealer): Promise<number> {
  type Stored = { id: string, secret: unknown, previous_secret: unknown }
  const stale = (await em().getConnection().execute<Stored[]>('select id, secret, previous_secret from webhooks')).filter((row: Stored) =>
    sealer.stale(row.secret) || (row.previous_secret !== null && sealer.stale(row.previous_secret)))
  let sealed = 0
  for (const row of stale) {
    const bound = secretRow(row.id)
    const reseal = (value: unknown) => value === null ? null : JSON.stringify(sealer.seal(sealer.open(value, bound), bound))
    // Only if unchanged meanwhile: a rotation on another replica has sealed its own.
    const result = await em().getConnection().execute(`update webhooks set secret = ?::jsonb, previous_secret = ?::jsonb
      where id = ? and secret = ?::jsonb and previous_secret is not distinct from ?::jsonb`,
    [reseal(row.secret), reseal(row.previous_secret), row.id, JSON.stringify(row.secret),
      row.previous_secret === null ? null : JSON.stringify(row.previous_secret)], 'run')
    sealed += (result as { affectedRows?: number }).affectedRows ?? 0
  }
  return sealed
}

export interface WebhookRow {
  id: string
  companyId: string | null
  url: string
  events: string[] | null
  /** The signing secret (opened). */
  secret: string
  /** The secret the last rotation replaced, signed with too until `previousSecretUntil`. */
  previousSecret: string | null
  previousSecretUntil: Date | null
  /** Registered (and last changed) by a principal with `link`: only then are `qr` and `pairing_code` delivered. */
  mayLink: boolean
  paused: boolean
  pausedReason: string | null
  failingSince: Date | null
  /** When its events were last replayed: they are retried for WEBHOOK_MAX_AGE from then. */
  replayedAt: Date | null
  createdAt: Date
  updatedAt: Date
}

type Raw = {
  id: string,
  company_id: string | null,
  url: string,
  events: string[] | null,
  secret: unknown,
  previous_secret: unknown,
  previous_secret_until: Date | null,
  may_link: boolean,
  paused: boolean,
  paused_reason: string | null,
  failing_since: Date | null,
  replayed_at: Date | null,
  created_at: Date,
  updated_at: Date
}
const rowOf = (raw: Raw, sealer: Sealer): WebhookRow => ({
  id: raw.id,
  companyId: raw.company_id,
  url: raw.url,
  events: raw.events,
  secret: JSON.parse(sealer.open(raw.secret, secretRow(raw.id))) as string,
  previousSecret: raw.previous_secret === null ? null : JSON.parse(sealer.open(raw.previous_secret, secretRow(raw.id))) as string,
  previousSecretUntil: raw.previous_secret_until ? new Date(raw.previous_secret_until) : null,
  mayLink: raw.may_link,
  paused: raw.paused,
  pausedReason: raw.paused_reason,
  failingSince: raw.failing_since ? new Date(raw.failing_since) : null,
  replayedAt: raw.replayed_at ? new Date(raw.replayed_at) : null,
  createdAt: new Date(raw.created_at),
  updatedAt: new Date(raw.updated_at)
})

export interface AttemptRow {
  webhookId: string
  eventId: string
  seq: number
  attempt: number
  status: number | null
  latencyMs: number
  error: string | null
}

export type DeliveryRow = {
  event_id: string, seq: string, attempt: number, status: number | null, latency_ms: number, error: string | null, at: Date
}
export type DeadLetterRow = { event_id: string, seq: string, type: string, company_id: string, reason: string, at: Date }

/** Delivery attempts kept per webhook (the newest). */
const DELIVERIES_KEPT = 1_000

/** The webhooks' SQL. */
export class WebhookStore {
  readonly #em: () => EntityManager
  readonly #sealer: Sealer

  constructor (em: () => EntityManager, sealer: Sealer) {
    this.#em = em
    this.#sealer = sealer
  }

  #rowOf (raw: Raw): WebhookRow {
    return rowOf(raw, this.#sealer)
  }

  #sealed (id: string, secret: string): string {
    return JSON.stringify(this.#sealer.seal(JSON.stringify(secret), secretRow(id)))
  }

  get #db () { return this.#em().getConnection() }

  async create (
    row: Pick<WebhookRow, 'id' | 'companyId' | 'url' | 'events' | 'secret' | 'mayLink'>
  ): Promise<WebhookRow> {
    const [raw] = await this.#db.execute<Raw[]>(`insert into webhooks (id, company_id, url, events, secret, may_link)
      values (?, ?, ?, ?, ?::jsonb, ?) returning *`, [row.id, row.companyId, row.url,
      row.events === null ? null : JSON.stringify(row.events), this.#sealed(row.id, row.secret), row.mayLink])
    return this.#rowOf(raw)
  }

  /** A new secret; the current one becomes the previous, signed with until `previousUntil` (null: dropped now). */
  async rotateSecret (id: string, secret: string, previousUntil: Date | null): Promise<WebhookRow | undefined> {
    const [raw] = await this.#db.execute<Raw[]>(`update webhooks set
      previous_secret = case when ?::timestamptz is null then null else secret end, previous_secret_until = ?::timestamptz,
      secret = ?::jsonb, updated_at = now() where id = ? returning *`, [previousUntil, previousUntil, this.#sealed(id, secret), id])
    return raw ? this.#rowOf(raw) : undefined
  }

  async get (id: string): Promise<WebhookRow | undefined> {
    const [raw] = await this.#db.execute<Raw[]>('select * from webhooks where id = ?', [id])
    return raw ? this.#rowOf(raw) : undefined
  }

  /** A company's webhooks, or (null) the deployment-wide ones. */
  async list (companyId: string | null): Promise<WebhookRow[]> {
    const raws = companyId === null
      ? await this.#db.execute<Raw[]>('select * from webhooks where company_id is null order by created_at')
      : await this.#db.execute<Raw[]>('select * from webhooks where company_id = ? order by created_at', [companyId])
    return raws.map((raw: Raw) => this.#rowOf(raw))
  }

  /** Every webhook; one whose secret does not open (sealed under a key AUTH_STATE_KEYS lacks) is told of and left out, not the rest. */
  async all (onUnreadable: (id: string, err: unknown) => void): Promise<WebhookRow[]> {
    const rows: WebhookRow[] = []
    for (const raw of await this.#db.execute<Raw[]>('select * from webhooks')) {
      try {
        rows.push(this.#rowOf(raw))
      } catch (err) {
        onUnreadable(raw.id, err)
      }
    }
    return rows
  }

  async update (id: string, change: {
    url?: string,
    events?: string[] | null,
    paused?: boolean,
    pausedReason?: string | null,
    /** false: changed by a principal without `link`, which the webhook no longer delivers linking events for. */
    mayLink?: false
  }) {
    const sets: string[] = []
    const params: unknown[] = []
    if (change.mayLink === false) sets.push('may_link = false')
    if (change.url !== undefined) { sets.push('url = ?'); params.push(change.url) }
    if (change.events !== undefined) { sets.push('events = ?'); params.push(change.events === null ? null : JSON.stringify(change.events)) }
    if (change.paused !== undefined) {
      sets.push('paused = ?', 'paused_reason = ?')
      params.push(change.paused, change.paused ? change.pausedReason ?? 'paused' : null)
      if (!change.paused) sets.push('failing_since = null')
    }
    if (sets.length === 0) return this.get(id)
    const [raw] = await this.#db.execute<Raw[]>(`update webhooks set ${sets.join(', ')}, updated_at = now() where id = ? returning *`,
      [...params, id])
    return raw ? this.#rowOf(raw) : undefined
  }

  async markReplayed (id: string): Promise<WebhookRow | undefined> {
    const [raw] = await this.#db.execute<Raw[]>('update webhooks set replayed_at = now(), updated_at = now() where id = ? returning *',
      [id])
    return raw ? this.#rowOf(raw) : undefined
  }

  async delete (id: string): Promise<boolean> {
    const result = await this.#db.execute('delete from webhooks where id = ?', [id], 'run')
    await this.#db.execute('delete from webhook_deliveries where webhook_id = ?', [id])
    await this.#db.execute('delete from webhook_dead_letters where webhook_id = ?', [id])
    return ((result as { affectedRows?: number }).affectedRows ?? 0) > 0
  }

  /** Failing since when (set on the first failure after a success), or null after a success. */
  async noteOutcome (id: string, ok: boolean): Promise<Date | null> {
    const [raw] = await this.#db.execute<{ failing_since: Date | null }[]>(ok
      ? 'update webhooks set failing_since = null where id = ? and failing_since is not null returning failing_since'
      : 'update webhooks set failing_since = coalesce(failing_since, now()) where id = ? returning failing_since', [id])
    return raw?.failing_since ? new Date(raw.failing_since) : null
  }

  /** Attempts logged in one statement (the plugin batches them). */
  async logAttempts (attempts: AttemptRow[]): Promise<void> {
    if (attempts.length === 0) return
    await this.#db.execute(`insert into webhook_deliveries (webhook_id, event_id, seq, attempt, status, latency_ms, error)
      values ${attempts.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`, attempts.flatMap((attempt) => [
      attempt.webhookId, attempt.eventId, attempt.seq, attempt.attempt, attempt.status, Math.round(attempt.latencyMs), attempt.error
    ]))
  }

  async pruneDeliveries (): Promise<void> {
    await this.#db.execute(`delete from webhook_deliveries d using (
      select id from (select id, row_number() over (partition by webhook_id order by id desc) as n from webhook_deliveries) ranked
      where n > ?) old where d.id = old.id`, [DELIVERIES_KEPT])
  }

  async deliveries (webhookId: string, limit: number): Promise<DeliveryRow[]> {
    return this.#db.execute<DeliveryRow[]>('select * from webhook_deliveries where webhook_id = ? order by id desc limit ?',
      [webhookId, limit])
  }

  async deadLetter (letter: {
    webhookId: string,
    eventId: string,
    seq: number,
    type: string,
    companyId: string,
    reason: string
  }) {
    await this.#db.execute(`insert into webhook_dead_letters (webhook_id, event_id, seq, type, company_id, reason)
      values (?, ?, ?, ?, ?, ?) on conflict do nothing`, [letter.webhookId, letter.eventId, letter.seq, letter.type,
      letter.companyId, letter.reason])
  }

  async deadLetters (webhookId: string, limit: number): Promise<DeadLetterRow[]> {
    return this.#db.execute<DeadLetterRow[]>('select * from webhook_dead_letters where webhook_id = ? order by seq desc limit ?',
      [webhookId, limit])
  }
}
