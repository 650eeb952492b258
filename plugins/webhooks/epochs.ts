import type { EntityManager } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import { LEASE_STATE_EVENTS, NewestEpochs, type EventEnvelope } from '../../contracts/index.ts'

export class CreateWebhookEpochs extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists webhook_epochs (
      webhook_id varchar(40) not null,
      company_id varchar(64) not null,
      epoch bigint not null,
      primary key (webhook_id, company_id)
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists webhook_epochs')
  }
}

export const epochMigrations = [{ name: 'webhooks_002_epochs', class: CreateWebhookEpochs }]

/** Webhook × company marks this replica remembers (a mark forgotten is read back from PostgreSQL). */
const MARKS_KEPT = 50_000

/**
 * The newest lease epoch each webhook has seen of each company, so that a holder or state event of
 * an older epoch is not delivered after a newer one (contracts' NewestEpochs rule): a late
 * `owner_changed {holder: null}` of a fenced holder must not tell a receiver, after the new holder's
 * `acquired`, that nobody holds the company. The replicas take turns delivering one webhook's events
 * (one at a time, in stream order), so the mark lives in PostgreSQL, not in one replica's memory. It
 * survives a replay too: delivering old events again never takes a receiver's view backwards.
 */
export class DeliveredEpochs {
  readonly #em: () => EntityManager
  /** What this replica last read of each mark, keyed `<webhookId>/<companyId>`: a lower bound, as marks only grow. */
  readonly #marks = new NewestEpochs(MARKS_KEPT)

  constructor (em: () => EntityManager) {
    this.#em = em
  }

  /** Whether `event` is to be delivered to the webhook; any event with an epoch moves the webhook's mark. */
  async admits (webhookId: string, event: Pick<EventEnvelope, 'companyId' | 'type' | 'epoch'>): Promise<boolean> {
    const key = { ...event, companyId: `${webhookId}/${event.companyId}` }
    const known = this.#marks.newest(key.companyId)
    // Decided without PostgreSQL: no lease (0), a fact at or below the mark, or a state event already below it.
    const state = LEASE_STATE_EVENTS.has(event.type)
    if (!event.epoch || (!state && event.epoch <= known) || (state && event.epoch < known)) return this.#marks.admits(key)
    // Another replica may have delivered a newer epoch's event of this webhook meanwhile: the stored mark decides.
    const [row] = await this.#em().getConnection().execute<{ epoch: string | number }[]>(
      `insert into webhook_epochs (webhook_id, company_id, epoch) values (?, ?, ?)
       on conflict (webhook_id, company_id) do update set epoch = greatest(webhook_epochs.epoch, excluded.epoch)
       returning epoch`, [webhookId, event.companyId, event.epoch])
    this.#marks.observe(key.companyId, Number(row.epoch))
    return this.#marks.admits(key)
  }

  /** A removed webhook's marks. */
  async forget (webhookId: string): Promise<void> {
    await this.#em().getConnection().execute('delete from webhook_epochs where webhook_id = ?', [webhookId])
  }
}
