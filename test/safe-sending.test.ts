import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { headers as natsHeaders } from '@nats-io/nats-core'
import { createGatewayClient } from '../contracts/index.ts'
import { uniqueName } from './helpers/services.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

t.test('an idempotency key (body, Nats-Msg-Id, Idempotency-Key header) returns the first result instead of sending again', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const sent = () => replica.app.testWhatsApp!.sent.get(companyId) ?? []
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })

  const first = await client.send(companyId, { phone: '79001234567', message: 'Запись подтверждена', idempotencyKey: 'booking-42-confirm' })
  const again = await client.send(companyId, { phone: '79001234567', message: 'Запись подтверждена', idempotencyKey: 'booking-42-confirm' })
  t.equal(again.messageId, first.messageId, 'the same message id')
  t.equal(again.duplicate, true, 'marked as a repeat')
  t.notOk(first.duplicate)
  t.equal(sent().length, 1, 'sent once')

  const request = async (key: string) => {
    const headers = natsHeaders()
    headers.set('Nats-Msg-Id', key)
    const payload = JSON.stringify({ phone: '79001234567', message: 'по заголовку' })
    const reply = await nc.request(replica.app.subjects.command(companyId, 'send'), payload, { headers, timeout: 5_000 })
    return reply.json<{ messageId: string, duplicate?: boolean }>()
  }
  const byHeader = await request('nats-key-1')
  t.match(await request('nats-key-1'), { messageId: byHeader.messageId, duplicate: true }, 'Nats-Msg-Id works the same')

  const http = () => replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    headers: { 'idempotency-key': 'http-key-1' },
    payload: { phone: '79001234567', message: 'по HTTP' }
  })
  const firstHttp = (await http()).json()
  t.match((await http()).json(), { messageId: firstHttp.messageId, duplicate: true }, 'and so does the Idempotency-Key HTTP header')

  const reaction = { phone: '79001234567', emoji: '❤️', messageId: 'IN-1', idempotencyKey: 'react-1' }
  const firstReaction = await client.react(companyId, reaction)
  t.match(await client.react(companyId, reaction), { messageId: firstReaction.messageId, duplicate: true }, 'reactions too')
  t.equal(sent().length, 4, 'four sends in all: one per key')

  const burst = await Promise.allSettled(Array.from({ length: 6 },
    () => client.send(companyId, { phone: '79001234567', message: 'одновременно', idempotencyKey: 'burst' })))
  t.equal(sent().filter((item) => item.text === 'одновременно').length, 1, 'six concurrent repeats send once')
  t.ok(burst.every((result) => result.status === 'fulfilled' || (result.reason as { code?: string }).code === 'IN_PROGRESS'),
    'the others get the first result or IN_PROGRESS')
})

t.test('a repeat after a failover still returns the first result (the record is in KV)', async (t) => {
  const settings = await sessionCluster(t)
  const first = await startSessionReplica(t, settings)
  const companyId = uniqueName('salon')
  const events = await linkCompany(first, companyId, settings, t)
  const second = await startSessionReplica(t, settings)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  const original = await client.send(companyId, { phone: '79001234567', message: 'до переезда', idempotencyKey: 'move-1' })
  const holder = (await client.owner(companyId)).replica === first.id ? first : second
  const survivor = holder === first ? second : first
  await holder.close()
  t.ok(await events.waitFor('connected', 2, 15_000), 'taken over')
  const repeat = await client.send(companyId, { phone: '79001234567', message: 'до переезда', idempotencyKey: 'move-1' })
  t.match(repeat, { messageId: original.messageId, duplicate: true })
  t.notOk((survivor.app.testWhatsApp!.sent.get(companyId) ?? []).some((item) => item.text === 'до переезда'),
    'the new holder did not send it again')
})

t.test('a timed-out send that never settles is IN_PROGRESS for one more send timeout, then OUTCOME_UNKNOWN', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { sendTimeoutMs: 300 })
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  // Never released: the socket took the message and never answers (as one closed under a send may).
  const release = replica.app.testWhatsApp!.stall(companyId)
  t.teardown(release)
  const send = () => replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '79001234567', message: 'в никуда', idempotencyKey: 'hung-1' }
  })
  t.equal((await send()).statusCode, 504, 'the first times out')
  t.match((await send()).json(), { error: { code: 'IN_PROGRESS' } }, 'a repeat at once: still in progress')
  let later = await send()
  t.ok(await waitFor(async () => (later = await send()).json().error?.code !== 'IN_PROGRESS', 3_000, 50),
    'no longer in progress once another send timeout passed')
  t.equal(later.statusCode, 409)
  t.match(later.json(), { error: { code: 'OUTCOME_UNKNOWN', message: /Use a new key/ } }, 'its outcome is unknown: a new key sends again')
  t.equal(replica.app.testWhatsApp!.sent.get(companyId)?.filter((item) => item.text === 'в никуда').length ?? 0, 0, 'nothing went out')
})

t.test('a send that WhatsApp does not take in time fails with TIMEOUT and accepted: false; ' +
  'a retry with the key learns the late outcome', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { sendTimeoutMs: 300 })
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const release = replica.app.testWhatsApp!.stall(companyId)
  const started = Date.now()
  const stuck = await replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '79001234567', message: 'медленно', idempotencyKey: 'slow-1' }
  })
  t.ok(Date.now() - started < 2_000, `answered in ${Date.now() - started} ms instead of hanging`)
  t.equal(stuck.statusCode, 504)
  t.match(stuck.json(), { success: false, error: { code: 'TIMEOUT', accepted: false, message: /not confirmed and may still go out/ } })
  const whileStuck = await replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '79001234567', message: 'медленно', idempotencyKey: 'slow-1' }
  })
  t.equal(whileStuck.statusCode, 409, 'a repeat while it is still pending')
  t.match(whileStuck.json(), { error: { code: 'IN_PROGRESS', retryAfter: Number } })
  release()
  // The released send finishes on its own time; until its outcome is recorded a repeat is still IN_PROGRESS (and sends nothing).
  const repeat = () => replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/send`,
    payload: { phone: '79001234567', message: 'медленно', idempotencyKey: 'slow-1' }
  })
  let late = await repeat()
  t.ok(await waitFor(async () => (late = await repeat()).statusCode !== 409, 5_000, 100), 'no longer in progress')
  t.equal(late.statusCode, 200)
  t.match(late.json(), { duplicate: true, accepted: true, messageId: /^3EB0/ }, 'the late outcome was recorded')
  t.equal(replica.app.testWhatsApp!.sent.get(companyId)?.filter((item) => item.text === 'медленно').length, 1,
    'and it went out once')

  const refused = await replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${uniqueName('nobody')}/send`,
    payload: { phone: '79001234567', message: 'x', idempotencyKey: 'k' }
  })
  t.match(refused.json(), { error: { code: 'NOT_CONNECTED' } }, 'no holder: NOT_CONNECTED, nothing recorded')
})
