/**
 * bench:media — files through a gateway replica process with real Baileys and the simulator's media
 * server, for COMPANIES linked companies: FILES files of 1 MB sent (multipart HTTP, CONCURRENCY at once) and FILES received from
 * contacts (downloaded by the holder into the media bucket, CONCURRENCY in flight), each checked
 * byte-exact by SHA-256 on the other side. The replica's RSS is sampled all along; its growth is
 * the peak over the same process idle after linking. The baseline, measured in the same run, is the
 * simulator's media server alone: the same files encrypted and uploaded by this process at the same
 * concurrency. The last line is one JSON object.
 */
import { randomBytes, createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import { connect } from '@nats-io/transport-node'
import { subjectsFor, type EventEnvelope } from '../contracts/index.ts'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { encryptMedia, trustSimulatorCa } from '../simulator/media.ts'
import { TEST_NATS_URL } from '../test/helpers/services.ts'
import { exitOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment, onSimulator } from './deployment.ts'
import { log, round } from './report.ts'

const FILES = Number(process.env.BENCH_MEDIA_FILES ?? 100)
const FILE_BYTES = Number(process.env.BENCH_MEDIA_FILE_MB ?? 1) * 1024 * 1024
const CONCURRENCY = Number(process.env.BENCH_MEDIA_CONCURRENCY ?? 16)
const TARGET_RSS_GROWTH_MB = 64
const MB = 1024 * 1024
/** One WhatsApp connection sends one message at a time: several companies let transfers overlap. */
const COMPANIES = Number(process.env.BENCH_MEDIA_COMPANIES ?? 4)
const companies = Array.from({ length: COMPANIES }, (_, index) => ({ id: `media-bench-${index}`, phone: String(79_005_550_000 + index) }))

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')
/** A 1 MB "document": a PDF header, then random bytes (every file its own). */
const file = () => Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(FILE_BYTES - 9)])

async function pool (total: number, concurrency: number, work: (index: number) => Promise<void>): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await work(next++)
  }))
  return (performance.now() - started) / 1000
}

trustSimulatorCa()
const simulator = new WhatsAppSimulator()
const { url: simulatorUrl } = await simulator.start()
const deployment = await benchDeployment('media')
const { namespace } = deployment
const replica = await startReplicaProcess({ ...deployment.env, ...onSimulator(simulator, simulatorUrl) })
const rssMb = () => {
  const status = readFileSync(`/proc/${replica.pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}
let peakRss = 0
const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMb()) }, 20)
const nc = await connect({ servers: TEST_NATS_URL })

try {
  const api = (index: number) => `${replica.url}/api/whatsapp/sessions/${companies[index % COMPANIES].id}`
  for (const [index, company] of companies.entries()) {
    const { qr } = await (await fetch(`${api(index)}/initialize`, { method: 'POST' })).json() as { qr: string }
    simulator.scan(qr, company.phone)
    const connected = async () => ((await (await fetch(`${api(index)}/status`)).json()) as { connected?: boolean }).connected === true
    if (!await waitFor(connected, 30_000, 100)) throw new Error(`${company.id} did not connect`)
  }
  let errors = 0
  const sent = new Map<string, string>()
  const sendOne = async (index: number) => {
    const contact = String(79_120_000_000 + index)
    const data = file()
    sent.set(contact, sha256(data))
    const response = await fetch(`${api(index)}/send`, { method: 'POST', body: multipart(contact, data) })
    if (!response.ok) {
      if (errors++ === 0) log(`first send error: ${response.status} ${await response.text()}`)
    } else {
      await response.arrayBuffer()
    }
  }
  const received = new Map<string, string>()
  const events: EventEnvelope[] = []
  const subscription = nc.subscribe(subjectsFor(namespace).event('*', 'message'), {
    callback: (_err, msg) => { events.push(msg.json<EventEnvelope>()) }
  })
  await nc.flush()
  /** A contact sends a file; done when the holder published its event (the file then is in the bucket). */
  const receiveOne = async (index: number) => {
    const data = file()
    const { id } = await simulator.deliver({
      from: String(79_130_000_000 + index),
      to: companies[index % COMPANIES].phone,
      media: { kind: 'document', data, mimetype: 'application/pdf', fileName: `f${index}.pdf` }
    })
    received.set(id, sha256(data))
    const arrived = () => events.some((event) => (event.data as { messageId?: string }).messageId === id)
    await waitFor(arrived, 60_000, 10)
  }

  const idleSample = async () => {
    const samples: number[] = []
    for (let i = 0; i < 20; i++) {
      samples.push(rssMb())
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return Math.max(...samples)
  }
  const coldIdleRss = await idleSample()
  log(`replica idle after linking: RSS ${round(coldIdleRss, 1)} MB`)
  // Warm up with one round of each at full concurrency, then let the process settle: the idle RSS
  // is what a process that has done this work holds while doing nothing.
  await pool(CONCURRENCY, CONCURRENCY, (index) => sendOne(FILES + index))
  await pool(CONCURRENCY, CONCURRENCY, (index) => receiveOne(FILES + index))
  sent.clear()
  received.clear()
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  const idleRss = await idleSample()
  log(`replica idle after a warm-up: RSS ${round(idleRss, 1)} MB`)

  // Baseline: the media server alone, the same bytes encrypted and uploaded from here.
  const baselineSeconds = await pool(FILES, CONCURRENCY, async () => { await upload(encryptMedia(file(), 'document').body) })
  const baselineMbPerS = FILES * FILE_BYTES / MB / baselineSeconds

  // Send: multipart through the gateway, one contact per file; the contact checks every byte.
  peakRss = 0
  const sendSeconds = await pool(FILES, CONCURRENCY, sendOne)
  const sendPeak = peakRss
  const delivered = async () => [...sent.keys()].filter((contact) => simulator.received(contact).length > 0).length
  await waitFor(async () => await delivered() === sent.size, 30_000, 100)
  for (const [contact, hash] of sent) {
    const got = simulator.received(contact)[0]?.media
    if (!got || got.sha256 !== hash) errors++
  }

  // Receive: contacts send files; the holder downloads each into the bucket before its event.
  // Each worker waits for its file's event: CONCURRENCY transfers in flight at once.
  peakRss = 0
  const receiveSeconds = await pool(FILES, CONCURRENCY, receiveOne)
  const receivePeak = peakRss
  subscription.unsubscribe()
  for (const [id, hash] of received) {
    const event = events.find((candidate) => (candidate.data as { messageId?: string }).messageId === id)
    const media = (event?.data as { media?: { sha256?: string } } | undefined)?.media
    if (media?.sha256 !== hash) errors++
  }

  const summary = {
    files: FILES,
    file_mb: FILE_BYTES / MB,
    concurrency: CONCURRENCY,
    companies: COMPANIES,
    sent_mb_per_s: round(FILES * FILE_BYTES / MB / sendSeconds),
    received_mb_per_s: round(FILES * FILE_BYTES / MB / receiveSeconds),
    baseline_upload_mb_per_s: round(baselineMbPerS),
    sent_vs_baseline: round(FILES * FILE_BYTES / MB / sendSeconds / baselineMbPerS, 3),
    received_vs_baseline: round(FILES * FILE_BYTES / MB / receiveSeconds / baselineMbPerS, 3),
    idle_rss_mb: round(idleRss, 1),
    rss_growth_mb: round(Math.max(sendPeak, receivePeak) - idleRss, 1),
    send_rss_growth_mb: round(sendPeak - idleRss, 1),
    receive_rss_growth_mb: round(receivePeak - idleRss, 1),
    // Over the process before it moved any file: V8 and the allocator grow their pools on first use.
    cold_idle_rss_mb: round(coldIdleRss, 1),
    rss_growth_over_cold_idle_mb: round(Math.max(sendPeak, receivePeak) - coldIdleRss, 1),
    rss_growth_vs_target: round((Math.max(sendPeak, receivePeak) - idleRss) / TARGET_RSS_GROWTH_MB, 3),
    errors
  }
  log(`targets: errors 0, RSS growth under ${TARGET_RSS_GROWTH_MB} MB with ${CONCURRENCY} transfers at once — ` +
    `${errors === 0 && summary.rss_growth_mb < TARGET_RSS_GROWTH_MB ? 'met' : 'NOT met'}`)
  log(JSON.stringify(summary))
} finally {
  clearInterval(sampler)
  const exited = exitOf(replica)
  replica.kill('SIGTERM')
  await exited
  await simulator.stop()
  await nc.close()
  await deployment.remove()
}

function multipart (phone: string, data: Buffer): FormData {
  const form = new FormData()
  form.append('phone', phone)
  form.append('kind', 'document')
  form.append('file', new Blob([data], { type: 'application/pdf' }), 'file.pdf')
  return form
}

/** An upload to the simulator's media server, as Baileys makes it. */
function upload (body: Buffer): Promise<void> {
  const mediaConn = simulator.media.mediaConn()
  const token = createHash('sha256').update(body).digest('base64url')
  const [host, port] = simulator.media.hostname.split(':')
  return new Promise((resolve, reject) => {
    const req = request({
      host,
      port,
      method: 'POST',
      path: `/mms/document/${token}?auth=${encodeURIComponent(mediaConn.attrs.auth)}&token=${token}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': body.length }
    }, (response) => {
      response.resume()
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`upload ${response.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}
