import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { SOCKET_PLUGINS, build } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'
import { messageData } from './helpers/event-data.ts'
import type { StoredEvent } from '../core/events.ts'

/** The core alone: events need no plugin. */
const CORE_ONLY = {
  config: {
    disabledPlugins: ['metrics', 'reactions', 'rate-limit', 'session-pool', ...SOCKET_PLUGINS, 'conversations', 'ownership', 'phone']
  }
}

async function received (app: FastifyInstance, companyId: string) {
  const events: StoredEvent[] = []
  const follower = await app.events.follow(app.subjects.event(companyId, '>'), 0, (event) => events.push(event))
  return { events, stop: follower.stop }
}

t.test('every event has one envelope, is stored once per id and reaches this replica\'s listeners first', async (t) => {
  const app = await build(t, CORE_ONLY)
  const heard: string[] = []
  app.events.onPublished((event) => heard.push(`${event.type}:${event.companyId}`))
  const companyId = uniqueName('acme')
  const first = app.events.publish(companyId, 'owner_changed', { holder: 'r1', epoch: 7, reason: 'acquired' }, { epoch: 7 })
  const hi = messageData({ text: 'hi' })
  app.events.publish(companyId, 'message', hi, { id: 'message:acme:1' })
  app.events.publish(companyId, 'message', hi, { id: 'message:acme:1' })
  t.same(heard, [`owner_changed:${companyId}`, `message:${companyId}`, `message:${companyId}`])
  t.match(first, { type: 'owner_changed', companyId, epoch: 7, replica: app.config.replicaId, data: { holder: 'r1' } })
  t.match(first.id, /^owner_changed:/)
  t.ok(!Number.isNaN(Date.parse(first.timestamp)))

  const reader = await received(app, companyId)
  t.teardown(reader.stop)
  t.ok(await waitFor(() => reader.events.length === 2, 5_000), 'the repeat of an id is stored once')
  t.same(reader.events.map((event) => event.type), ['owner_changed', 'message'])
  t.same(reader.events[1].id, 'message:acme:1')
  t.ok(reader.events[1].seq > reader.events[0].seq)
})

t.test('a durable consumer acknowledges what its handler finished, redelivers what failed, and resumes after a restart', async (t) => {
  const app = await build(t, CORE_ONLY)
  const companyId = uniqueName('acme')
  const name = uniqueName('consumer')
  const filter = app.subjects.event(companyId, '>')
  const seen: { id: string, deliveryCount: number }[] = []
  let failOnce = true
  const consumer = await app.events.consume({ name, filter, retryDelayMs: 50 }, async (event, delivery) => {
    seen.push({ id: event.id, deliveryCount: delivery.deliveryCount })
    if (event.data.messageId === 'm2' && failOnce) {
      failOnce = false
      throw new Error('the receiver is down')
    }
  })
  for (const n of [1, 2, 3]) app.events.publish(companyId, 'message', messageData({ messageId: `m${n}` }), { id: `m${n}` })
  t.ok(await waitFor(() => seen.length === 4, 5_000), `four deliveries (${JSON.stringify(seen)})`)
  t.same(seen, [
    { id: 'm1', deliveryCount: 1 },
    { id: 'm2', deliveryCount: 1 },
    { id: 'm2', deliveryCount: 2 },
    { id: 'm3', deliveryCount: 1 }
  ], 'in stream order; the failed one again before the next')
  await consumer.stop()

  // Published while nobody consumes: the same durable name picks them up, and nothing acknowledged comes again.
  app.events.publish(companyId, 'message', messageData({ messageId: 'm4' }), { id: 'm4' })
  const again: string[] = []
  const resumed = await app.events.consume({ name, filter }, async (event) => { again.push(event.id) })
  t.teardown(resumed.stop)
  t.ok(await waitFor(() => again.length >= 1, 5_000))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(again, ['m4'])
})

t.test('a wait for the first of several events can be cancelled: it resolves empty and stops listening at once', async (t) => {
  const app = await build(t)
  const subject = app.subjects.event(uniqueName('co'), 'qr')
  const waiting = app.bus.firstOf([subject], 60_000)
  await waiting.ready
  const startedAt = Date.now()
  waiting.cancel()
  t.equal(await waiting.next, undefined, 'nothing came')
  t.ok(Date.now() - startedAt < 1_000, 'at once, not at its 60 s timeout')
  // A message published after the cancel reaches no one through it.
  app.nats.publish(subject, JSON.stringify({ type: 'qr' }))
  await app.nats.flush()
  t.equal(await waiting.next, undefined, 'still nothing: it no longer listens')
})
