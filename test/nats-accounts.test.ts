import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, nkeyAuthenticator } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream'
import { createGatewayClient, type EventEnvelope } from '../contracts/index.ts'
import { findNatsServer, startNatsServer } from '../core/embedded/nats.ts'
import { readTenants, renderAccounts } from '../deploy/nats/tenants.ts'
import type { ServiceInfo } from '../core/nats/service-discovery.ts'
import { build } from './helpers/build.ts'
import { serviceEnv, uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const PASSWORDS = { gateway: 'gw-secret', backend: 'backend-secret' }
const PHONE = '79001234567'
/** How long a refusal the server reports on the connection may take to arrive (it is usually there at once). */
const PERMISSION_ERROR_MS = 5_000

/** deploy/nats/tenants.ts, as README tells an operator to run it. */
function tenantsCommand (...args: string[]): string {
  const run = spawnSync(process.execPath, ['deploy/nats/tenants.ts', ...args], { encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`tenants.ts ${args.join(' ')}: ${run.stderr}${run.stdout}`)
  return run.stdout
}

/**
 * A nats-server of this test's own, with accounts made by deploy/nats/tenants.ts: `acme` and `beta`
 * with every company scope, `viewer` without `link`, each with its events stream provisioned.
 */
async function accountsNats (t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'wa-nats-accounts-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  tenantsCommand('add', 'acme', '--dir', dir, '--out', dir)
  tenantsCommand('add', 'beta', '--dir', dir, '--out', dir)
  tenantsCommand('add', 'viewer', '--scopes', 'send,read,events', '--dir', dir, '--out', dir)
  const configFile = join(dir, 'nats-server.conf')
  // deploy/nats/nats-server.conf's shape (an include resolves beside its file); the port and store,
  // given on the command line, are this test's own.
  await writeFile(configFile, 'jetstream {}\ninclude ./accounts.conf\n')
  const server = await startNatsServer({
    storeDir: join(dir, 'js'),
    startTimeoutMs: 15_000,
    extraArgs: ['-c', configFile],
    env: serviceEnv({ NATS_GATEWAY_PASSWORD: PASSWORDS.gateway, NATS_BACKEND_PASSWORD: PASSWORDS.backend })
  })
  t.teardown(() => server.stop())
  const url = server.url
  const user = async (name: keyof typeof PASSWORDS): Promise<NatsConnection> => {
    const nc = await connect({ servers: url, user: name, pass: PASSWORDS[name], inboxPrefix: `_INBOX_${name}` })
    t.teardown(() => nc.close())
    return nc
  }
  const seedOf = (tenant: string) => join(dir, `${tenant}.nk`)
  /** A tenant connects with its seed, and needs no inbox prefix: its account is its own. */
  const tenant = async (name: string): Promise<NatsConnection> => {
    const seed = (await readFile(seedOf(name), 'utf8')).trim()
    const nc = await connect({ servers: url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) })
    t.teardown(() => nc.close())
    return nc
  }
  t.ok(await waitFor(async () => {
    try {
      await (await connect({ servers: url, user: 'backend', pass: PASSWORDS.backend, inboxPrefix: '_INBOX_backend' })).close()
      return true
    } catch {
      return false
    }
  }, 10_000), 'the server is up')
  for (const name of ['acme', 'beta', 'viewer']) tenantsCommand('provision', name, '--dir', dir, '--server', url, '--seed', seedOf(name))
  return { url, dir, user, tenant }
}

/** Whether the server refused what `attempt` did: a permission error thrown, or reported on the connection. */
async function refused (nc: NatsConnection, attempt: () => Promise<unknown>): Promise<boolean> {
  const errors: string[] = []
  void (async () => {
    for await (const status of nc.status()) if (status.type === 'error') errors.push(String((status as { error?: unknown }).error))
  })()
  try {
    await attempt()
  } catch (err) {
    if (/permission/i.test(String(err)) || /permission/i.test(String((err as Error).cause))) return true
  }
  // The server reports a refused publish or subscription on the connection, a moment later.
  return waitFor(() => errors.some((error) => /permission/i.test(error)), PERMISSION_ERROR_MS)
}

/** Every event a tenant's own stream holds, read through a consumer of its own. */
async function eventsInOwnStream (nc: NatsConnection): Promise<EventEnvelope[]> {
  const consumer = await jetstream(nc).consumers.get('WA_EVENTS')
  const info = await consumer.info()
  const seen: EventEnvelope[] = []
  if (info.num_pending === 0) return seen
  const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 2_000 })
  for await (const message of batch) {
    seen.push(message.json<EventEnvelope>())
    if (seen.length === info.num_pending) break
  }
  return seen
}

async function gatewayFor (t: Test, url: string, leaseBucket = uniqueName('leases')) {
  return build(t, {
    config: {
      natsUrl: url,
      natsUser: 'gateway',
      natsPassword: PASSWORDS.gateway,
      natsInboxPrefix: '_INBOX_gateway',
      natsNamespace: 'wa',
      eventsStream: 'WA_EVENTS',
      leaseBucket,
      membersBucket: uniqueName('members'),
      idempotencyBucket: uniqueName('idempotency'),
      rateBucket: uniqueName('rates'),
      // The bucket accounts.conf grants the backend.
      mediaBucket: 'wa_media'
    }
  })
}

t.test('deploy/nats/nats-server.conf is valid with the committed accounts.conf, which is what tenants.json renders', async (t) => {
  const binary = await findNatsServer()
  const check = spawnSync(binary!, ['-c', 'deploy/nats/nats-server.conf', '-t'], {
    env: serviceEnv({ NATS_GATEWAY_PASSWORD: 'a', NATS_BACKEND_PASSWORD: 'b' }),
    encoding: 'utf8'
  })
  t.equal(check.status, 0, check.stderr + check.stdout)
  t.equal(await readFile('deploy/nats/accounts.conf', 'utf8'), renderAccounts(await readTenants('deploy/nats')),
    'accounts.conf is up to date (node deploy/nats/tenants.ts render)')
})

t.test('tenants.ts refuses what is not a company id, an unknown scope and a key that is not a user\'s', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wa-tenants-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await copyFile('deploy/nats/tenants.json', join(dir, 'tenants.json'))
  t.throws(() => tenantsCommand('add', 'wa.cmd.>', '--dir', dir), /not a company id/)
  t.throws(() => tenantsCommand('add', 'acme', '--scopes', 'send,admin', '--dir', dir), /scopes are some of/)
  t.throws(() => tenantsCommand('add', 'acme', '--nkey', 'SUAAAA', '--dir', dir), /public nkey/)
  t.same((await readTenants(dir)).tenants, {}, 'and adds nothing')
  t.match(tenantsCommand('add', 'acme', '--scopes', 'send', '--dir', dir, '--out', dir), /account tenant-acme: send;/)
  t.same((await readTenants(dir)).tenants.acme.scopes, ['send'])
})

t.test('a tenant in its own account: the contract over NATS on its own company, through the typed client', async (t) => {
  const nats = await accountsNats(t)
  const gateway = await gatewayFor(t, nats.url)
  const acmeNc = await nats.tenant('acme')
  const acme = createGatewayClient(acmeNc, { holderWaitMs: 2_000 })

  const linking = await acme.initialize('acme')
  t.equal(linking.status, 'qr', 'initialize answers with a QR')
  gateway.testWhatsApp!.scan('acme')
  t.ok(await waitFor(async () => (await acme.status('acme').catch(() => undefined))?.connected === true, 10_000), 'connected')
  t.match(await acme.owner('acme'), { replica: gateway.config.replicaId })
  t.match(await acme.normalizePhone('8 900 123-45-67', 'RU'), { e164: PHONE })
  const sent = await acme.send('acme', { phone: PHONE, message: 'from the tenant' })
  t.equal(sent.accepted, true, 'sends')
  t.match(await acme.react('acme', { phone: PHONE, emoji: '❤️', messageId: sent.messageId, fromMe: true }), { success: true }, 'reacts')
  t.match(await acme.setAutoReactionRules('acme', { enabled: true }), { rules: { enabled: true } })
  t.match(await acme.autoReactionRules('acme'), { rules: { enabled: true } }, 'keeps its auto-reaction rules')
  t.ok(await waitFor(async () => (await acme.messages('acme')).messages.some((message) => message.messageId === sent.messageId), 5_000),
    'reads its message history')
  t.match(await acme.message('acme', sent.messageId), { message: { messageId: sent.messageId } })

  const events = await eventsInOwnStream(acmeNc)
  t.ok(events.every((event) => event.companyId === 'acme'), 'its stream holds its own events only')
  for (const type of ['qr', 'connected', 'message_sent']) t.ok(events.some((event) => event.type === type), `with ${type}`)

  t.match(await acme.logout('acme'), { success: true }, 'logs out')
  t.ok(await waitFor(async () => (await eventsInOwnStream(acmeNc)).some((event) => event.type === 'logout'), 5_000), 'and sees it')
})

t.test('deploy/nats: a hostile tenant reaches nothing of another company\'s, and linking events follow link', async (t) => {
  const nats = await accountsNats(t)
  const leaseBucket = uniqueName('leases')
  const gateway = await gatewayFor(t, nats.url, leaseBucket)
  const backend = createGatewayClient(await nats.user('backend'), { inboxPrefix: '_INBOX_backend', holderWaitMs: 2_000 })
  for (const company of ['acme', 'beta']) {
    await backend.initialize(company)
    gateway.testWhatsApp!.scan(company)
    const connected = async () => (await backend.status(company).catch(() => undefined))?.connected === true
    t.ok(await waitFor(connected, 10_000), `${company} connected`)
  }
  const acmeNc = await nats.tenant('acme')
  const acme = createGatewayClient(acmeNc, { timeoutMs: 2_000 })
  await acme.send('acme', { phone: PHONE, message: 'events to aim' })
  const betaNc = await nats.tenant('beta')
  await createGatewayClient(betaNc).send('beta', { phone: PHONE, message: 'beta has events too' })

  // Whatever reaches beta's command subjects in the gateway's account is caught here.
  const gatewayNc = await nats.user('gateway')
  const atBeta: string[] = []
  gatewayNc.subscribe('wa.cmd.beta.>', { callback: (_err, message) => { atBeta.push(message.subject) } })
  await gatewayNc.flush()

  // 1. A push consumer aimed at beta's commands: acme's consumers live in acme's account, where no
  //    wa.cmd.beta.* exists, so its deliveries reach nobody.
  const acmeJsm = await jetstreamManager(acmeNc)
  t.ok(await waitFor(async () => (await acmeJsm.streams.info('WA_EVENTS')).state.messages > 0, 5_000), 'acme\'s stream holds events')
  for (const [name, command] of [['to-logout', 'logout'], ['to-send', 'send']]) {
    await acmeJsm.consumers.add('WA_EVENTS', {
      durable_name: name, deliver_subject: `wa.cmd.beta.${command}`, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.same(atBeta, [], 'nothing reached wa.cmd.beta.> in the gateway\'s account')
  t.equal((await backend.status('beta')).connected, true, 'beta stays connected')

  // 2. Stream info with a subject filter lists acme's subjects only: beta's ids and counts are not in acme's account.
  const listed = await acmeJsm.streams.info('WA_EVENTS', { subjects_filter: 'wa.evt.>' })
  const subjects = Object.keys(listed.state.subjects ?? {})
  t.ok(subjects.length > 0 && subjects.every((subject) => subject.startsWith('wa.evt.acme.')), `only acme's: ${subjects.join(', ')}`)

  // 3. beta's consumer cannot be read, pulled, acknowledged away or deleted by acme, whatever its name.
  const betaJsm = await jetstreamManager(betaNc)
  await betaJsm.consumers.add('WA_EVENTS', { durable_name: 'worker', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All })
  const betaPending = (await betaJsm.consumers.info('WA_EVENTS', 'worker')).num_pending
  await t.rejects(acmeJsm.consumers.info('WA_EVENTS', 'worker'), /consumer not found/, 'acme cannot see beta\'s consumer')
  await t.rejects(acmeJsm.consumers.delete('WA_EVENTS', 'worker'), /consumer not found/, 'nor delete it')
  const pulled: JsMsg[] = []
  await t.rejects((async () => {
    const other = await jetstream(acmeNc).consumers.get('WA_EVENTS', 'worker')
    for await (const message of await other.fetch({ max_messages: 10, expires: 1_000 })) pulled.push(message)
  })(), /consumer not found/, 'nor pull from it')
  t.equal(pulled.length, 0)
  t.equal((await betaJsm.consumers.info('WA_EVENTS', 'worker')).num_pending, betaPending, 'beta\'s consumer keeps all it had')

  // 4. Publishing events, or on another company's subjects, is refused.
  for (const subject of ['wa.evt.acme.qr', 'wa.evt.beta.qr']) {
    const publishing = async () => { acmeNc.publish(subject, '{"type":"qr"}'); await acmeNc.flush() }
    t.ok(await refused(acmeNc, publishing), `cannot publish on ${subject}`)
  }
  t.ok(await refused(acmeNc, () => acme.send('beta', { phone: PHONE, message: 'x' })), 'cannot request wa.cmd.beta.send')
  t.ok(await refused(acmeNc, () => acme.listSessions()), 'cannot list sessions')
  t.ok(await refused(acmeNc, async () => { acmeNc.subscribe('wa.evt.beta.>'); await acmeNc.flush() }), 'cannot subscribe to beta\'s events')

  // 5. The gateway's buckets are not in acme's account: their subjects are refused.
  for (const subject of [`$KV.${leaseBucket}.beta`, '$O.wa_media.C.x', '$KV.wa_leases.beta']) {
    t.ok(await refused(acmeNc, async () => { acmeNc.publish(subject, 'x'); await acmeNc.flush() }), `cannot publish on ${subject}`)
  }
  await t.rejects(acmeJsm.streams.info(`KV_${leaseBucket}`), /stream not found/, 'the lease bucket is not in its account')
  await t.rejects(acme.putMedia('acme', new Uint8Array(10)), /object store not found/, 'nor is the media bucket')

  // 6. Without link: no initialize, and no qr in its stream, though the backend saw one.
  const viewerNc = await nats.tenant('viewer')
  const viewer = createGatewayClient(viewerNc, { timeoutMs: 2_000 })
  t.ok(await refused(viewerNc, () => viewer.initialize('viewer')), 'a tenant without link cannot initialize')
  t.ok(await refused(viewerNc, () => viewer.logout('viewer')), 'nor log out')
  const backendJs = jetstream(await nats.user('backend'))
  t.equal((await backend.initialize('viewer')).status, 'qr', 'the backend links it')
  const backendQr = await (await backendJs.consumers.get('WA_EVENTS', { filter_subjects: 'wa.evt.viewer.qr' })).next({ expires: 5_000 })
  t.ok(backendQr, 'the gateway published its qr')
  gateway.testWhatsApp!.scan('viewer')
  t.ok(await waitFor(async () => (await eventsInOwnStream(viewerNc)).some((event) => event.type === 'connected'), 10_000),
    'the tenant sees it connected')
  const viewerEvents = await eventsInOwnStream(viewerNc)
  t.notOk(viewerEvents.some((event) => event.type === 'qr' || event.type === 'pairing_code'), 'but never its qr')
  t.equal((await viewer.status('viewer')).connected, true, 'and may read its status')
})

t.test('deploy/nats: the replicas answer NATS service discovery ($SRV) to the backend; a tenant cannot ask', async (t) => {
  const nats = await accountsNats(t)
  const gateway = await gatewayFor(t, nats.url)
  const backendNc = await nats.user('backend')
  // The gateway user may subscribe to $SRV.>: the replica answers through its permissions as deployed.
  const info = (await backendNc.request('$SRV.INFO.wa-gateway', '', { timeout: 5_000 })).json<ServiceInfo>()
  t.match(info, { type: 'io.nats.micro.v1.info_response', name: 'wa-gateway', id: gateway.natsService.id, metadata: { namespace: 'wa' } })
  t.ok(info.endpoints.some((endpoint) => endpoint.subject === 'wa.cmd.*.send'), 'with its endpoints')
  const acmeNc = await nats.tenant('acme')
  t.ok(await refused(acmeNc, () => acmeNc.request('$SRV.PING', '', { timeout: 2_000 })), 'a tenant cannot ask: $SRV is not in its account')
})
