import fp from 'fastify-plugin'
import type { RouteOptions } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route as registered, from the first on (access control checks each has a policy). */
    readonly routeTable: readonly RouteOptions[]
  }
}

/** Registered before any route, so it sees them all. */
export default fp(async (app) => {
  const routes: RouteOptions[] = []
  app.decorate('routeTable', routes)
  app.addHook('onRoute', (route) => { routes.push(route) })
}, { name: 'routes' })
