import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { ErrorCode } from '../contracts/index.ts'
import { asGatewayError, DATABASE_RETRY_AFTER_S } from '../core/errors.ts'
import { behindProxy } from './helpers/tcp-proxy.ts'
import { build } from './helpers/build.ts'
import { createTestDatabase, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const RECOVERY_TIMEOUT_MS = 20_000

/** The one error shape, for a database that did not answer. */
const UNAVAILABLE_REPLY = {
  success: false,
  error: { code: ErrorCode.UNAVAILABLE, message: /did not answer/, retryAfter: DATABASE_RETRY_AFTER_S }
}

t.test('while PostgreSQL does not answer, routes and NATS requests that need it are 503 UNAVAILABLE; then work again', async (t) => {
  const { proxy, url: databaseUrl } = await behindProxy(t, await createTestDatabase(t))
  // Short waits for a connection, so each request during the cut fails within a second.
  const app = await build(t, { config: { databaseUrl, dbAcquireTimeoutMs: 1_000, dbQueryTimeoutMs: 2_000 } })
  const nc = await connect({ servers: TEST_NATS_URL })
  t.teardown(() => nc.close())

  const companyId = uniqueName('salon')
  const rulesUrl = `/api/whatsapp/sessions/${companyId}/auto-reactions`
  const getRules = () => app.inject({ method: 'GET', url: rulesUrl })
  const setRules = (enabled: boolean) => app.inject({ method: 'PUT', url: rulesUrl, payload: { enabled } })
  const initialize = () => app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  const rulesOverNats = async () => {
    const reply = await nc.request(app.subjects.autoReactionRules(companyId, 'get'), '{}', { timeout: 10_000 })
    return { body: reply.json<Record<string, unknown>>(), status: reply.headers?.get('Nats-Service-Error-Code') ?? '' }
  }

  t.equal((await setRules(true)).statusCode, 200, 'with the database reachable, the rules are saved')

  await proxy.cut()
  // The pool's connections were reset with the cut, and new ones are refused: each way of failing is a 503.
  for (const [what, request] of [['GET rules', getRules], ['PUT rules', () => setRules(false)], ['initialize', initialize]] as const) {
    const response = await request()
    t.equal(response.statusCode, 503, `${what}: 503`)
    t.match(response.json(), UNAVAILABLE_REPLY, `${what}: UNAVAILABLE in the error shape, with retryAfter`)
    t.equal(response.headers['retry-after'], String(DATABASE_RETRY_AFTER_S), `${what}: Retry-After`)
  }
  const overNats = await rulesOverNats()
  t.match(overNats.body, UNAVAILABLE_REPLY, 'a NATS request answers UNAVAILABLE in the same shape')
  t.equal(overNats.status, '503', 'with the service error code 503')

  await proxy.restore()
  const answers = async () => (await getRules()).statusCode === 200
  t.ok(await waitFor(answers, RECOVERY_TIMEOUT_MS), 'the route works again once PostgreSQL answers')
  t.match((await getRules()).json(), { success: true, companyId, rules: { enabled: true } }, 'with what was saved before the cut')
  t.match((await rulesOverNats()).body, { success: true, companyId, rules: { enabled: true } }, 'and so does the NATS request')
  let initialized = await initialize()
  t.ok(await waitFor(async () => {
    initialized = await initialize()
    return initialized.statusCode === 200
  }, RECOVERY_TIMEOUT_MS), 'initialize works again')
  t.match(initialized.json(), { success: true, companyId, status: 'qr' })
})

t.test('which failures mean the database did not answer', async (t) => {
  const driver = (properties: Record<string, unknown>) => Object.assign(new Error(String(properties.message ?? 'failed')), {
    name: 'DriverException', ...properties
  })
  const unavailable = [
    ['a refused connection, through MikroORM', driver({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' })],
    ['a refused connection, from pg itself', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['a reset', driver({ code: 'ECONNRESET', message: 'read ECONNRESET' })],
    ['a connect timeout', driver({ code: 'ETIMEDOUT', message: 'connect ETIMEDOUT' })],
    ['an administrator shutdown', driver({ code: '57P01', message: 'terminating connection due to administrator command' })],
    ['a server starting up', driver({ code: '57P03', message: 'the database system is starting up' })],
    ['a connection exception', driver({ code: '08006', message: 'connection failure' })],
    ['too many connections', driver({ code: '53300', message: 'sorry, too many clients already' })],
    ['pg-pool\'s acquire timeout', new Error('timeout exceeded when trying to connect')],
    ['a connection ended mid-query', driver({ message: 'Connection terminated unexpectedly' })],
    ['pg\'s connect timeout', driver({ message: 'Connection terminated due to connection timeout' })],
    ['a ConnectionException', Object.assign(new Error('no connection'), { name: 'ConnectionException' })],
    ['a cause', new Error('query failed', { cause: Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' }) })],
    ['each address refused (AggregateError)', new AggregateError([Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })], '')]
  ] as const
  for (const [what, err] of unavailable) {
    t.match(asGatewayError(err), { code: ErrorCode.UNAVAILABLE, statusCode: 503, retryAfter: DATABASE_RETRY_AFTER_S }, what)
  }
  const unexpected = [
    ['a unique violation', driver({ code: '23505', message: 'duplicate key value violates unique constraint' })],
    ['a syntax error', driver({ code: '42601', message: 'syntax error at or near "selec"' })],
    ['a plain error', new Error('Connection terminated by the remote side, in some other library')],
    ['a string', 'ECONNREFUSED']
  ] as const
  for (const [what, err] of unexpected) t.equal(asGatewayError(err), undefined, `${what}: not UNAVAILABLE (500)`)
})
