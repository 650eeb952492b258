import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { KV } from '@nats-io/kv'
import { Bus } from '../bus.ts'
import { openKv, type KvOptions } from '../nats/kv.ts'
import { serviceNameOf, ServiceDiscovery } from '../nats/service-discovery.ts'
import { subjectsFor, type SubjectSet } from '../../contracts/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    bus: Bus
    /** This deployment's subjects (NATS_NAMESPACE). */
    subjects: SubjectSet
    /** Opens (creating if needed) a JetStream KV bucket on this replica's connection. */
    openKv: (bucket: string, options: KvOptions) => Promise<KV>
    /** This replica's instance of the NATS micro service (`$SRV.PING|INFO|STATS`). */
    natsService: ServiceDiscovery
  }
}

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string, description: string }

export default fp(async (app) => {
  const bus = new Bus({
    nc: app.nats,
    orm: app.orm,
    log: app.log,
    requestTimeoutMs: app.config.natsRequestTimeoutMs,
    replica: app.config.replicaId
  })
  app.decorate('bus', bus)
  app.decorate('subjects', subjectsFor(app.config.natsNamespace))
  // Every bucket of the deployment has NATS_REPLICAS copies.
  app.decorate('openKv', (bucket: string, options: KvOptions) =>
    openKv(app.nats, bucket, { replicas: app.config.natsReplicas, ...options }))
  const service = new ServiceDiscovery({
    name: serviceNameOf(app.config.natsNamespace),
    version: PACKAGE.version,
    description: PACKAGE.description,
    // The namespace for tools that list every deployment; the replica to tell instances apart.
    metadata: { namespace: app.config.natsNamespace, replica: app.config.replicaId }
  }, bus.endpoints, app.log)
  app.decorate('natsService', service)
  // Once every plugin has declared its endpoints: a replica is discoverable when it is whole.
  app.addHook('onReady', async () => { service.start(app.nats) })
  // Runs before the NATS plugin drains the connection: handlers finish and reply first.
  app.addHook('onClose', async () => {
    service.stop()
    await bus.close(app.config.handlerDrainTimeoutMs)
  })
}, { name: 'bus', dependencies: ['config', 'nats', 'db'] })
