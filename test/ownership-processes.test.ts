import t from 'tap'
import { connect } from '@nats-io/transport-node'
import pg from 'pg'
import { subjectsFor } from '../contracts/index.ts'
import { clusterEnv, clusterSettings, TEST_LEASE_TTL_MS } from './helpers/cluster.ts'
import { SOCKET_PLUGINS } from './helpers/build.ts'
import { serveLedger } from './helpers/ledger-server.ts'
import { uniqueName } from './helpers/services.ts'
import { exitOf, startReplicaProcess } from './helpers/replica-process.ts'
import { waitFor } from './helpers/wait.ts'

const START_TIMEOUT_MS = 30_000
const COMPANIES = 20

t.test('a replica process killed with SIGKILL: its companies are taken over within TTL + 1 s, with no overlap', async (t) => {
  const settings = await clusterSettings(t)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const ledgerSubject = uniqueName('wa.test.ledger')
  const { ledger, stop } = serveLedger(nc, ledgerSubject)
  t.teardown(stop)
  const env = {
    ...clusterEnv(settings),
    TEST_LEDGER_SUBJECT: ledgerSubject,
    DISABLED_PLUGINS: ['session-pool', ...SOCKET_PLUGINS, 'rate-limit', 'reactions', 'metrics'].join(',')
  }
  const ids = Array.from({ length: COMPANIES }, (_, index) => `${uniqueName('co')}-${index}`)
  const victimId = uniqueName('victim')
  const survivorId = uniqueName('survivor')
  const victim = await startReplicaProcess({ ...env, REPLICA_ID: victimId })
  t.teardown(() => { victim.kill('SIGKILL') })
  const survivor = await startReplicaProcess({ ...env, REPLICA_ID: survivorId })
  t.teardown(() => { survivor.kill('SIGKILL') })

  const db = new pg.Client({ connectionString: settings.databaseUrl })
  await db.connect()
  for (const id of ids) {
    await db.query("insert into sessions (company_id, desired_state) values ($1, 'online')", [id])
    nc.publish(subjectsFor(settings.natsNamespace).desiredChanged, JSON.stringify({ companyId: id, desired: 'online' }))
  }
  await db.end()

  t.ok(await waitFor(() => ids.every((id) => ledger.holderOf(id) !== undefined), START_TIMEOUT_MS), 'all companies held')
  await waitFor(() => ledger.openBy(victimId).length >= COMPANIES / 4 && ledger.openBy(survivorId).length >= COMPANIES / 4 &&
    ledger.openBy().filter((id) => ids.includes(id)).length === COMPANIES, START_TIMEOUT_MS)
  const victims = ledger.openBy(victimId)
  t.ok(victims.length >= COMPANIES / 4, `the victim holds ${victims.length}`)

  const killedAt = Date.now()
  victim.kill('SIGKILL')
  // WhatsApp sees the dead process's sockets drop.
  ledger.dropReplica(victimId)
  t.ok(
    await waitFor(() => victims.every((id) => ledger.holderOf(id) === survivorId), TEST_LEASE_TTL_MS + 5_000, 20),
    'the survivor holds them all'
  )
  const takeovers = victims.map((id) =>
    ledger.entries.find((entry) => entry.kind === 'open' && entry.companyId === id && entry.at >= killedAt)!.at - killedAt)
  const worst = Math.max(...takeovers)
  t.ok(worst <= TEST_LEASE_TTL_MS + 1_000, `slowest takeover ${worst} ms (TTL ${TEST_LEASE_TTL_MS} ms)`)
  t.same(ledger.overlaps, [], 'zero overlaps')

  const exit = exitOf(survivor)
  survivor.kill('SIGTERM')
  t.equal(await exit, 0, 'the survivor stops gracefully')
  t.same(ledger.openBy(survivorId), [], 'and closed its connections')
})
