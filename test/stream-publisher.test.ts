import t from 'tap'
import { connect, headers as natsHeaders } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { StreamPublisher } from '../core/nats/stream-publisher.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'

const TIMEOUT_MS = 400

t.test('the stream publisher resolves with the stream\'s ack, dedups by Nats-Msg-Id, ' +
  'and fails clearly without a stream or an ack', async (t) => {
  const nc = await connect({ servers: TEST_NATS_URL })
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  const stream = uniqueName('PUBLISHER')
  const prefix = uniqueName('pub')
  await jsm.streams.add({ name: stream, subjects: [`${prefix}.stored.>`], duplicate_window: 60_000_000_000 })
  t.teardown(() => jsm.streams.delete(stream).then(() => {}, () => {}))
  const publisher = new StreamPublisher(nc, TIMEOUT_MS)
  t.teardown(() => publisher.close())
  const withId = (id: string) => {
    const headers = natsHeaders()
    headers.set('Nats-Msg-Id', id)
    return headers
  }

  const [first, second] = await Promise.all([
    publisher.publish(`${prefix}.stored.a`, '{"n":1}', withId('one')),
    publisher.publish(`${prefix}.stored.b`, '{"n":2}', withId('two'))
  ])
  t.match(first, { seq: 1, duplicate: false })
  t.match(second, { seq: 2, duplicate: false }, 'publishes of one turn, acknowledged each')
  t.match(await publisher.publish(`${prefix}.stored.a`, '{"n":1}', withId('one')), { seq: 1, duplicate: true },
    'a repeated id is a duplicate, not stored twice')
  t.equal((await jsm.streams.info(stream)).state.messages, 2)

  await t.rejects(publisher.publish(`${prefix}.nowhere`, '{}', withId('x')), /no stream stored .* no responders/,
    'no stream takes the subject')

  const silent = nc.subscribe(`${prefix}.silent`, { callback: () => {} })
  t.teardown(() => silent.unsubscribe())
  await nc.flush()
  const started = Date.now()
  await t.rejects(publisher.publish(`${prefix}.silent`, '{}', withId('y')), /no acknowledgement from the stream within 400 ms/,
    'a subscriber that never acknowledges')
  t.ok(Date.now() - started < TIMEOUT_MS + 1_000, `given up after ${Date.now() - started} ms`)

  const pending = publisher.publish(`${prefix}.silent`, '{}', withId('z'))
  publisher.close()
  await t.rejects(pending, /publisher closed/, 'closing fails what still waits')
})
