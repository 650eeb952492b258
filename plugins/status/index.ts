import fp from 'fastify-plugin'
import {
  ErrorCode, MAX_STATUS_RECIPIENTS, StatusPostReply, StatusPostRequest, userOfJid, type StatusEventData
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { isoFromSeconds } from '../../core/time.ts'
import {
  declareHolderCommand, fetchInboundMedia, STATUS_BROADCAST, type InboundStatus, type OutboundStatus, type WaSocket
} from '../session-pool/index.ts'
import { argbOf, batchesOf, checkStatusRequest, fontOf, STATUS_BATCH_SIZE } from './post.ts'

const jidOf = (phone: string) => `${phone}@s.whatsapp.net`
const argbHex = (argb: number) => `#${argb.toString(16).padStart(8, '0').toUpperCase()}`

/**
 * Status posts (stories), through the company's connection (session-pool's public face): posting
 * one to chosen contacts or to every contact of the history, in batches, through the one outbound
 * path; contacts' posts become `status` events, their files fetched like a message's.
 */
export default fp(async (app) => {
  declareHolderCommand(app, {
    name: 'status-post',
    request: StatusPostRequest,
    reply: StatusPostReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/status',
      operationId: 'postStatus',
      tags: ['status'],
      summary: 'Post a status (a story): a `text` on a `backgroundColor` in a `font`, or an image or video (`media`, as a send\'s),' +
        ' to `recipients` or to `audience: "contacts"` (every contact of the history); the company\'s own devices see it too.' +
        ` WhatsApp takes it ${STATUS_BATCH_SIZE} contacts at a time under one message id`,
      errors: [404, 409, 413, 415, 422, 429, 503, 504]
    },
    // Checked, the phones normalised and a file staged where the request arrives: only its objectId travels on.
    prepare: async (companyId, request) => {
      checkStatusRequest(request)
      const recipients = request.recipients?.map((phone) => app.phone.normalize(phone))
      const prepared = { ...request, ...(recipients ? { recipients: [...new Set(recipients)] } : {}) }
      if (!request.media) return prepared
      const staged = await app.media.stage(companyId, request.media)
      return {
        ...prepared,
        media: {
          kind: request.media.kind,
          objectId: staged.objectId,
          mimetype: staged.mimetype,
          ...(staged.caption ? { caption: staged.caption } : {})
        }
      }
    },
    handle: async ({ companyId, request, lease, idempotencyKey }) => {
      const ownPhone = app.sessionPool.get(companyId)?.status().phoneNumber
      if (!ownPhone) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`, { accepted: false })
      const own = userOfJid(ownPhone)
      const phones = (request.recipients ?? await app.conversations.contactPhones(companyId, MAX_STATUS_RECIPIENTS + 1))
        .filter((phone) => phone !== own).slice(0, MAX_STATUS_RECIPIENTS)
      if (phones.length === 0) {
        const why = request.audience ? 'the history has no contact to show it to' : 'its only recipient is the company\'s own number'
        throw new GatewayError(ErrorCode.VALIDATION_ERROR, `a status needs someone to see it: ${why}`, {
          details: [{ field: request.audience ? '/audience' : '/recipients', message: why }]
        })
      }
      const batches = batchesOf(jidOf(own), phones.map(jidOf))
      const { media } = request
      return app.outbound.send({
        companyId,
        epoch: lease.epoch,
        kind: 'status',
        recipient: STATUS_BROADCAST,
        idempotencyKey,
        write: async (socket) => {
          let status: OutboundStatus
          if (media) {
            const opened = await app.media.open(companyId, media.objectId!)
            if (!opened) {
              throw new GatewayError(ErrorCode.NOT_FOUND, `the file ${media.objectId} left the media bucket before it was posted`)
            }
            const mimetype = media.mimetype ?? opened.media.mimetype
            const caption = media.caption ? { caption: media.caption } : {}
            status = { file: { kind: media.kind, stream: opened.stream, mimetype, ...caption } }
          } else {
            const backgroundArgb = request.backgroundColor === undefined ? undefined : argbOf(request.backgroundColor)
            const font = fontOf(request.font)
            status = {
              text: request.text!,
              ...(backgroundArgb !== undefined ? { backgroundArgb } : {}),
              ...(font !== undefined ? { font } : {})
            }
          }
          return socket.status.post(status, batches)
        }
      }, (sent, queuedMs) => ({
        success: true as const,
        companyId,
        messageId: sent.messageId,
        timestamp: isoFromSeconds(sent.timestamp),
        kind: media ? media.kind : 'text' as const,
        recipients: phones.length,
        batches: batches.length,
        batchSize: STATUS_BATCH_SIZE,
        ...(queuedMs > 0 ? { queuedMs } : {})
      }))
    }
  })

  // Contacts' posts become `status` events in the order they came, a file fetched into the media bucket first.
  app.sessionPool.onSocket((socket, { companyId, emit }) => {
    let publishing = Promise.resolve()
    socket.on('statuses', (statuses) => {
      publishing = publishing.then(async () => {
        for (const status of statuses) {
          emit('status', await eventOf(socket, companyId, status), { eventId: `status:${companyId}:${status.id}` })
        }
      }).catch((err: unknown) => app.log.error({ err, companyId }, 'contacts\' statuses could not be published'))
    })
  })

  /** A poster known by LID: the phone the history or the connection learned for it, if any. */
  const phoneJidOfLid = async (socket: WaSocket, companyId: string, lid: string) => {
    const phone = await app.conversations.phoneOfLid(companyId, lid).catch(() => undefined)
    return phone ? jidOf(phone) : await socket.phoneOfLid(lid).catch(() => undefined)
  }

  const eventOf = async (socket: WaSocket, companyId: string, status: InboundStatus): Promise<StatusEventData> => {
    const lid = [status.poster, status.posterAlt].find((jid) => jid?.endsWith('@lid')) ?? null
    const phoneJid = [status.poster, status.posterAlt].find((jid) => jid?.endsWith('@s.whatsapp.net')) ??
      (lid ? await phoneJidOfLid(socket, companyId, lid) : undefined)
    const save = (...args: Parameters<typeof app.media.save>) => app.media.save(...args)
    const media = status.media
      ? await fetchInboundMedia({ companyId, messageId: status.id, ref: status.media, socket, save, log: app.log })
      : undefined
    return {
      statusId: status.id,
      phone: phoneJid ? userOfJid(phoneJid) : null,
      lid: lid ? lid.replace(/:\d+@/, '@') : null,
      pushName: status.pushName ?? null,
      kind: media ? 'media' : 'text',
      text: status.text ?? null,
      ...(status.backgroundArgb !== undefined ? { backgroundColor: argbHex(status.backgroundArgb) } : {}),
      ...(status.font !== undefined ? { font: status.font } : {}),
      ...(media ? { media } : {}),
      timestamp: isoFromSeconds(status.timestamp),
      offline: status.offline ?? false
    }
  }
}, { name: 'status', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool', 'media', 'conversations'] })
