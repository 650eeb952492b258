import { Type } from 'typebox'
import { proto } from '@whiskeysockets/baileys'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const Chat = Type.String({
  pattern: '^(\\d{5,20}@s\\.whatsapp\\.net|\\d{5,20}@lid|\\d{5,30}(-\\d{5,12})?@g\\.us)$', description: 'the chat\'s JID'
})

const PLAIN_ACTIONS = ['archive', 'unarchive', 'pin', 'unpin', 'read', 'unread', 'delete', 'unmute']

/**
 * The control API's chat-state routes (PROTOCOL.md § Chat state): the account's phone archives, pins,
 * mutes, reads or deletes a chat (its linked devices hear of it through app-state sync), and what
 * the account's devices agreed on each chat can be read back.
 */
export const chatControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/accounts/:phone/chats/:jid', {
    schema: {
      params: Type.Object({ phone: Phone, jid: Chat }),
      body: Type.Union([
        Type.Object({ action: Type.Union(PLAIN_ACTIONS.map((action) => Type.Literal(action))) }),
        Type.Object({ action: Type.Literal('mute'), until: Type.Integer({ minimum: 0, description: 'Unix ms it stays muted until' }) })
      ])
    }
  }, async (request) => {
    const body = request.body as Parameters<WhatsAppSimulator['appState']['phoneChanges']>[2]
    const patched = await simulator.appState.phoneChanges(request.params.phone, request.params.jid, body)
    return { success: true, ...patched }
  })

  // A contact sets the disappearing timer of its chat with the account: a protocol message, as the apps send it.
  app.post('/contacts/:phone/disappearing', {
    schema: {
      params: Type.Object({ phone: Phone }),
      body: Type.Object({ to: Phone, seconds: Type.Integer({ minimum: 0, maximum: 31_536_000, description: '0 turns it off' }) })
    }
  }, async (request, reply) => {
    const sent = await simulator.deliver({
      from: request.params.phone,
      to: request.body.to,
      content: {
        protocolMessage: { type: proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING, ephemeralExpiration: request.body.seconds }
      }
    })
    if (sent.devices === 0 && sent.queued === 0) {
      return reply.code(404).send({ success: false, error: { code: 'NOT_FOUND', message: `${request.body.to} has no linked device` } })
    }
    return { success: true, ...sent }
  })

  app.get('/accounts/:phone/chats', { schema: { params: Type.Object({ phone: Phone }) } }, async (request) => ({
    success: true,
    chats: simulator.appState.chats(request.params.phone)
  }))
}
