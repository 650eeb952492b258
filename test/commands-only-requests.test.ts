import t, { type Test } from 'tap'
import { connect } from '@nats-io/transport-node'
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'
import { dropStreamsAfter } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'

/** A replica holding a linked company, and a NATS connection of the test's own to reach it. */
async function linkedCompany (t: Test) {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = uniqueName('beta')
  await linkCompany(replica, companyId, settings, t)
  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  return { settings, replica, companyId, nc }
}

t.test('the holder runs commands only as requests: no reply subject or a JetStream ack as reply is ignored and counted', async (t) => {
  const { settings, replica, companyId, nc } = await linkedCompany(t)
  const logout = replica.app.subjects.command(companyId, 'logout')
  const status = async () => (await nc.request(replica.app.subjects.command(companyId, 'status'), '{}', { timeout: 5_000 })).json<{
    connected: boolean
  }>()
  t.equal((await status()).connected, true, 'connected to begin with')

  // A plain publish: no reply subject.
  nc.publish(logout, '{}')
  await nc.flush()
  // A push consumer whose deliver_subject is the command: JetStream delivers with `$JS.ACK.…` as reply
  // (nats-server drops a client's own publish with such a reply, so a real consumer delivers it here).
  const stream = uniqueName('ATTACK')
  // Stored under a subject whose tail names the command, as a tenant's events do (`wa.evt.acme.logout`).
  const storedSubject = `${uniqueName('wa')}.evt.acme.logout`
  // nats-server 2.9 sees no interest for the delivery in the holder's wildcard subscription alone (2.10
  // does): an exact one elsewhere binds the consumer, and its deliveries then reach every match, the holder's too.
  const bystander = await connect({ servers: settings.natsUrl })
  t.teardown(() => bystander.close())
  bystander.subscribe(logout)
  await bystander.flush()
  const jsm = await jetstreamManager(nc)
  dropStreamsAfter(t, settings.natsUrl, [stream])
  await jsm.streams.add({ name: stream, subjects: [storedSubject] })
  await jetstream(nc).publish(storedSubject, '{}')
  await jsm.consumers.add(stream, { deliver_subject: logout, ack_policy: AckPolicy.Explicit })
  const consumers = await jsm.consumers.list(stream).next()
  t.ok(await waitFor(async () => (await jsm.consumers.info(stream, consumers[0].name)).delivered.stream_seq >= 1, 5_000),
    'JetStream delivered the stored message to the command subject')
  // The holder counts a message when it drops it unread: once both are counted, neither can log the company out any more.
  const ignored = () => replica.app.bus.ignored
  t.ok(await waitFor(() => ignored()?.no_reply === 1 && ignored()?.jetstream_ack >= 1, 5_000), 'the holder dropped both')
  t.equal((await status()).connected, true, 'neither message logged the company out')
  t.equal(replica.app.bus.ignored?.no_reply, 1, 'the message without a reply is counted')
  t.ok(replica.app.bus.ignored?.jetstream_ack >= 1, 'the JetStream delivery (a JetStream ack as reply) is counted')
  const metrics = (await replica.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /^whatsapp_commands_ignored_total\{reason="no_reply"\} 1$/m, '/metrics shows the ignored message without a reply')
  t.match(metrics, /^whatsapp_commands_ignored_total\{reason="jetstream_ack"\} [1-9]\d*$/m, '/metrics shows the ignored JetStream delivery')
})

t.test('logout and status refuse fields they do not take (VALIDATION_ERROR), and logout then does nothing', async (t) => {
  const { replica, companyId, nc } = await linkedCompany(t)
  const ask = async (name: string, body: unknown) => {
    const reply = await nc.request(replica.app.subjects.command(companyId, name), JSON.stringify(body), { timeout: 5_000 })
    return reply.json<Record<string, unknown>>()
  }

  for (const name of ['status', 'logout']) {
    const refused = await ask(name, { id: 7, type: 'message', data: { text: 'an event redelivered here' } })
    t.match(refused, { success: false, error: { code: 'VALIDATION_ERROR' } }, `${name} with extra fields → VALIDATION_ERROR`)
  }
  t.match(await ask('status', {}), { success: true, connected: true }, 'the company is still connected')
})
