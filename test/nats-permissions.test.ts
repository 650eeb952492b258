import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { jetstream } from '@nats-io/jetstream'
import { createGatewayClient, type EventEnvelope } from '../contracts/index.ts'
import { findNatsServer } from '../core/embedded/nats.ts'
import { freePort } from '../core/embedded/free-port.ts'
import { build } from './helpers/build.ts'
import { serviceEnv, uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const PASSWORDS = { gateway: 'gw-secret', backend: 'backend-secret', acme: 'acme-secret', beta: 'beta-secret' }

/** A nats-server of this test's own, with deploy/nats's configuration (its users and permissions). */
async function securedNats (t: Test) {
  const binary = await findNatsServer()
  if (!binary) throw new Error('nats-server is not installed')
  const port = await freePort()
  const storeDir = await mkdtemp(join(tmpdir(), 'wa-nats-secured-'))
  // deploy/nats's users and permissions, on a port and store of this test's own.
  const configFile = join(storeDir, 'nats-server.conf')
  // nats-server resolves an include next to the including file.
  await copyFile('deploy/nats/users.conf', join(storeDir, 'users.conf'))
  await writeFile(configFile, `listen: 127.0.0.1:${port}\njetstream { store_dir: ${JSON.stringify(join(storeDir, 'js'))} }\n` +
    'include ./users.conf\n')
  const child = spawn(binary, ['-c', configFile], {
    env: serviceEnv({
      NATS_GATEWAY_PASSWORD: PASSWORDS.gateway,
      NATS_BACKEND_PASSWORD: PASSWORDS.backend,
      NATS_TENANT_ACME_PASSWORD: PASSWORDS.acme,
      NATS_TENANT_BETA_PASSWORD: PASSWORDS.beta
    }),
    stdio: 'ignore'
  })
  t.teardown(async () => {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    await rm(storeDir, { recursive: true, force: true })
  })
  const url = `nats://127.0.0.1:${port}`
  const as = async (user: keyof typeof PASSWORDS): Promise<NatsConnection> => {
    const nc = await connect({ servers: url, user, pass: PASSWORDS[user], inboxPrefix: `_INBOX_${user}` })
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
  }, 10_000), 'the secured server is up')
  return { url, as }
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
  await new Promise((resolve) => setTimeout(resolve, 300))
  return errors.some((error) => /permission/i.test(error))
}

t.test('deploy/nats/nats-server.conf is a valid configuration', async (t) => {
  const binary = await findNatsServer()
  const check = spawnSync(binary!, ['-c', 'deploy/nats/nats-server.conf', '-t'], {
    env: serviceEnv({
      NATS_GATEWAY_PASSWORD: 'a', NATS_BACKEND_PASSWORD: 'b', NATS_TENANT_ACME_PASSWORD: 'c', NATS_TENANT_BETA_PASSWORD: 'd'
    }),
    encoding: 'utf8'
  })
  t.equal(check.status, 0, check.stderr + check.stdout)
})

t.test('deploy/nats: the gateway works as its user; a tenant reaches only its own company', async (t) => {
  const nats = await securedNats(t)
  const gateway = await build(t, {
    config: {
      natsUrl: nats.url,
      natsUser: 'gateway',
      natsPassword: PASSWORDS.gateway,
      natsInboxPrefix: '_INBOX_gateway',
      natsNamespace: 'wa',
      eventsStream: 'WA_EVENTS',
      leaseBucket: uniqueName('leases'),
      membersBucket: uniqueName('members'),
      idempotencyBucket: uniqueName('idempotency'),
      rateBucket: uniqueName('rates'),
      // The bucket users.conf grants the backend.
      mediaBucket: 'wa_media'
    }
  })

  // The trusted backend: links and sends for any company, through the typed client.
  const backend = createGatewayClient(await nats.as('backend'), { inboxPrefix: '_INBOX_backend', holderWaitMs: 2_000 })
  const linking = await backend.initialize('acme')
  t.equal(linking.status, 'qr')
  gateway.testWhatsApp!.scan('acme')
  t.ok(await waitFor(async () => (await backend.status('acme').catch(() => undefined))?.connected === true, 10_000), 'acme connected')
  await backend.initialize('beta')

  // The tenant reads its own events through a consumer filtered on them.
  const acmeNc = await nats.as('acme')
  const acme = createGatewayClient(acmeNc, { inboxPrefix: '_INBOX_acme' })
  const seen: EventEnvelope[] = []
  const acmeJs = jetstream(acmeNc, { watcherPrefix: '_INBOX_acme' })
  const consumer = await acmeJs.consumers.get('WA_EVENTS', { filter_subjects: 'wa.evt.acme.>' })
  const messages = await consumer.consume()
  void (async () => { for await (const message of messages) seen.push(message.json<EventEnvelope>()) })()
  t.teardown(() => { void messages.close() })

  // The backend puts a file in the media bucket and sends it by objectId, and reads it back.
  const photo = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), Buffer.from('JFIF\u0000'), Buffer.alloc(600_000, 3)])
  const objectId = await backend.putMedia('acme', photo)
  t.match(await backend.send('acme', { phone: '79001234567', media: { kind: 'image', objectId } }), { accepted: true }, 'by objectId')
  const back = await backend.getMedia('acme', objectId)
  t.equal(Buffer.from(await new Response(back).arrayBuffer()).length, photo.length, 'the backend reads the bucket')
  // A tenant sends a small file inline; the bucket is not its to use.
  t.match(await acme.send('acme', { phone: '79001234567', media: { kind: 'image', data: photo.subarray(0, 20_000).toString('base64') } }),
    { accepted: true }, 'the tenant sends by data')
  t.ok(await refused(acmeNc, () => createGatewayClient(acmeNc, { inboxPrefix: '_INBOX_acme', timeoutMs: 2_000 }).putMedia('acme', photo)),
    'the tenant cannot use the media bucket')

  const sent = await acme.send('acme', { phone: '79001234567', message: 'from the tenant' })
  t.equal(sent.accepted, true, 'the tenant sends for its own company')
  t.equal((await acme.status('acme')).connected, true)
  t.ok(await waitFor(() => seen.some((event) => event.type === 'message_sent'), 5_000), 'and reads its own events')

  t.ok(await refused(acmeNc, () => acme.send('beta', { phone: '79001234567', message: 'x' })), 'cannot request wa.cmd.beta.send')
  t.ok(await refused(acmeNc, () => acme.listSessions()), 'cannot list sessions')
  t.ok(await refused(acmeNc, async () => {
    acmeNc.publish('wa.evt.acme.qr', JSON.stringify({ type: 'qr' }))
    await acmeNc.flush()
  }), 'cannot publish on wa.evt.acme.qr')
  t.ok(await refused(acmeNc, async () => {
    const sub = acmeNc.subscribe('wa.evt.beta.>')
    await acmeNc.flush()
    await sub.closed
  }), 'cannot subscribe to wa.evt.beta.>')
  t.ok(await refused(acmeNc, () =>
    jetstream(acmeNc, { watcherPrefix: '_INBOX_acme', timeout: 2_000 }).consumers.get('WA_EVENTS', { filter_subjects: 'wa.evt.beta.>' })
      .then((other) => other.next({ expires: 1_000 }))), 'cannot create a consumer filtered on beta\'s events')
})
