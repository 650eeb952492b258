import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'
import { CALL_STEPS } from './calls.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const CallId = Type.String({ pattern: '^[0-9A-F]{32}$', description: 'the call-id the offer carried' })
const notFound = (message: string) => ({ success: false, error: { code: 'NOT_FOUND', message } })

/**
 * The control API's call routes (PROTOCOL.md § Calls): a simulated contact calls a linked number,
 * the call ends as a test says, and whether a linked device rejected it can be read back.
 */
export const callControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/contacts/:phone/calls', {
    schema: {
      params: Type.Object({ phone: Phone }),
      body: Type.Object({
        to: Phone,
        video: Type.Optional(Type.Boolean()),
        byLid: Type.Optional(Type.Boolean({ description: 'the caller named by LID (its phone as caller_pn)' })),
        hidePhone: Type.Optional(Type.Boolean({ description: 'with byLid: no caller_pn' })),
        group: Type.Optional(Type.String({ pattern: '^\\d{5,30}(-\\d{5,12})?@g\\.us$', description: 'a group call: the group\'s JID' }))
      })
    }
  }, async (request, reply) => {
    const call = simulator.calls.call({ from: request.params.phone, ...request.body })
    if (!call) return reply.code(404).send(notFound(`${request.body.to} has no linked device`))
    return { success: true, callId: call.id, call }
  })

  app.post('/calls/:callId/:step', {
    schema: { params: Type.Object({ callId: CallId, step: Type.Union(CALL_STEPS.map((step) => Type.Literal(step))) }) }
  }, async (request, reply) => {
    const call = simulator.calls.step(request.params.callId, request.params.step)
    if (!call) return reply.code(404).send(notFound(`no call ${request.params.callId}`))
    return { success: true, call }
  })

  app.get('/calls/:callId', { schema: { params: Type.Object({ callId: CallId }) } }, async (request, reply) => {
    const call = simulator.calls.get(request.params.callId)
    if (!call) return reply.code(404).send(notFound(`no call ${request.params.callId}`))
    return { success: true, call }
  })

  app.get('/accounts/:phone/calls', { schema: { params: Type.Object({ phone: Phone }) } }, async (request) => ({
    success: true, calls: simulator.calls.callsTo(request.params.phone)
  }))
}
