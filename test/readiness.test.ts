import t from 'tap'
import { behindProxy } from './helpers/tcp-proxy.ts'
import { ownNatsServer } from './helpers/nats-server.ts'
import { build } from './helpers/build.ts'
import { createTestDatabase } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const RECOVERY_TIMEOUT_MS = 15_000

t.test('/healthz answers while the process lives', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { success: true, status: 'alive' })
})

t.test('/readyz follows NATS going down and coming back', async (t) => {
  const nats = await ownNatsServer(t)
  const app = await build(t, { config: { natsUrl: nats.url } })
  const ready = async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200

  const before = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(before.statusCode, 200)
  t.match(before.json(), { success: true, ready: true, checks: { nats: { ok: true }, postgres: { ok: true } } })

  await nats.stop()
  t.ok(await waitFor(async () => !(await ready()), RECOVERY_TIMEOUT_MS), 'goes 503 while NATS is down')
  const down = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(down.statusCode, 503)
  t.match(down.json(), {
    success: false,
    ready: false,
    checks: { nats: { ok: false, reason: /disconnected|did not answer/ }, postgres: { ok: true } }
  })

  await nats.start()
  t.ok(await waitFor(ready, RECOVERY_TIMEOUT_MS), 'back to 200 once NATS returns')
})

t.test('/readyz follows PostgreSQL going down and coming back', async (t) => {
  const { proxy, url: databaseUrl } = await behindProxy(t, await createTestDatabase(t))
  const app = await build(t, { config: { databaseUrl } })
  const ready = async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200

  t.ok(await ready(), '200 with the database reachable')
  await proxy.cut()
  // /readyz answers from checks at most a second old.
  let down = await app.inject({ method: 'GET', url: '/readyz' })
  t.ok(await waitFor(async () => {
    down = await app.inject({ method: 'GET', url: '/readyz' })
    return down.statusCode === 503
  }, 3_000), '503 within a second or so')
  t.match(down.json(), { ready: false, checks: { postgres: { ok: false, reason: String }, nats: { ok: true } } })

  // A transaction during the outage fails cleanly; afterwards transactions work and the app closes.
  // (The leaked-client regression itself is guarded by test/auth-store.test.ts.)
  await t.rejects(app.orm.em.fork().transactional(async (tx) => { await tx.execute('select 1', [], 'get') }))

  await proxy.restore()
  t.ok(await waitFor(ready, RECOVERY_TIMEOUT_MS), 'back to 200 once PostgreSQL returns')
  const one = await app.orm.em.fork().transactional(async (tx) => (await tx.execute<{ one: number }>('select 1 as one', [], 'get')).one)
  t.equal(one, 1, 'transactions work again')
  const closed = await Promise.race([app.close().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 5_000))])
  t.ok(closed, 'the app still closes after the outage')
})
