import t from 'tap'
import type { Test } from 'tap'
import type { Campaign, EventEnvelope } from '../contracts/index.ts'
import { derivedMessageId } from '../plugins/scheduler/index.ts'
import { COMPANY_PHONE, linkedGateway } from './helpers/linked-gateway.ts'
import { waitFor } from './helpers/wait.ts'

const phones = (from: number, count: number) => Array.from({ length: count }, (_, index) => String(79_160_000_000 + from + index))
const ABSENT = phones(900, 10)
const FAST = { messagesPerMinute: 1200, numberChecksPerMinute: 1000 }

async function gateway (t: Test) {
  const linked = await linkedGateway(t, FAST, { notOnWhatsApp: ABSENT })
  const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>) =>
    linked.replica.app.inject({ method, url: `/api/whatsapp/sessions/${linked.companyId}${url}`, ...(payload ? { payload } : {}) })
  const campaign = async (id: string) => (await api('GET', `/campaigns/${id}`)).json().campaign as Campaign
  const until = async (id: string, done: (campaign: Campaign) => boolean, timeoutMs = 30_000) => {
    let last: Campaign | undefined
    const reached = await waitFor(async () => {
      last = await campaign(id)
      return done(last)
    }, timeoutMs, 200)
    return { reached, campaign: last! }
  }
  return { ...linked, api, campaign, until }
}

t.test('a campaign with real Baileys: each recipient once, variables in, absent and bad ones skipped, delivered, reported', async (t) => {
  const { simulator, api, until, events } = await gateway(t)
  const present = phones(0, 20)
  const recipients = [
    ...present.map((phone, index) => ({ phone: `+${phone}`, variables: { name: `Клиент ${index}`, discount: `${index}%` } })),
    ...ABSENT.slice(0, 3).map((phone) => ({ phone, variables: { name: 'нет', discount: '0' } })),
    { phone: '12', variables: { name: 'плохой', discount: '0' } },
    { phone: present[0]!, variables: { name: 'повтор', discount: '0' } }
  ]
  const created = await api('POST', '/campaigns', {
    name: 'Декабрьская акция',
    template: { text: 'Привет, {{name}}! Скидка {{ discount }} для {{phone}}' },
    recipients,
    pacing: { messagesPerMinute: 900, jitter: 0.3 },
    quietHours: 'ignore'
  })
  t.equal(created.statusCode, 201, created.body)
  const { id, total, status } = created.json().campaign as Campaign
  t.equal(total, 25)
  t.equal(status, 'scheduled')
  t.match(created.json().campaign.counts, { queued: 23, skipped: 2 }, 'the bad phone and the repeat are skipped at once')

  const finished = await until(id, (campaign) => campaign.status === 'finished')
  t.ok(finished.reached, `finished: ${JSON.stringify(finished.campaign.counts)}`)
  t.match(finished.campaign.counts, { queued: 0, sent: 20, failed: 0, skipped: 5 })
  for (const [index, phone] of present.entries()) {
    const got = simulator.received(phone)
    t.equal(got.length, 1, `${phone} got one message`)
    t.equal(got[0]?.text, `Привет, Клиент ${index}! Скидка ${index}% для ${phone}`)
    t.equal(got[0]?.id, derivedMessageId(`campaign:${id}:${index}`), 'under the id of its place in the campaign')
  }
  for (const phone of ABSENT.slice(0, 3)) t.same(simulator.received(phone), [], `${phone} (not on WhatsApp) got nothing`)
  const delivered = await until(id, (campaign) => campaign.counts.delivered === 20, 10_000)
  t.ok(delivered.reached, 'the phones\' receipts count as delivered')
  simulator.read(present[1]!, COMPANY_PHONE, [derivedMessageId(`campaign:${id}:1`)])
  t.ok((await until(id, (campaign) => campaign.counts.read === 1, 10_000)).reached, 'and a read one as read')

  const report = await api('GET', `/campaigns/${id}/report`)
  t.equal(report.statusCode, 200)
  t.match(report.headers['content-type'], /text\/csv/)
  const lines = report.body.trim().split('\n')
  t.equal(lines[0], 'seq,phone,status,message_id,error,sent_at,delivered_at,read_at')
  t.equal(lines.length, 26, 'a line per recipient')
  t.match(lines[2], new RegExp(`^1,${present[1]},read,${derivedMessageId(`campaign:${id}:1`)},,`))
  t.match(lines[21], new RegExp(`^20,${ABSENT[0]},skipped,,NOT_ON_WHATSAPP,`))
  t.match(lines[24], /^23,12,skipped,,INVALID_PHONE,/)
  t.match(lines[25], new RegExp(`^24,${present[0]},skipped,,DUPLICATE,`))
  const sentEvents = events.events.filter((event: EventEnvelope) => event.type === 'message_sent')
  t.match(sentEvents.find((event) => (event.data as { messageId: string }).messageId === derivedMessageId(`campaign:${id}:3`))?.data,
    { campaign: { id, seq: 3 } }, 'a message_sent names its campaign and the recipient\'s place')
  const progress = events.events.filter((event: EventEnvelope) => event.type === 'campaign_progress')
  t.ok(progress.some((event) => (event.data as { status: string }).status === 'running'), 'campaign_progress: running')
  t.ok(progress.some((event) => (event.data as { status: string }).status === 'finished'), 'campaign_progress: finished')
  const list = (await api('GET', '/campaigns')).json().campaigns as Campaign[]
  t.same(list.map((campaign) => campaign.id), [id])

  // With a typing presence: the contact sees "typing…" for typingMs before the message.
  const typed = phones(50, 1)[0]!
  const withTyping = await api('POST', '/campaigns', {
    name: 'С набором', template: { text: 'Добрый вечер' }, recipients: [{ phone: typed }], pacing: { typingMs: 400 }, quietHours: 'ignore'
  })
  t.ok((await until(withTyping.json().campaign.id, (campaign) => campaign.status === 'finished')).reached)
  const composing = simulator.account(typed).presences.find((presence) => presence.state === 'composing')
  t.ok(composing, 'the contact saw typing')
  const arrived = simulator.received(typed)[0]
  t.ok(arrived, 'then the message')
})

t.test('pause, resume and cancel; a campaign pauses itself when its numbers are not on WhatsApp or WhatsApp refuses', async (t) => {
  const { simulator, api, until } = await gateway(t)
  const slow = phones(100, 30)
  const created = await api('POST', '/campaigns', {
    name: 'Медленная',
    template: { text: 'Новости' },
    recipients: slow.map((phone) => ({ phone })),
    pacing: { messagesPerMinute: 120, jitter: 0 },
    quietHours: 'ignore'
  })
  const { id } = created.json().campaign as Campaign
  t.ok((await until(id, (campaign) => campaign.counts.sent >= 2)).reached, 'sending')
  const paused = await api('POST', `/campaigns/${id}/pause`)
  t.equal(paused.json().campaign.status, 'paused')
  t.equal(paused.json().campaign.pausedReason, 'manual')
  // What was being sent at the pause finishes: once the phones and the counts agree, nothing more goes.
  const phonesReached = () => slow.filter((phone) => simulator.received(phone).length > 0).length
  t.ok((await until(id, (campaign) => campaign.counts.sent === phonesReached() && campaign.counts.queued > 0)).reached)
  const sentWhenPaused = phonesReached()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  t.equal(phonesReached(), sentWhenPaused, 'nothing goes while paused')
  t.equal((await api('POST', `/campaigns/${id}/pause`)).statusCode, 409, 'a paused campaign is not paused again')
  t.equal((await api('POST', `/campaigns/${id}/resume`)).json().campaign.status, 'running')
  t.ok((await until(id, (campaign) => campaign.counts.sent > sentWhenPaused + 1)).reached, 'resumed')
  const cancelled = await api('POST', `/campaigns/${id}/cancel`)
  t.equal(cancelled.json().campaign.status, 'cancelled')
  // The recipient being sent at the cancel finishes; the rest are skipped.
  const settled = await until(id, (campaign) => campaign.counts.sent + campaign.counts.skipped === 30)
  t.ok(settled.reached, 'every recipient is sent or skipped')
  const final = settled.campaign
  t.ok(final.counts.skipped > 0, 'those not sent are skipped')
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.equal(slow.filter((phone) => simulator.received(phone).length > 0).length, final.counts.sent, 'nothing after the cancel')
  t.ok(slow.every((phone) => simulator.received(phone).length <= 1), 'nobody twice')
  t.equal((await api('POST', `/campaigns/${id}/resume`)).statusCode, 409, 'a cancelled campaign stays cancelled')
  t.equal((await api('GET', '/campaigns/00000000-0000-4000-8000-000000000000')).statusCode, 404)

  const absent = await api('POST', '/campaigns', {
    name: 'Старая база',
    template: { text: 'Привет' },
    quietHours: 'ignore',
    recipients: [...ABSENT, ...phones(200, 2)].map((phone) => ({ phone })),
    autoPause: { notOnWhatsAppRate: 0.5, window: 10 }
  })
  const selfPaused = await until(absent.json().campaign.id, (campaign) => campaign.status === 'paused')
  t.ok(selfPaused.reached)
  t.equal(selfPaused.campaign.pausedReason, 'not_on_whatsapp', 'paused itself: too many numbers not on WhatsApp')

  const refusing = phones(300, 12)
  for (const phone of refusing) simulator.account(phone).refusal = '463'
  const refused = await api('POST', '/campaigns', {
    name: 'Отказы',
    template: { text: 'Привет' },
    quietHours: 'ignore',
    pacing: { messagesPerMinute: 600 },
    recipients: refusing.map((phone) => ({ phone })),
    autoPause: { failureRate: 0.3, window: 10 }
  })
  const failing = await until(refused.json().campaign.id, (campaign) => campaign.status === 'paused')
  t.ok(failing.reached, `paused: ${JSON.stringify(failing.campaign.counts)}`)
  t.equal(failing.campaign.pausedReason, 'failures', 'paused itself: WhatsApp refused its messages (463)')
  t.ok(failing.campaign.counts.failed >= 3)
})

t.test('a campaign refuses what it could not send, takes a CSV (as a field or an upload), and waits for quiet hours', async (t) => {
  const { api, until, replica, companyId, simulator } = await gateway(t)
  const refusals: [Record<string, unknown>, string][] = [
    [{ name: 'x', template: { text: 'Привет, {{name}}' }, recipients: [{ phone: phones(0, 1)[0] }] }, 'variables'],
    [{ name: 'x', template: {}, recipients: [{ phone: phones(0, 1)[0] }] }, 'template'],
    [{ name: 'x', template: { text: 'a' } }, 'recipients'],
    [{ name: 'x', template: { text: 'a' }, csv: 'name\nAnna\n' }, 'phone'],
    [{ name: 'x', template: { text: 'a' }, csv: 'phone,bad column\n1\n' }, 'csv'],
    [{ name: 'x', template: { text: 'a' }, recipients: [{ phone: '1' }], pacing: { jitter: 2 } }, 'jitter']
  ]
  for (const [payload, named] of refusals) {
    const answer = await api('POST', '/campaigns', payload)
    t.equal(answer.statusCode, 400, `${JSON.stringify(payload)}: ${answer.body}`)
    t.match(answer.body, named)
  }

  const now = new Date()
  const clock = (date: Date) => `${String(date.getUTCHours()).padStart(2, '0')}:${String(date.getUTCMinutes()).padStart(2, '0')}`
  await api('PUT', '/quiet-hours', {
    timezone: 'UTC', from: clock(new Date(now.getTime() + 2 * 3600_000)), to: clock(new Date(now.getTime() + 4 * 3600_000))
  })
  const csvPhones = phones(400, 3)
  const csv = `Phone,name\n${csvPhones.map((phone, index) => `${phone},"Иванова, ${index}"`).join('\n')}\n`
  const fromCsv = await api('POST', '/campaigns', { name: 'CSV', template: { text: 'Здравствуйте, {{name}}' }, csv })
  t.equal(fromCsv.statusCode, 201, fromCsv.body)
  const { id } = fromCsv.json().campaign as Campaign
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  t.equal((await until(id, () => true)).campaign.counts.sent, 0, 'outside the allowed hours nothing goes')
  await api('DELETE', '/quiet-hours')
  t.ok((await until(id, (campaign) => campaign.status === 'finished')).reached, 'then it goes')
  t.equal(simulator.received(csvPhones[1]!)[0]?.text, 'Здравствуйте, Иванова, 1', 'a quoted CSV field, comma and all')

  const boundary = '----campaign'
  const uploadPhones = phones(500, 2)
  const body = [
    `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nЗагрузка`,
    `--${boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nДобрый день, {{name}}`,
    `--${boundary}\r\nContent-Disposition: form-data; name="messagesPerMinute"\r\n\r\n600`,
    `--${boundary}\r\nContent-Disposition: form-data; name="quietHours"\r\n\r\nignore`,
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\nContent-Type: text/csv\r\n\r\n` +
      `phone,name\n${uploadPhones[0]},Анна\n${uploadPhones[1]},Олег\n`,
    `--${boundary}--\r\n`
  ].join('\r\n')
  const uploaded = await replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/campaigns`,
    payload: body,
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }
  })
  t.equal(uploaded.statusCode, 201, uploaded.body)
  t.match(uploaded.json().campaign, { total: 2, pacing: { messagesPerMinute: 600 }, quietHours: 'ignore' })
  t.ok((await until(uploaded.json().campaign.id, (campaign) => campaign.status === 'finished')).reached)
  t.equal(simulator.received(uploadPhones[1]!)[0]?.text, 'Добрый день, Олег')
})
