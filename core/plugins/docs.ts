import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

export const DOCS_PREFIX = '/docs'

/** OpenAPI generated from the routes' TypeBox schemas; must be registered before any route. */
export default fp(async (app) => {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'wa-gateway',
        description: 'WhatsApp Web connections per company, served over HTTP, NATS and WebSocket',
        version: '0.1.0'
      }
    }
  })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
}, { name: 'docs' })
