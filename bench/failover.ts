/**
 * bench:failover — 3 replica processes, 200 companies, the test transport's connection ledger.
 * Measures cold start, takeover after SIGKILL and after SIGTERM, the split, overlaps, the KV writes
 * spent on renewals and each replica's memory. Times are reported against the lease TTL measured in
 * the same run (the baseline a takeover cannot beat). The last line is a JSON summary.
 * bench:scale (bench/scale.ts) runs it with 10,000 companies on 5 replicas.
 */
import type { ChildProcess } from 'node:child_process'
import { spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import { serveLedger } from '../test/helpers/ledger-server.ts'
import { databaseUrlFor, serviceEnv, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../test/helpers/services.ts'
import { benchNodeFlags, cpuMsOf, cpuMsOfAll, exitOf, ownCpuMs, rssMbOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { RENEWALS_PER_TTL } from '../plugins/ownership/membership.ts'
import { log, percentile } from './report.ts'
import { SOCKET_PLUGINS } from '../test/helpers/build.ts'

const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 3)
const COMPANIES = Number(process.env.BENCH_COMPANIES ?? 200)
const TTL_MS = Number(process.env.BENCH_TTL_MS ?? 3_000)
const SETTLE_TIMEOUT_MS = Number(process.env.BENCH_SETTLE_TIMEOUT_MS ?? 60_000)
/** Balancing waits a third of the TTL for a newcomer to settle, then moves a batch per interval: a TTL without moves means it is done. */
const QUIET_MS = TTL_MS
const RENEWAL_WINDOW_MS = 5_000
/** BENCH_CPU_PROFILE=<dir>: every replica writes a CPU profile there when it stops (gracefully, at the end). */
const PROFILE_DIR = process.env.BENCH_CPU_PROFILE

const nc = await connect({ servers: TEST_NATS_URL })
const jsm = await jetstreamManager(nc)
const database = uniqueName('wa_bench')
const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
await admin.connect()
await admin.query(`create database ${database}`)
const databaseUrl = databaseUrlFor(database)
const leaseBucket = uniqueName('bench_leases')
const membersBucket = uniqueName('bench_members')
const ledgerSubject = uniqueName('wa.bench.ledger')
const { ledger, stop: stopLedger } = serveLedger(nc, ledgerSubject)
const env = {
  NATS_URL: TEST_NATS_URL,
  DATABASE_URL: databaseUrl,
  LEASE_BUCKET: leaseBucket,
  MEMBERS_BUCKET: membersBucket,
  LEASE_TTL_MS: String(TTL_MS),
  TEST_LEDGER_SUBJECT: ledgerSubject,
  // Ownership on its own: the ledger transport stands for each company's connection.
  DISABLED_PLUGINS: ['session-pool', ...SOCKET_PLUGINS, 'rate-limit', 'reactions', 'metrics'].join(','),
  // Measured over NATS only; no HTTP client here.
  AUTH_MODE: 'off'
}
const children = new Map<string, ChildProcess>()
const ids = Array.from({ length: COMPANIES }, (_, index) => `bench-${index}`)
const benchIds = new Set(ids)
const held = () => ids.filter((id) => ledger.holderOf(id) !== undefined).length
/** Resolves once no connection has opened or closed for QUIET_MS since `since`: balancing has finished. */
const quiet = (since: number) =>
  waitFor(() => Date.now() - Math.max(since, ledger.entries.at(-1)?.at ?? 0) > QUIET_MS && held() === COMPANIES, SETTLE_TIMEOUT_MS, 50)

async function start (replica: string) {
  children.set(replica, await startReplicaProcess({ ...env, REPLICA_ID: replica }, undefined, benchNodeFlags()))
}

/** Time from `since` until each of `companies` opened again elsewhere. */
function takeoverTimes (companies: string[], since: number): number[] {
  return companies.map((id) =>
    (ledger.entries.find((entry) => entry.kind === 'open' && entry.companyId === id && entry.at >= since)?.at ?? Infinity) - since)
}

/** Resident memory of each live replica process, in MB. */
const rssOf = (): number[] => [...children.values()].map((child) => rssMbOf(child.pid))

function split (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const replica of children.keys()) counts[replica] = ledger.openBy(replica).filter((id) => benchIds.has(id)).length
  return counts
}

function maxDeviationPct (counts: Record<string, number>): number {
  const values = Object.values(counts)
  const mean = COMPANIES / values.length
  return Math.max(...values.map((value) => Math.abs(value - mean) / mean * 100))
}

try {
  const migrated = spawnSync(process.execPath, ['plugins/migrate.ts'], { env: serviceEnv(env), encoding: 'utf8' })
  if (migrated.status !== 0) throw new Error(`migrations failed: ${migrated.stderr}${migrated.stdout}`)
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  await db.query("insert into sessions (company_id, desired_state) select unnest($1::text[]), 'online'", [ids])
  await db.end()

  log(`bench:failover — ${REPLICAS} replica processes, ${COMPANIES} companies, lease TTL ${TTL_MS} ms, NATS ${TEST_NATS_URL}`)
  const coldStartAt = Date.now()
  // `bench` is this process: it answers the test transport's ledger for every replica.
  const cpuBefore = { nats: cpuMsOfAll('nats-server'), postgres: cpuMsOfAll('postgres'), bench: ownCpuMs() }
  await Promise.all(Array.from({ length: REPLICAS }, (_, index) => start(`bench-r${index + 1}`)))
  const processesUpMs = Date.now() - coldStartAt
  if (!await waitFor(() => held() === COMPANIES, SETTLE_TIMEOUT_MS, 20)) {
    throw new Error(`only ${held()} of ${COMPANIES} held after cold start`)
  }
  const coldStartMs = Date.now() - coldStartAt
  // Where the cold start's CPU went (s): on a small machine their sum over its duration shows whether CPU bounds it.
  const coldCpu = {
    replicas: [...children.values()].reduce((sum, child) => sum + cpuMsOf(child.pid), 0) / 1000,
    nats: (cpuMsOfAll('nats-server') - cpuBefore.nats) / 1000,
    postgres: (cpuMsOfAll('postgres') - cpuBefore.postgres) / 1000,
    bench: (ownCpuMs() - cpuBefore.bench) / 1000
  }
  log(`cold start CPU: ${Object.entries(coldCpu).map(([name, s]) => `${name} ${s.toFixed(1)} s`).join(', ')} ` +
    `in ${(coldStartMs / 1000).toFixed(1)} s on ${availableParallelism()} cores`)
  // How holding grew: companies held (first opens) at each tenth of the cold start, from spawning.
  const firstOpens = [...new Map(ledger.entries.filter((entry) => entry.kind === 'open').reverse()
    .map((entry) => [entry.companyId, entry.at])).values()]
  const tenths = Array.from({ length: 10 }, (_, index) =>
    firstOpens.filter((at) => at - coldStartAt <= (index + 1) * coldStartMs / 10).length)
  log(`held at each tenth of the cold start: ${tenths.join(', ')}`)
  await quiet(Date.now())
  const coldSplit = split()
  // Connections opened beyond one per company: companies first taken by a replica they do not prefer, then handed over.
  const coldMoves = ledger.entries.filter((entry) => entry.kind === 'open' && benchIds.has(entry.companyId)).length - COMPANIES
  log(`cold start: all ${COMPANIES} held ${coldStartMs} ms after spawning (processes listening after ${processesUpMs} ms); ` +
    `${coldMoves} moved to their preferred replica afterwards`)
  log(`split: ${JSON.stringify(coldSplit)}, max deviation ${maxDeviationPct(coldSplit).toFixed(1)} %`)

  // The upkeep of ownership once nothing changes hands: every write to the record and member buckets.
  const ownershipWrites = async () => {
    let total = 0
    for (const bucket of [leaseBucket, membersBucket]) total += (await jsm.streams.info(`KV_${bucket}`)).state.last_seq
    return total
  }
  const before = await ownershipWrites()
  const windowStart = Date.now()
  await new Promise((resolve) => setTimeout(resolve, RENEWAL_WINDOW_MS))
  const renewOpsPerS = (await ownershipWrites() - before) / ((Date.now() - windowStart) / 1000)
  // One heartbeat per replica RENEWALS_PER_TTL times per TTL; a lease per company renewed as often would be the second figure.
  const expectedRenewOpsPerS = RENEWALS_PER_TTL * REPLICAS / (TTL_MS / 1000)
  const perCompanyLeaseOpsPerS = RENEWALS_PER_TTL * COMPANIES / (TTL_MS / 1000)
  log(`renewals: ${renewOpsPerS.toFixed(1)} KV writes/s in steady state (${RENEWALS_PER_TTL} heartbeats per replica per TTL = ` +
    `${expectedRenewOpsPerS.toFixed(1)}; a lease per company would be ${perCompanyLeaseOpsPerS.toFixed(0)})`)
  const rss = rssOf()
  const perReplica = (COMPANIES / REPLICAS).toFixed(0)
  log(`memory: ${rss.map((mb) => `${mb.toFixed(0)} MB`).join(', ')} RSS per replica holding ${perReplica} companies on average`)

  // SIGKILL: the process dies; WhatsApp sees its sockets drop; the others must wait out the TTL.
  const victim = 'bench-r1'
  const victimCompanies = ledger.openBy(victim)
  const killedAt = Date.now()
  children.get(victim)!.kill('SIGKILL')
  ledger.dropReplica(victim)
  children.delete(victim)
  if (!await waitFor(() => victimCompanies.every((id) => ledger.holderOf(id) !== undefined), TTL_MS * 5, 10)) {
    throw new Error('SIGKILL takeover did not finish')
  }
  const sigkill = takeoverTimes(victimCompanies, killedAt)
  log(`SIGKILL of ${victim} (${victimCompanies.length} companies): ` +
    `takeover p50 ${percentile(sigkill, 50)} ms, p99 ${percentile(sigkill, 99)} ms, max ${Math.max(...sigkill)} ms`)

  // A replacement joins and receives its share.
  const joinAt = Date.now()
  const joiner = `bench-r${REPLICAS + 1}`
  await start(joiner)
  await quiet(Date.now())
  const joinMoves = ledger.entries.filter((entry) => entry.kind === 'open' && entry.at >= joinAt).length
  log(`join of ${joiner}: balanced ${ledger.entries.at(-1)!.at - joinAt} ms after spawning, ` +
    `${joinMoves} companies moved; split ${JSON.stringify(split())}`)

  // SIGTERM: a graceful stop hands every company off.
  const leaver = 'bench-r2'
  const leaverCompanies = ledger.openBy(leaver)
  const termAt = Date.now()
  const exited = exitOf(children.get(leaver)!)
  children.get(leaver)!.kill('SIGTERM')
  const exitCode = await exited
  children.delete(leaver)
  if (!await waitFor(() => leaverCompanies.every((id) => ledger.holderOf(id) !== undefined), TTL_MS * 5, 10)) {
    throw new Error('SIGTERM handoff did not finish')
  }
  const sigterm = takeoverTimes(leaverCompanies, termAt)
  log(`SIGTERM of ${leaver} (${leaverCompanies.length} companies, exit ${exitCode}): ` +
    `handoff p50 ${percentile(sigterm, 50)} ms, p99 ${percentile(sigterm, 99)} ms, max ${Math.max(...sigterm)} ms`)

  const sigkillP99 = percentile(sigkill, 99)
  const sigtermP99 = percentile(sigterm, 99)
  const summary = {
    ttl_ms: TTL_MS,
    replicas: REPLICAS,
    companies: COMPANIES,
    cold_start_ms: coldStartMs,
    cold_start_processes_up_ms: processesUpMs,
    ...Object.fromEntries(Object.entries(coldCpu).map(([name, seconds]) => [`cold_start_cpu_s_${name}`, Number(seconds.toFixed(1))])),
    split_max_dev_pct: Number(maxDeviationPct(coldSplit).toFixed(1)),
    cold_start_moves: coldMoves,
    sigkill_p50_ms: percentile(sigkill, 50),
    sigkill_p99_ms: sigkillP99,
    sigkill_max_ms: Math.max(...sigkill),
    sigterm_p50_ms: percentile(sigterm, 50),
    sigterm_p99_ms: sigtermP99,
    sigterm_max_ms: Math.max(...sigterm),
    overlaps: ledger.overlaps.length,
    renew_writes_per_s: Number(renewOpsPerS.toFixed(1)),
    rss_mb_per_replica: Number((rss.reduce((sum, mb) => sum + mb, 0) / rss.length).toFixed(1)),
    // Ratios against this run's own baselines: ≤ 1 meets the target.
    sigkill_p99_vs_ttl_plus_1s: Number((sigkillP99 / (TTL_MS + 1000)).toFixed(3)),
    sigterm_p99_vs_1s: Number((sigtermP99 / 1000).toFixed(3)),
    renew_writes_vs_expected: Number((renewOpsPerS / expectedRenewOpsPerS).toFixed(3))
  }
  const met = summary.sigkill_p99_vs_ttl_plus_1s <= 1 && summary.sigterm_p99_vs_1s <= 1 &&
    summary.split_max_dev_pct <= 10 && summary.overlaps === 0
  log(`targets: SIGKILL p99 ≤ TTL + 1 s, SIGTERM p99 ≤ 1 s, split within ±10 %, 0 overlaps — ${met ? 'all met' : 'NOT all met'}`)
  log(JSON.stringify(summary))
} finally {
  // A profile is written only by a process that ends on its own.
  await Promise.all([...children.values()].map((child) => {
    const exited = exitOf(child)
    child.kill(PROFILE_DIR ? 'SIGTERM' : 'SIGKILL')
    return exited
  }))
  stopLedger()
  for (const bucket of [leaseBucket, membersBucket]) await jsm.streams.delete(`KV_${bucket}`).catch(() => {})
  await nc.close()
  await admin.query(`drop database if exists ${database} with (force)`)
  await admin.end()
}
