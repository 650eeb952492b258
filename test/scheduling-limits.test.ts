import t from 'tap'
import { build } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'

const PHONE = '79111230102'
const later = (ms: number) => new Date(Date.now() + ms).toISOString()

t.test('a company may not fill the database: SCHEDULED_MAX_PENDING and CAMPAIGNS_MAX_OPEN answer LIMIT_REACHED', async (t) => {
  const app = await build(t, { config: { scheduledMaxPending: 2, campaignsMaxOpen: 1 } })
  const companyId = uniqueName('salon')
  const other = uniqueName('salon')
  const send = (company: string, payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${company}/send`, payload })
  t.equal((await send(companyId, { phone: PHONE, message: '1', sendAt: later(3_600_000) })).statusCode, 202)
  t.equal((await send(companyId, { phone: PHONE, message: '2', sendAt: later(3_600_000), scheduleKey: 'k' })).statusCode, 202)
  const third = await send(companyId, { phone: PHONE, message: '3', sendAt: later(3_600_000) })
  t.equal(third.statusCode, 409)
  t.equal(third.json().error.code, 'LIMIT_REACHED')
  t.equal((await send(companyId, { phone: PHONE, message: '2b', sendAt: later(3_600_000), scheduleKey: 'k' })).statusCode, 202,
    'replacing by key keeps the count, so it is taken')
  t.equal((await send(other, { phone: PHONE, message: '1', sendAt: later(3_600_000) })).statusCode, 202, 'another company has its own')
  t.equal((await app.inject({ method: 'DELETE', url: `/api/whatsapp/sessions/${companyId}/scheduled/k` })).statusCode, 200)
  t.equal((await send(companyId, { phone: PHONE, message: '3', sendAt: later(3_600_000) })).statusCode, 202, 'room again after a cancel')

  const campaign = (company: string) => app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${company}/campaigns`,
    payload: { name: 'Акция', template: { text: 'Привет' }, recipients: [{ phone: PHONE }], startAt: later(3_600_000) }
  })
  const first = await campaign(companyId)
  t.equal(first.statusCode, 201)
  const second = await campaign(companyId)
  t.equal(second.statusCode, 409)
  t.equal(second.json().error.code, 'LIMIT_REACHED')
  t.equal((await campaign(other)).statusCode, 201, 'another company has its own')
  const cancelUrl = `/api/whatsapp/sessions/${companyId}/campaigns/${first.json().campaign.id}/cancel`
  const cancel = await app.inject({ method: 'POST', url: cancelUrl })
  t.equal(cancel.json().campaign.status, 'cancelled')
  t.equal((await campaign(companyId)).statusCode, 201, 'a cancelled campaign leaves room')
})

t.test('a campaign of 100,000 recipients, the most it takes, is created and reported in full; one more is refused', async (t) => {
  const app = await build(t, {})
  const companyId = uniqueName('salon')
  const url = `/api/whatsapp/sessions/${companyId}/campaigns`
  const recipients = Array.from({ length: 100_000 }, (_, index) =>
    ({ phone: `+7 916 ${1_000_000 + index}`, variables: { name: `Клиент ${index}` } }))
  const body = { name: 'Вся база', template: { text: 'Привет, {{name}}' }, startAt: later(3_600_000) }
  const created = await app.inject({ method: 'POST', url, payload: { ...body, recipients } })
  t.equal(created.statusCode, 201, created.body.slice(0, 300))
  t.match(created.json().campaign, { total: 100_000, counts: { queued: 100_000, skipped: 0 } })
  const report = await app.inject({ method: 'GET', url: `${url}/${created.json().campaign.id}/report` })
  const lines = report.body.trim().split('\n')
  t.equal(lines.length, 100_001, 'a header and a line per recipient')
  t.equal(lines.at(-1), '99999,79161099999,queued,,,,,', 'the last recipient, normalized')
  const tooMany = await app.inject({ method: 'POST', url, payload: { ...body, recipients: [...recipients, { phone: '79160000000' }] } })
  t.equal(tooMany.statusCode, 400)
})
