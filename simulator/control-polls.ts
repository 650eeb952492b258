import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'
import { GroupRefusal } from './groups.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const PollParams = Type.Object({
  phone: Phone,
  messageId: Type.String({ pattern: '^[0-9A-Za-z]{4,64}$', description: 'the poll\'s message id' })
})
const GroupPollParams = Type.Object({
  jid: Type.String({ pattern: '^\\d{5,30}(-\\d{5,12})?@g\\.us$' }),
  messageId: Type.String({ pattern: '^[0-9A-Za-z]{4,64}$' })
})
const Options = Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 12, description: 'none withdraws the vote' })
const SealedAs = Type.Optional(Type.Union([Type.Literal('phone'), Type.Literal('lid')], {
  description: 'the names the vote is sealed for (default: the chat\'s addressing)'
}))

/** The control API's poll routes (PROTOCOL.md § 14): contacts and participants vote on polls linked devices sent. */
export const pollControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.setErrorHandler((err, _request, reply) => {
    if (!(err instanceof GroupRefusal)) throw err
    const code = err.text.toUpperCase().replaceAll('-', '_')
    return reply.code(err.code === 404 ? 404 : 400).send({ success: false, error: { code, message: err.message } })
  })

  app.post('/contacts/:phone/polls/:messageId/votes', {
    schema: {
      params: PollParams,
      body: Type.Object({ to: Phone, options: Options, byLid: Type.Optional(Type.Boolean()), sealedAs: SealedAs })
    }
  }, async (request) => ({
    success: true,
    ...await simulator.polls.vote({ from: request.params.phone, pollMessageId: request.params.messageId, ...request.body })
  }))

  app.post('/groups/:jid/polls/:messageId/votes', {
    schema: {
      params: GroupPollParams,
      body: Type.Object({ from: Phone, options: Options, withoutPhone: Type.Optional(Type.Boolean()), sealedAs: SealedAs })
    }
  }, async (request) => ({
    success: true,
    ...await simulator.polls.voteInGroup({ group: request.params.jid, pollMessageId: request.params.messageId, ...request.body })
  }))
}
