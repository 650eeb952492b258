import t from 'tap'
import pino from 'pino'
import { connect } from '@nats-io/transport-node'
import { Kvm, type KV } from '@nats-io/kv'
import { IdempotencyStore } from '../plugins/session-pool/idempotency.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropBucketsAfter } from './helpers/build.ts'

const log = pino({ level: 'silent' })

/** The bucket, but every create is stored and then answered with a timeout, as when its answer is lost in a JetStream election. */
function losingCreateAnswers (kv: KV): KV {
  return new Proxy(kv, {
    get: (target, property) => {
      if (property === 'create') {
        return async (key: string, value: string) => {
          await target.create(key, value)
          throw new Error('TIMEOUT')
        }
      }
      const found = Reflect.get(target, property)
      return typeof found === 'function' ? found.bind(target) : found
    }
  })
}

t.test('idempotency records: new once, then pending or done for every repeat; a lost answer to its own create is still new', async (t) => {
  const nc = await connect({ servers: TEST_NATS_URL })
  const bucket = uniqueName('idempotency')
  const kv = await new Kvm(nc).create(bucket, { history: 1 })
  t.teardown(() => nc.close())
  dropBucketsAfter(t, TEST_NATS_URL, [bucket])
  const key = IdempotencyStore.keyOf('acme', 'text', 'booking-7')
  const first = new IdempotencyStore(losingCreateAnswers(kv), 'replica-a', log)
  const second = new IdempotencyStore(kv, 'replica-b', log)

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
