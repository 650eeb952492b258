/**
 * bench:chaos — a real deployment on this machine: three nats-server nodes clustered with JetStream
 * (NATS_REPLICAS=3), three gateway replica processes with real Baileys, one WhatsApp simulator, and
 * PostgreSQL behind a proxy that can be cut. COMPANIES linked companies; a client sends with
 * idempotency keys through random replicas and contacts write inbound messages, both all along; for
 * CHAOS_SECONDS, faults one after another: SIGKILL and SIGTERM of a replica, SIGKILL of a NATS node
 * (each restarted after a few seconds), a rolling restart (each replica in turn gets SIGTERM and is
 * started again, the next one only once it is ready) and one PostgreSQL outage. Then it counts what
 * the users of a gateway care about. The last line is one JSON object.
 *
 * Operators: while the faults go on, CHAOS_OPERATORS loops call initialize on linked companies through
 * random replicas, half of the calls with the company's own number (the body's `phoneNumber`), half
 * without. That reaches the holder: with a number it stores a pending pairing request and restarts the
 * session under the same lease; the session still has paired creds, so it ignores the request and logs in
 * with them again (no pairing code). Without a number the holder restarts only a session that is not
 * running (stopped, breaker open, reconnecting) and deletes any pending request. Neither unlinks a company,
 * so the loss counts keep their meaning, and the operators' restarts may only lengthen the unavailable
 * stretches. An answer offering a QR or a pairing code for a linked company is therefore not the operator's
 * doing but lost creds: it is counted (initialize_relink_offers, to be 0) and never scanned, and each company
 * must be connected at the end (not_connected_at_end, to be 0). The answers are counted by HTTP status.
 *
 * Overlaps are counted per linked device: the simulator records `replaced` when a device logs in while
 * another connection of the same device is live (simulator/connections.ts, LinkedDevices keyed by
 * `<phone>:<device>`). It knows nothing of replicas, so two sockets of one company on one replica, or from
 * two processes under one REPLICA_ID, count as surely as two replicas do. Nothing here is counted per replica.
 *
 * Stopped by SIGINT, SIGTERM or SIGHUP (or orphaned: `npm run` does not forward a SIGTERM to it), it stops
 * its own replicas, NATS nodes, simulator and proxy, drops its database, removes its temp dir and exits
 * non-zero (128 + the signal); a second signal kills its child processes at once. Only its own children:
 * the machine's nats-server is not touched.
 */
import { appendFileSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { constants as osConstants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import { startNatsCluster } from '../core/embedded/nats-cluster.ts'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { databaseUrlFor, TEST_ADMIN_DATABASE_URL, uniqueName } from '../test/helpers/services.ts'
import { startReplicaProcess, exitOf, type ReplicaProcess } from '../test/helpers/replica-process.ts'
import { TcpProxy } from '../test/helpers/tcp-proxy.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { log } from './report.ts'

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 120)
const COMPANIES = Number(process.env.CHAOS_COMPANIES ?? 30)
const TTL_MS = Number(process.env.LEASE_TTL_MS ?? 15_000)
const REPLICAS = 3
const FAULT_EVERY_MS = Number(process.env.CHAOS_FAULT_EVERY_MS ?? 10_000)
const RESTART_AFTER_MS = 3_000
const SEND_CONCURRENCY = 4
const INBOUND_EVERY_MS = 250
/** How long the client keeps retrying one send (same key) before it gives up on it. */
const SEND_GIVE_UP_MS = TTL_MS * 3
const BASE_PORT = Number(process.env.CHAOS_BASE_PORT ?? 3401)
/**
 * A fixed sequence of faults (kill-replica, term-replica, kill-nats[:<node>], postgres, rolling) for a
 * repeatable run; random by default.
 */
const FAULTS = process.env.CHAOS_FAULTS?.split(',').map((fault) => fault.trim()).filter(Boolean)
const unknownFault = FAULTS?.find((fault) => !/^(kill-replica|term-replica|kill-nats(:n\d+)?|postgres|rolling)$/.test(fault))
// A misspelt fault would silently run as a replica's SIGTERM.
if (unknownFault) throw new Error(`CHAOS_FAULTS: unknown fault ${unknownFault}`)
/** Operators calling initialize at once, each pausing about this long (0.5-1.5×) between calls. */
const OPERATORS = Number(process.env.CHAOS_OPERATORS ?? 2)
const OPERATOR_PAUSE_MS = Number(process.env.CHAOS_OPERATOR_PAUSE_MS ?? 2_000)
/** How long a rolling restart waits for each restarted replica's /readyz before it goes on anyway. */
const ROLLING_READY_TIMEOUT_MS = 60_000
/** A folder to keep every replica's log lines in (diagnosis); none by default. */
const LOG_DIR = process.env.CHAOS_LOG_DIR
/** A replica stopping gracefully is killed after this long (its release and drain take a few seconds at most). */
const REPLICA_STOP_GRACE_MS = 30_000
const WA_VERSION = '2.3000.1023223821'

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)]

/**
 * What the bench has started, to stop in reverse order: at its end, or when it is itself stopped by a
 * signal. Each step is pushed once its resource exists, so a signal during set-up stops only what is there.
 */
const cleanups: { name: string, run: () => Promise<unknown> }[] = []
/** Set when cleaning up begins: nothing is started after it (a fault's restart would outlive the bench). */
let stopping = false
let cleaned: Promise<void> | undefined
const cleanup = () => (cleaned ??= (async () => {
  stopping = true
  for (const step of cleanups.reverse()) {
    await step.run().catch((err: unknown) => log(`cleanup: ${step.name}: ${(err as Error).message}`))
  }
})())

/**
 * This process's own children (replicas, nats-server nodes), from /proc: a replica still starting is in
 * no slot yet, and a NATS node being restarted is in no cluster handle; both are children all the same.
 * Only children: the machine's own nats-server (4222) and other benches' processes are not ours.
 */
function ownChildren (): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      // The command name may hold spaces and parentheses: the fields after it start at the last ')'.
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid
    } catch {
      return false
    }
  })
}

/** How long an orderly cleanup may take after a signal or a failure before the children are killed outright. */
const CLEANUP_DEADLINE_MS = 30_000
/** The signal that stopped the bench, if one did. */
let signalled: NodeJS.Signals | undefined
/** Cleans up (within the deadline), kills whatever child is left, and exits with `code`. */
function cleanUpAndExit (code: number): void {
  const deadline = sleep(CLEANUP_DEADLINE_MS, undefined, { ref: false }).then(() => log('cleanup took too long; killing what is left'))
  void Promise.race([cleanup(), deadline]).finally(() => exitNow(code))
}
function exitNow (code: number): never {
  for (const pid of ownChildren()) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  process.exit(code)
}
function onSignal (signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP'): void {
  const code = 128 + (osConstants.signals[signal] ?? 1)
  // A second signal while cleaning up: the children go at once (nothing else is left to wait for).
  if (signalled) exitNow(code)
  signalled = signal
  log(`${signal}: stopping this bench's replicas, NATS nodes, simulator and proxy, dropping its database`)
  cleanUpAndExit(code)
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal)
// `npm run` does not pass a SIGTERM on: its shell ends and leaves the bench running as an orphan.
// A parent gone counts as a hang-up.
const parentPid = process.ppid
setInterval(() => { if (process.ppid !== parentPid && !signalled) onSignal('SIGHUP') }, 1_000).unref()
// A failure outside the workload's try (set-up) would otherwise exit at once and leave every child running.
// After a signal, whatever fails is the signal's doing, and its handler is already cleaning up.
process.on('uncaughtException', (err) => {
  if (signalled) return
  log(`failed: ${err.stack ?? err.message}`)
  cleanUpAndExit(1)
})

const dir = await mkdtemp(join(tmpdir(), 'wa-chaos-'))
cleanups.push({ name: 'temp dir', run: () => rm(dir, { recursive: true, force: true }) })
const namespace = uniqueName('chaos')
const eventsStream = `${namespace.toUpperCase()}_EVENTS`
const database = uniqueName('wa_chaos')
const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
await admin.connect()
cleanups.push({ name: 'admin connection', run: () => admin.end() })
await admin.query(`create database ${database}`)
cleanups.push({ name: 'database', run: () => admin.query(`drop database if exists ${database} with (force)`) })
const dbUrl = new URL(databaseUrlFor(database))
const proxy = new TcpProxy({ host: dbUrl.hostname, port: Number(dbUrl.port || 5432) })
await proxy.start()
cleanups.push({ name: 'proxy', run: () => proxy.close() })
dbUrl.hostname = '127.0.0.1'
dbUrl.port = String(proxy.port)

const cluster = await startNatsCluster({ dir })
cleanups.push({ name: 'NATS cluster', run: () => cluster.stop() })
const simulator = new WhatsAppSimulator()
const { url: simulatorUrl } = await simulator.start()
cleanups.push({ name: 'simulator', run: () => simulator.stop() })

const env = (index: number): Record<string, string> => ({
  NODE_ENV: 'test',
  NATS_URL: cluster.url,
  DATABASE_URL: dbUrl.toString(),
  NATS_REPLICAS: '3',
  NATS_NAMESPACE: namespace,
  EVENTS_STREAM: eventsStream,
  LEASE_TTL_MS: String(TTL_MS),
  REPLICA_ID: `chaos-${index + 1}`,
  HTTP_PORT: String(BASE_PORT + index),
  AUTH_MODE: 'off',
  AUTH_STATE_KEYS: `chaos:${Buffer.alloc(32, 9).toString('base64')}`,
  WA_WS_URL: simulatorUrl,
  WA_CERT_PUBLIC_KEY: simulator.identity.publicKeyHex,
  WA_VERSION,
  MESSAGES_PER_MINUTE: '100000',
  API_RATE_LIMIT_MAX: '10000000',
  // Info: the replica says where it listens at that level (and fences are counted from the lines).
  LOG_LEVEL: process.env.CHAOS_REPLICA_LOG_LEVEL ?? 'info'
})

interface Slot { index: number, process?: ReplicaProcess, fenced: number, notStored: number }
const slots: Slot[] = Array.from({ length: REPLICAS }, (_, index) => ({ index, fenced: 0, notStored: 0 }))
/** What the replicas' own lines tell: fences, and events the stream never took. */
const countFences = (slot: Slot) => (line: string) => {
  slot.fenced += (line.match(/"reason":"fenced"/g) ?? []).length
  slot.notStored += (line.match(/event could not be stored/g) ?? []).length
  if (LOG_DIR) appendFileSync(join(LOG_DIR, `chaos-${slot.index + 1}.log`), line)
}
async function startSlot (slot: Slot): Promise<void> {
  if (stopping) throw new Error(`chaos-${slot.index + 1} not started: the bench is stopping`)
  slot.process = await startReplicaProcess(env(slot.index), countFences(slot))
  // Stopped while it was starting: the cleanup did not see it.
  if (stopping) await stopSlot(slot, 'SIGKILL')
}
/** Stops a replica and waits for its exit; SIGTERM is a graceful stop, and it is killed if that takes too long. */
async function stopSlot (slot: Slot, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const child = slot.process
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = exitOf(child)
  child.kill(signal)
  // A replica that does not end after SIGTERM is a finding, not something to wait on for ever.
  const late = setTimeout(() => {
    log(`chaos-${slot.index + 1} still running ${REPLICA_STOP_GRACE_MS} ms after SIGTERM; killed`)
    child.kill('SIGKILL')
  }, REPLICA_STOP_GRACE_MS)
  await exited
  clearTimeout(late)
}
cleanups.push({ name: 'replicas', run: () => Promise.all(slots.map((slot) => stopSlot(slot, signalled ? 'SIGKILL' : 'SIGTERM'))) })
const live = () => slots.filter((slot) => slot.process && slot.process.exitCode === null && slot.process.signalCode === null)
const urlOf = (slot: Slot) => `http://127.0.0.1:${BASE_PORT + slot.index}`
/** Ready as a deploy's probe sees it: it reaches NATS and PostgreSQL. */
const ready = async (slot: Slot) => (await fetch(`${urlOf(slot)}/readyz`).catch(() => undefined))?.status === 200

const summary: Record<string, unknown> = {}
try {
  await Promise.all(slots.map(startSlot))
  log(`cluster ${cluster.url}; replicas on ${BASE_PORT}-${BASE_PORT + REPLICAS - 1}; TTL ${TTL_MS} ms`)

  // Link the companies, each with a phone of its own.
  const companies = Array.from({ length: COMPANIES }, (_, index) => ({ id: `chaos-${index}`, phone: String(79_300_000_000 + index) }))
  for (const company of companies) {
    const response = await fetch(`${urlOf(pick(live()))}/api/whatsapp/sessions/${company.id}/initialize`, { method: 'POST' })
    const { qr } = await response.json() as { qr?: string }
    if (!qr || !simulator.scan(qr, company.phone)) throw new Error(`${company.id} could not be linked`)
  }
  const connected = async (id: string) => {
    const response = await fetch(`${urlOf(pick(live()))}/api/whatsapp/sessions/${id}/status`).catch(() => undefined)
    return response?.ok ? (await response.json() as { connected?: boolean }).connected === true : false
  }
  for (const company of companies) {
    if (!await waitFor(() => connected(company.id), 30_000, 200)) throw new Error(`${company.id} did not connect`)
  }
  log(`${COMPANIES} companies linked`)

  // Every inbound message the gateway publishes, as the events stream has it at the end.
  // Read by the workload loops, cleared when the faults are over.
  const workload$ = { running: true }
  const accepted: { company: string, contact: string, text: string }[] = []
  const unavailable = new Map<string, number>()
  /** Each company's longest stretch without an answer, from and to (ms since benchStarted), to set beside the faults. */
  const unavailableWindow = new Map<string, { from: number, to: number }>()
  const noteUnavailable = (companyId: string, since: number) => {
    const at = performance.now()
    if (at - since <= (unavailable.get(companyId) ?? 0)) return
    unavailable.set(companyId, at - since)
    unavailableWindow.set(companyId, { from: since - benchStarted, to: at - benchStarted })
  }
  const inbound: { company: string, id: string, at: number }[] = []
  const benchStarted = performance.now()
  /** The wall clock at benchStarted: the simulator's log is in Date.now() time. */
  const benchEpoch = Date.now()
  let sendSeq = 0
  /** Sends still refused when the client gave up on them (SEND_GIVE_UP_MS): a company stuck. */
  let abandonedSends = 0
  /** Sends answered OUTCOME_UNKNOWN: the replica sending them died before WhatsApp's answer. */
  let unknownOutcomes = 0

  const sender = async () => {
    while (workload$.running) {
      const company = pick(companies)
      const n = sendSeq++
      const contact = String(79_400_000_000 + (n % 50))
      const text = `chaos ${company.id} ${n}`
      const key = `chaos-${n}`
      const started = performance.now()
      // Unable to send: no answer, or a 5xx (no holder, a timeout). A 409 about the key is an answer
      // from a company that is there: its earlier attempt is still in flight, or ended unknown.
      let failingSince: number | undefined
      let lastAnswer = ''
      let outcome: 'accepted' | 'unknown' | undefined
      while (performance.now() - started < SEND_GIVE_UP_MS) {
        const replica = pick(live())
        const response = replica
          ? await fetch(`${urlOf(replica)}/api/whatsapp/sessions/${company.id}/send`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify({ phone: contact, message: text })
          }).catch(() => undefined)
          : undefined
        const body = response
          ? await response.json().catch(() => undefined) as { accepted?: boolean, error?: { code?: string } } | undefined
          : undefined
        if (response?.ok && body?.accepted) outcome = 'accepted'
        // Its replica died mid-send: whether WhatsApp took it is unknown, as the gateway says.
        else if (body?.error?.code === 'OUTCOME_UNKNOWN') outcome = 'unknown'
        const answered = outcome !== undefined || response?.status === 409
        if (answered && failingSince !== undefined) {
          noteUnavailable(company.id, failingSince)
          failingSince = undefined
        }
        if (outcome) break
        if (!answered) failingSince ??= performance.now()
        lastAnswer = `${response?.status ?? 'no answer'} ${JSON.stringify(body)}`
        await sleep(200)
      }
      if (outcome === 'accepted') accepted.push({ company: company.id, contact, text })
      if (outcome === 'unknown') unknownOutcomes++
      if (!outcome) {
        abandonedSends++
        log(`gave up on a send of ${company.id} at +${Math.round((performance.now() - benchStarted) / 1000)} s: ${lastAnswer}`)
      }
      if (failingSince !== undefined) {
        noteUnavailable(company.id, failingSince)
      }
      await sleep(50)
    }
  }
  const contactsWriting = async () => {
    let n = 0
    while (workload$.running) {
      const company = pick(companies)
      const sent = await simulator.deliver({ from: String(79_500_000_000 + (n % 20)), to: company.phone, text: `inbound ${n++}` })
      inbound.push({ company: company.id, id: sent.id, at: performance.now() - benchStarted })
      await sleep(INBOUND_EVERY_MS)
    }
  }
  const workload = [...Array.from({ length: SEND_CONCURRENCY }, sender), contactsWriting()]
  const chaosEnds = performance.now() + SECONDS * 1_000

  // Operators calling initialize on linked companies through random replicas while the faults go on:
  // with the company's own number (the holder restarts the session under its lease), or without.
  /** Their answers, by "<with|without> phone <HTTP status> [<reply status>]". */
  const initializeOutcomes = new Map<string, number>()
  let initializeCalls = 0
  /** Answers offering a QR or a pairing code for a linked company: its creds were lost, not a choice of the operator. */
  const relinkOffers: string[] = []
  const operator = async () => {
    while (performance.now() < chaosEnds) {
      await sleep(OPERATOR_PAUSE_MS * (0.5 + Math.random()))
      if (stopping) return
      const company = pick(companies)
      const replica = pick(live())
      if (!replica) continue
      const withPhone = Math.random() < 0.5
      const calledAt = performance.now() - benchStarted
      initializeCalls++
      const response = await fetch(`${urlOf(replica)}/api/whatsapp/sessions/${company.id}/initialize`, {
        method: 'POST',
        ...withPhone ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phoneNumber: `+${company.phone}` }) } : {}
      }).catch(() => undefined)
      const body = response
        ? await response.json().catch(() => undefined) as { status?: string, error?: { code?: string } } | undefined
        : undefined
      const answer = `${withPhone ? 'with' : 'without'} phone ${response?.status ?? 'no answer'}${body?.status ? ` ${body.status}` : ''}`
      initializeOutcomes.set(answer, (initializeOutcomes.get(answer) ?? 0) + 1)
      if (body?.status === 'qr' || body?.status === 'pairing_code') relinkOffers.push(`${company.id} at +${(calledAt / 1000).toFixed(1)} s`)
      const took = Math.round(performance.now() - benchStarted - calledAt)
      if (LOG_DIR) {
        appendFileSync(join(LOG_DIR, 'operators.log'), `+${(calledAt / 1000).toFixed(1)} s ${company.id} via chaos-${replica.index + 1} ` +
          `${answer} in ${took} ms${body?.error ? ` ${JSON.stringify(body.error)}` : ''}\n`)
      }
    }
  }
  const operators = Array.from({ length: OPERATORS }, operator)

  // Faults, one after another.
  const faults: string[] = []
  let postgresCut = false
  while (performance.now() < chaosEnds) {
    await sleep(FAULT_EVERY_MS)
    // One PostgreSQL outage, in the second half; otherwise a replica or a NATS node.
    const secondHalf = performance.now() > chaosEnds - SECONDS * 500
    const faultAt = performance.now()
    const kind = FAULTS
      ? FAULTS[faults.length % FAULTS.length]
      : !postgresCut && secondHalf ? 'postgres' : pick(['kill-replica', 'term-replica', 'kill-nats', 'rolling'])
    if (kind === 'postgres') {
      postgresCut = true
      faults.push('postgres restart')
      await proxy.cut()
      await sleep(RESTART_AFTER_MS)
      if (!stopping) await proxy.restore()
    } else if (kind.startsWith('kill-nats')) {
      // `kill-nats:n2` names the node; `kill-nats` picks one.
      const named = kind.split(':')[1]
      const node = cluster.nodes.find((candidate) => candidate.name === named) ?? pick(cluster.nodes)
      faults.push(`SIGKILL ${node.name}`)
      await node.stop(true)
      await sleep(RESTART_AFTER_MS)
      if (!stopping) await node.start()
    } else if (kind === 'rolling') {
      // A deploy: each replica in turn gets SIGTERM, its successor starts at once, and the next one
      // goes only once that successor is ready (/readyz), as a rollout's readiness gate would have it.
      faults.push('rolling restart')
      for (const slot of slots) {
        await stopSlot(slot, 'SIGTERM')
        await startSlot(slot)
        const restarted = performance.now()
        if (!await waitFor(() => ready(slot), ROLLING_READY_TIMEOUT_MS, 250)) {
          log(`rolling restart: chaos-${slot.index + 1} not ready ${ROLLING_READY_TIMEOUT_MS} ms after its start; going on`)
        }
        log(`rolling restart: chaos-${slot.index + 1} ready after ${Math.round(performance.now() - restarted)} ms`)
      }
    } else {
      const slot = pick(live())
      if (!slot?.process) continue
      const signal = kind === 'kill-replica' ? 'SIGKILL' : 'SIGTERM'
      faults.push(`${signal} chaos-${slot.index + 1}`)
      await stopSlot(slot, signal)
      await sleep(RESTART_AFTER_MS)
      await startSlot(slot)
    }
    // When the fault began (a replica's restart ends a few seconds later), to set beside the unavailable stretches.
    log(`fault ${faults.length} at +${((faultAt - benchStarted) / 1000).toFixed(1)} s: ${faults.at(-1)}`)
  }

  await Promise.all(operators)

  // Settle: let every company be held again and the last messages arrive, then stop the workload.
  await sleep(TTL_MS + 5_000)
  // Every company is still linked and connected: neither the faults nor the operators' restarts may end one.
  const notConnected = (await Promise.all(companies.map(async (company) =>
    await waitFor(() => connected(company.id), 30_000, 500) ? undefined : company.id))).filter((id) => id !== undefined)
  if (relinkOffers.length) log(`initialize offered to link again: ${relinkOffers.slice(0, 10).join(', ')}`)
  if (notConnected.length) log(`not connected after the faults: ${notConnected.join(', ')}`)
  workload$.running = false
  await Promise.all(workload)
  await sleep(5_000)

  // What the contacts received, and what the events stream holds.
  const receivedTexts = new Map<string, number>()
  const receivedCopies = new Map<string, { contact: string, id: string, from: string, at: number }[]>()
  for (const contact of new Set(accepted.map((send) => send.contact))) {
    for (const message of simulator.received(contact)) {
      if (!message.text) continue
      receivedTexts.set(message.text, (receivedTexts.get(message.text) ?? 0) + 1)
      const copy = { contact, id: message.id, from: message.from, at: message.at }
      receivedCopies.set(message.text, [...receivedCopies.get(message.text) ?? [], copy])
    }
  }
  // For each send received twice: its copies (one message id: a resend; two ids: two sends) and what was logged of them.
  for (const [text, copies] of [...receivedCopies].filter(([, copies]) => copies.length > 1).slice(0, 5)) {
    const logged = simulator.log
      .filter((entry) => copies.some((copy) => entry.detail.includes(copy.id)))
      .map((entry) => `${entry.kind}@+${Math.round((entry.at - benchEpoch) / 1000)}s: ${entry.detail.slice(0, 100)}`)
    const described = copies.map((copy) => `${copy.id} from ${copy.from} at +${Math.round((copy.at - benchEpoch) / 1000)} s`)
    log(`received twice: "${text}": ${described.join('; ')} | ${logged.join(' | ')}`)
  }
  const nc = await connect({ servers: cluster.url.split(',') })
  const jsm = await jetstreamManager(nc)
  // Read back every inbound message event the stream holds, in batches from sequence 1, until the
  // consumer says nothing is pending: a single large fetch can end early on a cluster that has just
  // re-elected its leaders, and would count what it did not read as lost.
  const published = new Map<string, number>()
  /** Each stored copy of an inbound message event (diagnosis of duplicates). */
  const copiesOf = new Map<string, string[]>()
  let nextSeq = 1
  let complete = (await jsm.streams.info(eventsStream)).state.last_seq === 0
  const readUntil = performance.now() + 120_000
  while (!complete && performance.now() < readUntil) {
    const consumer = await jetstream(nc).consumers.get(eventsStream, {
      filter_subjects: `${namespace}.evt.*.message`, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq
    }).catch(() => undefined)
    if (!consumer) {
      await sleep(500)
      continue
    }
    try {
      const messages = await consumer.fetch({ max_messages: 1_000, expires: 5_000 })
      let read = 0
      for await (const message of messages) {
        read++
        const event = message.json<{ id: string, replica: string, epoch?: number, timestamp: string, data: { messageId?: string } }>()
        const id = event.data.messageId ?? ''
        published.set(id, (published.get(id) ?? 0) + 1)
        const copy = `seq ${message.seq} ${event.replica}/${event.epoch ?? '-'} ${event.timestamp.slice(11, 23)} id ${event.id}`
        copiesOf.set(id, [...copiesOf.get(id) ?? [], copy])
        nextSeq = message.seq + 1
        if (message.info.pending === 0) {
          complete = true
          break
        }
      }
      // Nothing more matched after the last batch (it ended exactly at a batch's end).
      if (read === 0 && nextSeq > 1) complete = true
    } catch (err) {
      log(`reading the events stream: ${(err as Error).message}; again from ${nextSeq}`)
    }
  }
  if (!complete) throw new Error(`the events stream could not be read to its end (stopped before sequence ${nextSeq})`)
  const streamState = (await jsm.streams.info(eventsStream, { deleted_details: true } as never)).state
  log(`events stream: first seq ${streamState.first_seq}, last ${streamState.last_seq}, ${streamState.messages} messages, ` +
    `${streamState.num_deleted ?? 0} deleted${streamState.deleted?.length ? ` (e.g. ${streamState.deleted.slice(0, 10).join(',')})` : ''}`)
  for (const [id, copies] of [...copiesOf].filter(([, copies]) => copies.length > 1).slice(0, 5)) {
    log(`inbound ${id} stored ${copies.length} times: ${copies.join(' | ')}`)
  }
  const streamInfo = await jsm.streams.info(eventsStream)
  log(`events stream: duplicate window ${Math.round(streamInfo.config.duplicate_window / 1e9)} s, leader ${streamInfo.cluster?.leader}, ` +
    `replicas ${(streamInfo.cluster?.replicas ?? []).map((replica) => `${replica.name}${replica.current ? '' : ' (behind)'}`).join(',')}`)
  await nc.close()

  // Overlaps, per linked device (the simulator's `<phone>:<device>`): a login while another connection of
  // the same device is live, wherever the two came from (two replicas, one replica twice, one REPLICA_ID twice).
  const overlaps = simulator.log.filter((entry) => entry.kind === 'replaced')
  const replaced = overlaps.length
  for (const overlap of overlaps.slice(0, 5)) {
    const company = companies.find((candidate) => overlap.detail.startsWith(`${candidate.phone}:`))
    const around = simulator.log
      .filter((entry) => ['login', 'closed', 'replaced'].includes(entry.kind) && entry.detail.startsWith(overlap.detail) &&
        Math.abs(entry.at - overlap.at) <= 10_000)
      .map((entry) => `${entry.kind}@+${((entry.at - benchEpoch) / 1000).toFixed(1)}s`)
    log(`overlap: ${overlap.detail} (${company?.id ?? 'unknown company'}) at +${((overlap.at - benchEpoch) / 1000).toFixed(1)} s; ` +
      `its device within 10 s: ${around.join(' ')}`)
  }
  // For each lost inbound message: when it was written and what the simulator saw of it (diagnosis).
  const lost = inbound.filter((message) => !published.has(message.id))
  for (const message of lost.slice(0, 5)) {
    const company = companies.find((candidate) => candidate.id === message.company)!
    const writtenAt = benchEpoch + message.at
    const seen = simulator.log
      .filter((entry) => entry.detail.includes(message.id) ||
        (['login', 'closed', 'replaced'].includes(entry.kind) && entry.detail.includes(company.phone) && entry.at >= writtenAt - 2_000))
      .slice(0, 12)
      .map((entry) => `${entry.kind}@+${entry.at - writtenAt}ms: ${entry.detail.slice(0, 80)}`)
    log(`lost inbound ${message.id} of ${message.company} at +${Math.round(message.at / 1000)} s: ${seen.join(' | ') || 'nothing logged'}`)
  }
  const worst = [...companies.map((company) => unavailable.get(company.id) ?? 0)].sort((a, b) => a - b)
  const longest = [...unavailableWindow].sort(([a], [b]) => (unavailable.get(b) ?? 0) - (unavailable.get(a) ?? 0)).slice(0, 3)
  for (const [companyId, { from, to }] of longest) {
    const seconds = (ms: number) => (ms / 1000).toFixed(1)
    log(`unavailable: ${companyId} from +${seconds(from)} s to +${seconds(to)} s (${seconds(to - from)} s)`)
  }
  Object.assign(summary, {
    seconds: SECONDS,
    companies: COMPANIES,
    ttl_ms: TTL_MS,
    faults: faults.length,
    fault_list: faults,
    accepted_sends: accepted.length,
    abandoned_sends: abandonedSends,
    unknown_outcome_sends: unknownOutcomes,
    inbound_written: inbound.length,
    overlaps: replaced,
    initialize_calls: initializeCalls,
    initialize_outcomes: Object.fromEntries([...initializeOutcomes].sort(([a], [b]) => a.localeCompare(b))),
    initialize_relink_offers: relinkOffers.length,
    not_connected_at_end: notConnected.length,
    lost_inbound: inbound.filter((message) => !published.has(message.id)).length,
    duplicate_inbound_events: [...published.values()].filter((count) => count > 1).length,
    lost_accepted_sends: accepted.filter((send) => !receivedTexts.has(send.text)).length,
    duplicate_sends: [...receivedTexts.values()].filter((count) => count > 1).length,
    fenced_on_nats_node_loss: slots.reduce((sum, slot) => sum + slot.fenced, 0),
    events_not_stored: slots.reduce((sum, slot) => sum + slot.notStored, 0),
    unavailable_p99_ms: Math.round(worst[Math.min(worst.length - 1, Math.ceil(0.99 * worst.length) - 1)] ?? 0),
    unavailable_max_ms: Math.round(worst.at(-1) ?? 0)
  })
} finally {
  await cleanup()
}
// After a signal its handler exits once the cleanup is done: an interrupted run has no summary.
if (!signalled) {
  const { fault_list: faultList, ...counts } = summary
  log(`faults: ${(faultList as string[] | undefined)?.join(', ') ?? 'none'}`)
  log(JSON.stringify(counts))
}
