import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'

const Device = Type.Object({ device: Type.String({ pattern: '^\\d{5,20}:\\d{1,4}$', description: '<phone>:<device>' }) })
const notFound = (what: string) => ({ success: false, error: { code: 'NOT_FOUND', message: what } })

/**
 * The simulator's control API (its own port), for tests and for people: see and act on the
 * simulated phones and their linked devices.
 */
export function controlApi (simulator: WhatsAppSimulator): FastifyInstance {
  const app = Fastify({ logger: false }).setValidatorCompiler(TypeBoxValidatorCompiler).withTypeProvider<TypeBoxTypeProvider>()

  app.get('/devices', async () => ({ success: true, devices: simulator.liveDevices(), waitingForScan: simulator.waitingForScan() }))

  app.post('/scan', {
    schema: { body: Type.Object({ qr: Type.String({ minLength: 10 }), phone: Type.String({ pattern: '^\\d{10,15}$' }) }) }
  }, async (request, reply) => {
    if (!simulator.scan(request.body.qr, request.body.phone)) return reply.code(404).send(notFound('no connection is showing that QR'))
    return { success: true, phone: request.body.phone }
  })

  app.post('/devices/:device/logout', { schema: { params: Device } }, async (request, reply) => {
    if (!simulator.logout(request.params.device)) return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    return { success: true }
  })

  app.post('/devices/:device/replace', { schema: { params: Device } }, async (request, reply) => {
    if (!simulator.replace(request.params.device)) return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    return { success: true }
  })

  app.post('/devices/:device/drop', {
    schema: { params: Device, body: Type.Optional(Type.Object({ code: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })) })) },
    preValidation: async (request) => { request.body ??= {} }
  }, async (request, reply) => {
    if (!simulator.drop(request.params.device, request.body?.code)) return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    return { success: true }
  })

  app.get('/log', async () => ({ success: true, log: simulator.log.slice(-200) }))
  return app
}
