import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'
import { unixSeconds } from './stanzas.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const Jid = Type.String({ pattern: '^(\\d{5,20}@s\\.whatsapp\\.net|\\d{5,30}(-\\d{5,12})?@g\\.us)$' })
const MessageId = Type.String({ pattern: '^[0-9A-Za-z_-]{1,64}$' })

const HistoryMessage = Type.Object({
  id: Type.Optional(MessageId),
  fromMe: Type.Boolean(),
  text: Type.Optional(Type.String({ maxLength: 65536 })),
  media: Type.Optional(Type.Object({
    kind: Type.Union([Type.Literal('image'), Type.Literal('document')]),
    fileName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 }))
  })),
  timestamp: Type.Integer({ minimum: 0, description: 'Unix seconds' }),
  participant: Type.Optional(Type.String({ pattern: '^\\d{5,20}@s\\.whatsapp\\.net$', description: 'a group message\'s sender' })),
  pushName: Type.Optional(Type.String({ maxLength: 64, description: 'a received group message\'s sender name' }))
})
const HistoryChat = Type.Object({
  jid: Jid,
  name: Type.Optional(Type.String({ maxLength: 256 })),
  lid: Type.Optional(Type.Union([Type.String({ pattern: '^\\d{5,20}@lid$' }), Type.Boolean()], {
    description: 'the chat is addressed by the contact\'s LID (true: the simulator\'s LID for that phone)'
  })),
  messages: Type.Array(HistoryMessage, { maxItems: 100_000 })
})
const Tuning = {
  messagesPerChunk: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'the most messages one sync chunk carries' }))
}

/** The control API's history routes (PROTOCOL.md § 20): what a phone holds, and what it synced to each linked device. */
export const historyControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/accounts/:phone/history', {
    schema: {
      params: Type.Object({ phone: Phone }),
      body: Type.Union([
        Type.Object({ chats: Type.Array(HistoryChat, { maxItems: 5_000 }), ...Tuning }),
        Type.Object({
          generate: Type.Object({
            chats: Type.Integer({ minimum: 1, maximum: 5_000 }),
            messagesPerChat: Type.Integer({ minimum: 0, maximum: 10_000 }),
            days: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3_650 })),
            lidShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
            mediaShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1 }))
          }),
          ...Tuning
        })
      ])
    },
    bodyLimit: 256 * 1024 * 1024
  }, async (request) => {
    const { phone } = request.params
    const history = simulator.history.of(phone)
    const body = request.body
    if ('generate' in body) history.generate(body.generate, unixSeconds())
    else history.add(body.chats)
    if (body.messagesPerChunk) simulator.history.setMessagesPerChunk(phone, body.messagesPerChunk)
    return { success: true, chats: history.chats.size, messages: history.messageCount }
  })

  app.get('/accounts/:phone/history', { schema: { params: Type.Object({ phone: Phone }) } }, async (request) => {
    const history = simulator.history.of(request.params.phone)
    const syncs = simulator.history.syncs(request.params.phone)
    return { success: true, chats: history.chats.size, messages: history.messageCount, syncs }
  })
}
