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
  return (await claimEpochs(em, [{ companyId, epoch }], replica)).has(companyId)
}

/**
 * Records each epoch as its company's newest holder's, in one statement; returns the companies
 * claimed (not those where a newer epoch is stored). The rows are locked in company order, so that
 * two replicas claiming overlapping batches cannot deadlock. A company must appear once.
 */
export async function claimEpochs (
  em: EntityManager, claims: readonly { companyId: string, epoch: number }[], replica: string
): Promise<Set<string>> {
  const ordered = claims.toSorted((a, b) => (a.companyId < b.companyId ? -1 : a.companyId > b.companyId ? 1 : 0))
  const values = ordered.map(() => '(?::varchar, ?::bigint)').join(', ')
  const rows = await em.getConnection().execute<{ company_id: string }[]>(
    `insert into sessions (company_id, desired_state, epoch, holder)
     select company_id, 'online', epoch, ?::varchar from (values ${values}) as claim (company_id, epoch)
     on conflict (company_id) do update set epoch = excluded.epoch, holder = excluded.holder, updated_at = now()
     where sessions.epoch < excluded.epoch
     returning company_id`,
    [replica, ...ordered.flatMap(({ companyId, epoch }) => [companyId, epoch])], 'all')
  return new Set(rows.map((row) => row.company_id))
}

interface PendingClaim {
  companyId: string
  epoch: number
  resolve: (claimed: boolean) => void
  reject: (err: unknown) => void
}

/** Claims in one statement at most this many (a takeover asks for thousands). */
const CLAIMS_PER_STATEMENT = 256

/**
 * Claims fencing epochs a batch at a time: while one statement is at PostgreSQL, the claims asked
 * for meanwhile wait and go together in the next. A cold start or a takeover claims thousands, and
 * one statement each cost PostgreSQL and the replica more than the rest of an acquisition's
 * database work (bench:scale).
 */
export class EpochClaims {
  readonly #em: () => EntityManager
  readonly #replica: string
  #queue: PendingClaim[] = []
  #draining = false

  constructor (em: () => EntityManager, replica: string) {
    this.#em = em
    this.#replica = replica
  }

  /** Resolves true once `epoch` is stored as the company's, false when a newer one is. */
  claim (companyId: string, epoch: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ companyId, epoch, resolve, reject })
      if (!this.#draining) void this.#drain()
    })
  }

  async #drain (): Promise<void> {
    this.#draining = true
    // A turn later: the claims asked for in this one go together.
    await new Promise((resolve) => setImmediate(resolve))
    while (this.#queue.length > 0) {
      // A company asked for twice (an acquisition after a quick release) waits for the next statement.
      const batch: PendingClaim[] = []
      const later: PendingClaim[] = []
      const inBatch = new Set<string>()
      for (const claim of this.#queue) {
        if (batch.length < CLAIMS_PER_STATEMENT && !inBatch.has(claim.companyId)) {
          batch.push(claim)
          inBatch.add(claim.companyId)
        } else {
          later.push(claim)
        }
      }
      this.#queue = later
      try {
        const claimed = await claimEpochs(this.#em(), batch, this.#replica)
        for (const claim of batch) claim.resolve(claimed.has(claim.companyId))
      } catch (err) {
        for (const claim of batch) claim.reject(err)
      }
    }
    this.#draining = false
  }
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
