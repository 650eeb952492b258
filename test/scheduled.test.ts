import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type ScheduledMessage } from '../contracts/index.ts'
import { derivedMessageId } from '../plugins/scheduler/index.ts'
import { CONTACT, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'
import { jpeg } from './helpers/media-files.ts'

const inMs = (ms: number) => new Date(Date.now() + ms).toISOString()

t.test('a reminder with real Baileys: scheduled, moved by its key, sent once on time; another cancelled; a poll too', async (t) => {
  const { simulator, replica, companyId, events, received } = await linkedGateway(t)
  const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>) =>
    replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload } : {}) })

  const first = await api('POST', '/send', {
    phone: CONTACT, message: 'Ждём вас завтра в 15:00', sendAt: inMs(60_000), scheduleKey: 'booking-1234-reminder'
  })
  t.equal(first.statusCode, 202, 'scheduled: 202')
  t.match(first.json(), { success: true, companyId, state: 'scheduled', scheduleKey: 'booking-1234-reminder', replaced: null })
  const firstId = first.json().id as string

  // The booking moved: the same key replaces the pending reminder.
  const sendAt = inMs(1_500)
  const moved = await api('POST', '/send', {
    phone: CONTACT, message: 'Ждём вас завтра в 16:00', sendAt, scheduleKey: 'booking-1234-reminder'
  })
  t.equal(moved.statusCode, 202)
  t.equal(moved.json().replaced, firstId, 'it names the reminder it replaced')
  const reminderId = moved.json().id as string
  const cancelled = await api('POST', '/send', {
    phone: CONTACT, message: 'Отменённая запись', sendAt: inMs(2_000), scheduleKey: 'booking-99'
  })
  t.equal(cancelled.statusCode, 202)
  const poll = await api('POST', '/polls', { phone: CONTACT, question: 'Вам удобно?', options: ['да', 'нет'], sendAt: inMs(1_500) })
  t.equal(poll.statusCode, 202, 'a poll is scheduled the same way')

  const cancel = await api('DELETE', '/scheduled/booking-99')
  t.equal(cancel.statusCode, 200)
  t.equal(cancel.json().scheduled.status, 'cancelled')
  t.equal((await api('DELETE', '/scheduled/booking-99')).statusCode, 409, 'a cancelled message is not cancelled twice')
  t.equal((await api('DELETE', '/scheduled/no-such-key')).statusCode, 404)

  const pending = (await api('GET', '/scheduled?status=scheduled')).json().scheduled as ScheduledMessage[]
  t.same(pending.map((message) => message.id).sort(), [reminderId, poll.json().id].sort(), 'two pending: the moved reminder and the poll')

  t.ok(await waitFor(() => received().some((message) => message.text === 'Ждём вас завтра в 16:00'), 10_000), 'the reminder arrived')
  const arrivedAt = Date.now()
  t.ok(arrivedAt - Date.parse(sendAt) < 1_500, `on time (${arrivedAt - Date.parse(sendAt)} ms after sendAt)`)
  t.ok(await waitFor(() => received().some((message) => message.kind === 'poll'), 10_000), 'the poll arrived')
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  const texts = received().map((message) => message.text)
  t.equal(texts.filter((text) => text?.startsWith('Ждём вас')).length, 1, 'one reminder, the moved one')
  t.notOk(texts.includes('Отменённая запись'), 'the cancelled one never went')
  const reminder = received().find((message) => message.text === 'Ждём вас завтра в 16:00')!
  t.equal(reminder.id, derivedMessageId(reminderId), 'under the id derived from its own')

  const state = (await api('GET', '/scheduled/booking-1234-reminder')).json().scheduled as ScheduledMessage
  t.match(state, { id: reminderId, status: 'sent', messageId: reminder.id, attempts: 1 })
  const replaced = (await api('GET', `/scheduled/${firstId}`)).json().scheduled as ScheduledMessage
  t.equal(replaced.status, 'replaced', 'the first is kept as replaced')
  t.ok(await events.waitFor('message_sent', 2), 'message_sent for each')
  const sentEvent = events.events.find((event) =>
    event.type === 'message_sent' && (event.data as { messageId: string }).messageId === reminder.id)
  t.match(sentEvent?.data, { scheduled: { id: reminderId, scheduleKey: 'booking-1234-reminder' } }, 'its message_sent names the reminder')
  const scheduledEvents = events.events.filter((event) => event.type === 'message_scheduled')
  t.equal(scheduledEvents.length, 4, 'message_scheduled for each scheduling')
  t.equal(simulator.received(CONTACT).filter((message) => message.id === reminder.id).length, 1)
  const history = (await api('GET', `/messages/${reminder.id}`)).json()
  t.match(history, { message: { direction: 'out', text: 'Ждём вас завтра в 16:00' } }, 'in the message history')
})

t.test('scheduling refuses what it could not send, names the field, and over NATS any replica schedules', async (t) => {
  const { replica, companyId, settings, received } = await linkedGateway(t)
  const send = (payload: Record<string, unknown>) =>
    replica.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload })
  const refusals: [Record<string, unknown>, string][] = [
    [{ phone: CONTACT, message: 'x', scheduleKey: 'k1' }, '/scheduleKey'],
    [{ phone: CONTACT, message: 'x', expiresAt: inMs(1000) }, '/expiresAt'],
    [{ phone: CONTACT, message: 'x', sendAt: inMs(5000), expiresAt: inMs(4000) }, '/expiresAt'],
    [{ phone: CONTACT, message: 'x', sendAt: '2026-12-08T15:00:00' }, '/sendAt'],
    [{ phone: CONTACT, message: 'x', sendAt: inMs(400 * 24 * 3600_000) }, '/sendAt'],
    [{ phone: CONTACT, message: 'x', sendAt: inMs(5000), scheduleKey: 'has space' }, '/scheduleKey'],
    [{ phone: CONTACT, message: 'x', sendAt: inMs(5000), quietHours: 'sometimes' }, '/quietHours'],
    // A file waits in the media bucket for MEDIA_RETENTION (7 days) at most.
    [{ phone: CONTACT, media: { kind: 'image', data: (await jpeg()).toString('base64') }, sendAt: inMs(30 * 24 * 3600_000) }, '/sendAt']
  ]
  for (const [payload, field] of refusals) {
    const answer = await send(payload)
    t.equal(answer.statusCode, 400, `${JSON.stringify(payload)}: 400`)
    t.ok(JSON.stringify(answer.json().error.details ?? []).includes(field) || answer.json().error.message.includes(field.slice(1)),
      `naming ${field}: ${answer.body}`)
  }
  const badPhone = await send({ phone: '12', message: 'x', sendAt: inMs(5000) })
  t.equal(badPhone.statusCode, 400)
  t.equal(badPhone.json().error.code, 'INVALID_PHONE', 'a phone that is no phone is refused now, not at sending')

  // The same idempotency key finds the message it scheduled.
  const once = { phone: CONTACT, message: 'Один раз', sendAt: inMs(60_000), idempotencyKey: 'req-1' }
  const a = await send(once)
  const b = await send(once)
  t.equal(a.statusCode, 202)
  t.equal(b.json().id, a.json().id, 'a repeat with the idempotency key is the same scheduled message')

  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  const viaNats = await client.schedule(companyId, 'send', { phone: CONTACT, message: 'Через NATS', sendAt: inMs(500) })
  t.equal(viaNats.state, 'scheduled')
  const viaHolder = await client.send(companyId, { phone: CONTACT, message: 'Через команду', sendAt: inMs(500) })
  t.equal(viaHolder.state, 'scheduled', 'the holder command with sendAt schedules too')
  await t.rejects(client.schedule(companyId, 'send', { phone: CONTACT, sendAt: inMs(500) } as never), { code: 'VALIDATION_ERROR' },
    'a send without content is refused when scheduled, as when sent')
  t.ok(await waitFor(() => ['Через NATS', 'Через команду'].every((text) => received().some((message) => message.text === text)), 10_000),
    'both went')
  // The phone has them a moment before the holder records them sent.
  t.ok(await waitFor(async () => (await client.scheduled(companyId, { status: 'sent' })).scheduled.length === 2, 5_000), 'both sent')
  const page = await client.scheduled(companyId, { limit: 1 })
  t.equal(page.scheduled.length, 1)
  t.ok(page.next, 'a next page')
  const second = await client.scheduled(companyId, { limit: 1, cursor: page.next! })
  t.not(second.scheduled[0]?.id, page.scheduled[0]?.id, 'the next page goes on')
  await t.rejects(client.scheduled(companyId, { cursor: 'nonsense' }), { code: 'VALIDATION_ERROR' })
  // The latest change first: what just went, page by page.
  const latest = await client.scheduled(companyId, { order: 'recent', limit: 2 })
  t.same(latest.scheduled.map((one) => one.status), ['sent', 'sent'], 'the two sent last')
  const older = await client.scheduled(companyId, { order: 'recent', limit: 2, cursor: latest.next! })
  t.equal(older.scheduled.length, 1, 'then the one still pending (the idempotent one, an hour ahead)')
  t.equal(older.scheduled[0]?.id, a.json().id)
  const got = await client.scheduledMessage(companyId, viaNats.id)
  t.equal(got.scheduled.status, 'sent')
})

t.test('quiet hours hold a reminder to the allowed hours unless the send ignores them; a message past its expiresAt expires', async (t) => {
  const { replica, companyId, events, received } = await linkedGateway(t)
  const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>) =>
    replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload } : {}) })
  t.same((await api('GET', '/quiet-hours')).json().quietHours, null, 'any time to begin with')
  t.equal((await api('PUT', '/quiet-hours', { timezone: 'Mars/Olympus', from: '09:00', to: '21:00' })).statusCode, 400)
  t.equal((await api('PUT', '/quiet-hours', { timezone: 'UTC', from: '09:00', to: '09:00' })).statusCode, 400)
  t.equal((await api('PUT', '/quiet-hours', { timezone: 'UTC', from: '9:00', to: '21:00' })).statusCode, 400)

  // The allowed window starts two hours from now (UTC), so now is outside it.
  const now = new Date()
  const clock = (date: Date) => `${String(date.getUTCHours()).padStart(2, '0')}:${String(date.getUTCMinutes()).padStart(2, '0')}`
  const opens = new Date(now.getTime() + 2 * 3600_000)
  const closes = new Date(now.getTime() + 10 * 3600_000)
  const set = await api('PUT', '/quiet-hours', { timezone: 'UTC', from: clock(opens), to: clock(closes) })
  t.equal(set.statusCode, 200)
  t.same(set.json().quietHours, { timezone: 'UTC', from: clock(opens), to: clock(closes) })

  const held = await api('POST', '/send', { phone: CONTACT, message: 'Ночью нельзя', sendAt: inMs(300) })
  t.equal(held.statusCode, 202)
  const expectedDue = new Date(opens)
  expectedDue.setUTCSeconds(0, 0)
  t.equal(held.json().dueAt, expectedDue.toISOString(), 'due at the first allowed minute')
  const urgent = await api('POST', '/send', { phone: CONTACT, message: 'Срочно', sendAt: inMs(300), quietHours: 'ignore' })
  t.equal(urgent.json().dueAt, urgent.json().sendAt, 'ignoring quiet hours: due at its time')
  t.ok(await waitFor(() => received().some((message) => message.text === 'Срочно'), 10_000), 'the urgent one went')
  t.notOk(received().some((message) => message.text === 'Ночью нельзя'), 'the held one did not')

  // Once the hours allow any time again, the held one goes at its own time.
  t.equal((await api('DELETE', '/quiet-hours')).statusCode, 200)
  t.ok(await waitFor(() => received().some((message) => message.text === 'Ночью нельзя'), 10_000), 'released when the quiet hours went')

  const expiring = await api('POST', '/send', { phone: CONTACT, message: 'Устарело', sendAt: inMs(-10_000), expiresAt: inMs(-5_000) })
  t.equal(expiring.statusCode, 202)
  t.ok(await events.waitFor('message_expired', 1, 5_000), 'message_expired')
  const expired = (await api('GET', `/scheduled/${expiring.json().id}`)).json().scheduled as ScheduledMessage
  t.equal(expired.status, 'expired')
  t.notOk(received().some((message) => message.text === 'Устарело'), 'never sent')
})
