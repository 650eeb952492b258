import type { FastifyInstance } from 'fastify'
import { ErrorCode, SendReply, SendRequest, type ContactCard } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { chatOf, mentionsOf, quotedOf } from './chat.ts'
import { declareHolderCommand } from './holder-command.ts'
import { deliveryFields, type OutboundKind } from './outbound.ts'

const CONTENT_FIELDS = ['message', 'media', 'location', 'contact'] as const

/** A contact card as WhatsApp carries it: a vCard, made from the name and phones unless given whole. */
export function vcardOf (contact: ContactCard): string {
  if (contact.vcard) return contact.vcard
  const escape = (value: string) => value.replace(/[\\;,]/g, (char) => `\\${char}`).replace(/\r?\n/g, '\\n')
  const phones = (contact.phones ?? []).map((phone) => {
    const digits = phone.replace(/\D/g, '')
    return `TEL;type=CELL;type=VOICE;waid=${digits}:+${digits}`
  })
  return ['BEGIN:VCARD', 'VERSION:3.0', `FN:${escape(contact.name)}`, ...phones, 'END:VCARD'].join('\n')
}

/** `send`: a text, a file, a location or a contact card, optionally replying to a message the gateway has seen. */
export function declareSendCommand (app: FastifyInstance): void {
  declareHolderCommand(app, {
    name: 'send',
    request: SendRequest,
    reply: SendReply,
    schedulable: 'send',
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/send',
      operationId: 'send',
      tags: ['sessions'],
      summary: 'Send a text (`message`), a file (`media`: image, video, audio or voice note, document, sticker), a `location` or a' +
        ' `contact` card through the company\'s WhatsApp, optionally replying to `quotedMessageId` (never creates a session).' +
        ' A file comes by `media.url`, `media.data` (base64), `media.objectId` (in MEDIA_BUCKET), or as `multipart/form-data`:' +
        ' the fields `phone`, `kind`, `caption`, `mimetype`, `fileName`, `ptt`, `idempotencyKey`, then one part named `file`',
      errors: [404, 409, 413, 415, 422, 429, 503, 504],
      multipart: (request, companyId) => app.media.sendBodyFromMultipart(request, companyId)
    },
    // A file is fetched, checked and stored where the request arrives; only its objectId travels on.
    prepare: async (companyId, request) => {
      const given = CONTENT_FIELDS.filter((field) => request[field] !== undefined)
      if (given.length !== 1) {
        throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a send takes exactly one of `message`, `media`, `location` and `contact`', {
          details: [{ field: '/message', message: `give one of message (a text), media (a file), location, contact; got ${given.length}` }]
        })
      }
      if (!request.media) return request
      // A bad phone is refused before the file is fetched; LID and group JIDs are checked when the chat is resolved.
      if (!request.phone.endsWith('@lid') && !request.phone.endsWith('@g.us')) app.phone.normalize(request.phone)
      const staged = await app.media.stage(companyId, request.media)
      return {
        ...request,
        media: {
          kind: staged.kind,
          objectId: staged.objectId,
          mimetype: staged.mimetype,
          ...(staged.fileName ? { fileName: staged.fileName } : {}),
          ...(staged.caption ? { caption: staged.caption } : {}),
          ...(staged.ptt ? { ptt: true } : {})
        }
      }
    },
    handle: async ({ companyId, request, lease, idempotencyKey, messageId, sentFor }) => {
      const chat = await chatOf(app, companyId, request.phone)
      // `options.quoted` (kept from the first API) quotes any id; `quotedMessageId` one the history has.
      const quoted = request.quotedMessageId
        ? await quotedOf(app, companyId, request.quotedMessageId, true)
        : await quotedOf(app, companyId, request.options?.quoted, false)
      const { media, message, location, contact } = request
      const kind: OutboundKind = media ? 'media' : location ? 'location' : contact ? 'contact' : 'text'
      const card = contact ? { name: contact.name, vcard: vcardOf(contact) } : undefined
      return app.outbound.send({
        companyId,
        epoch: lease.epoch,
        kind,
        recipient: chat.recipient,
        idempotencyKey,
        details: {
          ...(message ? { text: message } : {}),
          ...(media ? { media: { kind: media.kind, objectId: media.objectId! } } : {}),
          ...(location ? { location } : {}),
          ...(contact ? { contact: { name: contact.name, ...(contact.phones ? { phones: contact.phones } : {}) } } : {}),
          ...(quoted ? { quotedMessageId: quoted.id } : {}),
          ...(chat.group ? { groupId: chat.jid } : {}),
          ...(request.mentions ? { mentions: request.mentions } : {}),
          // The contact by both names, as far as known (a contact known only by LID has no phone yet).
          phone: chat.phone,
          lid: chat.lid,
          ...sentFor
        },
        write: async (socket) => {
          const mentions = await mentionsOf(app, socket, chat, request.mentions, companyId)
          const options = { quoted, ...(mentions ? { mentions } : {}), ...(messageId ? { messageId } : {}) }
          if (media) {
            const opened = await app.media.open(companyId, media.objectId!)
            if (!opened) throw new GatewayError(ErrorCode.NOT_FOUND, `the file ${media.objectId} left the media bucket before it was sent`)
            const mimetype = media.mimetype ?? opened.media.mimetype
            return socket.sendMedia(chat.jid, { ...media, mimetype, stream: opened.stream }, options)
          }
          if (location) return socket.sendContent(chat.jid, { location }, options)
          if (card) return socket.sendContent(chat.jid, { contact: card }, options)
          return socket.sendText(chat.jid, message!, options)
        }
      }, (sent, queuedMs) => deliveryFields(companyId, chat.phone ?? chat.jid, sent, queuedMs))
    }
  })
}
