import type { EntityManager } from '@mikro-orm/core'
import type { AbstractSqlConnection } from '@mikro-orm/sql'
import { CompiledQuery } from 'kysely'

/**
 * Runs a statement with its parameters sent apart from it (`$1`, `$2`, … placeholders), as PostgreSQL's
 * extended protocol does. MikroORM's `execute` writes every parameter into the SQL text instead,
 * escaping it character by character: for a bulk write with one large JSON parameter (a history
 * chunk's rows) that escaping is most of the statement's cost and of the garbage it leaves.
 */
export async function runWithParameters<Row> (em: EntityManager, sql: string, parameters: unknown[]): Promise<Row[]> {
  const client = (em.getConnection() as AbstractSqlConnection).getClient()
  const result = await client.executeQuery<Row>(CompiledQuery.raw(sql, parameters))
  return [...result.rows]
}
