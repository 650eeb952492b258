import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { loadGatewayConfig } from '../plugins/index.ts'
import { startNatsCluster } from '../core/embedded/nats-cluster.ts'
import { build } from './helpers/build.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import { TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

t.test('every bucket\'s default name comes from the namespace', async (t) => {
  const a = loadGatewayConfig({ NATS_NAMESPACE: 'nsA' })
  const b = loadGatewayConfig({ NATS_NAMESPACE: 'nsB' })
  t.same([a.leaseBucket, a.membersBucket, a.idempotencyBucket, a.rateBucket],
    ['nsA_leases', 'nsA_members', 'nsA_idempotency', 'nsA_rate_limits'])
  t.same([b.leaseBucket, b.eventsStream], ['nsB_leases', 'NSB_EVENTS'])
  const plain = loadGatewayConfig({})
  t.same([plain.leaseBucket, plain.eventsStream], ['wa_leases', 'WA_EVENTS'], 'the default deployment keeps its names')
})

t.test('two deployments on one NATS server with the same company ids never see each other', async (t) => {
  const deployments = await Promise.all(['A', 'B'].map(async (letter) => {
    const namespace = uniqueName(`ns${letter}`)
    const derived = loadGatewayConfig({ NATS_NAMESPACE: namespace })
    // Its events stream and buckets are all named after the namespace, the tickets bucket too.
    dropNamespaceAfter(t, TEST_NATS_URL, namespace)
    const app = await build(t, {
      config: {
        natsNamespace: namespace,
        eventsStream: derived.eventsStream,
        leaseBucket: derived.leaseBucket,
        membersBucket: derived.membersBucket,
        idempotencyBucket: derived.idempotencyBucket,
        rateBucket: derived.rateBucket
      }
    })
    return { app, namespace }
  }))
  for (const { app } of deployments) {
    const reply = await app.inject({ method: 'POST', url: '/api/whatsapp/sessions/acme/initialize' })
    t.equal(reply.statusCode, 200, 'acme initialized in each deployment')
  }
  for (const { app } of deployments) {
    t.ok(await waitFor(() => app.ownership.holds('acme'), 5_000), `${app.config.natsNamespace} holds its own acme`)
    const members = app.ownership.members().map((member) => member.replica)
    t.same(members, [app.config.replicaId], 'and sees only its own replica')
    const owner = await app.inject({ method: 'GET', url: '/api/whatsapp/sessions/acme/owner' })
    t.equal(owner.json().replica, app.config.replicaId, 'acme is held by its own replica')
  }
})

t.test('NATS_REPLICAS: buckets and the events stream get their copies on a cluster; existing ones are raised', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wa-cluster-'))
  const cluster = await startNatsCluster({ dir })
  t.teardown(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const nc = await connect({ servers: cluster.url.split(',') })
  t.teardown(() => nc.close())
  // JetStream needs its meta leader before a bucket can be made.
  const jetstreamReady = async () => {
    try {
      await (await jetstreamManager(nc)).getAccountInfo()
      return true
    } catch {
      return false
    }
  }
  t.ok(await waitFor(jetstreamReady, 10_000))
  const leaseBucket = uniqueName('leases')
  await new Kvm(nc).create(leaseBucket, { history: 1 })
  const jsm = await jetstreamManager(nc)
  t.equal((await jsm.streams.info(`KV_${leaseBucket}`)).config.num_replicas, 1, 'made with one copy before')

  const app = await build(t, { config: { natsUrl: cluster.url, natsReplicas: 3, leaseBucket } })
  for (const stream of [`KV_${leaseBucket}`, `KV_${app.config.natsNamespace}_tickets`, app.config.eventsStream]) {
    t.equal((await jsm.streams.info(stream)).config.num_replicas, 3, `${stream} has three copies`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
})
