import fp from 'fastify-plugin'
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'
import { Migrator } from '@mikro-orm/migrations'
import { settlesWithin } from '../deadline.ts'
import pg from 'pg'
import type { Config } from '../config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM
  }
  interface FastifyRequest {
    /** This request's own EntityManager, forked on first use. */
    readonly em: EntityManager
  }
}

export interface DbOptions {
  entities: EntitySchema<any, any>[]
  migrations: MigrationObject[]
}

const MIGRATIONS_TABLE = 'wa_gateway_migrations'
/** Replicas starting together take turns migrating; any constant shared by all of them works. */
const MIGRATION_LOCK_KEY = 7_312_025

/**
 * Applies pending migrations while holding a PostgreSQL advisory lock on a connection of its own,
 * so replicas starting at once do not race to create the same tables.
 */
export async function migrate (orm: MikroORM, databaseUrl: string): Promise<string[]> {
  const lock = new pg.Client({ connectionString: databaseUrl })
  await lock.connect()
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    const applied = await orm.migrator.up()
    return applied.map((migration) => migration.name)
  } finally {
    await lock.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {})
    await lock.end()
  }
}

/**
 * One place builds the ORM, so the service, `npm run migrate` and tests agree on entities and
 * migrations. Migrations are listed in code (each plugin exports its own), not discovered on disk.
 */
export type DbSettings = Pick<Config, 'databaseUrl' | 'dbPoolMax' | 'dbAcquireTimeoutMs' | 'dbQueryTimeoutMs'>

export async function openOrm (config: DbSettings, options: DbOptions, logger?: (message: string) => void): Promise<MikroORM> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is not resolved: start the embedded services before opening the database')
  return MikroORM.init({
    clientUrl: config.databaseUrl,
    entities: options.entities,
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    migrations: { migrationsList: options.migrations, tableName: MIGRATIONS_TABLE, snapshot: false, silent: true },
    pool: { min: 0, max: config.dbPoolMax },
    // Without these, a connection that died mid-transaction can wait for ever and hold its pool slot.
    driverOptions: { connectionTimeoutMillis: config.dbAcquireTimeoutMs, query_timeout: config.dbQueryTimeoutMs },
    allowGlobalContext: false,
    logger
  })
}

interface PooledClient {
  _queryable?: boolean
  _ending?: boolean
  release?: (err?: Error) => void
}

interface PgPool {
  _clients: PooledClient[]
  _idle: { client: PooledClient }[]
  on: (event: 'acquire', listener: (client: PooledClient) => void) => void
}

/**
 * MikroORM 7.2.1 (through kysely) never hands back a pooled client whose connection died inside a
 * transaction: each PostgreSQL outage would leak a pool slot until the pool is empty for good.
 * This returns such clients with an error, which makes `pg` discard them. It reads pg-pool's
 * internals, and pg itself marks those fields as the only way to tell (see its TODO).
 */
export async function reclaimDeadConnections (orm: MikroORM, afterMs: number): Promise<() => void> {
  const pool = await orm.em.getConnection().getNativeClient() as unknown as PgPool
  const checkedOutAt = new WeakMap<PooledClient, number>()
  pool.on('acquire', (client) => checkedOutAt.set(client, Date.now()))
  const sweep = (minAgeMs: number) => {
    const idle = new Set(pool._idle.map((item) => item.client))
    for (const client of pool._clients) {
      const dead = client._queryable === false || client._ending === true
      if (idle.has(client) || !dead || Date.now() - (checkedOutAt.get(client) ?? 0) < minAgeMs) continue
      try {
        client.release?.(new Error('connection died while checked out'))
      } catch {}
    }
  }
  const timer = setInterval(() => sweep(afterMs), afterMs)
  timer.unref()
  // A last sweep on stop: the pool's end() waits for every checked-out client, dead ones included.
  return () => {
    clearInterval(timer)
    sweep(0)
  }
}

const forkedEms = new WeakMap<object, EntityManager>()

export default fp<DbOptions>(async (app, options) => {
  const orm = await openOrm(app.config, options, (message) => app.log.debug(message))
  const stopReclaiming = await reclaimDeadConnections(orm, app.config.dbQueryTimeoutMs)
  const applied = await migrate(orm, app.config.databaseUrl!)
  if (applied.length > 0) app.log.info({ migrations: applied }, 'applied migrations')

  app.decorate('orm', orm)
  app.decorateRequest('em', {
    getter () {
      let em = forkedEms.get(this)
      if (!em) {
        em = orm.em.fork()
        forkedEms.set(this, em)
      }
      return em
    }
  })
  app.addReadinessCheck('postgres', async () => {
    await orm.em.getConnection().execute('select 1')
  })
  app.addHook('onClose', async () => {
    stopReclaiming()
    // The pool's end() waits for every checked-out connection; one stuck in a query must not hold shutdown.
    if (!await settlesWithin(orm.close(), app.config.shutdownTimeoutMs / 2)) app.log.warn('PostgreSQL pool did not close in time')
  })
}, { name: 'db', dependencies: ['config', 'health'] })
