/**
 * bench:send — sends over NATS request/reply through the holder (test double, so WhatsApp costs
 * nothing and the gateway's own path is what is measured) at concurrency 1, 16 and 64, against a
 * bare NATS echo responder measured in the same run; and an HTTP send through a replica that does
 * not hold the company, against a bare Fastify route. Replicas and baselines are processes of their
 * own. The WhatsApp budgets are raised out of the way (they would refuse after 30 per minute).
 * The last line is a JSON summary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import { BufferJSON, initAuthCreds } from '@whiskeysockets/baileys'
import { createGatewayClient } from '../contracts/index.ts'
import { databaseUrlFor, serviceEnv, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../test/helpers/services.ts'
import {
  benchNodeFlags, cpuMsOf, cpuMsOfAll, cpuSplitMsOf, exitOf, ownCpuMs, startReplicaProcess
} from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { allocationsBySteps, cpuBySteps } from './cpu-steps.ts'
import { log, percentile, round } from './report.ts'

const CONCURRENCIES = [1, 16, 64]
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 5_000)
const WARMUP = 500
const COMPANIES = 8
const START_TIMEOUT_MS = 30_000
const TARGET_RATIO = 0.5
const TARGET_P99_MS = 5

/** The processes whose CPU time a run is charged with, by name (set once they are started). */
const metered: Record<string, () => number> = {
  client: ownCpuMs,
  nats: () => cpuMsOfAll('nats-server'),
  postgres: () => cpuMsOfAll('postgres')
}
const cpuNow = () => Object.fromEntries(Object.entries(metered).map(([name, read]) => [name, read()]))

const sumOf = (values: number[]) => values.reduce((sum, value) => sum + value, 0)

/** CPU per request (µs) of each metered process. */
type CpuPerRequest = Record<string, number>
interface Run { rps: number, p50: number, p99: number, errors: number, latencies: number[], cpu: CpuPerRequest }
/** Echo and send alternate in rounds, so a change in the machine's load hits both alike; the median round counts. */
const ROUNDS = 3

async function load (total: number, concurrency: number, work: (index: number) => Promise<unknown>): Promise<Run> {
  let next = 0
  let errors = 0
  const latencies: number[] = []
  const started = performance.now()
  const cpuBefore = cpuNow()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const index = next++
      const at = performance.now()
      try {
        await work(index)
      } catch (err) {
        if (errors++ === 0) log(`first error: ${(err as Error).message}`)
      }
      latencies.push(performance.now() - at)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  const cpuAfter = cpuNow()
  const cpu = Object.fromEntries(Object.keys(cpuAfter).map((name) => [name, ((cpuAfter[name] - cpuBefore[name]) * 1000) / total]))
  return { rps: total / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, latencies, cpu }
}

/** `a` and `b` in alternating rounds: the median throughput of each, latencies over all rounds. */
async function alternate (
  total: number, concurrency: number, a: (index: number) => Promise<unknown>, b: (index: number) => Promise<unknown>
): Promise<[Run, Run]> {
  const runs: [Run[], Run[]] = [[], []]
  for (let round = 0; round < ROUNDS; round++) {
    runs[0].push(await load(Math.ceil(total / ROUNDS), concurrency, a))
    runs[1].push(await load(Math.ceil(total / ROUNDS), concurrency, b))
  }
  return runs.map((list) => {
    const latencies = list.flatMap((run) => run.latencies)
    return {
      rps: percentile(list.map((run) => run.rps), 50),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      errors: list.reduce((sum, run) => sum + run.errors, 0),
      latencies,
      cpu: Object.fromEntries(Object.keys(list[0].cpu).map((name) => [name, percentile(list.map((run) => run.cpu[name]), 50)]))
    }
  }) as [Run, Run]
}

const nc = await connect({ servers: TEST_NATS_URL })
const jsm = await jetstreamManager(nc)
const namespace = uniqueName('bench')
const eventsStream = uniqueName('BENCH_EVENTS')
const client = createGatewayClient(nc, { timeoutMs: 10_000, namespace })
const database = uniqueName('wa_bench_send')
const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
await admin.connect()
await admin.query(`create database ${database}`)
const buckets = {
  LEASE_BUCKET: uniqueName('bench_leases'),
  MEMBERS_BUCKET: uniqueName('bench_members'),
  IDEMPOTENCY_BUCKET: uniqueName('bench_idem'),
  RATE_BUCKET: uniqueName('bench_rates')
}
const env = {
  NATS_URL: TEST_NATS_URL,
  DATABASE_URL: databaseUrlFor(database),
  ...buckets,
  WA_TRANSPORT: 'test',
  NATS_NAMESPACE: namespace,
  EVENTS_STREAM: eventsStream,
  MESSAGES_PER_MINUTE: '100000',
  REACTIONS_PER_MINUTE_PER_RECIPIENT: '100000',
  API_RATE_LIMIT_MAX: '10000000',
  // Replicas without access control, but one (below), for the cost of checking a key.
  AUTH_MODE: 'off'
}
const ADMIN_KEY = `bench-admin-${'k'.repeat(32)}`
const children: ChildProcess[] = []
const companies = Array.from({ length: COMPANIES }, (_, index) => `bench-send-${index}`)

try {
  const migrated = spawnSync(process.execPath, ['plugins/migrate.ts'], { env: serviceEnv(env), encoding: 'utf8' })
  if (migrated.status !== 0) throw new Error(`migrations failed: ${migrated.stderr}${migrated.stdout}`)
  // Linked companies: creds with an account, which the test double logs in without a QR.
  const db = new pg.Client({ connectionString: databaseUrlFor(database) })
  await db.connect()
  for (const companyId of companies) {
    const creds = {
      ...initAuthCreds(),
      me: { id: '79001234567:2@s.whatsapp.net' },
      account: {
        details: Buffer.alloc(16),
        accountSignatureKey: Buffer.alloc(32),
        accountSignature: Buffer.alloc(64),
        deviceSignature: Buffer.alloc(64)
      }
    }
    await db.query('insert into whatsapp_auth (company_id, creds, epoch) values ($1, $2::jsonb, 0)',
      [companyId, JSON.stringify(creds, BufferJSON.replacer)])
    await db.query("insert into sessions (company_id, desired_state) values ($1, 'online')", [companyId])
  }
  await db.end()

  // BENCH_CPU_PROFILE=<dir>: a CPU profile of the holder, written when it stops. Its inspector is open
  // (nothing sampled until the steps are measured, after the throughput figures).
  const holder = await startReplicaProcess({ ...env, REPLICA_ID: 'bench-holder' }, undefined,
    [...benchNodeFlags(), '--inspect=127.0.0.1:0'])
  children.push(holder)
  metered.holder = () => cpuMsOf(holder.pid)
  const connected = async () =>
    (await Promise.all(companies.map((id) => client.status(id).catch(() => undefined)))).every((status) => status?.connected)
  if (!await waitFor(connected, START_TIMEOUT_MS, 100)) throw new Error('the companies did not connect')

  const echoSubject = uniqueName('bench.echo')
  const baseline = spawn(process.execPath, ['bench/baseline-server.ts'], {
    env: serviceEnv({ NATS_URL: TEST_NATS_URL, ECHO_SUBJECT: echoSubject }), stdio: ['ignore', 'pipe', 'inherit']
  })
  children.push(baseline)
  metered.echo = () => cpuMsOf(baseline.pid)
  const baselineUrl = await new Promise<string>((resolve) => baseline.stdout!.on('data', (data: Buffer) => {
    const ready = /baseline ready (\S+)/.exec(data.toString())
    if (ready) resolve(ready[1])
  }))

  const payload = (index: number) => ({
    phone: `7900${String(1_000_000 + (index % 1000)).slice(1)}1`, message: `Напоминание №${index}: завтра в 10:00`
  })
  const sendOnce = (index: number) => client.send(companies[index % COMPANIES], payload(index))
  const echoOnce = (index: number) => nc.request(echoSubject, JSON.stringify(payload(index)), { timeout: 10_000 })
  await load(WARMUP, 16, sendOnce)
  await load(WARMUP, 16, echoOnce)

  const summary: Record<string, number | Record<string, number>> = {}
  let errors = 0
  for (const concurrency of CONCURRENCIES) {
    const [echo, send] = await alternate(REQUESTS, concurrency, echoOnce, sendOnce)
    errors += send.errors + echo.errors
    Object.assign(summary, {
      [`echo_rps_c${concurrency}`]: round(echo.rps, 0),
      [`send_rps_c${concurrency}`]: round(send.rps, 0),
      [`ratio_c${concurrency}`]: round(send.rps / echo.rps, 3),
      [`echo_p99_ms_c${concurrency}`]: round(echo.p99),
      [`send_p50_ms_c${concurrency}`]: round(send.p50),
      [`send_p99_ms_c${concurrency}`]: round(send.p99)
    })
    if (concurrency === 16) {
      // Where each request's CPU goes, process by process: on a 2-core machine their sum bounds throughput.
      for (const [name, us] of Object.entries(send.cpu)) summary[`send_cpu_us_${name}`] = round(us, 0)
      for (const [name, us] of Object.entries(echo.cpu)) summary[`echo_cpu_us_${name}`] = round(us, 0)
      const line = (cpu: CpuPerRequest) =>
        Object.entries(cpu).filter(([, us]) => us >= 1).map(([name, us]) => `${name} ${round(us, 0)}`).join(', ')
      log(`CPU per request at c16 (µs): send: ${line(send.cpu)}; echo: ${line(echo.cpu)}`)
      // The machine's CPU per send against per echo (target ≤ 2.5): on a machine whose cores every process
      // shares, this bounds the throughput ratio.
      const machine = (cpu: CpuPerRequest) => Object.values(cpu).reduce((sum, us) => sum + us, 0)
      summary.machine_cpu_ratio_c16 = round(machine(send.cpu) / machine(echo.cpu), 2)
      log(`machine CPU per request at c16: send ${round(machine(send.cpu), 0)} µs = ${summary.machine_cpu_ratio_c16} × echo ` +
        `${round(machine(echo.cpu), 0)} µs (target ≤ 2.5); the holder's ${round(send.cpu.holder ?? 0, 0)} µs (target ≤ 100)`)
    }
    log(`concurrency ${concurrency}: send ${round(send.rps, 0)}/s (p50 ${round(send.p50)} ms, p99 ${round(send.p99)} ms) = ` +
      `${round(send.rps / echo.rps, 3)} × echo ${round(echo.rps, 0)}/s (p99 ${round(echo.p99)} ms); ${send.errors} errors`)
  }

  // The holder's CPU per send, step by step: its busy samples over a run at concurrency 16, each
  // step's share of them read against the holder's user CPU per send over the same run, and its
  // kernel CPU apart. Once as above, once with an idempotency key on every send (its KV record).
  const stepsOf = async (send: (index: number) => Promise<unknown>) => {
    let userUs = 0
    let systemUs = 0
    const shares = await cpuBySteps(holder.inspectorUrl!, async () => {
      const before = cpuSplitMsOf(holder.pid)
      await load(REQUESTS, 16, send)
      const after = cpuSplitMsOf(holder.pid)
      userUs = ((after.user - before.user) * 1000) / REQUESTS
      systemUs = ((after.system - before.system) * 1000) / REQUESTS
    })
    const allocated = await allocationsBySteps(holder.inspectorUrl!, async () => { await load(REQUESTS, 16, send) })
    const steps = {
      ...Object.fromEntries([...shares].map(([step, share]) => [step, round(share * userUs, 1)])),
      'kernel (socket reads and writes)': round(systemUs, 1)
    }
    const bytes = Object.fromEntries([...allocated].sort((a, b) => b[1] - a[1]).map(([step, total]) => [step, round(total / REQUESTS, 0)]))
    return { steps, total: round(userUs + systemUs, 0), bytes, totalBytes: round(sumOf(Object.values(bytes)), 0) }
  }
  // A new key for every send, across both of its runs (a repeat would be answered from its record).
  const runId = Date.now().toString(36)
  let keys = 0
  const withKey = await stepsOf((index) =>
    client.send(companies[index % COMPANIES], { ...payload(index), idempotencyKey: `${runId}-${keys++}` }))
  const plain = await stepsOf(sendOnce)
  summary.holder_cpu_us_by_step = plain.steps
  summary.holder_cpu_us_by_step_with_key = withKey.steps
  summary.holder_alloc_bytes_by_step = plain.bytes
  summary.holder_alloc_bytes_per_send = plain.totalBytes
  summary.holder_alloc_bytes_per_send_with_key = withKey.totalBytes
  for (const [label, run] of [['', plain], [' with an idempotency key', withKey]] as const) {
    log(`the holder's CPU per send${label} at c16, by step (µs; ${run.total} in all while it was sampled): ` +
      Object.entries(run.steps).map(([step, us]) => `${step} ${us}`).join(', '))
    log(`  what it allocated per send (bytes; ${run.totalBytes} in all): ` +
      Object.entries(run.bytes).map(([step, bytes]) => `${step} ${bytes}`).join(', '))
  }

  // HTTP through a replica that does not hold the company: HTTP → NATS → holder → reply. A second
  // non-holder checks an API key on every request, so the cost of access control is measured too.
  const [other, guarded] = await Promise.all([
    startReplicaProcess({ ...env, REPLICA_ID: 'bench-other' }),
    startReplicaProcess({ ...env, REPLICA_ID: 'bench-guarded', AUTH_MODE: 'keys', ADMIN_API_KEY: ADMIN_KEY })
  ])
  children.push(other, guarded)
  // The newcomer takes some companies over (balancing); the bench sends only to those that stay.
  const owners = async () => Promise.all(companies.map(async (id) => (await client.owner(id).catch(() => undefined))?.replica))
  let previous = ''
  await waitFor(async () => {
    const now = JSON.stringify(await owners())
    const stable = now === previous && !now.includes('null')
    previous = now
    return stable
  }, START_TIMEOUT_MS, 2_000)
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  const owned = await owners()
  const heldByHolder = companies.filter((_id, index) => owned[index] === 'bench-holder')
  if (heldByHolder.length === 0) throw new Error('every company moved to the second replica')
  const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(url, {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
    })
    const text = await response.text()
    if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`)
    return text
  }
  const created = JSON.parse(await post(`${guarded.url}/api/admin/keys`, {
    companyIds: companies, scopes: ['send'], name: 'bench'
  }, { authorization: `Bearer ${ADMIN_KEY}` })) as { key: string }
  const httpSend = (index: number) =>
    post(`${other.url}/api/whatsapp/sessions/${heldByHolder[index % heldByHolder.length]}/send`, payload(index))
  const httpBare = (index: number) => post(`${baselineUrl}/echo`, payload(index))
  await load(WARMUP, 16, httpSend)
  await load(WARMUP, 16, httpBare)
  const [bare, http] = await alternate(REQUESTS, 16, httpBare, httpSend)
  errors += http.errors + bare.errors
  const httpSendWithKey = (index: number) => post(`${guarded.url}/api/whatsapp/sessions/${heldByHolder[index % heldByHolder.length]}/send`,
    payload(index), { authorization: `Bearer ${created.key}` })
  await load(WARMUP, 16, httpSendWithKey)
  const [open, keyed] = await alternate(REQUESTS, 16, httpSend, httpSendWithKey)
  errors += open.errors + keyed.errors
  Object.assign(summary, {
    http_bare_rps_c16: round(bare.rps, 0),
    http_send_rps_c16: round(http.rps, 0),
    http_ratio: round(http.rps / bare.rps, 3),
    http_send_p99_ms_c16: round(http.p99),
    http_auth_off_rps_c16: round(open.rps, 0),
    http_auth_key_rps_c16: round(keyed.rps, 0),
    http_auth_ratio: round(keyed.rps / open.rps, 3)
  })
  log(`HTTP at concurrency 16 through a non-holder: ${round(http.rps, 0)}/s (p99 ${round(http.p99)} ms) = ` +
    `${round(http.rps / bare.rps, 3)} × a bare Fastify route ${round(bare.rps, 0)}/s; ${http.errors} errors`)
  log(`HTTP with an API key checked on every request: ${round(keyed.rps, 0)}/s (p99 ${round(keyed.p99)} ms) = ` +
    `${round(keyed.rps / open.rps, 3)} × the same send with access control off ${round(open.rps, 0)}/s (target ≥ 0.95)`)
  const figure = (name: string) => summary[name] as number
  const p99Target = Math.max(TARGET_P99_MS, 2 * figure('echo_p99_ms_c16'))
  log(`targets: throughput ≥ ${TARGET_RATIO} × echo at c16: ${figure('ratio_c16') >= TARGET_RATIO ? 'met' : 'MISSED'}; ` +
    `p99 ≤ max(${TARGET_P99_MS}, 2 × echo p99) = ${round(p99Target)} ms at c16: ` +
    `${figure('send_p99_ms_c16') <= p99Target ? 'met' : 'MISSED'}`)
  summary.errors = errors
  log(JSON.stringify({ requests: REQUESTS, companies: COMPANIES, ...summary }))
} finally {
  for (const child of children) {
    const exited = exitOf(child)
    child.kill('SIGTERM')
    await exited
  }
  for (const stream of [...Object.values(buckets).map((bucket) => `KV_${bucket}`), eventsStream]) {
    await jsm.streams.delete(stream).catch(() => {})
  }
  await nc.drain()
  await admin.query(`drop database if exists ${database} with (force)`)
  await admin.end()
}
