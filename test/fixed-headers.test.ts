import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { headers } from '@nats-io/nats-core'
import { FixedHeaders } from '../core/nats/fixed-headers.ts'
import { publishHeaders } from '../core/nats/trace-context.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'

const VALUES = { 'Nats-Msg-Id': 'message_sent:acme:3EB0B952D6', 'Wa-Epoch': '7', 'Wa-Replica': 'replica-a' }

t.test('fixed headers go on the wire byte for byte as nats.js encodes the same set', async (t) => {
  const theirs = headers()
  for (const [key, value] of Object.entries(VALUES)) theirs.set(key, value)
  const encoded = (set: unknown) => Buffer.from((set as { encode: () => Uint8Array }).encode()).toString()
  t.equal(encoded(new FixedHeaders(VALUES)), encoded(theirs))
  t.equal(encoded(new FixedHeaders({})), encoded(headers()), 'an empty set too')
})

t.test('a subscriber reads fixed headers as any others; values are made header-safe', async (t) => {
  const nc = await connect({ servers: TEST_NATS_URL })
  t.teardown(() => nc.close())
  const subject = uniqueName('fixed.headers')
  const received = new Promise<Record<string, string>>((resolve) => {
    nc.subscribe(subject, {
      max: 1,
      callback: (_err, msg) => resolve(Object.fromEntries([...msg.headers!].map(([key, [value]]) => [key, value!])))
    })
  })
  await nc.flush()
  nc.publish(subject, 'event', { headers: publishHeaders({ ...VALUES, 'Wa-Note': 'two\r\nlines' }) })
  t.same(await received, { ...VALUES, 'Wa-Note': 'two  lines' })
})

t.test('a fixed set answers as a header set', async (t) => {
  const set = new FixedHeaders(VALUES)
  t.equal(set.get('Wa-Epoch'), '7')
  t.ok(set.has('Wa-Replica'))
  t.notOk(set.has('wa-replica'), 'keys are compared exactly')
  set.set('Wa-Epoch', '8')
  set.append('Wa-Epoch', '9')
  t.same(set.values('Wa-Epoch'), ['8', '9'])
  t.equal(set.last('Wa-Epoch'), '9')
  set.delete('Wa-Epoch')
  t.same(set.keys(), ['Nats-Msg-Id', 'Wa-Replica'])
  t.same([...set], [['Nats-Msg-Id', [VALUES['Nats-Msg-Id']]], ['Wa-Replica', ['replica-a']]])
})
