/**
 * The races a review of ownership and the session pool found (issue 25), each made to happen in one
 * order on purpose: a connection attempt that outlives its lease must open nothing, and no socket may
 * be left that nobody tracks. The ledger counts sockets per linked device, so two sockets on one
 * replica are an overlap as much as two on two replicas.
 */
import t from 'tap'
import pg from 'pg'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { inProcessLedger } from '../plugins/ownership/test-transport.ts'
import { SessionPool } from '../plugins/session-pool/pool.ts'
import type { SocketFactory } from '../plugins/session-pool/socket-port.ts'
import { configWith, testSealer } from './helpers/build.ts'
import { companyPreferring, linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

const SETTLE_MS = 10_000

const overlapsOf = (companyId: string) => inProcessLedger.overlaps.filter((overlap) => overlap.companyId === companyId)

/** A promise the test resolves when it chooses. */
function gate () {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

/**
 * Holds every connection of a replica's PostgreSQL pool in a query that waits on an advisory lock the
 * test holds, so that whatever that replica asks of PostgreSQL next waits (as behind a slow database).
 */
async function stallPostgres (databaseUrl: string, app: FastifyInstance, slots: number) {
  const key = Math.floor(Math.random() * 1e9)
  const holder = new pg.Client({ connectionString: databaseUrl })
  await holder.connect()
  await holder.query('select pg_advisory_lock($1)', [key])
  const waiting = Array.from({ length: slots }, () => app.orm.em.fork().execute(`select pg_advisory_xact_lock(${key})`))
  // Each waiter has taken its pool slot once PostgreSQL shows it waiting for the lock.
  await waitFor(async () => {
    const { rows } = await holder.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted")
    return rows[0].n >= slots
  }, 5_000, 20)
  return async () => {
    await holder.query('select pg_advisory_unlock($1)', [key])
    await Promise.all(waiting)
    await holder.end()
  }
}

t.test('a restart whose lease is handed off while it waits for PostgreSQL opens nothing', async (t) => {
  const settings = await sessionCluster(t)
  // A small pool that waits long for a slot, so the restart waits for PostgreSQL rather than failing.
  const slow = { dbPoolMax: 2, dbAcquireTimeoutMs: 30_000, dbQueryTimeoutMs: 30_000 }
  const a = await startSessionReplica(t, settings, slow)
  const bId = `b-${a.id}`
  const companyId = companyPreferring({ id: bId }, [a, { id: bId }], 'restart')
  await linkCompany(a, companyId, settings, t)
  const epochA = a.app.ownership.epochOf(companyId)!
  t.ok(epochA > 0, `${a.id} holds it under epoch ${epochA}`)

  // A restarts it (a new initialize), and waits for PostgreSQL to open the auth state again...
  const release = await stallPostgres(settings.databaseUrl, a.app, slow.dbPoolMax)
  const restarting = a.app.sessionPool.restart(companyId)
  // ...while B joins; the company prefers B, so A hands it over and B connects under a newer epoch.
  const b = await startSessionReplica(t, settings, { replicaId: bId })
  t.ok(await waitFor(() => b.app.sessionPool.get(companyId)?.state === 'open', SETTLE_MS), 'B took it over and is connected')
  const epochB = b.app.ownership.epochOf(companyId)!
  t.ok(epochB > epochA, `under a newer epoch (${epochB})`)

  // A's restart goes on: its lease is gone, so it must open no socket.
  await release()
  await restarting
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(overlapsOf(companyId), [], 'no second login of the device')
  t.equal(a.app.sessionPool.get(companyId), undefined, 'A tracks no session')
  t.equal(inProcessLedger.holderOf(companyId), b.id, 'B still holds the one connection')
  t.equal(b.app.sessionPool.get(companyId)?.state, 'open', 'and it is still open (no 440)')
})

t.test('a late connect of an ended lease neither replaces nor leaves behind the newer session', async (t) => {
  const settings = await sessionCluster(t)
  const app = (await startSessionReplica(t, settings)).app
  const companyId = companyPreferring({ id: app.config.replicaId }, [{ id: app.config.replicaId }], 'late')
  await linkCompany({ app }, companyId, settings, t)
  // The creds are in PostgreSQL; the app lets the company go, and this test's own pool takes it.
  await app.ownership.setDesired(companyId, 'offline')
  t.ok(await waitFor(() => inProcessLedger.holderOf(companyId) === undefined, SETTLE_MS), 'released')

  const sockets = app.testWhatsApp!.factory('pool-under-test')
  const loads: ReturnType<typeof gate>[] = []
  const leases = new Map<number, boolean>()
  const pool = new SessionPool({
    settings: configWith({}),
    sealer: testSealer(),
    // Each connection attempt waits for its own gate before it goes on (as behind a slow database).
    loadFactory: async (): Promise<SocketFactory> => {
      const load = gate()
      loads.push(load)
      await load.opened
      return sockets
    },
    em: () => app.orm.em.fork(),
    log: pino({ level: 'silent' }),
    proxyOf: async () => undefined,
    events: app.events,
    media: app.media,
    contacts: app.conversations,
    onOutcome: () => {}
  })
  t.teardown(async () => { for (const session of pool.all()) await session.stop() })
  const lease = (epoch: number) => {
    leases.set(epoch, true)
    return { epoch, isHeld: () => leases.get(epoch) === true, writableUntil: () => Infinity }
  }

  // Epoch 1's connect waits; its lease ends meanwhile (the disconnect finds no session yet).
  const first = pool.connect(companyId, lease(1))
  await waitFor(() => loads.length === 1, 1_000, 5)
  leases.set(1, false)
  await pool.disconnect(companyId, 1, 'fenced')
  // Epoch 2 connects and opens.
  const second = pool.connect(companyId, lease(2))
  await waitFor(() => loads.length === 2, 1_000, 5)
  loads[1].open()
  await second
  t.ok(await waitFor(() => pool.get(companyId)?.state === 'open', SETTLE_MS), 'epoch 2 is connected')
  // Epoch 1's connect resumes late.
  loads[0].open()
  await first
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(overlapsOf(companyId), [], 'the late attempt opened no second socket')
  t.equal(pool.get(companyId)?.epoch, 2, 'the pool still tracks epoch 2')
  t.equal(pool.get(companyId)?.state, 'open')

  // An ended lease's disconnect arriving late leaves the newer session alone.
  await pool.disconnect(companyId, 1, 'late release')
  t.equal(pool.get(companyId)?.state, 'open', 'a disconnect for epoch 1 does not close epoch 2')

  // A connect under a newer epoch: a late connect of an older lease (a restart that outlived it)
  // neither opens nor cancels it, and it stops the session it replaces before it opens its own.
  leases.set(2, false)
  const newer = pool.connect(companyId, lease(3))
  await waitFor(() => loads.length === 3, 1_000, 5)
  t.equal(await pool.connect(companyId, { epoch: 2, isHeld: () => true, writableUntil: () => Infinity }), false,
    'the older lease\'s connect opens nothing')
  loads[2].open()
  t.equal(await newer, true, 'epoch 3 was not cancelled by it and opened')
  t.ok(await waitFor(() => pool.get(companyId)?.epoch === 3 && pool.get(companyId)?.state === 'open', SETTLE_MS), 'epoch 3 is connected')
  t.same(overlapsOf(companyId), [], 'epoch 2 was closed before epoch 3 opened')
  t.equal(pool.size, 1)
})

t.test('a release waits for a close already under way (a restart\'s): the next holder logs in only after it', async (t) => {
  const settings = await sessionCluster(t)
  // A close that takes its whole timeout (0.9 s, within what a 4 s lease allows).
  const slowClose = { leaseTtlMs: 4_000, waCloseTimeoutMs: 900 }
  const a = await startSessionReplica(t, settings, slowClose)
  const b = await startSessionReplica(t, settings, slowClose)
  const companyId = companyPreferring(a, [a, b], 'closing')
  await linkCompany(a, companyId, settings, t, [a, b])
  t.ok(await waitFor(() => a.app.sessionPool.get(companyId)?.state === 'open', SETTLE_MS), 'A holds it')
  a.app.testWhatsApp!.slowClose(companyId, 60_000)
  // A restarts it (its socket starts a slow close), and A is stopped meanwhile (a rolling deploy): its
  // release must not give the lease back while that socket still closes.
  const restarting = a.app.sessionPool.restart(companyId)
  const stopping = a.close()
  t.ok(await waitFor(() => b.app.sessionPool.get(companyId)?.state === 'open', SETTLE_MS), 'B took it over')
  await Promise.all([restarting, stopping])
  const entries = inProcessLedger.entries.filter((entry) => entry.companyId === companyId)
  const closedByA = entries.findLast((entry) => entry.kind === 'close' && entry.replica === a.id)
  const openedByB = entries.find((entry) => entry.kind === 'open' && entry.replica === b.id)
  t.ok(closedByA && openedByB && closedByA.at <= openedByB.at, 'A\'s socket was closed before B\'s opened')
  t.same(overlapsOf(companyId), [], 'no second login of the device')
})
