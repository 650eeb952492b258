import fp from 'fastify-plugin'
import type { KV } from '@nats-io/kv'
import { Bus } from '../bus.ts'
import { openKv, type KvOptions } from '../nats/kv.ts'
import { subjectsFor, type SubjectSet } from '../../contracts/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    bus: Bus
    /** This deployment's subjects (NATS_NAMESPACE). */
    subjects: SubjectSet
    /** Opens (creating if needed) a JetStream KV bucket on this replica's connection. */
    openKv: (bucket: string, options: KvOptions) => Promise<KV>
  }
}

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
  // Runs before the NATS plugin drains the connection: handlers finish and reply first.
  app.addHook('onClose', async () => {
    await bus.close(app.config.handlerDrainTimeoutMs)
  })
}, { name: 'bus', dependencies: ['config', 'nats', 'db'] })
