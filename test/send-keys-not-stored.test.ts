import t from 'tap'
import pg from 'pg'
import { setTimeout as sleep } from 'node:timers/promises'
import { CONTACT, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'

// Baileys writes a send's Signal keys when its transaction commits, after the message went out. A
// holder fenced by a takeover (or cut off from PostgreSQL) fails that write: the message was sent all
// the same, and saying otherwise made a retry with the same idempotency key send it a second time.
t.test('a send whose keys cannot be stored after it went out is reported sent, and a retry of its key sends nothing', async (t) => {
  const gateway = await linkedGateway(t)
  const db = new pg.Client({ connectionString: gateway.settings.databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  // The login's own writes (creds, pre-keys, app-state keys) go on for a moment after `connected`; one of them
  // after the fence below would stop the session before the send this test is about. The fence waits for a
  // second in which the company's creds and keys did not change.
  const writes = async () => JSON.stringify((await db.query(`select
    (select updated_at from whatsapp_auth where company_id = $1) as creds,
    (select count(*) from whatsapp_keys where company_id = $1) as keys`, [gateway.companyId])).rows[0])
  let seen = await writes()
  let quietSince = performance.now()
  t.ok(await waitFor(async () => {
    const now = await writes()
    if (now !== seen) {
      seen = now
      quietSince = performance.now()
    }
    return performance.now() - quietSince >= 1_000
  }, 20_000, 100), 'the login\'s writes are done')
  // A takeover as PostgreSQL sees it: a newer epoch is claimed, and every key write of this holder is now refused.
  const fenced = await db.query('update sessions set epoch = epoch + 1000 where company_id = $1', [gateway.companyId])
  t.equal(fenced.rowCount, 1)

  const send = () => gateway.replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${gateway.companyId}/send`,
    headers: { 'idempotency-key': 'confirmation-42' },
    payload: { phone: CONTACT, message: 'Ваша запись подтверждена' }
  })
  const started = performance.now()
  const first = await send()
  t.equal(first.statusCode, 200, first.body)
  t.match(first.json(), { accepted: true, messageId: /\S+/ })
  t.ok(performance.now() - started < 10_000, 'answered at once, not after Baileys\' commit retries')
  t.ok(await waitFor(() => gateway.received().length === 1, 10_000), 'the contact got it')
  t.equal(gateway.received()[0].id, first.json().messageId, 'under the id the gateway reported')

  const again = await send()
  t.equal(again.statusCode, 200, again.body)
  t.match(again.json(), { duplicate: true, messageId: first.json().messageId }, 'the retry learns the first outcome')
  await sleep(1_000)
  t.equal(gateway.received().length, 1, 'and the contact has it once')
})
