/**
 * bench:elections — how long a replicated JetStream KV bucket stops acknowledging writes when a
 * nats-server node dies, seen as a lease holder sees it, and which LEASE_TTL_MS survives that.
 *
 * A three-node nats-server cluster (JetStream, file store) holds an R3 bucket. A writer updates one
 * key as the ownership plugin renews a lease (compare-and-set, the lease's request timeout, a retry
 * every 250 ms after a failure) but continuously, every WRITE_EVERY_MS, so the longest interval
 * between two acknowledged writes is the gap. Each round SIGKILLs a node (the bucket's stream leader
 * in two rounds of three, another node in the third), restarts it after RESTART_AFTER_MS, and waits
 * until every replica of the bucket is current again. The last line is one JSON object.
 *
 * A holder renews RENEWALS_PER_TTL (4) times per TTL and fences itself TTL − margin after its last
 * acknowledged renewal, so a gap that starts just before a renewal is survived when
 * gap < (1 − 1/4)·TTL − margin, and one that starts just after a renewal when gap < TTL − margin.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { startNatsCluster } from '../core/embedded/nats-cluster.ts'
import { openKv } from '../core/nats/kv.ts'
import { RECONNECT_WAIT_MS } from '../core/plugins/nats.ts'
import { RENEWALS_PER_TTL } from '../plugins/ownership/membership.ts'
import { log, percentile } from './report.ts'

const ROUNDS = Number(process.env.ELECTION_ROUNDS ?? 12)
const TTL_MS = Number(process.env.LEASE_TTL_MS ?? 15_000)
const WRITE_EVERY_MS = 50
const RESTART_AFTER_MS = 3_000
/** The ownership plugin's values for this TTL (plugins/ownership/ownership.ts). */
const RENEW_TIMEOUT_MS = Math.max(500, Math.floor(TTL_MS / 4))
const RETRY_MS = Math.max(25, Math.min(250, TTL_MS / 10))
const FENCE_MARGIN_MS = (ttl: number) => Math.min(1_500, ttl / 4)
const CANDIDATE_TTLS_MS = [5_000, 10_000, 15_000, 20_000, 30_000]

const dir = await mkdtemp(join(tmpdir(), 'wa-elections-'))
const cluster = await startNatsCluster({ dir })
const nc = await connect({ servers: cluster.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: RECONNECT_WAIT_MS })
const bucket = 'elections'
const stream = `KV_${bucket}`
const kv = await openKv(nc, bucket, { ttlMs: 60_000, timeoutMs: RENEW_TIMEOUT_MS, replicas: 3 })
const jsm = await jetstreamManager(nc, { timeout: 2_000 })

// The writer: acknowledged write times, as sent (the fence counts from a renewal's send time).
let acks: number[] = []
const writer = { running: true }
const writing = (async () => {
  let revision = await kv.put('lease', '0')
  while (writer.running) {
    const sentAt = performance.now()
    try {
      revision = await kv.update('lease', String(sentAt), revision)
      acks.push(sentAt)
      await sleep(WRITE_EVERY_MS)
    } catch (err) {
      // A timed-out write may have landed: read the revision back, as the lease does.
      if (/wrong last sequence/i.test((err as Error).message)) {
        revision = (await kv.get('lease').catch(() => null))?.revision ?? revision
      }
      await sleep(RETRY_MS)
    }
  }
})()

interface StreamPlacement { leader?: string, current: boolean }
const placement = async (): Promise<StreamPlacement> => {
  try {
    const info = await jsm.streams.info(stream)
    const replicas = info.cluster?.replicas ?? []
    const current = replicas.length === 2 && replicas.every((replica) => replica.current && !replica.offline)
    return { leader: info.cluster?.leader, current }
  } catch {
    return { current: false }
  }
}
const settled = async (timeoutMs: number) => {
  const until = performance.now() + timeoutMs
  while (performance.now() < until) {
    const state = await placement()
    if (state.leader && state.current) return state
    await sleep(250)
  }
  throw new Error(`${stream} did not settle within ${timeoutMs} ms`)
}

const rounds: { killed: string, leader: boolean, client: boolean, gapMs: number }[] = []
try {
  await settled(30_000)
  await sleep(2_000)
  for (let round = 0; round < ROUNDS; round++) {
    const { leader } = await settled(60_000)
    const killLeader = round % 3 !== 2
    const node = killLeader
      ? cluster.nodes.find((candidate) => candidate.name === leader)!
      : cluster.nodes.find((candidate) => candidate.name !== leader)!
    const client = nc.getServer() === node.url.replace('nats://', '')
    acks = []
    const killedAt = performance.now()
    await node.stop(true)
    await sleep(RESTART_AFTER_MS)
    await node.start()
    // The writer must have been acknowledged again well after the restart.
    while (performance.now() - killedAt < 60_000 && !acks.some((at) => at > killedAt + RESTART_AFTER_MS + 2_000)) await sleep(100)
    await settled(60_000)
    const before = acks.filter((at) => at < killedAt).at(-1) ?? killedAt
    let gapMs = 0
    let previous = before
    for (const at of acks.filter((at) => at >= killedAt)) {
      gapMs = Math.max(gapMs, at - previous)
      previous = at
    }
    rounds.push({ killed: node.name, leader: killLeader, client, gapMs: Math.round(gapMs) })
    log(`round ${round + 1}: SIGKILL ${node.name} (${killLeader ? 'the bucket leader' : 'not the leader'}` +
      `${client ? ', the writer\'s server' : ''}): writes unacknowledged for ${Math.round(gapMs)} ms`)
    await sleep(2_000)
  }
} finally {
  writer.running = false
  await writing.catch(() => {})
  await nc.close()
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
}

const leaderGaps = rounds.filter((round) => round.leader).map((round) => round.gapMs)
const otherGaps = rounds.filter((round) => !round.leader).map((round) => round.gapMs)
const worstGap = Math.max(0, ...leaderGaps, ...otherGaps)
// For each TTL: the gaps a holder survives whatever the gap's phase against its renewals.
const toleranceOf = (ttl: number) => Math.round((1 - 1 / RENEWALS_PER_TTL) * ttl - FENCE_MARGIN_MS(ttl))
const toleranceMs = Object.fromEntries(CANDIDATE_TTLS_MS.map((ttl) => [ttl, toleranceOf(ttl)]))
const survivingTtls = CANDIDATE_TTLS_MS.filter((ttl) => toleranceMs[ttl] > worstGap * 1.25)
for (const ttl of CANDIDATE_TTLS_MS) {
  const verdict = toleranceMs[ttl] > worstGap ? 'every' : 'not every'
  log(`LEASE_TTL_MS ${ttl}: survives any gap under ${toleranceMs[ttl]} ms — ${verdict} gap measured here`)
}
log(JSON.stringify({
  rounds: rounds.length,
  renew_timeout_ms: RENEW_TIMEOUT_MS,
  leader_kill_gap_p50_ms: percentile(leaderGaps, 50),
  leader_kill_gap_p90_ms: percentile(leaderGaps, 90),
  leader_kill_gap_max_ms: Math.max(0, ...leaderGaps),
  other_kill_gap_max_ms: Math.max(0, ...otherGaps),
  tolerance_ms_by_ttl: toleranceMs,
  // The smallest TTL whose worst-phase tolerance exceeds the worst gap by a quarter.
  smallest_safe_ttl_ms: survivingTtls[0] ?? null,
  gaps_ms: rounds.map((round) => round.gapMs)
}))
