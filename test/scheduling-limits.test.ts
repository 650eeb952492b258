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
