import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import { uniqueName } from './helpers/services.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'

t.test('a line break in an input that an error message quotes is a 400, and the replica stays up', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('acme')
  await linkCompany(replica, companyId, settings, t)
  const send = (phone: string) => replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone, message: 'hi' }
  })
  for (const phone of ['1\n@x', '1\r\n@x', `1${'\n'.repeat(5_000)}`, '\u0000']) {
    const response = await send(phone)
    t.equal(response.statusCode, 400, `phone ${JSON.stringify(phone.slice(0, 8))} → 400`)
  }
  t.equal((await send('79001234567')).statusCode, 200, 'and a good send still goes')
})

t.test('text PostgreSQL cannot store (NUL) is refused as 400 over HTTP and NATS', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('acme')
  const response = await replica.app.inject({
    method: 'PUT', url: `/api/whatsapp/sessions/${companyId}/auto-reactions`, payload: { enabled: true, patterns: ['спасибо\u0000'] }
  })
  t.equal(response.statusCode, 400)
  t.match(response.json(), { error: { code: 'VALIDATION_ERROR', details: [{ field: 'body/patterns/0' }] } })
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const reply = await nc.request(
    replica.app.subjects.autoReactionRules(companyId, 'set'), JSON.stringify({ enabled: true, emoji: '\u0000' })
  )
  t.match(reply.json(), { success: false, error: { code: 'VALIDATION_ERROR' } })
  t.ok(reply.headers?.get('Nats-Service-Error'), 'the error header is there, made safe')
})

t.test('garbage on the gateway\'s subjects and in its buckets is answered or skipped, never fatal', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('acme')
  await linkCompany(replica, companyId, settings, t)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const { subjects } = replica.app
  const targets = [subjects.command(companyId, 'send'), subjects.initialize(companyId), subjects.sessionsList, subjects.phoneNormalize]
  for (const subject of targets) {
    const reply = await nc.request(subject, new Uint8Array([0xff, 0xfe, 0x00, 0x0a]), { timeout: 5_000 })
    t.match(reply.json(), { success: false, error: { code: 'BAD_REQUEST' } }, `${subject}: not JSON → BAD_REQUEST`)
  }
  // Events nobody asked for, and values that are not leases or members, in the replica's own buckets.
  nc.publish(subjects.event(companyId, 'connected'), 'not json')
  const kvm = new Kvm(nc)
  const leases = await kvm.open(settings.leaseBucket)
  const members = await kvm.open(settings.membersBucket)
  await leases.put(`company.${uniqueName('garbage')}`, 'not json')
  await members.put(`member.${uniqueName('garbage')}`, '{"broken"')
  await new Promise((resolve) => setTimeout(resolve, 500))
  const ready = await replica.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, 'still ready')
  const sent = await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/send`, payload: { phone: '79001234567', message: 'still here' }
  })
  t.equal(sent.statusCode, 200, 'and still sends')
})
