import fp from 'fastify-plugin'
import type { FastifyRequest, RouteOptions } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route as registered, from the first on (access control checks each has a policy). */
    readonly routeTable: readonly RouteOptions[]
  }
  interface FastifyContextConfig {
    /** The body may be left out, and is then taken as `{}` (the OpenAPI document marks it optional). */
    optionalBody?: boolean
  }
}

/** Before validation: a route with an optional body is validated against `{}` when none came. */
const emptyBodyWhenNone = async (request: FastifyRequest) => { request.body ??= {} }

/** Registered before any route, so it sees them all. */
export default fp(async (app) => {
  const routes: RouteOptions[] = []
  app.decorate('routeTable', routes)
  app.addHook('onRoute', (route) => {
    routes.push(route)
    if (route.config?.optionalBody) route.preValidation = [emptyBodyWhenNone, ...[route.preValidation ?? []].flat()]
  })
}, { name: 'routes' })
