import fp from 'fastify-plugin'
import type { KV } from '@nats-io/kv'
import { Counter, type Registry } from 'prom-client'
import { Bus, type IgnoredReason } from '../bus.ts'
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
  // Dropped non-requests on /metrics, when the metrics plugin is there (it registers after the bus).
  app.addHook('onReady', async () => {
    if (!app.hasDecorator('metricsRegistry')) return
    const registry = (app as unknown as { metricsRegistry: Registry }).metricsRegistry
    const counted: Record<IgnoredReason, number> = { no_reply: 0, jetstream_ack: 0 }
    // eslint-disable-next-line no-new -- registered in `registry`; its collect() fills it at scrape time, nothing else reads it
    new Counter({
      name: 'whatsapp_commands_ignored_total',
      help: 'Command messages the holder dropped unread: no reply subject, or a JetStream ack as reply (not a request)',
      labelNames: ['reason'],
      registers: [registry],
      collect () {
        for (const reason of Object.keys(counted) as IgnoredReason[]) {
          this.inc({ reason }, bus.ignored[reason] - counted[reason])
          counted[reason] = bus.ignored[reason]
        }
      }
    })
  })
  // Runs before the NATS plugin drains the connection: handlers finish and reply first.
  app.addHook('onClose', async () => {
    await bus.close(app.config.handlerDrainTimeoutMs)
  })
}, { name: 'bus', dependencies: ['config', 'nats', 'db'] })
