import fp from 'fastify-plugin'
import { readFileSync } from 'node:fs'
import type { FastifySchema, RouteOptions } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { ErrorReply } from '../../contracts/index.ts'
import { serveAsyncApi } from '../docs/asyncapi.ts'

export const DOCS_PREFIX = '/docs'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Adds error answers to the OpenAPI document of the routes they apply to, from what each route
     * declares (its access policy, its schemas, its limits): the rule that refuses a request is the one that documents it.
     */
    documentRefusals: (refusals: RouteRefusals) => void
  }
}

/** The error statuses a rule can answer on a route, with what each means there (none: the rule does not apply). */
export type RouteRefusals = (route: RouteOptions) => Partial<Record<number, string>>

// Without its $id: a schema with an $id may be added once, and this shape answers many statuses.
const { $id: _id, ...errorShape } = ErrorReply as typeof ErrorReply & { $id?: string }

/** An error answer as a route documents it: the one error shape, with what the status means there. */
export const errorAnswer = (description: string) => ({ ...errorShape, description })

/** What a route that needs the company's holder answers when there is none. */
export const notConnectedAnswer = errorAnswer('Nobody holds the company (`NOT_CONNECTED`), or a dependency does not answer (`UNAVAILABLE`)')

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string, license: string, description: string
}

type Method = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options'
type Operation = { operationId?: string, requestBody?: { required?: boolean } }

const methodsOf = (route: RouteOptions) => [route.method].flat().map((method) => method.toLowerCase())
const INPUTS = ['body', 'querystring', 'params', 'headers'] as const
const inputsOf = (schema: FastifySchema | undefined) => INPUTS.some((part) => schema?.[part] !== undefined)

/**
 * OpenAPI generated from the routes' TypeBox schemas; must be registered before any route. Every
 * documented operation has an `operationId` (a route without one stops /docs/json, and the contract
 * test), and every status it can answer: its own, plus those the rules that refuse requests document
 * (documentRefusals). The spec is collected always; the pages at /docs are served only when DOCS_ENABLED.
 */
export default fp(async (app) => {
  const refusals: RouteRefusals[] = [
    // Every route that takes input validates it.
    (route) => inputsOf(route.schema) ? { 400: 'The input does not match the schema (`VALIDATION_ERROR`, with `details`)' } : {},
    // What any route may meet: a fault, and a PostgreSQL or NATS that does not answer.
    () => ({
      500: 'An unexpected failure (`INTERNAL_ERROR`), logged',
      503: 'A dependency does not answer (`UNAVAILABLE`, with `retryAfter`), or the replica is shutting down'
    })
  ]
  app.decorate('documentRefusals', (rule: RouteRefusals) => { refusals.push(rule) })
  /** Operations whose body may be left out (config.optionalBody): OpenAPI says so, which Fastify's schema cannot. */
  const optionalBodies = new Set<string>()

  await app.register(swagger, {
    openapi: {
      // 3.1: its schemas are JSON Schema, as the TypeBox ones are (a nullable field is a union with null).
      openapi: '3.1.0',
      info: {
        title: 'wa-gateway',
        description: PACKAGE.description,
        version: PACKAGE.version,
        license: { name: PACKAGE.license, identifier: PACKAGE.license }
      },
      servers: [{ url: '/', description: 'The gateway serving this document' }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API key or a JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' }
        }
      },
      security: [{ bearer: [] }, { apiKey: [] }]
    },
    transform: ({ schema, url, route }) => {
      if (!schema || schema.hide) return { schema, url }
      const documented = schema as FastifySchema & { operationId?: string, response?: Record<string, unknown> }
      if (!documented.operationId) throw new Error(`${methodsOf(route).join(',')} ${url} has no operationId`)
      if (route.config?.optionalBody) optionalBodies.add(documented.operationId)
      const response: Record<string, unknown> = { ...documented.response }
      for (const rule of refusals) {
        for (const [status, description] of Object.entries(rule(route))) if (description) response[status] ??= errorAnswer(description)
      }
      return {
        schema: { ...documented, response, ...(route.config?.access === 'public' ? { security: [] } : {}) } as FastifySchema,
        url
      }
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject
      const { openapiObject } = document
      for (const operations of Object.values(openapiObject.paths ?? {})) {
        for (const method of ['get', 'put', 'post', 'delete', 'patch'] satisfies Method[]) {
          const operation = (operations as Partial<Record<Method, Operation>>)[method]
          if (operation?.requestBody && optionalBodies.has(operation.operationId ?? '')) operation.requestBody.required = false
        }
      }
      return openapiObject
    }
  })
  if (!app.config.docsEnabled) return
  await app.register(async (docs) => {
    docs.addHook('onRoute', (route) => { route.config = { ...route.config, access: 'public' } })
    await docs.register(swaggerUi, { routePrefix: DOCS_PREFIX })
    serveAsyncApi(docs)
  })
}, { name: 'docs' })
