import t from 'tap'
import pino from 'pino'
import { connect } from '@nats-io/transport-node'
import { NewestEpochs, subjectsFor, type SessionStatus } from '../contracts/index.ts'
import { PostgresAuthStore } from '../plugins/session-pool/auth-store.ts'
import { Session } from '../plugins/session-pool/session.ts'
import { build, configWith, testSealer } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

// Item 5 of issue 25: the newest lease epoch wins everywhere, and a stopped session emits nothing.

type Seen = { companyId: string, type: string, epoch?: number | null }
// The dashboard's copy of the rule is browser JavaScript without types.
const dashboardRule = '../plugins/dashboard/public/epochs.js'
const { NewestEpochs: DashboardEpochs } = await import(dashboardRule) as { NewestEpochs: new () => { admits: (event: Seen) => boolean } }
const replay = (rule: { admits: (event: Seen) => boolean }, events: Seen[]) => events.map((event) => rule.admits(event))

t.test('the rule: an older epoch\'s holder or state event is stale; facts and epoch 0 always pass', async (t) => {
  const takeover: Seen[] = [
    { companyId: 'acme', type: 'owner_changed', epoch: 6 },
    { companyId: 'acme', type: 'owner_changed', epoch: 7 },
    // The fenced holder's "held by nobody", retried through a NATS cut, lands after the new holder's "acquired".
    { companyId: 'acme', type: 'owner_changed', epoch: 6 },
    { companyId: 'acme', type: 'disconnected', epoch: 6 },
    // A message the old holder published is still a message: delivered, only not a state.
    { companyId: 'acme', type: 'message', epoch: 6 },
    // No lease applies (a webhook paused, an event no holder produced): never stale, moves nothing.
    { companyId: 'acme', type: 'webhook_paused', epoch: 0 },
    { companyId: 'acme', type: 'error', epoch: 0 },
    { companyId: 'acme', type: 'connected', epoch: 7 },
    // Another company has its own mark.
    { companyId: 'other', type: 'owner_changed', epoch: 1 },
    // A message of a newer lease proves that lease exists: the next holder's first word may be a message.
    { companyId: 'acme', type: 'message', epoch: 8 },
    { companyId: 'acme', type: 'owner_changed', epoch: 7 }
  ]
  const expected = [true, true, false, false, true, true, true, true, true, true, false]
  t.same(replay(new NewestEpochs(), takeover), expected, 'contracts\' NewestEpochs')
  t.same(replay(new DashboardEpochs(), takeover), expected, 'the dashboard\'s copy answers the same')

  const status = new NewestEpochs()
  t.ok(status.observe('acme', 7))
  t.notOk(status.observe('acme', 6), 'a status answer of an older lease is stale')
  t.ok(status.observe('acme', null), '"nobody holds it" (no epoch) is not judged')
  t.equal(status.newest('acme'), 7)

  const bounded = new NewestEpochs(2)
  bounded.observe('a', 1)
  bounded.observe('b', 1)
  bounded.observe('c', 1)
  t.equal(bounded.newest('a'), 0, 'the least recently seen company is forgotten past the capacity')
})

t.test('a stopped session emits nothing but the inbound messages its connection already took (no other holder will get them)',
  async (t) => {
    const app = await build(t)
    const log = pino({ level: 'silent' })
    const companyId = uniqueName('stopped')
    const auth = await PostgresAuthStore.open({
      companyId, epoch: 1, em: () => app.orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer: testSealer()
    })
    // The phone of a contact known by LID is looked up first: the test decides when that answer comes.
    let answerLookup: (phone: string) => void = () => {}
    let lookups = 0
    const emitted: { type: string, data: Record<string, unknown> }[] = []
    const session = new Session({
      companyId,
      epoch: 1,
      auth,
      factory: app.testWhatsApp!.factory('epoch-replica'),
      settings: configWith({}),
      log,
      emit: (type, data) => { emitted.push({ type, data }) },
      onOutcome: () => {},
      saveMedia: async () => { throw new Error('no media here') },
      contacts: {
        phoneOfLid: () => new Promise<string | undefined>((resolve) => {
          lookups++
          answerLookup = resolve
        }),
        learnLid: async () => {}
      }
    })
    t.teardown(() => session.stop())
    const reaches = async (state: string) => {
      while (session.state !== state) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    session.start()
    await reaches('qr')
    app.testWhatsApp!.scan(companyId)
    await reaches('open')
    const messages = () => emitted.filter((event) => event.type === 'message')
    const asked = (count: number) => waitFor(() => lookups >= count, 5_000, 10)

    // Published while the session runs: the setup does what it should.
    app.testWhatsApp!.deliver(companyId, { from: '201111111111111@lid', text: 'до остановки', id: 'IN-BEFORE' })
    t.ok(await asked(1))
    answerLookup('79111111111')
    while (messages().length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    t.match(messages(), [{ data: { messageId: 'IN-BEFORE', phone: '79111111111' } }])

    // Two more arrive; the first waits for its lookup, the second behind it. Then the lease ends.
    app.testWhatsApp!.deliver(companyId, { from: '202222222222222@lid', text: 'в очереди 1', id: 'IN-QUEUED-1' })
    app.testWhatsApp!.deliver(companyId, { from: '79113333333@s.whatsapp.net', text: 'в очереди 2', id: 'IN-QUEUED-2' })
    t.ok(await asked(2), 'the next message waits for its lookup')
    const before = emitted.length
    await session.stop()
    answerLookup('79112222222')
    // WhatsApp took them as delivered once the connection decrypted them (bench:chaos once lost one that was dropped here).
    t.ok(await waitFor(() => messages().length === 3, 5_000, 10), 'the queued messages are published, under the old epoch')
    session.checkHealth(0)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(emitted.slice(before).map((event) => event.type), ['message', 'message'], 'and nothing else: no health report')
    t.same(messages().map((event) => event.data.messageId), ['IN-BEFORE', 'IN-QUEUED-1', 'IN-QUEUED-2'])
    t.match(messages()[1].data, { phone: '79112222222' })
  })

t.test('the session list shows the newest lease\'s holder, not whichever holder answers first', async (t) => {
  const app = await build(t, { config: { disabledPlugins: ['rate-limit', 'campaigns', 'reactions', 'metrics'] } })
  const subjects = subjectsFor(app.config.natsNamespace)
  const nc = await connect({ servers: app.config.natsUrl })
  t.teardown(() => nc.close())
  const statusOf = (companyId: string, holder: string, epoch: number): SessionStatus => ({
    success: true,
    companyId,
    connected: true,
    status: 'open',
    reconnectAttempts: 0,
    holder,
    epoch,
    health: { healthy: true, phoneNumber: null, lastActivity: null }
  })
  /** A replica answering the company's status command (no queue group, like a holder), after `delayMs`. */
  const answer = (companyId: string, holder: string, epoch: number, delayMs: number) => {
    nc.subscribe(subjects.command(companyId, 'status'), {
      callback: (_err, msg) => { setTimeout(() => msg.respond(JSON.stringify(statusOf(companyId, holder, epoch))), delayMs) }
    })
  }
  const taken = uniqueName('taken')
  const orphaned = uniqueName('orphaned')
  // The new holder claimed epoch 7 in PostgreSQL; the fenced one (6) still answers, and first.
  // Desired offline, so that this replica itself takes neither.
  for (const companyId of [taken, orphaned]) {
    await app.orm.em.fork().getConnection().execute(
      'insert into sessions (company_id, desired_state, epoch, holder) values (?, \'offline\', 7, \'replica-new\')', [companyId])
  }
  answer(taken, 'replica-old', 6, 0)
  answer(taken, 'replica-new', 7, 150)
  answer(orphaned, 'replica-old', 6, 0)
  await nc.flush()

  const list = await app.inject({ method: 'GET', url: '/api/whatsapp/sessions' })
  t.equal(list.statusCode, 200, list.body)
  type Listed = { companyId: string, holder: string | null, epoch: number | null, status: string }
  const sessions = (list.json() as { sessions: Listed[] }).sessions
  t.match(sessions.find((session) => session.companyId === taken), { holder: 'replica-new', epoch: 7, status: 'open' },
    'the newest lease\'s answer, though it came second')
  t.match(sessions.find((session) => session.companyId === orphaned), { holder: null, status: 'unknown' },
    'only a superseded holder answered: nobody is shown as holding it under an old lease')
})
