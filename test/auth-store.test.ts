import t from 'tap'
import { testSealer } from './helpers/build.ts'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { BufferJSON, Curve, proto } from '@whiskeysockets/baileys'
import pino from 'pino'
import { openOrm, migrate, reclaimDeadConnections } from '../core/plugins/db.ts'
import { claimEpoch, migrations as sessionMigrations, OwnershipRecordSchema as SessionSchema } from '../plugins/ownership/records.ts'
import { authMigrations, PostgresAuthStore, WhatsappAuthSchema, WhatsappKeySchema } from '../plugins/session-pool/auth-store.ts'
import { createTestDatabase } from './helpers/services.ts'
import { TcpProxy } from './helpers/tcp-proxy.ts'

const log = pino({ level: process.env.AUTH_TEST_LOG ?? 'silent' })
const schema = {
  entities: [SessionSchema, WhatsappAuthSchema, WhatsappKeySchema],
  migrations: [...sessionMigrations, ...authMigrations]
}

async function database (t: Test, url?: string) {
  const databaseUrl = url ?? await createTestDatabase(t)
  const orm = await openOrm({ databaseUrl, dbPoolMax: 4, dbAcquireTimeoutMs: 1_000, dbQueryTimeoutMs: 1_000 }, schema)
  const stopReclaiming = await reclaimDeadConnections(orm, 300)
  t.teardown(async () => {
    stopReclaiming()
    await orm.close()
  })
  await migrate(orm, databaseUrl)
  return orm
}

function store (orm: Awaited<ReturnType<typeof database>>, companyId: string, epoch: number, overrides: { attempts?: number } = {}) {
  return PostgresAuthStore.open({
    companyId, epoch, em: () => orm.em.fork(), log, attempts: overrides.attempts ?? 3, backoffMs: 20, sealer: testSealer()
  })
}

t.test('creds and every Baileys key type round-trip through PostgreSQL', async (t) => {
  const orm = await database(t)
  await claimEpoch(orm.em.fork(), 'acme', 7, 'replica-a')
  const first = await store(orm, 'acme', 7)
  t.notOk(first.paired, 'fresh creds are not paired')
  first.creds.me = { id: '79001234567:1@s.whatsapp.net', name: 'Salon' }
  first.creds.account = {
    details: randomBytes(16), accountSignatureKey: randomBytes(32), accountSignature: randomBytes(64), deviceSignature: randomBytes(64)
  }
  await first.saveCreds()

  const preKey = Curve.generateKeyPair()
  const session = randomBytes(120)
  const syncKey = proto.Message.AppStateSyncKeyData.create({
    keyData: randomBytes(32),
    fingerprint: { rawId: 42, currentIndex: 3, deviceIndexes: [0, 1, 5] },
    timestamp: 1_700_000_000_000
  })
  const keys = {
    'pre-key': { 1: preKey },
    session: { '79001234567.0': session },
    'sender-key': { 'group@g.us::79001234567::0': randomBytes(64) },
    'sender-key-memory': { 'group@g.us': { '79001234567:0@s.whatsapp.net': true } },
    'app-state-sync-key': { AAAAAB: syncKey },
    'app-state-sync-version': { regular: { version: 12, hash: randomBytes(128), indexValueMap: { abc: { valueMac: randomBytes(32) } } } },
    'lid-mapping': { 79001234567: '123456789012345' },
    'device-list': { 79001234567: ['0', '1'] },
    tctoken: { '79001234567@s.whatsapp.net': { token: randomBytes(20), timestamp: '1700000000' } },
    'identity-key': { '79001234567.0': randomBytes(33) }
  }
  await first.keys.set(keys as never)

  const reopened = await store(orm, 'acme', 7)
  t.ok(reopened.paired, 'paired after reload: no new QR needed')
  // `undefined` fields are not stored by any Baileys store; the stored JSON form must match exactly.
  const stored = (creds: unknown) => JSON.parse(JSON.stringify(creds, BufferJSON.replacer))
  t.same(stored(reopened.creds), stored(first.creds), 'creds identical, Buffers revived')
  t.ok(Buffer.isBuffer(reopened.creds.noiseKey.private), 'noise key is a Buffer again')
  for (const [type, entries] of Object.entries(keys)) {
    const ids = Object.keys(entries)
    const got = await reopened.keys.get(type as never, [...ids, 'missing-id'])
    t.same(Object.keys(got).sort(), ids.sort(), `${type}: missing ids are left out`)
    if (type === 'app-state-sync-key') {
      const value = got[ids[0]] as proto.Message.IAppStateSyncKeyData
      t.type(value, proto.Message.AppStateSyncKeyData, 'app-state-sync-key is revived as the protobuf type')
      t.same(Buffer.from(proto.Message.AppStateSyncKeyData.encode(value).finish()),
        Buffer.from(proto.Message.AppStateSyncKeyData.encode(syncKey).finish()), 'and encodes to the same bytes')
    } else {
      t.same(JSON.parse(JSON.stringify(got)), JSON.parse(JSON.stringify(entries)), `${type} round-trips`)
    }
  }
  t.same(Buffer.from((await reopened.keys.get('pre-key', ['1']))[1].private), Buffer.from(preKey.private), 'pre-key private bytes intact')

  await reopened.keys.set({ session: { '79001234567.0': null }, 'pre-key': { 2: Curve.generateKeyPair() } })
  t.same(Object.keys(await reopened.keys.get('session', ['79001234567.0'])), [], 'null deletes')
  t.same(Object.keys(await reopened.keys.get('pre-key', ['1', '2'])).sort(), ['1', '2'], 'others untouched, new one added')

  await reopened.wipe()
  const afterLogout = await store(orm, 'acme', 7)
  t.notOk(afterLogout.paired, 'logout wipes creds')
  t.same(await afterLogout.keys.get('pre-key', ['1', '2']), {}, 'and keys')
})

t.test('a logout leaves nothing behind: writes in flight finish before the wipe, later ones are dropped', async (t) => {
  const orm = await database(t)
  await claimEpoch(orm.em.fork(), 'acme', 4, 'replica-a')
  const auth = await store(orm, 'acme', 4)
  auth.creds.me = { id: '79001234567:2@s.whatsapp.net' }
  await auth.saveCreds()
  // Baileys stores the LID mapping just after login, racing a logout that comes at once.
  const inFlight = auth.keys.set({ 'lid-mapping': { 79001234567: '123456789012345' } })
  const wiped = auth.wipe()
  await Promise.all([inFlight, wiped])
  await auth.keys.set({ 'device-list': { 79001234567: ['0', '2'] } })
  await auth.saveCreds()
  const rows = await orm.em.fork().execute<{ n: string }[]>(
    "select (select count(*) from whatsapp_keys where company_id = 'acme') + " +
    "(select count(*) from whatsapp_auth where company_id = 'acme') as n")
  t.equal(Number(rows[0].n), 0, 'no creds and no keys of the unlinked device')
})

t.test('a stale holder cannot write creds or keys', async (t) => {
  const orm = await database(t)
  await claimEpoch(orm.em.fork(), 'acme', 3, 'replica-a')
  const stale = await store(orm, 'acme', 3)
  await stale.saveCreds()
  await claimEpoch(orm.em.fork(), 'acme', 9, 'replica-b')
  const current = await store(orm, 'acme', 9)
  current.creds.me = { id: '79001234567:2@s.whatsapp.net' }
  await current.saveCreds()

  stale.creds.me = { id: 'stale' }
  await t.rejects(stale.saveCreds(), { code: 'FENCED' })
  await t.rejects(stale.keys.set({ 'pre-key': { 5: Curve.generateKeyPair() } }), { code: 'FENCED' })
  const stored = await store(orm, 'acme', 9)
  t.equal(stored.creds.me?.id, '79001234567:2@s.whatsapp.net', 'the newer holder\'s creds stand')
  t.same(await stored.keys.get('pre-key', ['5']), {}, 'the stale key write left nothing')
})

t.test('a write during a PostgreSQL outage is retried until it lands; one that keeps failing surfaces', async (t) => {
  const direct = new URL(await createTestDatabase(t))
  const proxy = new TcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) })
  await proxy.start()
  t.teardown(() => proxy.close())
  const viaProxy = new URL(direct)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  const orm = await database(t, viaProxy.toString())
  await claimEpoch(orm.em.fork(), 'acme', 1, 'replica-a')
  const auth = await store(orm, 'acme', 1, { attempts: 6 })

  await proxy.cut()
  const write = auth.keys.set({ 'pre-key': { 9: Curve.generateKeyPair() } })
  setTimeout(() => { void proxy.restore() }, 300)
  await write
  t.same(Object.keys(await auth.keys.get('pre-key', ['9'])), ['9'], 'the key landed after the outage')

  // A write PostgreSQL keeps refusing surfaces to Baileys after its attempts instead of vanishing:
  // during a second outage…
  const impatient = await store(orm, 'acme', 1, { attempts: 2 })
  await proxy.cut()
  await t.rejects(impatient.keys.set({ 'pre-key': { 11: Curve.generateKeyPair() } }),
    'during a second outage the error surfaces after its attempts')
  await proxy.restore()
  // …and when the database refuses the statement itself.
  await orm.em.fork().execute('alter table whatsapp_keys rename to whatsapp_keys_away', [], 'run')
  await t.rejects(impatient.keys.set({ 'pre-key': { 10: Curve.generateKeyPair() } }), /whatsapp_keys/,
    'after its attempts the error surfaces to Baileys')
  await orm.em.fork().execute('alter table whatsapp_keys_away rename to whatsapp_keys', [], 'run')
  t.same(await impatient.keys.get('pre-key', ['10']), {}, 'and nothing half-written remains')
})
