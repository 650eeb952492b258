/**
 * What the gateway sends on its own survives its holder's death: two gateway replica processes with
 * real Baileys on a simulator of the test's own, one linked company, and the holder killed with SIGKILL
 * in the middle of scheduled messages falling due, or of a campaign. Every message reaches its phone
 * under one message id (the one derived from its own: a resend of one the dead holder had begun shows
 * once) and ends `sent`.
 */
import type { Test } from 'tap'
import t from 'tap'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { derivedMessageId } from '../plugins/scheduler/outcomes.ts'
import { clusterEnv, clusterSettings, TEST_LEASE_TTL_MS } from './helpers/cluster.ts'
import { exitOf, startReplicaProcess, type ReplicaProcess } from './helpers/replica-process.ts'
import { startSimulator } from './helpers/simulator.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const COMPANY_PHONE = '79001230301'
const MESSAGES = 30
/** The messages fall due evenly over this stretch, starting FIRST_DUE_MS from now; the holder dies at its middle. */
const FIRST_DUE_MS = 2_000
const DUE_SPAN_MS = 4_000
/** Generous for a loaded machine: a takeover is the TTL, then a Baileys login on the new holder. */
const SETTLED_TIMEOUT_MS = 45_000
/** How late past the lease TTL a message may arrive across the takeover on a loaded 2-core machine. */
const LATE_MARGIN_MS = 15_000
const phoneOf = (index: number) => String(79_111_230_400 + index)
const RECIPIENTS = 60

/** Two replica processes on a simulator, a company linked, and which of the two holds it. */
async function linkedPair (t: Test) {
  const { simulator, url } = await startSimulator(t)
  const settings = await clusterSettings(t)
  const env = {
    ...clusterEnv(settings),
    WA_TRANSPORT: 'baileys',
    WA_WS_URL: url,
    WA_CERT_PUBLIC_KEY: simulator.identity.publicKeyHex,
    WA_VERSION: '2.3000.1023223821',
    NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('../simulator/tls/ca.pem', import.meta.url)),
    MESSAGES_PER_MINUTE: '6000',
    // A campaign checks its phones ahead of sending them: the default budget would pace it, not the campaign.
    NUMBER_CHECKS_PER_MINUTE: '6000'
  }
  const replicas: ReplicaProcess[] = await Promise.all([1, 2].map((n) =>
    startReplicaProcess({ ...env, REPLICA_ID: uniqueName(`sched-r${n}`) })))
  for (const replica of replicas) t.teardown(() => { replica.kill('SIGKILL') })
  const companyId = uniqueName('salon')
  const api = async (replica: ReplicaProcess, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}${path}`, {
      method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    })
    return { status: response.status, json: await response.json().catch(() => ({})) as Record<string, unknown> }
  }

  const init = await api(replicas[0]!, 'POST', '/initialize')
  t.ok(typeof init.json.qr === 'string', 'a QR to link with')
  t.ok(simulator.scan(init.json.qr as string, COMPANY_PHONE), 'scanned')
  t.ok(await waitFor(async () => (await api(replicas[0]!, 'GET', '/status')).json.connected === true, 30_000, 200), 'connected')
  const owner = await api(replicas[1]!, 'GET', '/owner')
  t.equal(owner.status, 200, 'the holder answers …/owner')
  const holderId = owner.json.replica as string
  const replicaIds = await Promise.all(replicas.map(async (replica) =>
    (await (await fetch(`${replica.url}/api/whatsapp/cluster`)).json() as { replica: string }).replica))
  const victim = replicas[replicaIds.indexOf(holderId)]!
  t.ok(victim, `the holder is one of the two (${holderId})`)
  const survivor = replicas.find((replica) => replica !== victim)!
  /** What a phone received from the company. */
  const received = (phone: string) => simulator.received(phone).filter((copy) => copy.from.startsWith(`${COMPANY_PHONE}:`))
  const kill = async () => {
    const exited = exitOf(victim)
    victim.kill('SIGKILL')
    await exited
  }
  return { settings, companyId, api, victim, survivor, epoch: owner.json.epoch as number, received, kill }
}

t.test('scheduled messages due around a SIGKILL of their holder: each arrives once, under its own id, and ends sent', {
  timeout: 120_000
}, async (t) => {
  const { settings, companyId, api, victim, survivor, epoch, received, kill } = await linkedPair(t)
  const start = Date.now()
  const scheduled: { id: string, phone: string, dueAt: number }[] = []
  for (let index = 0; index < MESSAGES; index++) {
    const sendAt = new Date(start + FIRST_DUE_MS + Math.round(DUE_SPAN_MS * index / (MESSAGES - 1))).toISOString()
    const phone = phoneOf(index)
    // Half through each replica: where a message is scheduled does not matter.
    const answer = await api(index % 2 ? victim : survivor, 'POST', '/send', { phone, message: `Напоминание ${index}`, sendAt })
    t.equal(answer.status, 202, `message ${index} scheduled`)
    scheduled.push({ id: answer.json.id as string, phone, dueAt: Date.parse(answer.json.dueAt as string) })
  }

  // The holder dies in the middle of the due messages, with some sent and some still to go.
  const killAt = start + FIRST_DUE_MS + DUE_SPAN_MS / 2
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, killAt - Date.now())))
  const sentBefore = scheduled.filter((message) => received(message.phone).length > 0).length
  await kill()
  t.ok(sentBefore < MESSAGES, `${sentBefore} of ${MESSAGES} had arrived when the holder was killed`)

  const db = new pg.Client({ connectionString: settings.databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  const statuses = async () => (await db.query<{ id: string, status: string, message_id: string | null, epoch: string | null }>(
    'select id, status, message_id, epoch from whatsapp_scheduled where company_id = $1', [companyId])).rows
  t.ok(await waitFor(async () => (await statuses()).every((row) => row.status === 'sent'), SETTLED_TIMEOUT_MS, 250),
    'every scheduled message ends sent')
  t.ok(await waitFor(() => scheduled.every((message) => received(message.phone).length > 0), 10_000, 100),
    'every phone received its message')
  // A resend after the kill would come within a look or two of the takeover: give it the time to show.
  await new Promise((resolve) => setTimeout(resolve, 2_000))

  const rows = new Map((await statuses()).map((row) => [row.id, row]))
  const newOwner = await api(survivor, 'GET', '/owner')
  t.ok((newOwner.json.epoch as number) > epoch, `taken over under a newer epoch (${epoch} → ${newOwner.json.epoch as number})`)
  for (const [index, message] of scheduled.entries()) {
    const copies = received(message.phone)
    const ids = [...new Set(copies.map((copy) => copy.id))]
    t.same(ids, [derivedMessageId(message.id)], `message ${index}: one message id, its own (${copies.length} copies)`)
    t.equal(copies[0]?.text, `Напоминание ${index}`)
    t.match(rows.get(message.id), { status: 'sent', message_id: derivedMessageId(message.id) }, `message ${index}: sent under that id`)
    const late = (copies[0]?.at ?? Infinity) - message.dueAt
    t.ok(late <= TEST_LEASE_TTL_MS + LATE_MARGIN_MS, `message ${index} ${late} ms after it was due`)
  }
  const afterKill = [...rows.values()].filter((row) => Number(row.epoch) > epoch).length
  t.ok(afterKill > 0, `${afterKill} sent by the new holder`)
  const exit = exitOf(survivor)
  survivor.kill('SIGTERM')
  await exit
})

t.test('a campaign whose holder gets SIGKILL midway: each recipient gets it once, under its place\'s id, and it finishes', {
  timeout: 120_000
}, async (t) => {
  const { api, victim, survivor, epoch, received, kill } = await linkedPair(t)
  const recipients = Array.from({ length: RECIPIENTS }, (_, index) => ({
    phone: phoneOf(100 + index), variables: { name: `Гость ${index}` }
  }))
  const created = await api(victim, 'POST', '/campaigns', {
    name: 'failover',
    template: { text: 'Привет, {{name}}!' },
    recipients,
    pacing: { messagesPerMinute: 600, jitter: 0.2, typingMs: 0 },
    quietHours: 'ignore'
  })
  t.equal(created.status, 201, JSON.stringify(created.json))
  const id = (created.json.campaign as { id: string }).id
  const arrived = () => recipients.filter((recipient) => received(recipient.phone).length > 0).length
  t.ok(await waitFor(() => arrived() >= RECIPIENTS / 3, 30_000, 50), 'a third arrived')
  await kill()
  const sentBefore = arrived()
  t.ok(sentBefore < RECIPIENTS, `${sentBefore} of ${RECIPIENTS} had arrived when the holder was killed`)

  let campaign: { status?: string, counts?: Record<string, number> } = {}
  t.ok(await waitFor(async () => {
    campaign = ((await api(survivor, 'GET', `/campaigns/${id}`)).json.campaign ?? {}) as typeof campaign
    return campaign.status === 'finished'
  }, SETTLED_TIMEOUT_MS, 250), `finished: ${JSON.stringify(campaign)}`)
  t.match(campaign.counts, { queued: 0, sent: RECIPIENTS, failed: 0, skipped: 0 })
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  for (const [seq, recipient] of recipients.entries()) {
    const copies = received(recipient.phone)
    t.same([...new Set(copies.map((copy) => copy.id))], [derivedMessageId(`campaign:${id}:${seq}`)],
      `recipient ${seq}: one message id, its place's (${copies.length} copies)`)
    t.equal(copies[0]?.text, `Привет, Гость ${seq}!`)
  }
  const newOwner = await api(survivor, 'GET', '/owner')
  t.ok((newOwner.json.epoch as number) > epoch, 'taken over under a newer epoch')
  const exit = exitOf(survivor)
  survivor.kill('SIGTERM')
  await exit
})
