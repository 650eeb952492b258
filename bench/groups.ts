/**
 * bench:groups — sends to a large group through a gateway replica process with real Baileys, against
 * a simulator of this process's own. The company creates, through the gateway's POST /groups, a group
 * of PARTICIPANTS simulated contacts with DEVICES_PER_PARTICIPANT devices each (the phone and a
 * companion); then, through the HTTP send route, the first send to the group (its sender key goes to
 * every member device), NEXT_SENDS more, and as the baseline the same text NEXT_SENDS times to one
 * of the participants (1:1, the same two devices), alternating with the group sends. Each latency is
 * the HTTP request's, timed by a client thread of its own (the simulator's fan-out holds this one): the
 * gateway answers once Baileys has written the message to the simulator and stored its Signal keys.
 * The simulator records each group send's fan-out (sender key messages, those to devices that already
 * held the key, devices that decrypted, failures), and the queries the device sent with it. Sends go
 * one at a time, each after the simulator has finished the one before (fanned out, decrypted, receipts
 * sent), so no send waits for another's work; the replica's CPU time is read around each. The goal is a
 * group send within twice a direct one (next_send_p50_ms ≤ 2 × direct_send_p50_ms), with no sender key
 * sent twice to a device; a bench reports it and does not fail on it. The last line is one JSON object.
 * BENCH_GROUP_PARTICIPANTS (≤ 256, the API's limit), BENCH_GROUP_SENDS, BENCH_GROUP_SETTLE_MS change the
 * defaults; BENCH_CPU_PROFILE=<dir>: a CPU profile of the replica, written when it stops.
 */
import { Worker } from 'node:worker_threads'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { trustSimulatorCa } from '../simulator/media.ts'
import { benchNodeFlags, cpuMsOf, exitOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment, companyApi, onSimulator } from './deployment.ts'
import { log, percentile, quietLibsignal, round } from './report.ts'

const PARTICIPANTS = Number(process.env.BENCH_GROUP_PARTICIPANTS ?? 256)
const DEVICES_PER_PARTICIPANT = 2
const NEXT_SENDS = Number(process.env.BENCH_GROUP_SENDS ?? 20)
/** After the simulator has finished a send: time for the participants' delivery receipts (50 ms after it) to reach the gateway. */
const SETTLE_MS = Number(process.env.BENCH_GROUP_SETTLE_MS ?? 300)
const STEP_TIMEOUT_MS = 60_000
const TARGET_RATIO = 2
const COMPANY = { id: 'groups-bench', phone: '79005550100' }
const participants = Array.from({ length: PARTICIPANTS }, (_, index) => String(79_140_000_000 + index))
/** The 1:1 baseline's contact: one of the participants, with the same two devices. */
const CONTACT = participants[0]
const TEXT = 'Напоминание: салон завтра открывается в 10:00, ждём вас!'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Answer { status: number, text: string, ms: number }
/**
 * The HTTP client, in a thread of its own. The simulator shares this process, and once it has acked a
 * group message it decrypts it for every member device in one go (over 100 ms for 513 devices): a
 * client on this thread would read the gateway's answer only after that, and count it into the send.
 */
function clientThread () {
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    parentPort.on('message', async ({ id, url, body }) => {
      const at = performance.now()
      try {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        const text = await response.text()
        parentPort.postMessage({ id, status: response.status, text, ms: performance.now() - at })
      } catch (err) {
        parentPort.postMessage({ id, status: 0, text: String(err), ms: performance.now() - at })
      }
    })`, { eval: true })
  let next = 0
  const waiting = new Map<number, (answer: Answer) => void>()
  worker.on('message', (answer: Answer & { id: number }) => {
    waiting.get(answer.id)?.(answer)
    waiting.delete(answer.id)
  })
  return {
    post: (url: string, body: unknown) => new Promise<Answer>((resolve) => {
      const id = next++
      waiting.set(id, resolve)
      worker.postMessage({ id, url, body })
    }),
    close: () => worker.terminate()
  }
}

quietLibsignal()

trustSimulatorCa()
const simulator = new WhatsAppSimulator()
const { url: simulatorUrl } = await simulator.start()
const deployment = await benchDeployment('group')
const replica = await startReplicaProcess({ ...deployment.env, ...onSimulator(simulator, simulatorUrl) }, undefined, benchNodeFlags())
const client = clientThread()

try {
  const { base: api, call } = companyApi(replica.url, COMPANY.id)
  const { qr } = await call('POST', '/initialize') as { qr: string }
  simulator.scan(qr, COMPANY.phone)
  const connected = async () => (await call('GET', '/status')).connected === true
  if (!await waitFor(connected, 30_000, 100)) throw new Error('the company did not connect')

  // Every participant's phone and a companion (WhatsApp numbers companions from 2).
  for (const phone of participants) {
    const account = simulator.account(phone)
    while (account.simulatedDevices().length < DEVICES_PER_PARTICIPANT) account.addCompanion()
  }
  const createdAt = performance.now()
  const { group } = await call('POST', '/groups', { subject: 'Клиенты салона', participants }) as {
    group: { id: string, size: number }
  }
  const createMs = performance.now() - createdAt
  const gid = group.id
  const devices = participants.length * DEVICES_PER_PARTICIPANT
  log(`group ${gid}: ${group.size} members (${PARTICIPANTS} participants, ${devices} devices), created in ${round(createMs, 0)} ms`)
  // The creation's notification reaches the company's device too: let it land before the first send.
  await sleep(1_000)

  let errors = 0
  /**
   * The replica's CPU time (ms) of each send, by chat: during the request, and from the request to the end of
   * the settling (the delivery receipts included).
   */
  type Cpu = { request: number, total: number }
  const cpu = { group: [] as Cpu[], direct: [] as Cpu[] }
  /** One send through the HTTP route, timed by the client thread; then waits until the simulator has done all it does with it. */
  const send = async (phone: string, done: () => boolean, cpuOf: Cpu[]) => {
    const cpuBefore = cpuMsOf(replica.pid)
    const answer = await client.post(`${api}/send`, { phone, message: TEXT })
    const cpuAnswered = cpuMsOf(replica.pid)
    if (answer.status !== 200) {
      if (errors++ === 0) log(`first error: HTTP ${answer.status} ${answer.text.slice(0, 300)}`)
      return NaN
    }
    if (!await waitFor(done, STEP_TIMEOUT_MS, 5)) throw new Error(`the simulator did not finish a send to ${phone}`)
    await sleep(SETTLE_MS)
    cpuOf.push({ request: cpuAnswered - cpuBefore, total: cpuMsOf(replica.pid) - cpuBefore })
    return answer.ms
  }
  /** The queries the company's device sent while each group send was under way, by kind (iq xmlns): none is needed after the first. */
  const queries = new Map<string, number>()
  const sendToGroup = async () => {
    const before = simulator.groups.sends(gid).length
    const logged = simulator.log.length
    const ms = await send(gid, () => simulator.groups.sends(gid).length > before, cpu.group)
    if (before > 0) {
      for (const entry of simulator.log.slice(logged)) {
        const xmlns = entry.kind === 'recv' && entry.detail.startsWith('iq ') ? /"xmlns":"([^"]+)"/.exec(entry.detail)?.[1] : undefined
        if (xmlns) queries.set(xmlns, (queries.get(xmlns) ?? 0) + 1)
      }
    }
    return ms
  }
  const sendToContact = () => {
    const before = simulator.received(CONTACT).length
    return send(CONTACT, () => simulator.received(CONTACT).length > before, cpu.direct)
  }

  const firstMs = await sendToGroup()
  const [first] = simulator.groups.sends(gid)
  log(`first send to the group: ${round(firstMs, 0)} ms; ${first.skdms} sender key messages, ${first.decrypted} devices decrypted, ` +
    `${first.failures.length} failures${first.failures.length ? ` (${first.failures.slice(0, 3).join('; ')})` : ''}`)
  // The 1:1 chat's first send opens its usync and session lookups: not part of the baseline.
  const directFirstMs = await sendToContact()
  log(`first 1:1 send: ${round(directFirstMs, 0)} ms`)

  const next: number[] = []
  const direct: number[] = []
  for (let index = 0; index < NEXT_SENDS; index++) {
    next.push(await sendToGroup())
    direct.push(await sendToContact())
    log(`send ${index + 1}/${NEXT_SENDS}: group ${round(next.at(-1)!, 1)} ms, 1:1 ${round(direct.at(-1)!, 1)} ms`)
  }

  const sends = simulator.groups.sends(gid)
  const later = sends.slice(1)
  const held = simulator.groups.senderKeys(gid)
  const senders = new Set(sends.map((record) => record.from))
  const participantDevices = Object.entries(held).filter(([device]) => device.split(':')[0] !== COMPANY.phone)
  const holding = participantDevices.filter(([, keys]) => [...senders].every((sender) => keys.includes(sender))).length
  const failures = sends.reduce((sum, record) => sum + record.failures.length, 0)
  const meanOf = (list: Cpu[], key: keyof Cpu) => round(list.reduce((sum, entry) => sum + entry[key], 0) / Math.max(1, list.length), 1)
  const nextP50 = percentile(next.filter(Number.isFinite), 50)
  const directP50 = percentile(direct.filter(Number.isFinite), 50)
  const summary = {
    participants: PARTICIPANTS,
    devices,
    first_send_ms: round(firstMs),
    next_send_p50_ms: round(nextP50),
    direct_send_p50_ms: round(directP50),
    // Every member device: the participants' and the number's own phone (Baileys serves it the key too).
    sender_key_messages_first: first.skdms,
    sender_key_messages_next: later.reduce((sum, record) => sum + record.skdms, 0),
    ratio_next_to_direct: round(nextP50 / directP50, 3),
    resent_sender_keys: sends.reduce((sum, record) => sum + record.skdmsToHolders, 0),
    next_send_p99_ms: round(percentile(next.filter(Number.isFinite), 99)),
    direct_send_p99_ms: round(percentile(direct.filter(Number.isFinite), 99)),
    direct_first_ms: round(directFirstMs),
    create_ms: round(createMs),
    // Means over the measured sends (/proc counts 10 ms ticks: only their sum over 20 sends means something).
    replica_cpu_ms_group_request: meanOf(cpu.group.slice(1), 'request'),
    replica_cpu_ms_direct_request: meanOf(cpu.direct.slice(1), 'request'),
    replica_cpu_ms_group_with_receipts: meanOf(cpu.group.slice(1), 'total'),
    replica_cpu_ms_direct_with_receipts: meanOf(cpu.direct.slice(1), 'total'),
    replica_cpu_ms_first_send: round(cpu.group[0]?.total ?? NaN, 0),
    // WhatsApp's own names: w:g2 the group's metadata, usync the devices, encrypt the pre-keys.
    metadata_queries_next: queries.get('w:g2') ?? 0,
    usync_queries_next: queries.get('usync') ?? 0,
    prekey_queries_next: queries.get('encrypt') ?? 0,
    other_queries_next: [...queries].filter(([xmlns]) => !['w:g2', 'usync', 'encrypt'].includes(xmlns)).reduce((sum, [, n]) => sum + n, 0),
    devices_holding_key: holding,
    devices_decrypted_min: Math.min(...sends.map((record) => record.decrypted)),
    fanout_failures: failures,
    errors
  }
  const met = summary.next_send_p50_ms <= TARGET_RATIO * summary.direct_send_p50_ms
  log(`goal: a group send within ${TARGET_RATIO} × a 1:1 send (p50 ${summary.next_send_p50_ms} ms vs ` +
    `${round(TARGET_RATIO * summary.direct_send_p50_ms)} ms): ${met ? 'met' : 'NOT met'}; ` +
    `sender keys sent again to devices that had them: ${summary.resent_sender_keys} (goal 0)`)
  log(JSON.stringify(summary))
} finally {
  await client.close()
  const exited = exitOf(replica)
  replica.kill('SIGTERM')
  await exited
  await simulator.stop()
  await deployment.remove()
}
