import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient } from '../contracts/index.ts'
import { TokenBucket } from '../core/token-bucket.ts'
import { uniqueName } from './helpers/services.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

const MINUTE = 60_000

t.test('a token bucket: capacity, even refill, the wait for the next token, no refill from a clock going back', async (t) => {
  const bucket = new TokenBucket(30, MINUTE)
  let state = bucket.full(0)
  for (let i = 0; i < 30; i++) {
    const taken = bucket.take(state, 0)
    t.ok(taken.taken)
    state = taken.state
  }
  const empty = bucket.take(state, 0)
  t.match(empty, { taken: false, retryAfterMs: 2_000 }, '30 per minute: the next token in 2 s')
  t.match(bucket.take(state, 1_000), { taken: false, retryAfterMs: 1_000 })
  t.match(bucket.take(state, 2_000), { taken: true }, 'one token after 2 s')
  t.ok(bucket.isFull(state, MINUTE), 'full again after a minute')
  t.equal(bucket.refill({ tokens: 5, at: 10_000 }, 5_000).tokens, 5, 'time going back refills nothing')
})

t.test('budgets: 429 with Retry-After over HTTP, RATE_LIMITED with retryAfter over NATS; reactions per recipient', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { messagesPerMinute: 4, reactionsPerMinutePerRecipient: 2 })
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const send = (phone = '79001234567') =>
    replica.app.inject({
      method: 'POST',
      url: `/api/whatsapp/sessions/${companyId}/send`,
      payload: { phone, message: 'Напоминание' }
    })
  const react = (phone: string) =>
    replica.app.inject({
      method: 'POST',
      url: `/api/whatsapp/sessions/${companyId}/reaction`,
      payload: { phone, emoji: '❤️', messageId: uniqueName('m') }
    })

  t.equal((await react('79001111111')).statusCode, 200)
  t.equal((await react('79001111111')).statusCode, 200)
  const third = await react('79001111111')
  t.equal(third.statusCode, 429, 'a third reaction to the same phone within the minute')
  t.match(third.json(), {
    success: false,
    error: {
      code: 'RATE_LIMITED',
      message: /2 reactions per minute to 79001111111/,
      retryAfter: Number,
      accepted: false
    }
  })
  t.ok(Number(third.headers['retry-after']) >= 1, `Retry-After: ${third.headers['retry-after']}`)
  t.equal((await react('79002222222')).statusCode, 200, 'another recipient has its own reaction budget')

  t.equal((await send()).statusCode, 200, 'the fourth message of the company (reactions count as messages)')
  const over = await send()
  t.equal(over.statusCode, 429)
  t.match(over.json(), { error: { code: 'RATE_LIMITED', message: /4 messages per minute/ } })
  const retryAfter = Number(over.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 15, `retry after ${retryAfter} s (one token every 15 s)`)

  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const natsClient = createGatewayClient(nc, { namespace: settings.natsNamespace })
  await t.rejects(
    natsClient.send(companyId, { phone: '79001234567', message: 'x' }),
    { code: 'RATE_LIMITED', retryAfter: Number, accepted: false },
    'the NATS client gets the code and retryAfter'
  )
  t.equal(replica.app.testWhatsApp!.sent.get(companyId)?.length, 4, 'exactly the budget went out')
  t.match(replica.app.messagingLimits.refused, { messages: 2, reactions: 1 })
})

t.test('the budget survives a failover: the new holder continues it from KV', async (t) => {
  const settings = await sessionCluster(t)
  const limits = { messagesPerMinute: 3 }
  const first = await startSessionReplica(t, settings, limits)
  const companyId = uniqueName('salon')
  const events = await linkCompany(first, companyId, settings, t)
  const second = await startSessionReplica(t, settings, limits)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  const budgetOn = async (replica: typeof first) =>
    (await replica.app.inject({ method: 'GET', url: `/api/whatsapp/sessions/${companyId}/budget` })).json()
  t.match(await budgetOn(first), { success: true, companyId, messages: { left: 3, perMinute: 3 } }, 'a full budget')
  for (let i = 0; i < 3; i++) await client.send(companyId, { phone: '79001234567', message: `№${i}` })
  // The holder answers from memory, the other replica from KV (written within STATE_WRITE_INTERVAL_MS).
  for (const replica of [first, second]) {
    t.ok(await waitFor(async () => (await budgetOn(replica)).messages.left === 0, 2_000), `${replica.id} shows the budget spent`)
  }
  const holder = (await client.owner(companyId)).replica === first.id ? first : second
  await holder.close()
  t.ok(await events.waitFor('connected', 2, 15_000), 'the other replica took the company over')
  await t.rejects(
    client.send(companyId, { phone: '79001234567', message: 'one too many' }),
    { code: 'RATE_LIMITED' },
    'and the company\'s budget is still spent'
  )
})

t.test('pacing: sends are spaced out with typing first instead of refused; the queue is bounded', async (t) => {
  const settings = await sessionCluster(t)
  // The first send goes at once; two more wait for their slots (0.5 s, 1 s); the queue holds two.
  const pacing = {
    pacingEnabled: true,
    pacingMinIntervalMs: 500,
    pacingJitterMs: 0,
    pacingTypingMs: 50,
    pacingQueueMax: 2,
    messagesPerMinute: 1_000
  }
  const replica = await startSessionReplica(t, settings, pacing)
  const companyId = uniqueName('salon')
  await linkCompany(replica, companyId, settings, t)
  const send = (n: number) =>
    replica.app.inject({
      method: 'POST',
      url: `/api/whatsapp/sessions/${companyId}/send`,
      payload: { phone: '79001234567', message: `№${n}` }
    })

  const depths: number[] = []
  const sampler = setInterval(() => depths.push(replica.app.messagingLimits.queueDepths().get(companyId) ?? 0), 20)
  const replies = await Promise.all([0, 1, 2, 3, 4].map(send))
  clearInterval(sampler)
  const codes = replies.map((reply) => reply.statusCode)
  t.equal(codes.filter((code) => code === 200).length, 3, `three fit the queue (${codes.join(', ')})`)
  t.equal(codes.filter((code) => code === 429).length, 2, 'the rest are refused with RATE_LIMITED')
  t.match(replies.find((reply) => reply.statusCode === 429)!.json(), { error: { code: 'RATE_LIMITED', message: /waiting/ } })
  t.ok(Math.max(...depths) >= 2, `queue depth observed: up to ${Math.max(...depths)}`)
  const sent = replica.app.testWhatsApp!.sent.get(companyId)!
  const gaps = sent.slice(1).map((item, index) => item.at - sent[index].at)
  t.ok(gaps.every((gap) => gap >= 490), `spaced by the interval: ${gaps.map(Math.round).join(', ')} ms`)
  t.ok(
    replies.filter((reply) => reply.statusCode === 200).some((reply) => reply.json().queuedMs >= 500),
    'the reply says how long it waited'
  )
  const presences = replica.app.testWhatsApp!.presences.get(companyId)
  t.equal(presences?.filter((presence) => presence === 'composing@79001234567@s.whatsapp.net').length, 3, 'typing shown before each text')
})

t.test('the public API is limited per API key or IP, apart from the WhatsApp budgets; public probes never are', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings, { apiRateLimitMax: 3, apiRateLimitWindowMs: MINUTE })
  const get = (headers: Record<string, string> = {}) =>
    replica.app.inject({ method: 'GET', url: '/api/phone/normalize?phone=89001234567', headers })
  for (let i = 0; i < 3; i++) t.equal((await get()).statusCode, 200)
  const limited = await get()
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { success: false, error: { code: 'RATE_LIMITED', message: /API limit: 3 requests/, retryAfter: Number } })
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After header')
  t.equal((await get({ 'x-api-key': 'booking-bot' })).statusCode, 200, 'an API key has its own budget')
  for (let i = 0; i < 5; i++) {
    t.equal((await replica.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health probes are not limited')
  }
  t.ok(await waitFor(() => true, 1))
})
