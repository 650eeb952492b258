/**
 * bench:sessions — links N sessions of real Baileys (7.0.0-rc14) in one gateway process against the
 * simulator (N = 50, then 200), through the gateway's own API over NATS, and measures:
 * - memory per live session: RSS and heap of the gateway process after two full collections,
 *   against the same process with no session (the baseline, measured first in the same run);
 * - link time: initialize → QR → scan → `connected` event, per company;
 * - send throughput over NATS request/reply through the holder, against a bare NATS echo responder
 *   measured in the same run at the same concurrency;
 * - bare Baileys linking the same number of devices against the same simulator, in the same run, as
 *   the baseline of the gateway's link time (`link_p50_ratio`, gateway ÷ bare; the goal is ≤ 2);
 * - idle memory: the RSS of `npm start` as a user runs it (node --import ./core/telemetry.ts
 *   plugins/server.ts) against external NATS and PostgreSQL, holding no company, once settled.
 * The WhatsApp budgets are raised out of the way. The last line is a JSON summary.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import pino from 'pino'
import makeWASocket, { initAuthCreds, WA_CERT_DETAILS, type WASocket } from '@whiskeysockets/baileys'
import { createGatewayClient } from '../contracts/client.ts'
import { memoryKeys } from '../test/helpers/simulator.ts'
import { subjectsFor } from '../contracts/subjects.ts'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { databaseUrlFor, serviceEnv, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../test/helpers/services.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchNodeFlags, exitOf, rssMbOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../core/node-flags.ts'
import { log, percentile, round } from './report.ts'

const STEPS = (process.env.BENCH_SESSIONS ?? '50,200').split(',').map(Number)
const LINK_CONCURRENCY = Number(process.env.BENCH_LINK_CONCURRENCY ?? 10)
const SEND_CONCURRENCY = 16
const SENDS = Number(process.env.BENCH_SENDS ?? 2_000)
const CONTACTS_PER_COMPANY = 2
const WA_VERSION = '2.3000.1023223821'
const STEP_TIMEOUT_MS = 120_000
const REQUEST_TIMEOUT_MS = 30_000
const MB = 1024 * 1024
/** After start, the idle process is left this long before its memory is read (start-up work settles). */
const IDLE_SETTLE_MS = 10_000

/** Runs `total` calls of `work` with `concurrency` in flight; returns calls per second and failures. */
async function throughput (total: number, concurrency: number, work: (index: number) => Promise<unknown>) {
  let next = 0
  let errors = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const index = next++
      await work(index).catch(() => { errors++ })
    }
  }))
  return { rps: total / ((performance.now() - started) / 1000), errors }
}

const simulator = new WhatsAppSimulator()
const { url } = await simulator.start()
const nc = await connect({ servers: TEST_NATS_URL })
const jsm = await jetstreamManager(nc)
const namespace = uniqueName('bench')
const eventsStream = uniqueName('BENCH_EVENTS')
const client = createGatewayClient(nc, { timeoutMs: REQUEST_TIMEOUT_MS, namespace })
const database = uniqueName('wa_bench_sessions')
const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
await admin.connect()
await admin.query(`create database ${database}`)
const leaseBucket = uniqueName('bench_leases')
const membersBucket = uniqueName('bench_members')

const gateway: ChildProcess = fork('bench/sessions-gateway.ts', {
  execArgv: ['--expose-gc', ...benchNodeFlags()],
  env: serviceEnv({
    NATS_URL: TEST_NATS_URL,
    DATABASE_URL: databaseUrlFor(database),
    LEASE_BUCKET: leaseBucket,
    MEMBERS_BUCKET: membersBucket,
    REPLICA_ID: 'bench-gateway',
    NATS_NAMESPACE: namespace,
    EVENTS_STREAM: eventsStream,
    LOG_LEVEL: 'warn',
    WA_TRANSPORT: 'baileys',
    WA_WS_URL: url,
    WA_VERSION,
    WA_CERT_PUBLIC_KEY: simulator.identity.publicKeyHex,
    // The bench sends far above WhatsApp's 30 messages per minute per company; the budgets would refuse it.
    MESSAGES_PER_MINUTE: '100000'
  }),
  // The gateway's own log would drown the figures; BENCH_VERBOSE=1 shows it.
  stdio: ['ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore', 'inherit', 'ipc']
})
const fromGateway = <T>(type: string) => new Promise<T>((resolve, reject) => {
  const onMessage = (message: { type: string }) => {
    if (message.type !== type) return
    gateway.off('message', onMessage)
    resolve(message as T)
  }
  gateway.on('message', onMessage)
  gateway.once('exit', (code) => reject(new Error(`the gateway exited with ${code}`)))
})
type Memory = {
  rss: number,
  heapUsed: number,
  heapTotal: number,
  external: number,
  arrayBuffers: number,
  sessions: number,
  /** V8 heap spaces: [size, used] in MB. */
  spaces: Record<string, [number, number]>
}
const spacesOf = (memory: Memory) => Object.entries(memory.spaces).filter(([, [size]]) => size > 0)
  .map(([name, [size, used]]) => `${name} ${used}/${size}`).join(', ')
const measure = async () => {
  const answer = fromGateway<Memory>('memory')
  gateway.send({ type: 'measure' })
  return answer
}

/** `npm start` against the test services, holding nothing: its resident memory once settled, in MB. */
async function idleRssMb (compileCache: string): Promise<number> {
  const idleDatabase = uniqueName('wa_bench_idle')
  const idleNamespace = uniqueName('idle')
  await admin.query(`create database ${idleDatabase}`)
  const child = await startReplicaProcess({
    ...GATEWAY_ENV,
    NATS_URL: TEST_NATS_URL,
    DATABASE_URL: databaseUrlFor(idleDatabase),
    NATS_NAMESPACE: idleNamespace,
    EVENTS_STREAM: `${idleNamespace.toUpperCase()}_EVENTS`,
    ADMIN_API_KEY: `bench-idle-${'k'.repeat(32)}`,
    NODE_COMPILE_CACHE: compileCache
  }, undefined, [...GATEWAY_NODE_FLAGS, '--import', './core/telemetry.ts'])
  try {
    await sleep(IDLE_SETTLE_MS)
    return rssMbOf(child.pid)
  } finally {
    child.kill('SIGTERM')
    await exitOf(child)
    for await (const stream of jsm.streams.list()) {
      if (stream.config.name.toLowerCase().includes(idleNamespace.toLowerCase())) await jsm.streams.delete(stream.config.name)
    }
    await admin.query(`drop database if exists ${idleDatabase} with (force)`)
  }
}
/**
 * One device linked by bare Baileys, as an application without the gateway does it: QR, scan, the
 * restart WhatsApp asks for (515), the connection open again. Resolves with the time it took and the socket.
 */
function bareLink (phone: string): Promise<{ ms: number, socket: WASocket }> {
  const creds = initAuthCreds()
  const keys = memoryKeys()
  const started = performance.now()
  const open = () => makeWASocket({
    auth: { creds, keys },
    waWebSocketUrl: url,
    version: WA_VERSION.split('.').map(Number) as [number, number, number],
    logger: pino({ level: 'silent' }) as never,
    markOnlineOnConnect: false,
    fireInitQueries: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: () => false
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare link of ${phone} took over ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS)
    const linking = open()
    linking.ev.on('creds.update', (update) => Object.assign(creds, update))
    linking.ev.on('connection.update', (update) => {
      if (update.qr) simulator.scan(update.qr, phone)
      if (update.connection !== 'close') return
      const live = open()
      live.ev.on('creds.update', (next) => Object.assign(creds, next))
      live.ev.on('connection.update', (next) => {
        if (next.connection !== 'open') return
        clearTimeout(timer)
        resolve({ ms: performance.now() - started, socket: live })
      })
    })
  })
}

/** Bare Baileys links `count` devices, `LINK_CONCURRENCY` at a time: the link times' median, in ms. */
async function bareLinkP50 (count: number): Promise<number> {
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(simulator.identity.publicKeyHex, 'hex') as unknown as typeof WA_CERT_DETAILS.PUBLIC_KEY
  const times: number[] = []
  const sockets: WASocket[] = []
  await throughput(count, LINK_CONCURRENCY, async (index) => {
    const linked = await bareLink(String(79_100_000_000 + index))
    times.push(linked.ms)
    sockets.push(linked.socket)
  })
  for (const socket of sockets) socket.end(undefined)
  return percentile(times, 50)
}

const bareP50 = await bareLinkP50(STEPS[0])
log(`bare Baileys, ${STEPS[0]} devices linked ${LINK_CONCURRENCY} at a time: link p50 ${round(bareP50, 0)} ms`)

// As npm start runs it: the first start fills the compile cache, every later one reads it.
const compileCache = await mkdtemp(join(tmpdir(), 'wa-bench-compile-cache-'))
const idleRssFirstStart = await idleRssMb(compileCache)
const idleRss = await idleRssMb(compileCache)
await rm(compileCache, { recursive: true, force: true })
log(`npm start, idle (external NATS and PostgreSQL, no company): RSS ${round(idleRss, 1)} MB ` +
  `(${round(idleRssFirstStart, 1)} MB on the first start, before the compile cache is filled)`)

await fromGateway('ready')
const baseline = await measure()
log(`gateway with no session: RSS ${round(baseline.rss / MB, 1)} MB, heap ${round(baseline.heapUsed / MB, 1)} MB (${spacesOf(baseline)})`)
// The WhatsApp stack is loaded with the first session and shared by all: measured on its own, it
// separates what the first sessions pay once from what each one costs.
const stackLoaded = fromGateway('whatsapp-loaded')
gateway.send({ type: 'load-whatsapp' })
await stackLoaded
const withStack = await measure()
const stackRssMb = round((withStack.rss - baseline.rss) / MB, 1)
log('WhatsApp stack (Baileys, libsignal, protobufs), loaded once by the first session: ' +
  `RSS +${stackRssMb} MB, heap +${round((withStack.heapUsed - baseline.heapUsed) / MB, 1)} MB`)

const connectedAt = new Map<string, number>()
nc.subscribe(subjectsFor(namespace).event('*', 'connected'), {
  callback: (_err, msg) => { connectedAt.set(msg.subject.split('.')[2], performance.now()) }
})
await nc.flush()

const companies: { id: string, phone: string }[] = []
const linkTimes: number[] = []
let linkFailures = 0
const phoneOf = (index: number) => String(79_000_000_000 + index)
const contactOf = (company: number, contact: number) => String(79_500_000_000 + company * CONTACTS_PER_COMPANY + contact)
/** Messages all the contacts of all the companies have received so far. */
const receivedByContacts = () => companies.reduce((sum, _company, index) => {
  const contacts = Array.from({ length: CONTACTS_PER_COMPANY }, (_, contact) => simulator.received(contactOf(index, contact)).length)
  return sum + contacts.reduce((a, b) => a + b, 0)
}, 0)

async function link (index: number) {
  const id = `bench-${index}`
  const started = performance.now()
  const init = await client.initialize(id)
  if (init.status !== 'qr' || !simulator.scan(String(init.qr), phoneOf(index))) throw new Error(`${id}: no QR to scan (${init.status})`)
  if (!await waitFor(() => connectedAt.has(id), STEP_TIMEOUT_MS, 10)) throw new Error(`${id}: not connected`)
  linkTimes.push(connectedAt.get(id)! - started)
  companies.push({ id, phone: phoneOf(index) })
}

// The echo baseline: the same NATS request/reply path with a responder that does no work.
const echoSubject = uniqueName('bench.echo')
nc.subscribe(echoSubject, { callback: (_err, msg) => { msg.respond(msg.data) } })
await nc.flush()

const runs: Record<string, number>[] = []
let previous = withStack
for (const target of STEPS) {
  const from = companies.length
  const linked = await throughput(target - from, LINK_CONCURRENCY, (offset) => link(from + offset).catch((err: unknown) => {
    linkFailures++
    log(`link failed: ${(err as Error).message}`)
  }))
  if (linked.errors > 0 || companies.length !== target) log(`only ${companies.length} of ${target} linked`)
  // First message from each company to each of its contacts: device lists and Signal sessions are set up.
  await throughput(companies.length * CONTACTS_PER_COMPANY, SEND_CONCURRENCY, (index) => {
    const company = Math.floor(index / CONTACTS_PER_COMPANY)
    return client.send(companies[company].id, {
      phone: contactOf(company, index % CONTACTS_PER_COMPANY), message: 'Здравствуйте! Это первая запись.'
    })
  })
  const memory = await measure()
  const live = memory.sessions
  const echo = await throughput(SENDS, SEND_CONCURRENCY,
    () => nc.request(echoSubject, '{"phone":"79500000000","message":"x"}', { timeout: REQUEST_TIMEOUT_MS }))
  const receivedBefore = receivedByContacts()
  const sends = await throughput(SENDS, SEND_CONCURRENCY, (index) => {
    const company = index % companies.length
    return client.send(companies[company].id, {
      phone: contactOf(company, index % CONTACTS_PER_COMPANY), message: `Напоминание №${index}: завтра в 10:00`
    })
  })
  const deliveredAll = await waitFor(() => receivedByContacts() - receivedBefore === SENDS - sends.errors, STEP_TIMEOUT_MS)
  const run = {
    sessions: live,
    rss_mb: round(memory.rss / MB, 1),
    heap_mb: round(memory.heapUsed / MB, 1),
    rss_mb_per_session: round((memory.rss - baseline.rss) / MB / live, 3),
    rss_mb_per_session_over_stack: round((memory.rss - withStack.rss) / MB / live, 3),
    heap_mb_per_session: round((memory.heapUsed - baseline.heapUsed) / MB / live, 3),
    external_mb_per_session: round((memory.external - baseline.external) / MB / live, 3),
    heap_total_mb_per_session: round((memory.heapTotal - baseline.heapTotal) / MB / live, 3),
    // What each session added since the previous step: one-time costs (code paths compiled on first
    // use, heap growth) weigh on the first step's per-session figure.
    rss_mb_per_added_session: round((memory.rss - previous.rss) / MB / (live - previous.sessions), 3),
    heap_mb_per_added_session: round((memory.heapUsed - previous.heapUsed) / MB / (live - previous.sessions), 3),
    rss_ratio_to_baseline: round(memory.rss / baseline.rss),
    link_p50_ms: round(percentile(linkTimes, 50), 0),
    link_p99_ms: round(percentile(linkTimes, 99), 0),
    send_rps: round(sends.rps, 0),
    echo_rps: round(echo.rps, 0),
    send_ratio_to_echo: round(sends.rps / echo.rps, 3),
    send_errors: sends.errors,
    delivered_all: deliveredAll ? 1 : 0
  }
  runs.push(run)
  previous = memory
  log(`${live} sessions: RSS ${run.rss_mb} MB (${run.rss_mb_per_session} MB/session over the baseline), ` +
    `heap ${run.heap_mb} MB (${run.heap_mb_per_session} MB/session); ` +
    `${run.rss_mb_per_session_over_stack} MB RSS per session over the loaded WhatsApp stack; ` +
    `${run.rss_mb_per_added_session} MB RSS per session added in this step; link p50/p99 ${run.link_p50_ms}/${run.link_p99_ms} ms; ` +
    `send ${run.send_rps}/s at concurrency ${SEND_CONCURRENCY} = ${run.send_ratio_to_echo} × a bare NATS echo (${run.echo_rps}/s), ` +
    `${sends.errors} errors, every message decrypted by its contact: ${deliveredAll}`)
  log(`  V8 heap spaces at ${live} sessions, used/size MB: ${spacesOf(memory)}`)
}

const stopped = new Promise((resolve) => gateway.once('exit', resolve))
gateway.send({ type: 'stop' })
await stopped
await simulator.stop()
for (const stream of [`KV_${leaseBucket}`, `KV_${membersBucket}`, eventsStream]) await jsm.streams.delete(stream).catch(() => {})
await nc.drain()
await admin.query(`drop database if exists ${database} with (force)`)
await admin.end()
const last = runs.at(-1)!
const first = runs[0]
log(JSON.stringify({
  ...last,
  idle_rss_mb: round(idleRss, 1),
  whatsapp_stack_rss_mb: stackRssMb,
  idle_rss_mb_first_start: round(idleRssFirstStart, 1),
  link_p50_bare_ms: round(bareP50, 0),
  // The gateway's link time at the first step (the same number of devices as the bare run) over bare Baileys'.
  link_p50_ratio: round(first.link_p50_ms / bareP50),
  link_failures: linkFailures,
  runs
}))
