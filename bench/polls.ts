/**
 * bench:polls — what counting a vote costs, against what taking an ordinary message costs, on one
 * gateway replica process with real Baileys and a simulator of this process's own. The company sends
 * a poll to a group of PARTICIPANTS simulated contacts. Then, one at a time and alternating, a
 * participant writes a text to the group (the baseline: Baileys decrypts it, the gateway publishes a
 * `message` event) or votes (Baileys decrypts it, the gateway opens the vote with the poll's secret
 * from PostgreSQL, records it under the poll's lock and publishes `poll_vote`); each latency runs from
 * the simulator handing the message to the device's connection to the event arriving on NATS here.
 * Every participant has written once before (its sender key reached the device). Then a burst: every
 * participant writes at once (the baseline), then every participant votes at once; each burst's time
 * runs to its last event. The last line is one JSON object with both ratios; a bench
 * reports them and does not fail on them. BENCH_POLL_PARTICIPANTS, BENCH_POLL_ROUNDS change the defaults.
 */
import { connect } from '@nats-io/transport-node'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { trustSimulatorCa } from '../simulator/media.ts'
import { benchNodeFlags, cpuMsOf, exitOf, startReplicaProcess } from '../test/helpers/replica-process.ts'
import { TEST_NATS_URL } from '../test/helpers/services.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { benchDeployment, companyApi, onSimulator } from './deployment.ts'
import { log, percentile, quietLibsignal, round } from './report.ts'

const PARTICIPANTS = Number(process.env.BENCH_POLL_PARTICIPANTS ?? 200)
const ROUNDS = Number(process.env.BENCH_POLL_ROUNDS ?? 30)
const STEP_TIMEOUT_MS = 60_000
const COMPANY = { id: 'polls-bench', phone: '79005550200' }
const OPTIONS = ['10:00', '12:00', '15:00', '18:00']
const participants = Array.from({ length: PARTICIPANTS }, (_, index) => String(79_160_000_000 + index))

quietLibsignal()

trustSimulatorCa()
const simulator = new WhatsAppSimulator()
const { url: simulatorUrl } = await simulator.start()
const deployment = await benchDeployment('poll')
const replica = await startReplicaProcess({ ...deployment.env, ...onSimulator(simulator, simulatorUrl) }, undefined, benchNodeFlags())
const nc = await connect({ servers: TEST_NATS_URL })

try {
  const { call } = companyApi(replica.url, COMPANY.id)
  /** When each event (by type and the id that names it) arrived here. */
  const arrived = new Map<string, number>()
  nc.subscribe(`${deployment.namespace}.evt.${COMPANY.id}.>`, {
    callback: (_err, msg) => {
      const event = msg.json<{ type: string, data: { messageId?: string, voteMessageId?: string } }>()
      const id = event.type === 'poll_vote' ? event.data.voteMessageId : event.data.messageId
      if (id) arrived.set(`${event.type}/${id}`, performance.now())
    }
  })
  await nc.flush()

  const { qr } = await call('POST', '/initialize') as { qr: string }
  simulator.scan(qr, COMPANY.phone)
  if (!await waitFor(async () => (await call('GET', '/status')).connected === true, 30_000, 100)) throw new Error('not connected')
  const { group } = await call('POST', '/groups', { subject: 'Клиенты салона', participants }) as { group: { id: string } }
  const gid = group.id
  const { messageId: pollId } = await call('POST', '/polls', { phone: gid, question: 'Когда вам удобно?', options: OPTIONS }) as {
    messageId: string
  }
  const gotPoll = () => participants.every((phone) => simulator.groups.received(gid, phone).some((message) => message.id === pollId))
  if (!await waitFor(gotPoll, STEP_TIMEOUT_MS, 20)) throw new Error('the participants did not get the poll')
  log(`poll ${pollId} in ${gid}: ${PARTICIPANTS} participants`)

  const until = async (key: string) => {
    if (!await waitFor(() => arrived.has(key), STEP_TIMEOUT_MS, 1)) throw new Error(`no ${key}`)
    return arrived.get(key)!
  }
  const message = async (from: string, text: string) => {
    const at = performance.now()
    const { id } = await simulator.groups.send({ group: gid, from, text })
    return (await until(`message/${id}`)) - at
  }
  const vote = async (from: string, option: string) => {
    const at = performance.now()
    const { id } = await simulator.polls.voteInGroup({ group: gid, from, pollMessageId: pollId, options: [option] })
    return (await until(`poll_vote/${id}`)) - at
  }

  // Warm-up: every participant writes once (the device takes each one's sender key, over a new Signal
  // session, with the first message only), and each path runs once (the first statement plans).
  for (const from of participants) await message(from, 'Здравствуйте')
  await vote(participants[0]!, OPTIONS[0]!)
  const messages: number[] = []
  const votes: number[] = []
  for (let index = 1; index <= ROUNDS; index++) {
    const from = participants[index % PARTICIPANTS]!
    messages.push(await message(from, `Сообщение ${index}`))
    votes.push(await vote(from, OPTIONS[index % OPTIONS.length]!))
  }
  log(`one at a time (${ROUNDS} each): message p50 ${round(percentile(messages, 50))} ms, vote p50 ${round(percentile(votes, 50))} ms`)

  const burst = async (kind: 'message' | 'vote') => {
    const cpuBefore = cpuMsOf(replica.pid)
    const at = performance.now()
    const send = async (from: string, index: number) => kind === 'message'
      ? (await simulator.groups.send({ group: gid, from, text: `Всем ${index}` })).id
      : (await simulator.polls.voteInGroup({ group: gid, from, pollMessageId: pollId, options: [OPTIONS[(index + 1) % OPTIONS.length]!] }))
          .id
    const ids = await Promise.all(participants.map(send))
    const type = kind === 'message' ? 'message' : 'poll_vote'
    const done = () => ids.every((id) => arrived.has(`${type}/${id}`))
    if (!await waitFor(done, STEP_TIMEOUT_MS, 5)) throw new Error(`${kind} burst did not finish`)
    const ms = Math.max(...ids.map((id) => arrived.get(`${type}/${id}`)!)) - at
    return { ms, cpuMs: cpuMsOf(replica.pid) - cpuBefore }
  }
  const messageBurst = await burst('message')
  const voteBurst = await burst('vote')
  log(`burst of ${PARTICIPANTS}: messages ${round(messageBurst.ms, 0)} ms (${round(messageBurst.cpuMs, 0)} ms CPU), ` +
    `votes ${round(voteBurst.ms, 0)} ms (${round(voteBurst.cpuMs, 0)} ms CPU)`)

  const tally = await call('GET', `/messages/${pollId}/poll`) as { poll: { voters: number, options: { votes: number }[] } }
  const expected = OPTIONS.map((_, option) => participants.filter((_, index) => (index + 1) % OPTIONS.length === option).length)
  const counted = tally.poll.options.map((option) => option.votes)
  const summary = {
    participants: PARTICIPANTS,
    rounds: ROUNDS,
    message_p50_ms: round(percentile(messages, 50)),
    vote_p50_ms: round(percentile(votes, 50)),
    ratio_vote_to_message_p50: round(percentile(votes, 50) / percentile(messages, 50), 3),
    message_p99_ms: round(percentile(messages, 99)),
    vote_p99_ms: round(percentile(votes, 99)),
    message_burst_ms: round(messageBurst.ms, 0),
    vote_burst_ms: round(voteBurst.ms, 0),
    ratio_vote_to_message_burst: round(voteBurst.ms / messageBurst.ms, 3),
    votes_per_second_burst: round(PARTICIPANTS / (voteBurst.ms / 1000), 1),
    replica_cpu_ms_message_burst: round(messageBurst.cpuMs, 0),
    replica_cpu_ms_vote_burst: round(voteBurst.cpuMs, 0),
    tally_voters: tally.poll.voters,
    tally_matches_final_votes: JSON.stringify(counted) === JSON.stringify(expected)
  }
  log(JSON.stringify(summary))
} finally {
  await nc.close()
  const exited = exitOf(replica)
  replica.kill('SIGTERM')
  await exited
  await simulator.stop()
  await deployment.remove()
}
