import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })

/**
 * The control API's status routes (PROTOCOL.md § 18): a simulated contact posts a status to linked
 * numbers, and the posts linked devices made can be read back as their recipients opened them.
 */
export const statusControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/status', {
    schema: {
      body: Type.Object({
        from: Phone,
        device: Type.Optional(Type.Integer({ minimum: 0, maximum: 99, description: 'which simulated device posts (0: the phone)' })),
        to: Type.Array(Phone, { minItems: 1, maxItems: 1024, description: 'the linked numbers whose devices see it' }),
        text: Type.Optional(Type.String({ minLength: 1, maxLength: 65536, description: 'the text, or the caption of `media`' })),
        backgroundArgb: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
        font: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
        media: Type.Optional(Type.Object({
          kind: Type.Union([Type.Literal('image'), Type.Literal('video')]),
          data: Type.String({ description: 'the file, base64', minLength: 1 }),
          mimetype: Type.String({ minLength: 3, maxLength: 255 }),
          seconds: Type.Optional(Type.Integer({ minimum: 0 }))
        })),
        pushName: Type.Optional(Type.String({ maxLength: 64 })),
        id: Type.Optional(Type.String({ pattern: '^[0-9A-Za-z]{4,64}$' }))
      })
    },
    bodyLimit: 128 * 1024 * 1024
  }, async (request, reply) => {
    const { media, ...rest } = request.body
    if (!rest.text && !media) return reply.code(400).send({ success: false, error: { code: 'BAD_REQUEST', message: 'text or media' } })
    if (rest.device && !simulator.account(rest.from).simulatedDevice(rest.device)) {
      return reply.code(400).send({ success: false, error: { code: 'BAD_REQUEST', message: `${rest.from} has no device ${rest.device}` } })
    }
    const file = media ? { media: { ...media, data: Buffer.from(media.data, 'base64') } } : {}
    const posted = await simulator.status.post({ ...rest, ...file })
    return { success: true, ...posted }
  })

  app.get('/status/posts', {
    schema: { querystring: Type.Object({ from: Type.Optional(Phone) }) }
  }, async (request) => ({ success: true, posts: simulator.status.posts(request.query.from) }))
}
