/**
 * The one-connection guarantee when parts fail (issue 25): a replica whose PostgreSQL is cut, a close
 * that takes its whole timeout during a NATS cut, an event loop that stalls past the lease, records
 * of companies nobody wants any more. Each is made to happen on purpose; the ledger counts sockets
 * per linked device.
 */
import t, { type Test } from 'tap'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { inProcessLedger } from '../plugins/ownership/test-transport.ts'
import { openKv } from '../core/nats/kv.ts'
import { clusterSettings, OWNERSHIP_ONLY, startReplica, TEST_LEASE_TTL_MS, type ClusterSettings } from './helpers/cluster.ts'
import { companyPreferring, linkCompany, startSessionReplica } from './helpers/sessions.ts'
import { ownNatsServer } from './helpers/nats-server.ts'
import { behindProxy, type TcpProxy } from './helpers/tcp-proxy.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const SETTLE_MS = 15_000

const overlapsOf = (ids: string[]) => inProcessLedger.overlaps.filter((overlap) => ids.includes(overlap.companyId))

async function natsCluster (t: Test): Promise<{ settings: ClusterSettings, proxy: TcpProxy, proxiedNatsUrl: string }> {
  const nats = await ownNatsServer(t)
  const { proxy, url } = await behindProxy(t, nats.url)
  return { settings: await clusterSettings(t, { natsUrl: nats.url }), proxy, proxiedNatsUrl: url }
}

t.test('a replica that reaches NATS but not PostgreSQL gives its companies up, and takes them back once it heals', async (t) => {
  const settings = await clusterSettings(t)
  const ids = Array.from({ length: 10 }, (_, index) => `${uniqueName('cut')}-${index}`)
  const a = await startReplica(t, settings)
  const b = await startReplica(t, settings)
  for (const id of ids) await a.app.ownership.setDesired(id, 'online')
  t.ok(await waitFor(() => ids.every((id) => inProcessLedger.holderOf(id) !== undefined), SETTLE_MS), 'held by the first two')

  // The third replica starts with its database reachable (it reads what is desired), then loses it:
  // its share of the companies is handed to it, and each epoch claim it makes fails.
  const db = await behindProxy(t, settings.databaseUrl)
  const cut = await startReplica(t, settings, {
    ...OWNERSHIP_ONLY, databaseUrl: db.url, dbAcquireTimeoutMs: 500, dbQueryTimeoutMs: 500
  })
  await db.proxy.cut()
  const cutAt = Date.now()
  // Were it still preferred, it would win each record back within a tick and the company would stay unheld.
  const heldElsewhere = () => ids.every((id) => [a.id, b.id].includes(inProcessLedger.holderOf(id) ?? ''))
  t.ok(await waitFor(heldElsewhere, 2 * TEST_LEASE_TTL_MS, 20),
    `within 2 × TTL of the cut, every company is held by one of the others (${Date.now() - cutAt} ms)`)
  await new Promise((resolve) => setTimeout(resolve, TEST_LEASE_TTL_MS))
  t.ok(heldElsewhere(), 'and stays there: the replica without PostgreSQL takes none back')
  const view = (await a.app.inject({ method: 'GET', url: '/api/whatsapp/cluster' })).json() as { companies: { preferred: string }[] }
  t.notOk(view.companies.some((company) => company.preferred === cut.id), 'no company is assigned to it while it is degraded')

  // Healed: its heartbeat says so, it is assigned its share again, and the others hand it over.
  await db.proxy.restore()
  t.ok(await waitFor(() => ids.some((id) => inProcessLedger.holderOf(id) === cut.id), SETTLE_MS), 'it takes companies again once it heals')
  t.ok(await waitFor(() => ids.every((id) => inProcessLedger.holderOf(id) !== undefined), SETTLE_MS), 'and every company is held')
  t.same(overlapsOf(ids), [], 'zero overlaps')
})

t.test('the fence starts early enough for the slowest close: the old socket is gone before the new one opens', async (t) => {
  const { settings, proxy, proxiedNatsUrl } = await natsCluster(t)
  // An 8 s lease, a thin margin for clocks and the longest close: a fence that did not count the close
  // in would still be closing when the key expires and the other replica logs in.
  const lease = { leaseTtlMs: 8_000, leaseFenceMarginMs: 200, waCloseTimeoutMs: 2_000 }
  const cutOff = await startSessionReplica(t, settings, { ...lease, natsUrl: proxiedNatsUrl })
  const companyId = companyPreferring(cutOff, [cutOff], 'slowclose')
  await linkCompany(cutOff, companyId, settings, t)
  // Its peer never finishes a closing handshake: the close takes the whole timeout, then the socket is cut.
  cutOff.app.testWhatsApp!.slowClose(companyId, 60_000)
  const cutAt = Date.now()
  await proxy.cut()
  const other = await startSessionReplica(t, settings, lease)
  t.ok(await waitFor(() => other.app.sessionPool.get(companyId)?.state === 'open', 3 * lease.leaseTtlMs), 'the other replica took it over')
  const entries = inProcessLedger.entries.filter((entry) => entry.companyId === companyId && entry.at >= cutAt)
  const closed = entries.find((entry) => entry.kind === 'close' && entry.replica === cutOff.id)
  const opened = entries.find((entry) => entry.kind === 'open' && entry.replica === other.id)
  t.match(closed, { reason: 'terminated' }, 'the cut-off replica\'s close ran out its timeout and cut the socket')
  t.ok(closed && opened && closed.at < opened.at,
    `closed ${closed!.at - cutAt} ms after the cut, before the open at ${opened!.at - cutAt} ms`)
  t.same(overlapsOf([companyId]), [], 'zero overlaps')
  await proxy.restore()
})

t.test('a replica whose event loop stalls past its lease writes nothing: the first write cuts the socket instead', async (t) => {
  const { settings, proxy, proxiedNatsUrl } = await natsCluster(t)
  const stalled = await startSessionReplica(t, settings, { natsUrl: proxiedNatsUrl })
  const companyId = companyPreferring(stalled, [stalled], 'stall')
  await linkCompany(stalled, companyId, settings, t)
  const session = stalled.app.sessionPool.get(companyId)!
  const whatsapp = stalled.app.testWhatsApp!
  await proxy.cut()
  // Nothing runs for a whole TTL: no heartbeat, no fence timer. The lease may belong to another replica by now.
  const stalledUntil = performance.now() + TEST_LEASE_TTL_MS
  while (performance.now() < stalledUntil) { /* a stalled event loop */ }
  const socket = session.socket
  t.ok(socket, 'the fence has not run yet: the session still looks open')
  const sent = await socket!.sendText('79001234567@s.whatsapp.net', 'too late').then(() => true, () => false)
  t.notOk(sent, 'the send is refused')
  t.equal(whatsapp.sent.get(companyId)?.length ?? 0, 0, 'and nothing reached WhatsApp')
  const close = inProcessLedger.entries.findLast((entry) => entry.companyId === companyId && entry.kind === 'close')
  t.match(close, { replica: stalled.id, reason: /lease deadline/ }, 'the socket was cut at the first write past the deadline')
  await proxy.restore()
})

t.test('records of companies nobody wants online, held by a replica that is gone, are deleted', async (t) => {
  const settings = await clusterSettings(t)
  const setup = await connect({ servers: settings.natsUrl })
  t.teardown(() => setup.close())
  const records = await openKv(setup, settings.leaseBucket, { timeoutMs: 2_000 })
  const ids = Array.from({ length: 5 }, (_, index) => `${uniqueName('gone')}-${index}`)
  // A replica that held these died; nobody wants them online any more.
  for (const id of ids) {
    const record = { replica: 'dead', incarnation: uniqueName('inc'), nonce: 'n', since: new Date().toISOString() }
    await records.put(`company.${id}`, JSON.stringify(record))
  }
  const a = await startReplica(t, settings)
  const stored = async () => {
    const keys: string[] = []
    for await (const key of await records.keys('company.>')) keys.push(key)
    return keys.filter((key) => ids.some((id) => key === `company.${id}`))
  }
  t.ok(await waitFor(async () => (await stored()).length === 0, SETTLE_MS), 'the bucket no longer holds them')
  const view = (await a.app.inject({ method: 'GET', url: '/api/whatsapp/cluster' })).json() as { companies: { companyId: string }[] }
  t.notOk(view.companies.some((company) => ids.includes(company.companyId)), 'nor does the replica\'s memory')
})

t.test('a company being released when the lease ends disconnects at once, not after its commands drain', async (t) => {
  const { settings, proxy, proxiedNatsUrl } = await natsCluster(t)
  // A long drain: a release waits up to the request timeout for its command subscription to drain,
  // which needs a round trip to the server that a cut-off replica never gets.
  const a = await startReplica(t, settings, { ...OWNERSHIP_ONLY, natsUrl: proxiedNatsUrl, natsRequestTimeoutMs: 20_000 })
  const companyId = uniqueName('drain')
  await a.app.ownership.setDesired(companyId, 'online')
  t.ok(await waitFor(() => inProcessLedger.holderOf(companyId) === a.id, SETTLE_MS), 'held')
  const cutAt = Date.now()
  proxy.blackHole()
  // The release starts (the company is no longer wanted) and waits on the drain; the lease ends meanwhile.
  await a.app.ownership.setDesired(companyId, 'offline')
  t.ok(await waitFor(() => inProcessLedger.holderOf(companyId) === undefined, 3 * TEST_LEASE_TTL_MS, 20), 'the connection closed')
  const closedAfter = Date.now() - cutAt
  t.ok(closedAfter < TEST_LEASE_TTL_MS, `within the lease of the cut (${closedAfter} ms), not after the 20 s drain`)
  t.equal(a.app.ownership.stats.fences, 0, 'the release was under way: nothing to fence, only its connection to close')
  await proxy.cut()
  await proxy.restore()
})

t.test('a record the watch showed but the server no longer has is read again after a refused compare-and-set', async (t) => {
  const settings = await clusterSettings(t)
  const setup = await connect({ servers: settings.natsUrl })
  t.teardown(() => setup.close())
  const members = await openKv(setup, settings.membersBucket, { ttlMs: settings.leaseTtlMs, timeoutMs: 2_000 })
  const records = await openKv(setup, settings.leaseBucket, { timeoutMs: 2_000 })
  const companyId = uniqueName('stale')
  // A replica that will die holds the company.
  const incarnation = uniqueName('inc')
  await members.put('member.doomed', JSON.stringify({ startedAt: new Date().toISOString(), incarnation, ttlMs: settings.leaseTtlMs }))
  await records.put(`company.${companyId}`, JSON.stringify({ replica: 'doomed', incarnation, nonce: 'n', since: new Date().toISOString() }))
  const a = await startReplica(t, settings)
  await a.app.ownership.setDesired(companyId, 'online')
  // The record vanishes from the stream without the watch hearing of it (as a revision the server did not keep).
  const jsm = await jetstreamManager(setup)
  await jsm.streams.purge(`KV_${settings.leaseBucket}`, { filter: `$KV.${settings.leaseBucket}.company.${companyId}` })
  // The holder dies; the replica's compare-and-set over the revision it saw is refused, and it reads the record again.
  t.ok(await waitFor(() => inProcessLedger.holderOf(companyId) === a.id, 3 * TEST_LEASE_TTL_MS + SETTLE_MS), 'the company is taken over')
  t.same(overlapsOf([companyId]), [], 'zero overlaps')
})
