import t from 'tap'
import pino from 'pino'
import { connect } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import { StreamPublisher } from '../core/nats/stream-publisher.ts'
import { IdempotencyStore } from '../plugins/session-pool/idempotency.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropBucketsAfter } from './helpers/build.ts'

const log = pino({ level: 'silent' })

/**
 * Stream writes, but every create (a write expecting no value) is stored and then answered with a
 * timeout, as when its answer is lost in a JetStream election.
 */
function losingCreateAnswers (publisher: StreamPublisher): Pick<StreamPublisher, 'publish'> {
  return {
    publish: async (subject, data, headers) => {
      const ack = await publisher.publish(subject, data, headers)
      if (headers?.get('Nats-Expected-Last-Subject-Sequence') === '0') throw new Error('TIMEOUT')
      return ack
    }
  }
}

t.test('idempotency records: new once, then pending or done for every repeat; a lost answer to its own create is still new', async (t) => {
  const nc = await connect({ servers: TEST_NATS_URL })
  const bucket = uniqueName('idempotency')
  const kv = await new Kvm(nc).create(bucket, { history: 1 })
  t.teardown(() => nc.close())
  dropBucketsAfter(t, TEST_NATS_URL, [bucket])
  const key = IdempotencyStore.keyOf('acme', 'text', 'booking-7')
  const publisher = new StreamPublisher(nc, 5_000)
  t.teardown(() => publisher.close())
  const first = new IdempotencyStore(kv, losingCreateAnswers(publisher), 'replica-a', log)
  const second = new IdempotencyStore(kv, publisher, 'replica-b', log)

  t.same(await first.begin(key), { kind: 'new' }, 'its own create, whose answer was lost, is this attempt')
  t.match(await second.begin(key), { kind: 'pending', replica: 'replica-a' }, 'a repeat elsewhere finds it in flight')
  t.match(await first.begin(key), { kind: 'pending', replica: 'replica-a' }, 'and so does a repeat on the same replica')
  await first.complete(key, { messageId: 'M1' })
  t.same(await second.begin(key), { kind: 'done', reply: { messageId: 'M1' } }, 'a repeat after it learns the reply')

  const abandoned = IdempotencyStore.keyOf('acme', 'text', 'booking-8')
  t.same(await second.begin(abandoned), { kind: 'new' })
  await second.abandon(abandoned)
  t.same(await second.begin(abandoned), { kind: 'new' }, 'a key whose send certainly did not happen may be used again')
})
