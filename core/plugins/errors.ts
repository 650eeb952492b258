import fp from 'fastify-plugin'
import type { FastifyError } from 'fastify'
import { ErrorCode } from '../../contracts/index.ts'
import { asGatewayError, assertStorable, GatewayError, statusOf, toErrorReply, validationError } from '../errors.ts'

/** Fastify's own 4xx errors (bad JSON, wrong content type, body too large) keep their status. */
function fromFastifyError (err: FastifyError): GatewayError | undefined {
  if (err.validation) return validationError(err.validation, err.validationContext ?? 'request')
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const code = status === 404 ? ErrorCode.NOT_FOUND : status === 429 ? ErrorCode.RATE_LIMITED : ErrorCode.BAD_REQUEST
    const error = new GatewayError(code, err.message)
    return Object.assign(error, { statusCode: status })
  }
  return undefined
}

export default fp(async (app) => {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    // A database that does not answer is UNAVAILABLE (503, Retry-After) on every route (asGatewayError).
    const known = asGatewayError(err) ?? fromFastifyError(err)
    if (!known) request.log.error({ err }, 'request failed')
    else if (!(err instanceof GatewayError) && known.code === ErrorCode.UNAVAILABLE) request.log.warn({ err }, known.message)
    const status = statusOf(known ?? err)
    if (known?.retryAfter !== undefined) reply.header('Retry-After', String(Math.ceil(known.retryAfter)))
    return reply.code(status).send(toErrorReply(known ?? err))
  })
  // After validation and access control: text PostgreSQL could not store is refused, whichever route it reaches.
  app.addHook('preHandler', async (request) => {
    assertStorable(request.params, 'params')
    assertStorable(request.query, 'querystring')
    assertStorable(request.body, 'body')
  })
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(toErrorReply(
      new GatewayError(ErrorCode.NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]}`)
    ))
  })
}, { name: 'errors' })
