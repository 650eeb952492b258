/**
 * bench:capacity — how many linked numbers one replica carries, with real traffic, before it falls
 * behind. One gateway replica process (real Baileys) and the WhatsApp simulator in a process of its own
 * (`simulator/main.ts`), on the machine's NATS and PostgreSQL (a database and namespace of the bench's
 * own, removed at the end). For each step N of BENCH_CAPACITY_STEPS (default 1000,2500,5000), the same
 * replica links companies up to N (through the gateway's NATS API: initialize → QR → the simulator's
 * /scan → `connected`, BENCH_LINK_CONCURRENCY at a time), each newly linked company exchanges one
 * message with its contact (Signal sessions set up, not measured), then traffic runs for
 * BENCH_TRAFFIC_MS: every company receives one message a minute (its contact writes through the
 * simulator's control API) and sends one a minute (a NATS request on its send command), spread evenly
 * over the minute; receipts flow both ways by themselves.
 *
 * Per N: the replica's RSS (/proc) and heap (its /metrics), its CPU share of one core over the traffic
 * window (/proc utime+stime ÷ wall time), its event-loop delay p99 (prom-client's
 * nodejs_eventloop_lag_p99_seconds, read every LOOP_SCRAPE_MS, each read covering the time since the
 * last: the worst is reported), send latency p50/p99 (request → reply, client side), inbound latency p99
 * (the simulator's POST → the `message` event on `<ns>.evt.<companyId>.message`) and lost (sends that
 * failed or got no reply; inbound messages whose event did not come within 30 s).
 * Goals at each N: RSS ≤ 4 GB, loop delay p99 ≤ 50 ms, send p99 ≤ 250 ms, inbound p99 ≤ 250 ms, 0 lost.
 * BENCH_NODE_FLAGS (space-separated) are added to the replica's Node flags after the gateway's own, so a
 * flag given there wins (e.g. `--max-semi-space-size=16`, or `--heapsnapshot-signal=SIGWINCH` to take heap
 * snapshots of the replica with `kill -WINCH <pid>`: not SIGUSR2, on which the gateway shuts down).
 * A bench reports and does not fail; the last line is one JSON object.
 */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient } from '../contracts/client.ts'
import { subjectsFor } from '../contracts/subjects.ts'
import { benchNodeFlags, cpuMsOf, exitOf, type ReplicaProcess, rssMbOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { TEST_NATS_URL } from '../test/helpers/services.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { cpuBySteps } from './cpu-steps.ts'
import { benchDeployment, simulatorProcess } from './deployment.ts'
import { log, percentile, round } from './report.ts'

/**
 * BENCH_STEPS_PROFILE=<dir>: the replica runs with its inspector open and each step's traffic window is
 * CPU-profiled (the profile kept in that dir, the shares by step logged). Off by default: sampling
 * weighs on the figures.
 */
const PROFILE = Boolean(process.env.BENCH_STEPS_PROFILE)
const EXTRA_NODE_FLAGS = [
  ...(process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean),
  ...(PROFILE ? ['--inspect=127.0.0.1:0'] : [])
]
const STEPS = (process.env.BENCH_CAPACITY_STEPS ?? '1000,2500,5000').split(',').map(Number).filter((n) => n > 0)
const TRAFFIC_MS = Number(process.env.BENCH_TRAFFIC_MS ?? 120_000)
const LINK_CONCURRENCY = Number(process.env.BENCH_LINK_CONCURRENCY ?? 20)
const WARMUP_CONCURRENCY = 16
const MINUTE_MS = 60_000
const LINK_TIMEOUT_MS = 120_000
const REQUEST_TIMEOUT_MS = 30_000
/** An inbound message whose event has not come this long after it was written is lost. */
const INBOUND_LOST_MS = 30_000
const LOOP_SCRAPE_MS = 5_000
const GOALS = { rssMb: 4_096, loopP99Ms: 50, sendP99Ms: 250, inboundP99Ms: 250 }
const phoneOf = (index: number) => String(79_000_000_000 + index)
const contactOf = (index: number) => String(79_500_000_000 + index)
const idOf = (index: number) => `cap-${index}`

// Everything started, to stop at the end or on a signal.
const children = new Set<ChildProcess>()
const stopChildren = async (signal: NodeJS.Signals) => {
  await Promise.all([...children].map((child) => {
    const exited = exitOf(child)
    child.kill(signal)
    const late = setTimeout(() => child.kill('SIGKILL'), 30_000)
    return exited.finally(() => clearTimeout(late))
  }))
}
/** Set once the deployment exists: what a signal does before exiting (the steps measured so far are reported). */
let onSignal = async () => { await stopChildren('SIGKILL') }
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the replica and the simulator`)
    void onSignal().finally(() => process.exit(130))
  })
}

/** Runs `total` calls of `work` with `concurrency` in flight; returns the failures. */
async function pool (total: number, concurrency: number, work: (index: number) => Promise<unknown>): Promise<number> {
  let next = 0
  let errors = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const index = next++
      await work(index).catch((err: unknown) => {
        if (errors++ < 5) log(`  failed: ${(err as Error).message}`)
      })
    }
  }))
  return errors
}

// The simulator in its own process, on free ports.
const { child: simulator, controlUrl, replicaEnv: onSimulatorProcess } = await simulatorProcess()
children.add(simulator)
const control = async (path: string, body: unknown): Promise<void> => {
  const response = await fetch(`${controlUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  if (!response.ok) throw new Error(`simulator ${path}: ${response.status} ${await response.text()}`)
  await response.arrayBuffer()
}

const deployment = await benchDeployment('capacity')
const { namespace } = deployment
const nc = await connect({ servers: TEST_NATS_URL })
const client = createGatewayClient(nc, { timeoutMs: REQUEST_TIMEOUT_MS, namespace })
const subjects = subjectsFor(namespace)

const connectedAt = new Map<string, number>()
nc.subscribe(subjects.event('*', 'connected'), {
  callback: (_err, msg) => { connectedAt.set(msg.subject.split('.')[2]!, performance.now()) }
})
/** Inbound messages written by the bench and not yet seen as events: message id → when it was written. */
const inboundPending = new Map<string, number>()
let inboundLatencies: number[] = []
nc.subscribe(subjects.event('*', 'message'), {
  callback: (_err, msg) => {
    const now = performance.now()
    const messageId = (msg.json<{ data?: { messageId?: string } }>()).data?.messageId
    const at = messageId === undefined ? undefined : inboundPending.get(messageId)
    if (at === undefined) return
    inboundPending.delete(messageId!)
    inboundLatencies.push(now - at)
  }
})
await nc.flush()

let replica: ReplicaProcess | undefined
type Row = Record<string, number | null>
const summary: { by_n: Record<string, Row>, max_n_within_goals: number | null } = { by_n: {}, max_n_within_goals: null }
onSignal = async () => {
  await stopChildren('SIGKILL')
  await deployment.remove().catch(() => {})
  log(JSON.stringify(summary))
}
let inboundSeq = 0
/** A contact writes to company `index`; the message's id is known beforehand so its event can be matched. */
async function writeIn (index: number, track: boolean): Promise<void> {
  const id = `CAP${process.pid.toString(16).toUpperCase()}X${(inboundSeq++).toString(16).toUpperCase()}`
  if (track) inboundPending.set(id, performance.now())
  await control(`/contacts/${contactOf(index)}/messages`, { to: phoneOf(index), text: `Добрый день! Вопрос №${inboundSeq}`, id })
}
const sendOut = (index: number, text: string) => client.send(idOf(index), { phone: contactOf(index), message: text })

/** The replica's Prometheus metrics (AUTH_MODE off: no credentials), by name and by name{labels}. */
async function metrics (): Promise<Map<string, number>> {
  const text = await (await fetch(`${replica!.url}/metrics`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).text()
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z0-9_:]+)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$/.exec(line)
    if (!match) continue
    // By name (its first series) and by name with labels.
    if (!values.has(match[1]!)) values.set(match[1]!, Number(match[3]))
    if (match[2]) values.set(`${match[1]}${match[2]}`, Number(match[3]))
  }
  return values
}

/** The companies linked so far (their indices): traffic goes to these; one that failed to link is counted in link_failures. */
const linkedCompanies: number[] = []
async function link (index: number): Promise<void> {
  const id = idOf(index)
  const init = await client.initialize(id)
  if (init.status !== 'qr') throw new Error(`${id}: no QR (${init.status})`)
  await control('/scan', { qr: String(init.qr), phone: phoneOf(index) })
  if (!await waitFor(() => connectedAt.has(id), LINK_TIMEOUT_MS, 20)) throw new Error(`${id}: not connected`)
  linkedCompanies.push(index)
}

try {
  replica = await startReplicaProcess({
    ...deployment.env,
    REPLICA_ID: 'capacity-r1',
    WA_TRANSPORT: 'baileys',
    ...onSimulatorProcess,
    WA_VERSION: '2.3000.1023223821',
    NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('../simulator/tls/ca.pem', import.meta.url)),
    // A bench measures the path: the budgets are out of the way.
    MESSAGES_PER_MINUTE: '100000',
    NUMBER_CHECKS_PER_MINUTE: '100000',
    API_RATE_LIMIT_MAX: '10000000',
    MAX_COMPANIES: '1000000',
    // Info: a replica says where it listens at that level.
    LOG_LEVEL: process.env.BENCH_REPLICA_LOG_LEVEL ?? 'info'
  }, process.env.BENCH_VERBOSE ? (line) => { process.stderr.write(line) } : undefined, [...benchNodeFlags(), ...EXTRA_NODE_FLAGS])
  children.add(replica)
  const pid = replica.pid
  log(`bench:capacity — steps ${STEPS.join(', ')}, traffic ${TRAFFIC_MS} ms per step, link concurrency ${LINK_CONCURRENCY}, ` +
    `node flags ${[...benchNodeFlags(), ...EXTRA_NODE_FLAGS].join(' ')}; ` +
    `replica pid ${pid} at ${replica.url}, simulator at ${controlUrl}; idle RSS ${round(rssMbOf(pid), 1)} MB`)

  let tried = 0
  for (const target of STEPS) {
    // Link up to N, then one message each way per new company (Signal sessions set up; not measured).
    const linkStarted = performance.now()
    const from = tried
    const linkedBefore = linkedCompanies.length
    const linkFailures = await pool(target - from, LINK_CONCURRENCY, (offset) => link(from + offset))
    tried = target
    const linkS = (performance.now() - linkStarted) / 1000
    const warmStarted = performance.now()
    const fresh = linkedCompanies.slice(linkedBefore)
    const warmFailures = await pool(fresh.length, WARMUP_CONCURRENCY, async (offset) => {
      await sendOut(fresh[offset]!, 'Здравствуйте! Это первая запись.')
      await writeIn(fresh[offset]!, false)
    })
    log(`N=${target}: linked ${target - from - linkFailures}/${target - from} new companies in ${round(linkS, 1)} s ` +
      `(${round(linkS * 1000 / Math.max(1, target - from), 0)} ms each at concurrency ${LINK_CONCURRENCY}), ` +
      `warm-up exchange in ${round((performance.now() - warmStarted) / 1000, 1)} s (${warmFailures} failed); ` +
      `RSS ${round(rssMbOf(pid), 1)} MB`)
    await sleep(2_000)

    // Traffic: each company gets one message a minute and sends one, at offsets spread over the minute.
    inboundLatencies = []
    inboundPending.clear()
    const sendLatencies: number[] = []
    let sendsLost = 0
    let inboundFailed = 0
    let sends = 0
    let inbound = 0
    const plan: { at: number, index: number, out: boolean }[] = []
    for (const [position, index] of linkedCompanies.entries()) {
      const offset = (position / linkedCompanies.length) * MINUTE_MS
      for (let at = offset; at < TRAFFIC_MS; at += MINUTE_MS) plan.push({ at, index, out: false })
      for (let at = (offset + MINUTE_MS / 2) % MINUTE_MS; at < TRAFFIC_MS; at += MINUTE_MS) plan.push({ at, index, out: true })
    }
    plan.sort((a, b) => a.at - b.at)
    const loopP99s: number[] = []
    // Garbage collection over the window (prom-client's nodejs_gc_duration_seconds): time spent, by kind.
    const gcSeconds = (values: Map<string, number>, kind: string) => values.get(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`) ?? 0
    const gcCount = (values: Map<string, number>, kind: string) => values.get(`nodejs_gc_duration_seconds_count{kind="${kind}"}`) ?? 0
    const before = await metrics() // also resets the loop-delay histogram: the first read covers the traffic only
    const scraping = { on: true }
    const scraper = (async () => {
      while (scraping.on) {
        await sleep(LOOP_SCRAPE_MS)
        const p99 = (await metrics().catch(() => undefined))?.get('nodejs_eventloop_lag_p99_seconds')
        if (p99 !== undefined && Number.isFinite(p99)) loopP99s.push(p99 * 1000)
      }
    })()
    const cpuBefore = cpuMsOf(pid)
    const started = performance.now()
    const inFlight: Promise<unknown>[] = []
    const runTraffic = async () => {
      for (const item of plan) {
        const wait = started + item.at - performance.now()
        if (wait > 1) await sleep(wait)
        if (item.out) {
          sends++
          const t0 = performance.now()
          inFlight.push(sendOut(item.index, `Напоминание: завтра в 10:00 (№${sends})`).then(
            () => { sendLatencies.push(performance.now() - t0) },
            (err: unknown) => { if (sendsLost++ < 5) log(`  send failed: ${(err as Error).message}`) }))
        } else {
          inbound++
          inFlight.push(writeIn(item.index, true).catch((err: unknown) => {
            if (inboundFailed++ < 5) log(`  inbound write failed: ${(err as Error).message}`)
          }))
        }
      }
      if (performance.now() - started < TRAFFIC_MS) await sleep(started + TRAFFIC_MS - performance.now())
    }
    if (PROFILE) {
      const shares = await cpuBySteps(replica.inspectorUrl!, runTraffic)
      log(`  CPU by step over the window: ${[...shares].map(([step, share]) => `${step} ${round(share * 100, 1)}%`).join(', ')}`)
    } else {
      await runTraffic()
    }
    const wallMs = performance.now() - started
    const cpuPct = (cpuMsOf(pid) - cpuBefore) / wallMs * 100
    scraping.on = false
    await scraper
    const after = await metrics().catch(() => new Map<string, number>())
    const rssMb = rssMbOf(pid)
    await Promise.all(inFlight)
    await waitFor(() => inboundPending.size === 0, INBOUND_LOST_MS, 100)
    // Lost: never seen, or seen later than INBOUND_LOST_MS after it was written.
    const inboundLost = inboundPending.size + inboundFailed + inboundLatencies.filter((ms) => ms > INBOUND_LOST_MS).length
    const lost = sendsLost + inboundLost
    const gc = Object.fromEntries(['major', 'minor', 'incremental'].map((kind) => [kind, {
      ms: round((gcSeconds(after, kind) - gcSeconds(before, kind)) * 1000, 0),
      count: gcCount(after, kind) - gcCount(before, kind)
    }]))
    const row = {
      rss_mb: round(rssMb, 1),
      heap_mb: after.has('nodejs_heap_size_used_bytes') ? round(after.get('nodejs_heap_size_used_bytes')! / 2 ** 20, 1) : null,
      cpu_pct: round(cpuPct, 1),
      loop_delay_p99_ms: loopP99s.length > 0 ? round(Math.max(...loopP99s), 1) : null,
      loop_delay_p99_median_read_ms: loopP99s.length > 0 ? round(percentile(loopP99s, 50), 1) : null,
      send_p50_ms: round(percentile(sendLatencies, 50), 1),
      send_p99_ms: round(percentile(sendLatencies, 99), 1),
      inbound_p50_ms: round(percentile(inboundLatencies, 50), 1),
      inbound_p99_ms: round(percentile(inboundLatencies, 99), 1),
      lost,
      sends,
      inbound,
      link_s: round(linkS, 1),
      link_failures: linkFailures,
      gc_major_ms: gc.major!.ms,
      gc_major_count: gc.major!.count,
      gc_minor_ms: gc.minor!.ms
    }
    summary.by_n[String(target)] = row
    const met = rssMb <= GOALS.rssMb && (row.loop_delay_p99_ms ?? Infinity) <= GOALS.loopP99Ms &&
      row.send_p99_ms <= GOALS.sendP99Ms && row.inbound_p99_ms <= GOALS.inboundP99Ms && lost === 0 && linkFailures === 0
    if (met) summary.max_n_within_goals = Math.max(summary.max_n_within_goals ?? 0, target)
    log(`N=${target}: ${sends} sends, ${inbound} inbound over ${round(wallMs / 1000, 1)} s; RSS ${row.rss_mb} MB ` +
      `(${round(rssMb / target, 3)} MB per company), heap ${row.heap_mb} MB, CPU ${row.cpu_pct}% of a core, ` +
      `loop delay p99 ${row.loop_delay_p99_ms} ms (worst of ${loopP99s.length} reads, ` +
      `${row.loop_delay_p99_median_read_ms} ms their median), ` +
      `send p50/p99 ${row.send_p50_ms}/${row.send_p99_ms} ms, ` +
      `inbound p50/p99 ${row.inbound_p50_ms}/${row.inbound_p99_ms} ms, lost ${lost} (${sendsLost} sends, ${inboundLost} inbound) — ` +
      `goals ${met ? 'met' : 'NOT met'}`)
    log(`  loop delay p99 per ${LOOP_SCRAPE_MS / 1000} s read, ms: ${loopP99s.map((ms) => round(ms, 0)).join(' ')}; ` +
      `GC over the window: ${Object.entries(gc).map(([kind, { ms, count }]) => `${kind} ${count}× ${ms} ms`).join(', ')}`)
  }
} catch (err) {
  log(`stopped: ${(err as Error).stack ?? String(err)}`)
} finally {
  await stopChildren('SIGTERM')
  await nc.drain().catch(() => {})
  await deployment.remove()
}
log(JSON.stringify(summary))
process.exit(0)
