import { defineEntity, p } from '@mikro-orm/core'
import { Migration } from '@mikro-orm/migrations'
import type { EntityManager } from '@mikro-orm/postgresql'
import { ErrorCode, type DesiredState } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/**
 * Which companies should be online (persistent, shared by all replicas), and the fencing epoch of
 * the latest lease holder. A holder claims its epoch here before it connects; every auth-state write
 * runs through `fencedTransaction`, so a stale holder's write is refused by PostgreSQL.
 */
export const OwnershipRecordSchema = defineEntity({
  name: 'OwnershipRecord',
  tableName: 'sessions',
  properties: {
    companyId: p.string().primary(),
    desiredState: p.string(),
    epoch: p.bigint('number').default(0),
    holder: p.string().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date())
  }
})

/** One company's row: desired state, and the epoch and replica of its latest holder (a database row, not a connection). */
export class OwnershipRecord extends OwnershipRecordSchema.class {}
OwnershipRecordSchema.setClass(OwnershipRecord)

export class CreateSessions extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table if not exists sessions (
      company_id varchar(64) primary key,
      desired_state varchar(16) not null check (desired_state in ('online', 'offline')),
      epoch bigint not null default 0,
      holder varchar(64) null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`)
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists sessions')
  }
}

export const migrations = [{ name: 'ownership_001_sessions', class: CreateSessions }]

export async function desiredOnline (em: EntityManager): Promise<string[]> {
  const rows = await em.find(OwnershipRecord, { desiredState: 'online' }, { fields: ['companyId'] })
  return rows.map((row) => row.companyId)
}

export async function desiredStateOf (em: EntityManager, companyId: string): Promise<DesiredState | undefined> {
  const row = await em.findOne(OwnershipRecord, { companyId })
  return row?.desiredState as DesiredState | undefined
}

export async function saveDesired (em: EntityManager, companyId: string, desired: DesiredState): Promise<void> {
  await em.execute(
    `insert into sessions (company_id, desired_state) values (?, ?)
     on conflict (company_id) do update set desired_state = excluded.desired_state, updated_at = now()`,
    [companyId, desired], 'run')
}

/** A page of companies: those after `after` (by id), at most `limit`, only among `only` when given. */
export interface CompanyPage {
  after?: string
  limit?: number
  only?: readonly string[]
}

const KNOWN = { $or: [{ desiredState: 'online' }, { epoch: { $gt: 0 } }] }

/** Companies desired online or ever held, as the database knows them, in id order. */
export async function knownCompanies (
  em: EntityManager,
  page: CompanyPage = {}
): Promise<{ companyId: string, desired: DesiredState, epoch: number }[]> {
  const where = {
    $and: [
      KNOWN,
      ...(page.after !== undefined ? [{ companyId: { $gt: page.after } }] : []),
      ...(page.only !== undefined ? [{ companyId: { $in: [...page.only] } }] : [])
    ]
  }
  const rows = await em.find(OwnershipRecord, where, {
    fields: ['companyId', 'desiredState', 'epoch'],
    orderBy: { companyId: 'asc' },
    ...(page.limit !== undefined ? { limit: page.limit } : {})
  })
  return rows.map((row) => ({ companyId: row.companyId, desired: row.desiredState as DesiredState, epoch: Number(row.epoch) }))
}

/** How many companies the deployment knows, and whether `companyId` is one of them. */
export async function companyCount (em: EntityManager, companyId: string): Promise<{ count: number, known: boolean }> {
  const [count, known] = await Promise.all([em.count(OwnershipRecord, KNOWN), em.count(OwnershipRecord, { $and: [KNOWN, { companyId }] })])
  return { count, known: known > 0 }
}

export async function claimedEpochs (em: EntityManager): Promise<Map<string, number>> {
  const rows = await em.find(OwnershipRecord, { epoch: { $gt: 0 } }, { fields: ['companyId', 'epoch'] })
  return new Map(rows.map((row) => [row.companyId, Number(row.epoch)]))
}

/** Records `epoch` as the newest holder's; false when a newer epoch is already stored. */
export async function claimEpoch (em: EntityManager, companyId: string, epoch: number, replica: string): Promise<boolean> {
  const result = await em.execute(
    `insert into sessions (company_id, desired_state, epoch, holder) values (?, 'online', ?, ?)
     on conflict (company_id) do update set epoch = excluded.epoch, holder = excluded.holder, updated_at = now()
     where sessions.epoch < excluded.epoch`,
    [companyId, epoch, replica], 'run')
  return (result as { affectedRows?: number }).affectedRows === 1
}

/**
 * Runs `work` in a transaction that first checks the stored epoch under a share lock: a holder
 * whose epoch is older than the stored one gets FENCED and writes nothing. A newer holder's claim
 * waits for running fenced transactions, so none can commit after it.
 */
export async function fencedTransaction<T> (
  em: EntityManager,
  companyId: string,
  epoch: number,
  work: (tx: EntityManager) => Promise<T>
): Promise<T> {
  return em.transactional(async (tx) => {
    const row = await tx.execute<{ epoch: string | number }>(
      'select epoch from sessions where company_id = ? for share', [companyId], 'get'
    )
    const stored = row ? Number(row.epoch) : 0
    if (stored > epoch) {
      throw new GatewayError(ErrorCode.FENCED,
        `company ${companyId} is held under epoch ${stored}; a write under epoch ${epoch} is refused`)
    }
    return work(tx)
  })
}
