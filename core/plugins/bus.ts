import fp from 'fastify-plugin'
import { Bus } from '../bus.ts'
import { subjectsFor, type SubjectSet } from '../../contracts/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    bus: Bus
    /** This deployment's subjects (NATS_NAMESPACE). */
    subjects: SubjectSet
  }
}

export default fp(async (app) => {
  const bus = new Bus({ nc: app.nats, orm: app.orm, log: app.log, requestTimeoutMs: app.config.natsRequestTimeoutMs, replica: app.config.replicaId })
  app.decorate('bus', bus)
  app.decorate('subjects', subjectsFor(app.config.natsNamespace))
  // Runs before the NATS plugin drains the connection: handlers finish and reply first.
  app.addHook('onClose', async () => {
    await bus.close(app.config.handlerDrainTimeoutMs)
  })
}, { name: 'bus', dependencies: ['config', 'nats', 'db'] })
