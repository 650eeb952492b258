import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type DeliveryState, type EventEnvelope, type MessageRecord } from '../contracts/index.ts'
import { lidOf } from '../simulator/accounts.ts'
import { COMPANY_PHONE, CONTACT, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'
import { build } from './helpers/build.ts'
import { ConversationStore } from '../plugins/conversations/store.ts'
import { messageEventId } from '../plugins/session-pool/session.ts'

const NOT_ON_WHATSAPP = '79110000999'
/** WhatsApp's receipt status of each delivery state, as a message_status event carries both. */
const WHATSAPP_STATUS = {
  accepted: 'server', server_ack: 'server', delivered: 'delivered', read: 'read', played: 'played', failed: 'error'
} as const

t.test('delivery states only move forward, and a refusal (463) ends as failed with its reason in the API, the event and metrics',
  async (t) => {
    const gateway = await linkedGateway(t)
    const { app } = gateway.replica
    const api = `/api/whatsapp/sessions/${gateway.companyId}`
    const sent = await gateway.send({ phone: CONTACT, message: 'Запись на 15:00 подтверждена' })
    const { messageId } = sent.json() as { messageId: string }
    const state = async () => {
      const response = await app.inject({ method: 'GET', url: `${api}/messages/${messageId}` })
      return (response.json() as { message?: MessageRecord }).message
    }
    t.ok(await waitFor(async () => (await state())?.state === 'delivered', 10_000), 'delivered')
    t.match(await state(), { direction: 'out', phone: CONTACT, kind: 'text', text: 'Запись на 15:00 подтверждена', failure: null })
    gateway.simulator.read(CONTACT, COMPANY_PHONE, [messageId])
    t.ok(await waitFor(async () => (await state())?.state === 'read', 10_000), 'read after the contact read it')
    const statuses = () => gateway.events.events.filter((event: EventEnvelope) => event.type === 'message_status' &&
      (event.data as { messageId?: string }).messageId === messageId).map((event) => (event.data as { state: string }).state)
    t.ok(await waitFor(() => statuses().includes('read'), 5_000))
    const order = ['accepted', 'server_ack', 'delivered', 'read', 'played']
    t.same(statuses(), [...statuses()].sort((a, b) => order.indexOf(a) - order.indexOf(b)), `forward only: ${statuses().join(' → ')}`)
    t.equal(new Set(statuses()).size, statuses().length, 'no state twice')

    // WhatsApp refuses messages to this contact with 463: accepted first, then failed.
    gateway.simulator.account('79111230555').refusal = '463'
    const refused = await gateway.send({ phone: '79111230555', message: 'Здравствуйте' })
    t.equal(refused.statusCode, 200, 'WhatsApp took it (accepted: true)')
    const refusedId = (refused.json() as { messageId: string }).messageId
    const refusedState = async () =>
      ((await app.inject({ method: 'GET', url: `${api}/messages/${refusedId}` })).json() as { message?: MessageRecord }).message
    t.ok(await waitFor(async () => (await refusedState())?.state === 'failed', 10_000), 'then failed')
    t.match(await refusedState(), { failure: { code: '463', message: /463/ } })
    t.ok(gateway.events.events.some((event) => event.type === 'message_status' &&
      (event.data as { messageId?: string, state?: string }).messageId === refusedId &&
      (event.data as { state?: string }).state === 'failed'), 'a message_status event says failed')
    t.equal(gateway.simulator.received('79111230555').length, 0, 'the contact got nothing')
    const metrics = await app.inject({ method: 'GET', url: '/metrics' })
    t.match(metrics.body, /whatsapp_delivery_failures_total\{reason="463"\} 1/)
  })

t.test('replies, edits, deletions, locations and contact cards reach the contact as WhatsApp shows them', async (t) => {
  const gateway = await linkedGateway(t)
  const { app } = gateway.replica
  const api = `/api/whatsapp/sessions/${gateway.companyId}`
  const inbound = await gateway.simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Можно на 15:00?' })
  t.ok(await gateway.events.waitFor('message', 1, 10_000))
  // Its id is the message's own under the lease's epoch: a repeat to this holder is deduplicated by the stream.
  const received = gateway.events.events.find((event) => event.type === 'message')
  t.ok(received && received.epoch > 0, 'published under the lease\'s epoch')
  t.equal(received?.id, messageEventId(gateway.companyId, received!.epoch, inbound.id))

  const reply = await gateway.send({ phone: CONTACT, message: 'Да, записала', quotedMessageId: inbound.id })
  t.equal(reply.statusCode, 200, reply.body)
  t.ok(await waitFor(() => gateway.received().length === 1, 10_000))
  t.match(gateway.received()[0], { kind: 'text', text: 'Да, записала', quotedMessageId: inbound.id }, 'shown as a reply')
  const unknownQuote = await gateway.send({ phone: CONTACT, message: 'x', quotedMessageId: 'NEVER-SEEN-1' })
  t.equal(unknownQuote.statusCode, 404)
  t.match(unknownQuote.json(), { error: { code: 'NOT_FOUND' } })

  const typo = await gateway.send({ phone: CONTACT, message: 'Ждём вас в 16:00' })
  const typoId = (typo.json() as { messageId: string }).messageId
  t.ok(await waitFor(() => gateway.received().length === 2, 10_000))
  const edited = await app.inject({
    method: 'POST',
    url: `${api}/edit`,
    payload: { phone: CONTACT, messageId: typoId, text: 'Ждём вас в 15:00' }
  })
  t.equal(edited.statusCode, 200, edited.body)
  t.ok(await waitFor(() => gateway.received()[1]?.edited === true, 10_000))
  t.match(gateway.received()[1], { id: typoId, text: 'Ждём вас в 15:00', edited: true }, 'the contact sees the new text')
  t.equal(gateway.received().length, 2, 'an edit is not a new message')
  const history = (await app.inject({ method: 'GET', url: `${api}/messages/${typoId}` })).json() as { message: MessageRecord }
  t.match(history.message, { text: 'Ждём вас в 15:00', edited: true })
  for (const [payload, status, code] of [
    [{ phone: CONTACT, messageId: inbound.id, text: 'x' }, 409, 'NOT_EDITABLE'],
    [{ phone: CONTACT, messageId: 'NEVER-SENT-1', text: 'x' }, 404, 'NOT_FOUND'],
    [{ phone: CONTACT, messageId: typoId, text: '' }, 400, 'VALIDATION_ERROR']
  ] as const) {
    const refused = await app.inject({ method: 'POST', url: `${api}/edit`, payload })
    t.equal(refused.statusCode, status, JSON.stringify(payload))
    t.match(refused.json(), { success: false, error: { code } })
  }

  const deleted = await app.inject({ method: 'POST', url: `${api}/delete`, payload: { phone: CONTACT, messageId: typoId } })
  t.equal(deleted.statusCode, 200, deleted.body)
  t.ok(await waitFor(() => gateway.received()[1]?.deleted === true, 10_000), 'deleted for the contact too')
  const again = await app.inject({ method: 'POST', url: `${api}/delete`, payload: { phone: CONTACT, messageId: typoId } })
  t.equal(again.statusCode, 409, 'a deleted message cannot be deleted again')

  const location = await gateway.send({
    phone: CONTACT,
    location: { latitude: 55.7558, longitude: 37.6173, name: 'Салон', address: 'ул. Ленина, 1' }
  })
  t.equal(location.statusCode, 200, location.body)
  const card = await gateway.send({ phone: CONTACT, contact: { name: 'Мастер Анна', phones: ['+7 900 555-12-34'] } })
  t.equal(card.statusCode, 200, card.body)
  t.ok(await waitFor(() => gateway.received().length === 4, 10_000))
  t.match(gateway.received()[2], {
    kind: 'location',
    location: { latitude: 55.7558, longitude: 37.6173, name: 'Салон', address: 'ул. Ленина, 1' }
  })
  t.match(gateway.received()[3], {
    kind: 'contact',
    contact: { name: 'Мастер Анна', vcard: /TEL;type=CELL;type=VOICE;waid=79005551234:\+79005551234/ }
  })
  const bad = [
    { phone: CONTACT, location: { latitude: 91, longitude: 0 } },
    { phone: CONTACT, contact: { name: '' } },
    { phone: CONTACT, message: 'hi', location: { latitude: 1, longitude: 1 } }
  ]
  for (const payload of bad) t.equal((await gateway.send(payload)).statusCode, 400, JSON.stringify(payload))

  // The history pages newest first.
  const first = (await app.inject({ method: 'GET', url: `${api}/messages?limit=2` })).json() as { messages: MessageRecord[], next: string }
  t.same(first.messages.map((message) => message.kind), ['contact', 'location'])
  const second = (await app.inject({ method: 'GET', url: `${api}/messages?limit=10&before=${encodeURIComponent(first.next)}` })).json() as
    { messages: MessageRecord[], next: string | null }
  t.same(second.messages.map((message) => message.deleted ? 'deleted' : message.text), ['deleted', 'Да, записала', 'Можно на 15:00?'])
  t.equal(second.messages[0].deleted, true)
  t.equal(second.next, null)
})

t.test('read receipts, presence, and number checks with their own budget and cache', async (t) => {
  const gateway = await linkedGateway(t, { numberChecksPerMinute: 3 }, { notOnWhatsApp: [NOT_ON_WHATSAPP] })
  const { app } = gateway.replica
  const api = `/api/whatsapp/sessions/${gateway.companyId}`
  const inbound = await gateway.simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Спасибо!' })
  t.ok(await gateway.events.waitFor('message', 1, 10_000))
  const read = await app.inject({ method: 'POST', url: `${api}/read`, payload: { phone: `+${CONTACT}`, messageIds: [inbound.id] } })
  t.equal(read.statusCode, 200, read.body)
  const gotReadReceipt = () => gateway.simulator.account(CONTACT).receipts
    .some((receipt) => receipt.messageId === inbound.id && receipt.type === 'read')
  t.ok(await waitFor(gotReadReceipt, 5_000), 'the contact got a read receipt')

  for (const presence of ['composing', 'recording', 'paused'] as const) {
    const shown = await app.inject({ method: 'POST', url: `${api}/presence`, payload: { presence, phone: CONTACT } })
    t.equal(shown.statusCode, 200, shown.body)
  }
  t.ok(await waitFor(() => gateway.simulator.account(CONTACT).presences.length === 3, 5_000))
  t.same(gateway.simulator.account(CONTACT).presences.map((presence) => presence.state), ['composing', 'recording', 'paused'])
  t.equal((await app.inject({ method: 'POST', url: `${api}/presence`, payload: { presence: 'available' } })).statusCode, 200)
  t.ok(await waitFor(() => gateway.simulator.account(COMPANY_PHONE).availability === 'available', 5_000), 'the account is available')
  const composing = await app.inject({ method: 'POST', url: `${api}/presence`, payload: { presence: 'composing' } })
  t.equal(composing.statusCode, 400, 'typing needs a chat')
  const availableInChat = await app.inject({ method: 'POST', url: `${api}/presence`, payload: { presence: 'available', phone: CONTACT } })
  t.equal(availableInChat.statusCode, 400)

  const checked = await app.inject({ method: 'POST', url: `${api}/check-numbers`, payload: { phones: [`+${CONTACT}`, NOT_ON_WHATSAPP] } })
  t.equal(checked.statusCode, 200, checked.body)
  t.match(checked.json(), {
    results: [
      { input: `+${CONTACT}`, phone: CONTACT, exists: true, jid: `${CONTACT}@s.whatsapp.net`, lid: `${lidOf(CONTACT)}@lid`, cached: false },
      { input: NOT_ON_WHATSAPP, phone: NOT_ON_WHATSAPP, exists: false, jid: null, lid: null, cached: false }
    ]
  })
  const cached = await app.inject({ method: 'POST', url: `${api}/check-numbers`, payload: { phones: [CONTACT] } })
  t.match(cached.json(), { results: [{ exists: true, cached: true }] }, 'answered from the cache, free')
  const overBudget = await app.inject({ method: 'POST', url: `${api}/check-numbers`, payload: { phones: ['79110000001', '79110000002'] } })
  t.equal(overBudget.statusCode, 429, 'three checks a minute: two more are over')
  t.match(overBudget.json(), { error: { code: 'RATE_LIMITED', retryAfter: Number } })
  const tooMany = Array.from({ length: 51 }, (_, i) => `7911000${1000 + i}`)
  for (const payload of [{ phones: [] }, { phones: ['not a phone'] }, { phones: tooMany }]) {
    const response = await app.inject({ method: 'POST', url: `${api}/check-numbers`, payload })
    t.equal(response.statusCode, 400, JSON.stringify(payload).slice(0, 60))
  }
  t.equal((await app.inject({ method: 'POST', url: `${api}/read`, payload: { phone: CONTACT, messageIds: [] } })).statusCode, 400)

  // The same over NATS, through the typed client.
  const nc = await connect({ servers: gateway.settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: gateway.settings.natsNamespace, timeoutMs: 10_000 })
  t.match(await client.presence(gateway.companyId, { presence: 'paused', phone: CONTACT }), { success: true })
  t.match(await client.messages(gateway.companyId, { chat: CONTACT }), { messages: [{ messageId: inbound.id, direction: 'in' }] })
  t.match(await client.message(gateway.companyId, inbound.id), { message: { text: 'Спасибо!' } })
})

t.test('a contact known only by LID can be written to and answered, and is one contact once its phone is known', async (t) => {
  const gateway = await linkedGateway(t)
  const { app } = gateway.replica
  const api = `/api/whatsapp/sessions/${gateway.companyId}`
  const lid = `${lidOf(CONTACT)}@lid`
  const inbound = await gateway.simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Здравствуйте, это Мария', byLid: true })
  t.ok(await gateway.events.waitFor('message', 1, 10_000))
  const event = gateway.events.events.find((candidate) => candidate.type === 'message')!.data as Record<string, unknown>
  t.match(event, { messageId: inbound.id, lid, phone: null }, 'the event names the contact by LID')

  const answer = await gateway.send({ phone: lid, message: 'Здравствуйте, Мария!', quotedMessageId: inbound.id })
  t.equal(answer.statusCode, 200, answer.body)
  t.ok(await waitFor(() => gateway.received().length === 1, 10_000), 'the contact got the answer')
  t.match(gateway.received()[0], { text: 'Здравствуйте, Мария!', quotedMessageId: inbound.id })
  const byLidResponse = await app.inject({ method: 'GET', url: `${api}/messages?chat=${encodeURIComponent(lid)}` })
  t.equal(byLidResponse.statusCode, 200, byLidResponse.body)
  const byLid = byLidResponse.json() as { messages: MessageRecord[] }
  t.same(byLid.messages.map((message) => message.direction), ['out', 'in'], 'one chat by LID')

  // A number check tells the phone behind the LID: the history becomes one contact by either name.
  await app.inject({ method: 'POST', url: `${api}/check-numbers`, payload: { phones: [CONTACT] } })
  t.ok(await waitFor(async () => {
    const byPhone = (await app.inject({ method: 'GET', url: `${api}/messages?chat=${CONTACT}` })).json() as { messages: MessageRecord[] }
    return byPhone.messages.length === 2 && byPhone.messages.every((message) => message.phone === CONTACT && message.lid === lid)
  }, 5_000), 'the same two messages by phone, each with both names')
  const later = await gateway.simulator.deliver({ from: CONTACT, to: COMPANY_PHONE, text: 'Спасибо', byLid: true })
  t.ok(await gateway.events.waitFor('message', 2, 10_000))
  const second = gateway.events.events.filter((candidate) => candidate.type === 'message')[1].data as Record<string, unknown>
  t.match(second, { messageId: later.id, lid, phone: CONTACT }, 'later events carry both')
})

t.test("receipts written in one batch apply in order, each message's as one by one", async (t) => {
  const app = await build(t)
  const store = new ConversationStore(() => app.orm.em.fork())
  const message = (messageId: string, state: DeliveryState) => ({
    ...{ companyId: 'acme', messageId, direction: 'out' as const, phone: '79001234567', lid: null, groupId: null, kind: 'text' },
    ...{ text: messageId, details: null, quotedMessageId: null, state, sentAt: new Date(), epoch: 0 }
  })
  await store.insert([message('m-read-after-failed', 'delivered'), message('m-fails', 'accepted'), message('m-stays-read', 'read')])
  const failure = { code: '463', message: 'refused' }
  const receipt = (messageId: string, state: DeliveryState) =>
    ({ companyId: 'acme', messageId, state, failure: state === 'failed' ? failure : null, phone: '79001234567', lid: null })
  await store.advance([
    receipt('m-read-after-failed', 'failed'), receipt('m-fails', 'failed'), receipt('m-read-after-failed', 'read'),
    receipt('m-stays-read', 'failed'),
    receipt('m-unknown', 'server_ack'), receipt('m-unknown', 'delivered'), receipt('m-unknown', 'accepted')
  ])
  const stateOf = async (messageId: string) => (await store.get('acme', messageId))?.state
  t.equal(await stateOf('m-read-after-failed'), 'read', 'a late failure does not undo delivery, and the read after it counts')
  t.equal(await stateOf('m-fails'), 'failed', 'a message not delivered fails')
  t.equal((await store.get('acme', 'm-fails'))?.failure?.code, '463', 'with its reason')
  t.equal(await stateOf('m-stays-read'), 'read', 'a read message does not fail')
  const unknown = await store.get('acme', 'm-unknown')
  t.equal(unknown?.state, 'delivered', 'receipts for a message not recorded yet make its row, and only move it forward')
  t.equal(unknown?.kind, 'other')
})

t.test('a receipt in the batch that adds its message goes into the row as it is added, by the rule receipts follow', async (t) => {
  const app = await build(t)
  const companyId = 'acme'
  const phone = '79001234567'
  const sent = (messageId: string) => app.events.publish(companyId, 'message_sent', {
    messageId, phone, kind: 'text', text: messageId, timestamp: new Date().toISOString()
  }, { epoch: 1, id: `sent:${messageId}` })
  const receipt = (messageId: string, state: DeliveryState, failure?: { code: string, message: string }) =>
    app.events.publish(companyId, 'message_status', {
      ...{ messageId, to: `${phone}@s.whatsapp.net`, status: WHATSAPP_STATUS[state], state },
      ...(failure ? { failure } : {}),
      timestamp: new Date().toISOString()
    }, { epoch: 1, id: `receipt:${messageId}:${state}` })
  const stored = (messageId: string) => app.conversations.message(companyId, messageId)

  sent('m-delivered')
  receipt('m-delivered', 'server_ack')
  receipt('m-delivered', 'delivered')
  receipt('m-delivered', 'server_ack')
  sent('m-refused')
  receipt('m-refused', 'failed', { code: '463', message: 'refused' })
  await app.conversations.flush()
  t.match(await stored('m-delivered'), { state: 'delivered', text: 'm-delivered', kind: 'text' },
    'delivered, and a late ack does not undo it')
  t.match(await stored('m-refused'), { state: 'failed', failure: { code: '463' } }, 'a refusal with its reason')

  // Rows already there: a placeholder a read receipt made, and a message stored before its receipts.
  receipt('m-read-first', 'read')
  sent('m-earlier')
  await app.conversations.flush()
  sent('m-read-first')
  receipt('m-read-first', 'delivered')
  sent('m-earlier')
  receipt('m-earlier', 'delivered')
  await app.conversations.flush()
  t.match(await stored('m-read-first'), { state: 'read', kind: 'text', text: 'm-read-first' },
    'the placeholder\'s read stays, the message fills it')
  t.match(await stored('m-earlier'), { state: 'delivered' }, 'a stored message advances')
  receipt('m-earlier', 'failed', { code: '463', message: 'refused' })
  sent('m-earlier')
  await app.conversations.flush()
  t.match(await stored('m-earlier'), { state: 'delivered', failure: null }, 'a delivered message does not fail')
})

t.test('a message in the history is the newest lease\'s copy: an older epoch\'s never blocks it, and a late one only fills gaps',
  async (t) => {
    const app = await build(t)
    const companyId = 'acme'
    const lid = '201234567890123@lid'
    const unavailable = { kind: 'image', mimetype: 'image/jpeg', error: { code: 'MEDIA_UNAVAILABLE', message: 'the connection closed' } }
    const fetched = { kind: 'image', mimetype: 'image/jpeg', size: 10, sha256: 'ab', objectId: 'acme/photo' }
    // As a session publishes an inbound message: the old holder's copy was cut short as its socket closed.
    const inbound = (messageId: string, epoch: number, data: Record<string, unknown>) => {
      app.events.publish(companyId, 'message', {
        messageId, phone: null, jid: null, lid, pushName: null, text: null, offline: false, timestamp: new Date().toISOString(), ...data
      }, { epoch, id: `test:${messageId}:${epoch}:${Math.random()}` })
    }
    const stored = (messageId: string) => app.conversations.message(companyId, messageId)

    inbound('m-takeover', 5, { media: unavailable })
    await app.conversations.flush()
    t.match(await stored('m-takeover'), { phone: null, media: { error: { code: 'MEDIA_UNAVAILABLE' } } }, 'the old holder\'s copy first')
    inbound('m-takeover', 6, { phone: '79111230102', media: fetched })
    await app.conversations.flush()
    const newer = await stored('m-takeover')
    t.match(newer, { phone: '79111230102', lid, kind: 'media', media: fetched }, 'the new holder\'s copy replaces where they differ')
    t.notOk((newer?.media as { error?: unknown }).error, 'no trace of the failed fetch')

    inbound('m-takeover', 5, { media: unavailable, text: 'late' })
    await app.conversations.flush()
    t.match(await stored('m-takeover'), { phone: '79111230102', media: fetched, text: 'late' },
      'the old copy landing late changes nothing the newer one knew (it only fills a gap)')

    // Both copies in one batch (one statement may touch a row once): applied in their order, the newer winning.
    inbound('m-one-batch', 7, { media: unavailable })
    inbound('m-one-batch', 8, { phone: '79111230102', media: fetched })
    await app.conversations.flush()
    t.match(await stored('m-one-batch'), { phone: '79111230102', media: fetched })

    // One lease's repeat keeps the first write (a redelivery adds only what was missing).
    inbound('m-repeat', 9, { text: 'first' })
    await app.conversations.flush()
    inbound('m-repeat', 9, { text: 'second', phone: '79111230102' })
    await app.conversations.flush()
    t.match(await stored('m-repeat'), { text: 'first', phone: '79111230102' })
  })
