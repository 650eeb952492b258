import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Curve } from '@whiskeysockets/baileys'
import pino from 'pino'
import { openOrm, migrate } from '../core/plugins/db.ts'
import { claimEpoch, migrations as recordMigrations, OwnershipRecordSchema } from '../plugins/ownership/records.ts'
import { authMigrations, PostgresAuthStore, WhatsappAuthSchema, WhatsappKeySchema } from '../plugins/session-pool/auth-store.ts'
import { parseSealingKeys, Sealer } from '../core/sealing.ts'
import { resealAll } from '../plugins/session-pool/sealing.ts'
import { createTestDatabase, uniqueName } from './helpers/services.ts'

const log = pino({ level: 'silent' })
const keyOf = (id: string, fill: number) => `${id}:${Buffer.alloc(32, fill).toString('base64')}`

async function database (t: Test) {
  const databaseUrl = await createTestDatabase(t)
  const orm = await openOrm({ databaseUrl, dbPoolMax: 4, dbAcquireTimeoutMs: 2_000, dbQueryTimeoutMs: 5_000 }, {
    entities: [OwnershipRecordSchema, WhatsappAuthSchema, WhatsappKeySchema],
    migrations: [...recordMigrations, ...authMigrations]
  })
  t.teardown(() => orm.close())
  await migrate(orm, databaseUrl)
  return orm
}

async function storedText (orm: Awaited<ReturnType<typeof database>>): Promise<string> {
  const em = orm.em.fork()
  const creds = await em.execute('select creds::text as text from whatsapp_auth', [], 'all')
  const keys = await em.execute('select value::text as text from whatsapp_keys', [], 'all')
  return [...creds, ...keys].map((row) => (row as { text: string }).text).join('\n')
}

t.test('no private key material is stored in the clear; what is sealed opens again', async (t) => {
  const orm = await database(t)
  const companyId = uniqueName('acme')
  await claimEpoch(orm.em.fork(), companyId, 1, 'r1')
  const sealer = new Sealer(parseSealingKeys(keyOf('k1', 1))!)
  const store = await PostgresAuthStore.open({ companyId, epoch: 1, em: () => orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer })
  const preKey = Curve.generateKeyPair()
  const session = randomBytes(64)
  await store.saveCreds()
  await store.keys.set({ 'pre-key': { 1: preKey }, session: { 'contact.0': session } })

  const text = await storedText(orm)
  const { noiseKey, signedIdentityKey, signedPreKey } = store.creds
  const secrets = [noiseKey.private, signedIdentityKey.private, signedPreKey.keyPair.private, preKey.private, session]
  for (const secret of secrets) {
    t.notOk(text.includes(Buffer.from(secret).toString('base64')), 'no private key in base64')
    t.notOk(text.includes(Buffer.from(secret).toString('hex')), 'nor in hex')
  }
  t.notOk(text.includes('"private"'), 'no key pair structure at all')
  t.match(text, /"sealed": 1/)
  t.match(text, /"k": "k1"/, 'the key id beside each value')

  const reopened = await PostgresAuthStore.open({ companyId, epoch: 1, em: () => orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer })
  t.same(Buffer.from(reopened.creds.noiseKey.private), Buffer.from(store.creds.noiseKey.private), 'creds open again')
  const keys = await reopened.keys.get('pre-key', ['1'])
  t.same(Buffer.from(keys['1'].private), Buffer.from(preKey.private), 'keys open again')

  // A sealed value moved to another row does not open: it is bound to its own.
  await orm.em.fork().execute("update whatsapp_keys set key_id = '2' where key_id = '1'", [], 'run')
  const moved = await PostgresAuthStore.open({ companyId, epoch: 1, em: () => orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer })
  await t.rejects(moved.keys.get('pre-key', ['2']), 'a value in the wrong row is refused')
})

t.test('rows stored in the clear are sealed at start; rotation reseals everything under the first key', async (t) => {
  const orm = await database(t)
  const companyId = uniqueName('acme')
  const em = orm.em.fork()
  await em.execute('insert into whatsapp_auth (company_id, creds, epoch) values (?, ?::jsonb, 1)',
    [companyId, JSON.stringify({ registrationId: 7 })], 'run')
  await em.execute("insert into whatsapp_keys (company_id, type, key_id, value) values (?, 'session', 'a', ?::jsonb)",
    [companyId, JSON.stringify({ secret: 'plain' })], 'run')
  const first = new Sealer(parseSealingKeys(keyOf('old', 1))!)
  t.equal(await resealAll(() => orm.em.fork(), first), 2, 'both plain rows sealed')
  t.notMatch(await storedText(orm), /plain|registrationId/)
  t.equal(await resealAll(() => orm.em.fork(), first), 0, 'nothing left to do')

  const rotated = new Sealer(parseSealingKeys(`${keyOf('new', 2)},${keyOf('old', 1)}`)!)
  t.equal(await resealAll(() => orm.em.fork(), rotated), 2, 'resealed under the new key')
  t.notMatch(await storedText(orm), /"k": "old"/)
  const onlyNew = new Sealer(parseSealingKeys(keyOf('new', 2))!)
  const store = await PostgresAuthStore.open({
    companyId, epoch: 1, em: () => orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer: onlyNew
  })
  t.equal((store.creds as unknown as { registrationId: number }).registrationId, 7, 'the old key is no longer needed')
  t.same(await store.keys.get('session', ['a']), { a: { secret: 'plain' } })
  t.equal(parseSealingKeys('x:short'), undefined, 'a key must be 32 bytes')
  t.equal(parseSealingKeys(`${keyOf('a', 1)},${keyOf('a', 2)}`), undefined, 'ids are unique')
})

t.test('a sealed value opens only with its whole 16-byte GCM tag; a shortened tag is refused', async (t) => {
  const sealer = new Sealer(parseSealingKeys(keyOf('k1', 1))!)
  const row = 'acme/creds'
  const sealed = sealer.seal('{"noiseKey":"secret"}', row)
  t.equal(Buffer.from(sealed.tag, 'base64').length, 16, 'sealed with a 16-byte tag')
  t.equal(sealer.open(sealed, row), '{"noiseKey":"secret"}', 'opens with its whole tag')
  // GCM verifies a prefix of the right tag unless the length is pinned: 4 bytes would leave 2^32 guesses.
  for (const bytes of [4, 8, 12, 15]) {
    const shortened = { ...sealed, tag: Buffer.from(sealed.tag, 'base64').subarray(0, bytes).toString('base64') }
    t.throws(() => sealer.open(shortened, row), /tag/i, `a ${bytes}-byte tag is refused`)
  }
})
