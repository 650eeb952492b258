import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { serveAsyncApi } from '../docs/asyncapi.ts'

export const DOCS_PREFIX = '/docs'

/**
 * OpenAPI generated from the routes' TypeBox schemas; must be registered before any route. The
 * spec is collected always; the pages at /docs are served only when DOCS_ENABLED (and are public then).
 */
export default fp(async (app) => {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'wa-gateway',
        description: 'WhatsApp Web connections per company, served over HTTP, NATS and WebSocket',
        version: '0.1.0'
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API key or a JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' }
        }
      },
      security: [{ bearer: [] }, { apiKey: [] }]
    }
  })
  if (!app.config.docsEnabled) return
  await app.register(async (docs) => {
    docs.addHook('onRoute', (route) => { route.config = { ...route.config, access: 'public' } })
    await docs.register(swaggerUi, { routePrefix: DOCS_PREFIX })
    serveAsyncApi(docs)
  })
}, { name: 'docs' })
