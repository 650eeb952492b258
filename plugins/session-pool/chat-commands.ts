import type { FastifyInstance } from 'fastify'
import {
  ChatReply, DeleteRequest, EditRequest, ErrorCode, NumberCheckReply, NumberCheckRequest, PresenceRequest, ReadRequest, SendReply
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { chatOf } from './chat.ts'
import { requireSession } from './commands.ts'
import { declareHolderCommand } from './holder-command.ts'
import { deliveryFields } from './outbound.ts'
import type { SessionPool } from './pool.ts'
import type { OutboundContent } from './socket-port.ts'

/** WhatsApp lets a sender edit a text for 15 minutes and delete a message for everyone for about two days. */
const EDIT_WINDOW_MS = 15 * 60_000
const DELETE_WINDOW_MS = 48 * 3_600_000
const CHAT_STATES = new Set(['composing', 'recording', 'paused'])
const TAGS = ['conversations']

/** A message of this company's the history has, that WhatsApp would let it edit or delete now. */
async function ownMessage (app: FastifyInstance, companyId: string, messageId: string, action: 'edit' | 'delete') {
  const known = await app.conversations.message(companyId, messageId)
  if (!known) throw new GatewayError(ErrorCode.NOT_FOUND, `no message ${messageId} in the history of ${companyId}`)
  const verb = action === 'edit' ? 'edited' : 'deleted'
  const refuse = (why: string) => new GatewayError(ErrorCode.NOT_EDITABLE, `message ${messageId} cannot be ${verb}: ${why}`)
  if (known.direction !== 'out') throw refuse('this company did not send it')
  if (known.deleted) throw refuse('it was deleted')
  if (action === 'edit' && known.kind !== 'text') throw refuse('only texts can be edited')
  const window = action === 'edit' ? EDIT_WINDOW_MS : DELETE_WINDOW_MS
  if (Date.now() - Date.parse(known.timestamp) > window) throw refuse(`WhatsApp allows it for ${window / 60_000} minutes after sending`)
  return known
}

/** The rest of a conversation: read receipts, presence, number checks, edits and deletions, through the holder. */
export function declareChatCommands (app: FastifyInstance, pool: SessionPool): void {
  const socketOf = (companyId: string) => {
    const socket = requireSession(pool, companyId).socket
    if (!socket) throw new GatewayError(ErrorCode.NOT_CONNECTED, `WhatsApp is not connected for company ${companyId}`, { retryAfter: 1 })
    return socket
  }

  /** An edit or a deletion of a message this company sent: checked against the history, sent like a message, then recorded. */
  const changeOwnMessage = async (
    action: 'edit' | 'delete', companyId: string, request: { phone: string, messageId: string }, epoch: number,
    idempotencyKey: string | undefined, content: OutboundContent, record: () => Promise<void>
  ) => {
    const chat = await chatOf(app, companyId, request.phone)
    await ownMessage(app, companyId, request.messageId, action)
    const reply = await app.outbound.send({
      companyId, epoch, kind: action, recipient: chat.recipient, idempotencyKey, write: (socket) => socket.sendContent(chat.jid, content)
    }, (sent, queuedMs) => deliveryFields(companyId, chat.phone ?? chat.jid, sent, queuedMs))
    await record()
    return reply
  }

  declareHolderCommand(app, {
    name: 'read',
    request: ReadRequest,
    reply: ChatReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/read',
      operationId: 'read',
      tags: TAGS,
      summary: 'Mark messages of a chat read: the contact sees blue ticks (read receipts)',
      errors: [503, 504]
    },
    handle: async ({ companyId, request }) => {
      const chat = await chatOf(app, companyId, request.phone)
      await socketOf(companyId).markRead(chat.jid, request.messageIds)
      return { success: true as const, companyId }
    }
  })

  declareHolderCommand(app, {
    name: 'presence',
    request: PresenceRequest,
    reply: ChatReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/presence',
      operationId: 'presence',
      tags: TAGS,
      summary: '`composing` (typing…), `recording` or `paused` in a chat (`phone`); `available` or `unavailable` for the account',
      errors: [503, 504]
    },
    handle: async ({ companyId, request }) => {
      const inChat = CHAT_STATES.has(request.presence)
      if (inChat !== (request.phone !== undefined)) {
        const message = inChat
          ? `\`${request.presence}\` is shown in a chat: give \`phone\``
          : `\`${request.presence}\` is the account's: no \`phone\``
        throw new GatewayError(ErrorCode.VALIDATION_ERROR, message, {
          details: [{ field: '/phone', message: inChat ? 'required' : 'not allowed' }]
        })
      }
      const jid = request.phone ? (await chatOf(app, companyId, request.phone)).jid : undefined
      await socketOf(companyId).setPresence(request.presence, jid)
      return { success: true as const, companyId }
    }
  })

  declareHolderCommand(app, {
    name: 'check-numbers',
    request: NumberCheckRequest,
    reply: NumberCheckReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/check-numbers',
      operationId: 'checkNumbers',
      tags: TAGS,
      summary: 'Whether each phone (up to 50) is on WhatsApp, with its JID and LID; under NUMBER_CHECKS_PER_MINUTE, answers cached',
      errors: [429, 503, 504]
    },
    handle: async ({ companyId, request }) => {
      const phones = request.phones.map((input) => ({ input, phone: app.phone.normalize(input) }))
      const unknown = [...new Set(phones.filter(({ phone }) => !app.conversations.cachedCheck(companyId, phone)).map(({ phone }) => phone))]
      if (unknown.length > 0) {
        const socket = socketOf(companyId)
        app.conversations.admitChecks(companyId, unknown.length)
        const answers = await socket.onWhatsApp(unknown.map((phone) => app.phone.toJid(phone)))
        for (const [index, phone] of unknown.entries()) {
          const answer = answers[index]
          app.conversations.rememberCheck(companyId, phone, { exists: answer?.exists ?? false, lid: answer?.lid ?? null })
          if (answer?.lid) await app.conversations.learnLid(companyId, answer.lid, phone)
        }
      }
      const results = phones.map(({ input, phone }) => {
        const cached = !unknown.includes(phone)
        const known = app.conversations.cachedCheck(companyId, phone)!
        return { input, phone, exists: known.exists, jid: known.exists ? app.phone.toJid(phone) : null, lid: known.lid, cached }
      })
      return { success: true as const, companyId, results }
    }
  })

  declareHolderCommand(app, {
    name: 'edit',
    request: EditRequest,
    reply: SendReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/edit',
      operationId: 'edit',
      tags: TAGS,
      summary: 'Edit a text this company sent (within WhatsApp\'s 15 minutes); the contact sees the new text, marked edited',
      errors: [404, 409, 429, 503, 504]
    },
    handle: ({ companyId, request, lease, idempotencyKey }) => changeOwnMessage('edit', companyId, request, lease.epoch, idempotencyKey,
      { edit: { messageId: request.messageId, text: request.text } },
      () => app.conversations.markEdited(companyId, request.messageId, request.text))
  })

  declareHolderCommand(app, {
    name: 'delete',
    request: DeleteRequest,
    reply: SendReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/delete',
      operationId: 'deleteMessage',
      tags: TAGS,
      summary: 'Delete a message this company sent, for everyone (within about two days)',
      errors: [404, 409, 429, 503, 504]
    },
    handle: ({ companyId, request, lease, idempotencyKey }) => changeOwnMessage('delete', companyId, request, lease.epoch, idempotencyKey,
      { delete: { messageId: request.messageId } },
      () => app.conversations.markDeleted(companyId, request.messageId))
  })
}
