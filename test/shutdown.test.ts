import t, { type Test } from 'tap'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SAME_REQUEST_MS, onShutdownSignals } from '../core/shutdown-signals.ts'
import { freePort } from '../core/embedded/free-port.ts'
import { build } from './helpers/build.ts'
import { processesUsing } from './helpers/replica-process.ts'
import { linkSandboxCompany } from './helpers/sandbox-process.ts'
import { createTestDatabase, serviceEnv, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const SHUTDOWN_TIMEOUT_MS = 5_000
const START_TIMEOUT_MS = 90_000
/** Ctrl-C with nothing to wait for takes well under a second; the default SHUTDOWN_TIMEOUT_MS is 10 s. */
const CTRL_C_EXIT_MS = 4_000
/** When npm's copy of a Ctrl-C reaches the gateway, after the terminal's own (see core/shutdown-signals.ts). */
const NPM_COPY_DELAY_MS = 3
/** How long a killed gateway's servers may take to notice and stop. */
const ORPHAN_STOP_MS = 10_000

function resourceCounts (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1
  return counts
}

t.test('closing the app leaves no open handles behind', async (t) => {
  const before = resourceCounts()
  const app = await build(t)
  await app.inject({ method: 'GET', url: '/readyz' })
  await app.nats.request(app.subjects.phoneNormalize, JSON.stringify({ phone: '89001234567' }), { timeout: 2000 })
  t.ok(Object.keys(resourceCounts()).length > 0)
  await app.close()
  // Socket teardown finishes on the next turns of the loop.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(resourceCounts(), before, 'same active resources as before the app was built')
})

interface StartedServer {
  child: ChildProcess
  baseUrl: string
  /** Everything it printed so far. */
  output: () => string
}

/**
 * Runs `node plugins/server.ts` and resolves once it has printed its HTTP address. With `ownGroup` it leads
 * a process group of its own, as `npm start` in a terminal does, so the test can signal the whole group.
 */
function startServer (env: Record<string, string>, options: { ownGroup?: boolean } = {}): Promise<StartedServer> {
  const child = spawn(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({ HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.ownGroup ?? false
  })
  return readyWhenListening(child, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
}

/** Resolves once `child` has printed `listening` (its first group is the URL); keeps collecting its output. */
function readyWhenListening (child: ChildProcess, listening: RegExp, times = 1): Promise<StartedServer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms\n${output}`)), START_TIMEOUT_MS)
    let output = ''
    let started = false
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (started) return
      const matches = [...output.matchAll(new RegExp(listening, 'g'))]
      if (matches.length >= times) {
        started = true
        clearTimeout(timer)
        child.removeAllListeners('exit')
        resolve({ child, baseUrl: matches[0][1], output: () => output })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code}\n${output}`))
    })
  })
}

function portIsFree (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port that is free along with the `count - 1` after it: CLUSTER_BASE_PORT, for replicas on consecutive ports. */
async function freePortRange (count: number): Promise<number> {
  for (;;) {
    const base = await freePort()
    const rest = await Promise.all(Array.from({ length: count - 1 }, (_, index) => portIsFree(base + index + 1)))
    if (rest.every(Boolean)) return base
  }
}

/** Ends a process group the test started, whatever is left of it (a teardown after a failed test). */
function killGroup (child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {} // gone already
}

/**
 * Ctrl-C as a terminal running `npm start` delivers it: SIGINT to the whole foreground process group, and
 * moments later npm's copy to the gateway (where npm's script shell execs it, as bash does).
 */
function pressCtrlC (child: ChildProcess): void {
  process.kill(-child.pid!, 'SIGINT')
  setTimeout(() => child.kill('SIGINT'), NPM_COPY_DELAY_MS)
}

/** The lines a pino logger printed at error or fatal level. */
function errorLines (output: string): string[] {
  return output.split('\n').filter((line) => {
    try {
      return (JSON.parse(line) as { level?: number }).level! >= 50
    } catch {
      return false // not a log line (the admin key banner)
    }
  })
}

/** A DATA_DIR of the test's own, which the embedded PostgreSQL (the postgres user, under root) can reach. */
async function embeddedDataDir (t: Test): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wa-data-'))
  await chmod(dataDir, 0o755)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  return dataDir
}

/**
 * The exit code, once what the process wrote has been read too: 'exit' can come before the last lines
 * in its pipes (under load, the replicas' "shutting down" were missing), 'close' comes after them.
 */
function exited (child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      const late = setTimeout(() => resolve(code), 2_000)
      child.once('close', () => { clearTimeout(late); resolve(code) })
    })
  })
}

function descendants (pid: number): number[] {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
    return children.flatMap((child) => [child, ...descendants(child)])
  } catch {
    return []
  }
}

/** Whether the process still runs: a zombie (ended, not yet reaped by its new parent) does not. */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

t.test('SIGTERM shuts the server down gracefully within the bounded time', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const { child, baseUrl, output } = await startServer({
    NATS_URL: TEST_NATS_URL,
    DATABASE_URL: databaseUrl,
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS)
  })
  t.teardown(() => { child.kill('SIGKILL') })
  t.equal((await fetch(`${baseUrl}/readyz`)).status, 200)
  t.notMatch(output(), /Deprecation|FSTDEP/, 'a clean start: no deprecation warnings')
  const started = Date.now()
  const exit = exited(child)
  child.kill('SIGTERM')
  t.equal(await exit, 0, 'exits cleanly')
  t.ok(Date.now() - started < SHUTDOWN_TIMEOUT_MS, `within ${SHUTDOWN_TIMEOUT_MS} ms (took ${Date.now() - started} ms)`)
})

t.test('with no NATS_URL or DATABASE_URL it starts its own servers, and Ctrl-C stops them after the gateway', async (t) => {
  const dataDir = await embeddedDataDir(t)
  const { child, baseUrl, output } = await startServer(
    { DATA_DIR: dataDir, NATS_URL: '', DATABASE_URL: '', WA_SANDBOX: '1', SANDBOX_CONTROL_PORT: '0' },
    { ownGroup: true }
  )
  t.teardown(() => killGroup(child))

  const ready = await fetch(`${baseUrl}/readyz`)
  t.equal(ready.status, 200, '/readyz is 200 with no environment set')
  t.match(await ready.json(), { checks: { nats: { ok: true }, postgres: { ok: true } } })
  // A first run outside production generates the admin key, keeps it under DATA_DIR and prints it once.
  const adminKey = (await readFile(join(dataDir, 'admin-key'), 'utf8')).trim()
  t.match(output(), `curl -H 'authorization: Bearer ${adminKey}'`, 'printed with a ready-to-paste curl line')
  t.equal((await fetch(`${baseUrl}/api/phone/normalize?phone=89001234567`)).status, 401, 'nothing without it')
  const admin = { authorization: `Bearer ${adminKey}` }
  const phone = await fetch(`${baseUrl}/api/phone/normalize?phone=89001234567`, { headers: admin })
  t.same(await phone.json(), { success: true, e164: '79001234567', jid: '79001234567@s.whatsapp.net' })
  // A linked company, so that the shutdown has a live session to hand over while NATS and PostgreSQL still serve.
  const controlUrl = /"control":"(http:\/\/[^"]+)"/.exec(output())![1]
  await linkSandboxCompany({ url: baseUrl, controlUrl }, uniqueName('ctrl_c'), admin)

  const servers = processesUsing(dataDir)
  t.ok(servers.length >= 2, `nats-server and postgres run for its DATA_DIR (${servers.length} processes)`)
  const spawned = [...new Set([...descendants(child.pid!), ...servers])]
  const started = Date.now()
  const exit = exited(child)
  pressCtrlC(child)
  t.equal(await exit, 0, 'exits with 0')
  const took = Date.now() - started
  t.ok(took < CTRL_C_EXIT_MS, `within ${CTRL_C_EXIT_MS} ms (took ${took} ms)`)
  t.same(errorLines(output()), [], 'no line at error or fatal level')
  t.match(output(), /"signal":"SIGINT","msg":"shutting down"/, 'a graceful shutdown, once')
  t.same(spawned.filter(alive), [], 'the embedded servers stopped with the gateway')
  t.same(processesUsing(dataDir), [], 'nothing runs for its DATA_DIR any more')
})

t.test('a killed gateway takes its embedded servers along, and the next start finds its folder free', async (t) => {
  const dataDir = await embeddedDataDir(t)
  const env = { DATA_DIR: dataDir, NATS_URL: '', DATABASE_URL: '' }
  const first = await startServer(env, { ownGroup: true })
  t.teardown(() => killGroup(first.child))
  t.equal((await fetch(`${first.baseUrl}/readyz`)).status, 200)
  t.ok(processesUsing(dataDir).length >= 2, 'nats-server and postgres run for its DATA_DIR')

  // SIGKILL leaves the gateway no say: its servers, out of its process group, must notice by themselves.
  const exit = exited(first.child)
  first.child.kill('SIGKILL')
  await exit
  t.ok(await waitFor(() => processesUsing(dataDir).length === 0, ORPHAN_STOP_MS), 'nats-server and postgres stopped')

  const second = await startServer(env, { ownGroup: true })
  t.teardown(() => killGroup(second.child))
  t.equal((await fetch(`${second.baseUrl}/readyz`)).status, 200, 'the same DATA_DIR serves again (no stale PostgreSQL lock)')
  const secondExit = exited(second.child)
  pressCtrlC(second.child)
  t.equal(await secondExit, 0)
  t.same(processesUsing(dataDir), [])
})

t.test('npm run cluster: Ctrl-C stops the replicas, then their NATS nodes and PostgreSQL', async (t) => {
  const dataDir = await embeddedDataDir(t)
  const replicas = 2
  const child = spawn(process.execPath, ['deploy/local-cluster/run.ts'], {
    env: serviceEnv({
      DATA_DIR: dataDir,
      CLUSTER_REPLICAS: String(replicas),
      CLUSTER_BASE_PORT: String(await freePortRange(replicas)),
      WA_SANDBOX: '1',
      SANDBOX_CONTROL_PORT: String(await freePort()),
      HTTP_HOST: '127.0.0.1',
      LOG_LEVEL: 'info'
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  t.teardown(() => killGroup(child))
  const { output } = await readyWhenListening(child, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, replicas)
  const urls = [...output().matchAll(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/g)].map((match) => match[1])
  for (const url of urls) {
    t.ok(await waitFor(async () => (await fetch(`${url}/readyz`)).ok, START_TIMEOUT_MS, 200), `${url} is ready`)
  }

  const spawned = descendants(child.pid!)
  t.ok(spawned.length >= replicas + 4, `replicas, 3 NATS nodes and PostgreSQL run (${spawned.length} processes)`)
  const started = Date.now()
  const exit = exited(child)
  pressCtrlC(child)
  t.equal(await exit, 0, 'exits with 0')
  const took = Date.now() - started
  t.ok(took < CTRL_C_EXIT_MS, `within ${CTRL_C_EXIT_MS} ms (took ${took} ms)`)
  // Every replica once, in the whole output: the runner's own "stopping the cluster" and the replicas' lines share
  // one pipe, and a replica's may land before it.
  const shutdowns = [...output().matchAll(/"replica":"(replica-\d+)"[^\n]*"msg":"shutting down"/g)].map((match) => match[1]).sort()
  t.same(shutdowns, Array.from({ length: replicas }, (_, index) => `replica-${index + 1}`), 'each replica shut down gracefully, once')
  t.ok(output().includes('stopping the cluster'), 'the runner stopped them')
  t.same(errorLines(output()), [], 'no line at error or fatal level')
  t.same(spawned.filter(alive), [], 'no process of the cluster is left')
  t.same(processesUsing(dataDir), [])
})

t.test('a copy of the first shutdown signal is the same request; a later one asks to exit now', async (t) => {
  const source = new EventEmitter()
  let clock = 0
  const calls: string[] = []
  const stop = onShutdownSignals({
    shutdown: (signal) => calls.push(`shutdown ${signal}`),
    again: (signal) => calls.push(`again ${signal}`)
  }, source, () => clock)
  t.teardown(stop)
  source.emit('SIGINT', 'SIGINT')
  clock += 5
  source.emit('SIGINT', 'SIGINT')
  source.emit('SIGTERM', 'SIGTERM')
  t.same(calls, ['shutdown SIGINT'], 'npm\'s copy and a process manager\'s SIGTERM just after change nothing')
  clock += SAME_REQUEST_MS
  source.emit('SIGINT', 'SIGINT')
  t.same(calls, ['shutdown SIGINT', 'again SIGINT'], 'a second Ctrl-C later on is heard')
})
