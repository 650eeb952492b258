/**
 * bench:history — importing the history of a newly linked number: one gateway replica process with
 * real Baileys, a simulator in this process whose phone holds BENCH_HISTORY_CHATS chats of
 * BENCH_HISTORY_MESSAGES_PER_CHAT messages each (default 2,000 × 50 = 100,000), spread over the last
 * 20 days (within the default MESSAGE_RETENTION_DAYS). A first company is linked without history, so
 * the replica has loaded everything linking needs; its RSS then is the baseline. The bench company is
 * linked; the import runs from the phone's scan to the `history_sync` event that says it is done.
 * RSS is sampled every 50 ms: its peak over the baseline is the growth. Then the history's rows are
 * compared with the phone's messages by id: a message missing is lost, a row beyond one per message
 * is a duplicate, and the chat list's first page is timed (median of five). The last line is one JSON
 * object; a bench reports and does not fail.
 */
import { connect } from '@nats-io/transport-node'
import pg from 'pg'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { controlApi } from '../simulator/control.ts'
import { trustSimulatorCa } from '../simulator/media.ts'
import { benchNodeFlags, exitOf, rssMbOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { TEST_NATS_URL } from '../test/helpers/services.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment, companyApi, onSimulator } from './deployment.ts'
import { log, percentile, quietLibsignal, round } from './report.ts'

const CHATS = Number(process.env.BENCH_HISTORY_CHATS ?? 2_000)
const PER_CHAT = Number(process.env.BENCH_HISTORY_MESSAGES_PER_CHAT ?? 50)
const IMPORT_TIMEOUT_MS = 600_000
const WARM_UP = { id: 'history-warm-up', phone: '79005550300' }
const COMPANY = { id: 'history-bench', phone: '79005550301' }

quietLibsignal()
trustSimulatorCa()
const simulator = new WhatsAppSimulator()
const { url: simulatorUrl } = await simulator.start()
const control = controlApi(simulator)
const deployment = await benchDeployment('history')
const replica = await startReplicaProcess({ ...deployment.env, ...onSimulator(simulator, simulatorUrl) }, undefined, benchNodeFlags())
const nc = await connect({ servers: TEST_NATS_URL })
const db = new pg.Client({ connectionString: deployment.env.DATABASE_URL })
await db.connect()

try {
  const seeded = await control.inject({
    method: 'POST',
    url: `/accounts/${COMPANY.phone}/history`,
    payload: { generate: { chats: CHATS, messagesPerChat: PER_CHAT, days: 20, lidShare: 0.2, mediaShare: 0.02 } }
  })
  if (seeded.statusCode !== 200) throw new Error(`history not seeded: ${seeded.body}`)
  const held = seeded.json() as { chats: number, messages: number }
  log(`the phone holds ${held.messages} messages in ${held.chats} chats`)

  const link = async (company: { id: string, phone: string }) => {
    const { call } = companyApi(replica.url, company.id)
    const { qr } = await call('POST', '/initialize') as { qr: string }
    const scannedAt = performance.now()
    simulator.scan(qr, company.phone)
    if (!await waitFor(async () => (await call('GET', '/status')).connected === true, 60_000, 50)) throw new Error('not connected')
    return { call, scannedAt }
  }
  await link(WARM_UP)
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  const baseline = rssMbOf(replica.pid)
  log(`baseline RSS after a first link: ${round(baseline, 1)} MB`)

  let doneAt: number | undefined
  let chunks = 0
  nc.subscribe(`${deployment.namespace}.evt.${COMPANY.id}.history_sync`, {
    callback: (_err, msg) => {
      const { data } = msg.json<{ data: { done: boolean, totals: { messages: number } } }>()
      chunks++
      if (data.done) doneAt = performance.now()
    }
  })
  await nc.flush()
  let peak = baseline
  const sampler = setInterval(() => { peak = Math.max(peak, rssMbOf(replica.pid)) }, 50)
  const { scannedAt } = await link(COMPANY)
  const finished = await waitFor(() => doneAt !== undefined, IMPORT_TIMEOUT_MS, 20)
  clearInterval(sampler)
  if (!finished) throw new Error(`the import did not finish within ${IMPORT_TIMEOUT_MS} ms (${chunks} chunks)`)
  const importMs = doneAt! - scannedAt

  const rows = await db.query<{ message_id: string }>('select message_id from whatsapp_messages where company_id = $1', [COMPANY.id])
  const stored = new Set(rows.rows.map((row) => row.message_id))
  const expected = Array.from({ length: CHATS }, (_, chat) => Array.from({ length: PER_CHAT }, (_, n) => `H${chat}-${n}`)).flat()
  const lost = expected.filter((id) => !stored.has(id)).length
  const duplicates = rows.rows.length - (expected.length - lost)
  const chats = Number((await db.query<{ count: string }>(
    "select count(distinct coalesce(group_id, phone || '@s.whatsapp.net', lid)) as count from whatsapp_messages where company_id = $1",
    [COMPANY.id])).rows[0].count)
  log(`${chunks} chunks imported in ${round(importMs / 1000, 1)} s; RSS peak ${round(peak, 1)} MB`)
  // What a user opens next: the chat list's first page, over the imported history.
  const { call } = companyApi(replica.url, COMPANY.id)
  const pageTimes: number[] = []
  for (let i = 0; i < 5; i++) {
    const at = performance.now()
    await call('GET', '/chats?limit=20')
    pageTimes.push(performance.now() - at)
  }
  const chatsPageMs = percentile(pageTimes, 50)
  console.log(JSON.stringify({
    messages: stored.size,
    chats,
    import_ms: Math.round(importMs),
    messages_per_s: Math.round(stored.size / (importMs / 1000)),
    rss_growth_mb: round(peak - baseline, 1),
    duplicates,
    lost,
    chats_page_ms: round(chatsPageMs, 1)
  }))
} finally {
  await nc.close()
  await db.end()
  replica.kill('SIGTERM')
  await exitOf(replica)
  await simulator.stop()
  await deployment.remove()
}
