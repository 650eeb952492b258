import fp from 'fastify-plugin'
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'
import { Migrator } from '@mikro-orm/migrations'
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

/**
 * One place builds the ORM, so the service, `npm run migrate` and tests agree on entities and
 * migrations. Migrations are listed in code (each plugin exports its own), not discovered on disk.
 */
export async function openOrm (config: Pick<Config, 'databaseUrl' | 'dbPoolMax'>, options: DbOptions, logger?: (message: string) => void): Promise<MikroORM> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is not resolved: start the embedded services before opening the database')
  return MikroORM.init({
    clientUrl: config.databaseUrl,
    entities: options.entities,
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    migrations: { migrationsList: options.migrations, tableName: MIGRATIONS_TABLE, snapshot: false, silent: true },
    pool: { min: 0, max: config.dbPoolMax },
    allowGlobalContext: false,
    logger
  })
}

const forkedEms = new WeakMap<object, EntityManager>()

export default fp<DbOptions>(async (app, options) => {
  const orm = await openOrm(app.config, options, (message) => app.log.debug(message))
  const applied = await orm.migrator.up()
  if (applied.length > 0) app.log.info({ migrations: applied.map((migration) => migration.name) }, 'applied migrations')

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
    await orm.close()
  })
}, { name: 'db', dependencies: ['config', 'health'] })
