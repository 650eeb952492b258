import t from 'tap'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from './helpers/build.ts'
import { createTestDatabase, serviceEnv, TEST_NATS_URL } from './helpers/services.ts'

const SHUTDOWN_TIMEOUT_MS = 5_000
const START_TIMEOUT_MS = 90_000

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

/** Runs `node plugins/server.ts` and resolves once it has printed its HTTP address. */
function startServer (env: Record<string, string>): Promise<{ child: ChildProcess, baseUrl: string, output: () => string }> {
  const child = spawn(process.execPath, ['plugins/server.ts'], {
    env: serviceEnv({ HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms\n${output}`)), START_TIMEOUT_MS)
    let output = ''
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ child, baseUrl: match[1], output: () => output })
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

function exited (child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

function descendants (pid: number): number[] {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
    return children.flatMap((child) => [child, ...descendants(child)])
  } catch {
    return []
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
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

t.test('with no NATS_URL or DATABASE_URL it starts and stops its own servers', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'wa-data-'))
  // The embedded PostgreSQL runs as the postgres user, which must be able to reach the folder.
  await chmod(dataDir, 0o755)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const { child, baseUrl, output } = await startServer({ DATA_DIR: dataDir, NATS_URL: '', DATABASE_URL: '' })
  t.teardown(() => { child.kill('SIGKILL') })

  const ready = await fetch(`${baseUrl}/readyz`)
  t.equal(ready.status, 200, '/readyz is 200 with no environment set')
  t.match(await ready.json(), { checks: { nats: { ok: true }, postgres: { ok: true } } })
  // A first run outside production generates the admin key, keeps it under DATA_DIR and prints it once.
  const adminKey = (await readFile(join(dataDir, 'admin-key'), 'utf8')).trim()
  t.match(output(), `curl -H 'authorization: Bearer ${adminKey}'`, 'printed with a ready-to-paste curl line')
  t.equal((await fetch(`${baseUrl}/api/phone/normalize?phone=89001234567`)).status, 401, 'nothing without it')
  const phone = await fetch(`${baseUrl}/api/phone/normalize?phone=89001234567`, { headers: { authorization: `Bearer ${adminKey}` } })
  t.same(await phone.json(), { success: true, e164: '79001234567', jid: '79001234567@s.whatsapp.net' })

  const spawned = descendants(child.pid!)
  t.ok(spawned.length >= 2, `nats-server and postgres run as children (${spawned.length} processes)`)
  const exit = exited(child)
  child.kill('SIGTERM')
  t.equal(await exit, 0)
  t.same(spawned.filter(alive), [], 'the embedded servers stopped with the service')
})
