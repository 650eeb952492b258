/**
 * bench:campaign — sending on the gateway's own (a campaign and scheduled messages) while its holder
 * dies. The WhatsApp simulator runs in a process of its own (`simulator/main.ts`, as `npm run
 * simulator`); three gateway replica processes with real Baileys share it, on the machine's NATS and
 * PostgreSQL (a database and namespace of the bench's own). One company is linked; then a campaign
 * of BENCH_RECIPIENTS recipients (paced to end in about a minute) and BENCH_SCHEDULED scheduled
 * messages due over the fault period run together while the company's holder (GET …/owner) gets
 * SIGKILL, SIGTERM, SIGKILL (BENCH_FAULTS), each victim started again at once, so three stay up.
 *
 * Everything is counted where a person would see it: on the recipients' phones (the simulator's
 * control API, GET /contacts/:phone/messages, which records every copy it decrypts with its arrival
 * time). A recipient or scheduled message that arrived under more than one message id is a duplicate
 * (shown twice); a second copy under the same id is `resent_same_id` (WhatsApp's clients show it once);
 * one that never arrived is lost. Lateness is arrival minus dueAt, overall and split by whether the
 * message fell due while a fault was being recovered from (from the fault to 2 s after its takeover) or near another
 * change of holder (the restarted replica, the company's preferred owner, takes it back).
 *
 * The campaign part runs when plugins/campaigns is in the tree (BENCH_CAMPAIGN=0|1 overrides). A
 * bench reports and does not fail; the last line is one JSON object.
 */
import type { ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { derivedMessageId } from '../plugins/scheduler/outcomes.ts'
import { benchNodeFlags, exitOf, type ReplicaProcess, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment, simulatorProcess } from './deployment.ts'
import { log, percentile, round } from './report.ts'

const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 1_000)
const SCHEDULED = Number(process.env.BENCH_SCHEDULED ?? 200)
const TTL_MS = Number(process.env.BENCH_TTL_MS ?? 5_000)
const CAMPAIGN = process.env.BENCH_CAMPAIGN === undefined
  ? existsSync(fileURLToPath(new URL('../plugins/campaigns/index.ts', import.meta.url)))
  : process.env.BENCH_CAMPAIGN === '1'
/** The campaign's pace: its recipients in about a minute. */
const PER_MINUTE = Number(process.env.BENCH_PER_MINUTE ?? Math.ceil(RECIPIENTS * 1.1))
/** The faults, in order (kill: SIGKILL of the holder, term: SIGTERM of it), the first FIRST_FAULT_MS in and then every FAULT_EVERY_MS. */
const FAULTS = (process.env.BENCH_FAULTS ?? 'kill,term,kill').split(',').map((fault) => fault.trim()).filter(Boolean)
const FIRST_FAULT_MS = Number(process.env.BENCH_FIRST_FAULT_MS ?? 8_000)
const FAULT_EVERY_MS = Number(process.env.BENCH_FAULT_EVERY_MS ?? 16_000)
/** Scheduled messages fall due evenly from SCHEDULE_FROM_MS to the end of the fault period (ms from the start). */
const SCHEDULE_FROM_MS = 4_000
const FAULT_PERIOD_MS = FIRST_FAULT_MS + FAULT_EVERY_MS * Math.max(0, FAULTS.length - 1) + TTL_MS + 8_000
/** How long after the fault period the campaign and the scheduled messages may take to finish. */
const FINISH_TIMEOUT_MS = Number(process.env.BENCH_FINISH_TIMEOUT_MS ?? 180_000)
/** A folder for every replica's and the simulator's log lines (diagnosis); none by default. */
const LOG_DIR = process.env.BENCH_LOG_DIR
const REPLICAS = 3
const COMPANY = { id: 'campaign-bench', phone: '79005550400' }
const recipientPhone = (index: number) => String(79_610_000_000 + index)
const scheduledPhone = (index: number) => String(79_620_000_000 + index)
const REPLICA_STOP_GRACE_MS = 30_000

if (LOG_DIR) mkdirSync(LOG_DIR, { recursive: true })
const logTo = (name: string) => (line: string) => { if (LOG_DIR) appendFileSync(`${LOG_DIR}/${name}.log`, line) }

// Everything started, to stop at the end or on a signal.
const children = new Set<ChildProcess>()
let stopping = false
const killChildren = async (signal: NodeJS.Signals) => {
  await Promise.all([...children].map((child) => {
    const exited = exitOf(child)
    child.kill(signal)
    return exited
  }))
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    stopping = true
    log(`${signal}: stopping the replicas and the simulator`)
    void killChildren('SIGKILL').finally(() => process.exit(130))
  })
}

// The simulator in its own process, on free ports.
const { child: simulator, controlUrl, replicaEnv: onSimulatorProcess } = await simulatorProcess(logTo('simulator'))
children.add(simulator)
const control = async <T>(path: string, body?: unknown): Promise<T> => {
  const response = await fetch(`${controlUrl}${path}`, body === undefined
    ? {}
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`simulator ${path}: ${response.status} ${await response.text()}`)
  return await response.json() as T
}

const deployment = await benchDeployment('campaign')
const db = new pg.Client({ connectionString: deployment.env.DATABASE_URL })
const env = (slot: number): Record<string, string> => ({
  ...deployment.env,
  REPLICA_ID: `campaign-r${slot + 1}`,
  LEASE_TTL_MS: String(TTL_MS),
  WA_TRANSPORT: 'baileys',
  ...onSimulatorProcess,
  WA_VERSION: '2.3000.1023223821',
  NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('../simulator/tls/ca.pem', import.meta.url)),
  // The budget a company may spend: the campaign and the scheduled messages fit in it.
  MESSAGES_PER_MINUTE: process.env.BENCH_MESSAGES_PER_MINUTE ?? '6000',
  // A campaign checks its phones for WhatsApp ahead of sending; at the default 60 checks a minute it could not go faster.
  NUMBER_CHECKS_PER_MINUTE: process.env.BENCH_NUMBER_CHECKS_PER_MINUTE ?? '100000',
  API_RATE_LIMIT_MAX: '10000000',
  WA_CLOSE_TIMEOUT_MS: '500',
  // Info: a replica says where it listens at that level; debug (with BENCH_LOG_DIR) tells why a send waited.
  LOG_LEVEL: process.env.BENCH_REPLICA_LOG_LEVEL ?? 'info'
})

interface Slot { index: number, process?: ReplicaProcess, starting?: Promise<void> }
const slots: Slot[] = Array.from({ length: REPLICAS }, (_, index) => ({ index }))
const nameOf = (slot: Slot) => `campaign-r${slot.index + 1}`
const alive = (slot: Slot) => slot.process !== undefined && slot.process.exitCode === null && slot.process.signalCode === null
const live = () => slots.filter(alive)
async function startSlot (slot: Slot): Promise<void> {
  if (stopping) return
  const child = await startReplicaProcess(env(slot.index), logTo(nameOf(slot)), benchNodeFlags())
  children.add(child)
  child.once('exit', () => children.delete(child))
  slot.process = child
}
async function stopSlot (slot: Slot, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const child = slot.process
  if (!child || !alive(slot)) return
  const exited = exitOf(child)
  child.kill(signal)
  const late = setTimeout(() => child.kill('SIGKILL'), REPLICA_STOP_GRACE_MS)
  await exited
  clearTimeout(late)
}

/** JSON from any live replica (the first that answers 2xx), or undefined. */
async function call<T> (method: string, path: string, body?: unknown, via?: Slot): Promise<{ status: number, json: T } | undefined> {
  const candidates = via ? [via] : [...live()].sort(() => Math.random() - 0.5)
  for (const slot of candidates) {
    const response = await fetch(`${slot.process!.url}/api/whatsapp/sessions/${COMPANY.id}${path}`, {
      method,
      signal: AbortSignal.timeout(20_000),
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    }).catch(() => undefined)
    if (!response) continue
    const json = await response.json().catch(() => undefined) as T
    if (response.ok) return { status: response.status, json }
    if (via) return { status: response.status, json }
  }
  return undefined
}
const owner = async () => (await call<{ replica: string, epoch: number }>('GET', '/owner'))?.json
const holder = async () => (await owner())?.replica

interface Received { id: string, from: string, at: number, text?: string }
const summary: Record<string, unknown> = {}
try {
  await db.connect()
  log(`bench:campaign — simulator process at ${controlUrl}, ${REPLICAS} replica processes, lease TTL ${TTL_MS} ms, ` +
    `${CAMPAIGN ? `a campaign of ${RECIPIENTS} recipients at ${PER_MINUTE}/min and ` : 'no campaign (plugins/campaigns is not here), '}` +
    `${SCHEDULED} scheduled messages, faults ${FAULTS.join(',')}`)
  await Promise.all(slots.map(startSlot))

  // Link the company through one replica; the shared simulator keeps its device across holders.
  const { qr } = (await call<{ qr?: string }>('POST', '/initialize', undefined, slots[0]))?.json ?? {}
  if (!qr) throw new Error('no QR')
  await control('/scan', { qr, phone: COMPANY.phone })
  if (!await waitFor(async () => (await call<{ connected?: boolean }>('GET', '/status'))?.json.connected === true, 60_000, 200)) {
    throw new Error('the company did not connect')
  }
  log(`company linked; held by ${await holder()}`)

  const startedAt = Date.now()
  // The scheduled messages, due evenly over the fault period, each to a phone of its own.
  const scheduled: { index: number, id: string, phone: string, dueAt: number }[] = []
  const span = FAULT_PERIOD_MS - SCHEDULE_FROM_MS
  for (let index = 0; index < SCHEDULED; index++) {
    const sendAt = new Date(startedAt + SCHEDULE_FROM_MS + Math.round(span * index / Math.max(1, SCHEDULED - 1))).toISOString()
    const phone = scheduledPhone(index)
    const answer = await call<{ id: string, dueAt: string }>('POST', '/send', {
      phone, message: `Напоминание ${index}`, sendAt, quietHours: 'ignore'
    })
    if (answer?.status !== 202) throw new Error(`scheduled message ${index} not accepted: ${JSON.stringify(answer)}`)
    scheduled.push({ index, id: answer.json.id, phone, dueAt: Date.parse(answer.json.dueAt) })
  }
  log(`${SCHEDULED} scheduled in ${Date.now() - startedAt} ms, due from +${SCHEDULE_FROM_MS / 1000} s to +${FAULT_PERIOD_MS / 1000} s`)

  let campaignId: string | undefined
  if (CAMPAIGN) {
    const recipients = Array.from({ length: RECIPIENTS }, (_, index) => ({
      phone: recipientPhone(index), variables: { name: `Гость ${index}` }
    }))
    const created = await call<{ campaign: { id: string } }>('POST', '/campaigns', {
      name: 'bench',
      template: { text: 'Привет, {{name}}!' },
      recipients,
      pacing: { messagesPerMinute: PER_MINUTE, jitter: 0.2, typingMs: 0 },
      quietHours: 'ignore'
    })
    if (created?.status !== 201) throw new Error(`campaign not created: ${JSON.stringify(created)}`)
    campaignId = created.json.campaign.id
    log(`campaign ${campaignId} created ${Date.now() - startedAt} ms in`)
  }

  // Every change of holder (epoch), as …/owner tells it four times a second: the faults' takeovers, and the
  // handoffs back to a restarted replica that is the company's preferred owner.
  const changes: { from: number, to: number, epoch: number, replica: string }[] = []
  const watching = { on: true }
  const watcher = (async () => {
    let last: { epoch: number, at: number } | undefined
    while (watching.on) {
      const seen = await owner().catch(() => undefined)
      const now = Date.now()
      if (seen && last && seen.epoch !== last.epoch) changes.push({ from: last.at, to: now, epoch: seen.epoch, replica: seen.replica })
      if (seen) last = { epoch: seen.epoch, at: now }
      await sleep(250)
    }
  })()

  // The faults: each at its time, on whoever holds the company then; the victim is started again at once.
  const faults: { kind: string, victim: string, at: number, takeoverMs: number | null }[] = []
  for (const [n, kind] of FAULTS.entries()) {
    const wait = startedAt + FIRST_FAULT_MS + n * FAULT_EVERY_MS - Date.now()
    if (wait > 0) await sleep(wait)
    // Every replica up (a restart still starting is waited for), so the holder is not the last one.
    await Promise.all(slots.map((slot) => slot.starting))
    let held: { replica: string, epoch: number } | undefined
    await waitFor(async () => (held = await owner()) !== undefined, 30_000, 200)
    const victimName = held?.replica
    const victim = slots.find((slot) => nameOf(slot) === victimName)
    if (!victim) {
      log(`fault ${n + 1}: no holder found (${victimName}); skipped`)
      continue
    }
    const signal = kind === 'term' ? 'SIGTERM' : 'SIGKILL'
    const at = Date.now()
    await stopSlot(victim, signal)
    victim.starting = startSlot(victim).catch((err: unknown) => { log(`restart of ${nameOf(victim)} failed: ${(err as Error).message}`) })
    // Taken over: held again under a newer epoch (by another replica, or by the victim's restart under its name).
    let next: { replica: string, epoch: number } | undefined
    const took = await waitFor(async () => {
      next = await owner()
      return next !== undefined && next.epoch > held!.epoch
    }, TTL_MS * 6, 100)
    const takeoverMs = took ? Date.now() - at : null
    faults.push({ kind: signal, victim: victimName!, at, takeoverMs })
    log(`fault ${n + 1} at +${((at - startedAt) / 1000).toFixed(1)} s: ${signal} ${victimName} (epoch ${held!.epoch}); ` +
      `held again by ${next?.replica} (epoch ${next?.epoch}) ` +
      `after ${takeoverMs ?? 'more than ' + TTL_MS * 6} ms`)
  }
  await Promise.all(slots.map((slot) => slot.starting))

  // Finished: every scheduled message sent (or failed for good) and the campaign finished.
  const unfinishedScheduled = async () => Number((await db.query<{ count: string }>(
    "select count(*) from whatsapp_scheduled where company_id = $1 and status in ('scheduled', 'sending')", [COMPANY.id])).rows[0]!.count)
  let campaignView: { status?: string, counts?: Record<string, number> } = {}
  const campaignDone = async () => {
    if (!campaignId) return true
    const answer = await call<{ campaign: typeof campaignView }>('GET', `/campaigns/${campaignId}`)
    if (answer) campaignView = answer.json.campaign
    return campaignView.status === 'finished' || campaignView.status === 'cancelled'
  }
  const finished = await waitFor(async () => await unfinishedScheduled() === 0 && await campaignDone(),
    FAULT_PERIOD_MS + FINISH_TIMEOUT_MS - (Date.now() - startedAt), 500)
  const finishedAt = Date.now()
  watching.on = false
  await watcher
  if (!finished) log(`not finished in time: ${await unfinishedScheduled()} scheduled unfinished, campaign ${JSON.stringify(campaignView)}`)
  // The last messages reach the phones (and a late resend would show) before counting.
  await sleep(3_000)

  // What the phones received from the company.
  const receivedBy = async (phone: string) =>
    (await control<{ messages: Received[] }>(`/contacts/${phone}/messages`)).messages.filter((message) =>
      message.from.startsWith(`${COMPANY.phone}:`))
  const inbox = new Map<string, Received[]>()
  const campaignPhones = CAMPAIGN ? Array.from({ length: RECIPIENTS }, (_, i) => recipientPhone(i)) : []
  const phones = [...scheduled.map((message) => message.phone), ...campaignPhones]
  for (let i = 0; i < phones.length; i += 20) {
    await Promise.all(phones.slice(i, i + 20).map(async (phone) => { inbox.set(phone, await receivedBy(phone)) }))
  }
  /** One expected message: what arrived of it. */
  const judge = (phone: string, expectedId: string) => {
    const copies = inbox.get(phone) ?? []
    const ids = new Set(copies.map((copy) => copy.id))
    return {
      received: copies.length > 0,
      duplicate: ids.size > 1,
      resentSameId: copies.length - ids.size,
      wrongId: copies.length > 0 && !ids.has(expectedId),
      firstAt: copies.length > 0 ? Math.min(...copies.map((copy) => copy.at)) : undefined
    }
  }
  const count = (verdicts: ReturnType<typeof judge>[]) => ({
    sent: verdicts.filter((verdict) => verdict.received).length,
    duplicates: verdicts.filter((verdict) => verdict.duplicate).length,
    lost: verdicts.filter((verdict) => !verdict.received).length,
    resentSameId: verdicts.reduce((sum, verdict) => sum + verdict.resentSameId, 0),
    wrongId: verdicts.filter((verdict) => verdict.wrongId).length
  })

  const scheduledVerdicts = scheduled.map((message) => ({ message, verdict: judge(message.phone, derivedMessageId(message.id)) }))
  const scheduledCounts = count(scheduledVerdicts.map(({ verdict }) => verdict))
  // Lateness: arrival at the phone minus dueAt. Near a fault when it fell due from the fault to 2 s after its takeover
  // (TTL + 5 s when none was seen), or within 2 s of any other change of holder (a handoff back to a restarted replica).
  const disturbed = [
    ...faults.map((fault) => ({ from: fault.at, to: fault.at + (fault.takeoverMs ?? TTL_MS + 3_000) })),
    ...changes.map((change) => ({ from: change.from, to: change.to }))
  ]
  const nearFault = (dueAt: number) => disturbed.some((window) => dueAt >= window.from - 500 && dueAt <= window.to + 2_000)
  log(`holder changes: ${changes.map((change) => `+${round((change.to - startedAt) / 1000, 1)} s ${change.replica} ` +
    `(epoch ${change.epoch}, seen ${change.to - change.from} ms after the last look at the old one)`).join('; ')}`)
  const lateness = scheduledVerdicts.filter(({ verdict }) => verdict.firstAt !== undefined)
    .map(({ message, verdict }) => ({ ms: verdict.firstAt! - message.dueAt, near: nearFault(message.dueAt) }))
  const all = lateness.map((entry) => entry.ms)
  const clean = lateness.filter((entry) => !entry.near).map((entry) => entry.ms)
  const nearly = lateness.filter((entry) => entry.near).map((entry) => entry.ms)
  const rows = await db.query<{ status: string, count: string, attempts: string }>(
    'select status, count(*), max(attempts) as attempts from whatsapp_scheduled where company_id = $1 group by status', [COMPANY.id])
  const retried = await db.query<{ id: string, attempts: number, epoch: string, error: unknown, due_at: Date }>(
    'select id, attempts, epoch, error, due_at from whatsapp_scheduled where company_id = $1 and attempts > 1', [COMPANY.id])
  for (const row of retried.rows.slice(0, 10)) {
    log(`claimed ${row.attempts} times: ${row.id} due +${row.due_at.getTime() - startedAt} ms, last epoch ${row.epoch}, ` +
      `error ${JSON.stringify(row.error)}`)
  }
  log(`scheduled rows: ${rows.rows.map((row) => `${row.status} ${row.count} (attempts ≤ ${row.attempts})`).join(', ')}`)
  log(`scheduled: ${scheduledCounts.sent}/${SCHEDULED} arrived, ${scheduledCounts.duplicates} duplicates, ${scheduledCounts.lost} lost, ` +
    `${scheduledCounts.resentSameId} resent under the same id, ${scheduledCounts.wrongId} under another id than derived`)
  log(`lateness (arrival - dueAt): p50 ${percentile(all, 50)} ms, p99 ${percentile(all, 99)} ms, max ${Math.max(...all)} ms; ` +
    `away from faults (${clean.length}) p99 ${percentile(clean, 99)} ms; near a fault (${nearly.length}) p99 ${percentile(nearly, 99)} ms`)
  for (const { message, verdict } of scheduledVerdicts.filter(({ verdict }) => !verdict.received || verdict.duplicate).slice(0, 5)) {
    log(`scheduled ${message.index} (${message.id}, due +${message.dueAt - startedAt} ms): ` +
      `${verdict.received ? `ids ${[...new Set(inbox.get(message.phone)!.map((copy) => copy.id))].join(',')}` : 'never arrived'}`)
  }

  let campaignCounts = { sent: 0, duplicates: 0, lost: 0, resentSameId: 0, wrongId: 0 }
  let lastArrival = Math.max(0, ...scheduledVerdicts.map(({ verdict }) => verdict.firstAt ?? 0))
  if (CAMPAIGN && campaignId) {
    const verdicts = Array.from({ length: RECIPIENTS }, (_, seq) =>
      judge(recipientPhone(seq), derivedMessageId(`campaign:${campaignId}:${seq}`)))
    campaignCounts = count(verdicts)
    // How the campaign went: arrivals per 5 s from the start (the faults show as gaps).
    const buckets: number[] = []
    for (const verdict of verdicts) {
      if (verdict.firstAt === undefined) continue
      const bucket = Math.floor((verdict.firstAt - startedAt) / 5_000)
      buckets[bucket] = (buckets[bucket] ?? 0) + 1
    }
    log(`campaign arrivals per 5 s: ${Array.from(buckets, (n) => n ?? 0).join(' ')}`)
    lastArrival = Math.max(lastArrival, ...verdicts.map((verdict) => verdict.firstAt ?? 0))
    log(`campaign: ${campaignCounts.sent}/${RECIPIENTS} recipients got it, ${campaignCounts.duplicates} duplicates, ` +
      `${campaignCounts.lost} lost, ${campaignCounts.resentSameId} resent under the same id, ${campaignCounts.wrongId} under another id; ` +
      `the campaign says ${JSON.stringify(campaignView)}`)
  }
  const elapsedMs = (lastArrival || finishedAt) - startedAt
  Object.assign(summary, {
    recipients: CAMPAIGN ? RECIPIENTS : 0,
    sent: campaignCounts.sent,
    duplicates: campaignCounts.duplicates + scheduledCounts.duplicates,
    lost: campaignCounts.lost + scheduledCounts.lost,
    resent_same_id: campaignCounts.resentSameId + scheduledCounts.resentSameId,
    wrong_id: campaignCounts.wrongId + scheduledCounts.wrongId,
    faults: faults.length,
    elapsed_ms: elapsedMs,
    schedule_lateness_p99_ms: percentile(all, 99),
    schedule_lateness_p50_ms: percentile(all, 50),
    schedule_lateness_max_ms: Math.max(...all),
    schedule_lateness_p99_away_from_faults_ms: percentile(clean, 99),
    schedule_lateness_p99_near_faults_ms: percentile(nearly, 99),
    scheduled: SCHEDULED,
    scheduled_sent: scheduledCounts.sent,
    scheduled_duplicates: scheduledCounts.duplicates,
    scheduled_lost: scheduledCounts.lost,
    campaign_duplicates: campaignCounts.duplicates,
    campaign_lost: campaignCounts.lost,
    campaign_status: campaignView.status ?? null,
    ttl_ms: TTL_MS,
    fault_list: faults.map((fault) => `${fault.kind} +${round((fault.at - startedAt) / 1000, 1)}s`),
    takeover_ms: faults.map((fault) => fault.takeoverMs),
    holder_changes: changes.length,
    scheduled_claimed_twice: retried.rows.length,
    finished
  })
  const met = summary.duplicates === 0 && summary.lost === 0 && percentile(clean, 99) <= 1_000 && percentile(nearly, 99) <= TTL_MS + 2_000
  log(`goals: 0 duplicates, 0 lost, lateness p99 ≤ 1 s away from faults and ≤ TTL + 2 s across one — ${met ? 'met' : 'NOT met'}`)
} finally {
  stopping = true
  await Promise.all(slots.map((slot) => stopSlot(slot, 'SIGTERM')))
  await killChildren('SIGTERM')
  await db.end().catch(() => {})
  await deployment.remove()
}
log(JSON.stringify(summary))
