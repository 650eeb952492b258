import fp from 'fastify-plugin'
import { Sealer, sealingKeys } from '../sealing.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Seals secrets before they reach PostgreSQL (AUTH_STATE_KEYS): the auth state, webhook secrets. */
    sealer: Sealer
  }
}

export default fp(async (app) => {
  app.decorate('sealer', new Sealer(await sealingKeys(app.config.authStateKeys, app.config.dataDir, app.log)))
}, { name: 'sealing', dependencies: ['config'] })
