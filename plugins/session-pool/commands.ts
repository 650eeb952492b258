import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import {
  EmptyRequest, ErrorCode, LogoutReply, SendReply, SendRequest, SessionStatus
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { declareHolderCommand } from './holder-command.ts'
import { deliveryFields } from './outbound.ts'
import type { SessionPool } from './pool.ts'
import { wipeAuth } from './auth-store.ts'

const HolderInitialize = Type.Object({ restart: Type.Boolean() })
const HolderInitializeReply = Type.Object({ success: Type.Literal(true), snapshot: Type.Unknown() })

/**
 * A logout of a company without a live socket: marked offline first, so no replica connects it
 * again, then its creds and keys are wiped.
 */
export async function forgetCompany (app: FastifyInstance, companyId: string): Promise<void> {
  await app.ownership.setDesired(companyId, 'offline')
  await wipeAuth(app.orm.em.fork(), companyId)
}

function requireSession (pool: SessionPool, companyId: string) {
  const session = pool.get(companyId)
  if (!session) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} has no session on this replica`)
  return session
}

/** The connection's own commands, answered by the holder (`<namespace>.cmd.<companyId>.<name>`). */
export function declareSessionCommands (app: FastifyInstance, pool: SessionPool): void {
  const { config } = app

  declareHolderCommand(app, {
    name: 'send',
    request: SendRequest,
    reply: SendReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/send',
      scope: 'send',
      tags: ['sessions'],
      summary: 'Send a text or a file (image, video, audio or voice note, document, sticker) through the company\'s WhatsApp' +
        ' (never creates a session). A file comes by `media.url`, `media.data` (base64), `media.objectId` (in MEDIA_BUCKET),' +
        ' or as `multipart/form-data`: the fields `phone`, `kind`, `caption`, `mimetype`, `fileName`, `ptt`, `idempotencyKey`,' +
        ' then one part named `file`',
      errors: [409, 413, 415, 422, 429, 503, 504],
      multipart: (request, companyId) => app.media.sendBodyFromMultipart(request, companyId)
    },
    // A file is fetched, checked and stored where the request arrives; only its objectId travels on.
    prepare: async (companyId, request) => {
      if ((request.message === undefined) === (request.media === undefined)) {
        throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'a send takes exactly one of `message` and `media`', {
          details: [{ field: '/message', message: 'give `message` (a text) or `media` (a file), not both' }]
        })
      }
      if (!request.media) return request
      app.phone.normalize(request.phone)
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
    handle: async ({ companyId, request, lease, idempotencyKey }) => {
      const e164 = app.phone.normalize(request.phone)
      const jid = app.phone.toJid(e164)
      const quoted = request.options?.quoted
      const { media, message } = request
      return app.outbound.send({
        companyId,
        epoch: lease.epoch,
        kind: media ? 'media' : 'text',
        recipient: e164,
        idempotencyKey,
        write: media
          ? async (socket) => {
            const opened = await app.media.open(companyId, media.objectId!)
            if (!opened) throw new GatewayError(ErrorCode.NOT_FOUND, `the file ${media.objectId} left the media bucket before it was sent`)
            return socket.sendMedia(jid, { ...media, mimetype: media.mimetype ?? opened.media.mimetype, stream: opened.stream }, { quoted })
          }
          : (socket) => socket.sendText(jid, message!, { quoted })
      }, (sent, queuedMs) => deliveryFields(companyId, e164, sent, queuedMs))
    }
  })

  declareHolderCommand(app, {
    name: 'status',
    request: EmptyRequest,
    reply: SessionStatus,
    handle: async ({ companyId, lease }) => {
      const status = requireSession(pool, companyId).status()
      return {
        success: true as const,
        companyId,
        connected: status.connected,
        status: status.state,
        reconnectAttempts: status.reconnectAttempts,
        holder: config.replicaId,
        epoch: lease.epoch,
        health: { healthy: status.connected, phoneNumber: status.phoneNumber, lastActivity: status.lastActivity }
      }
    }
  })

  declareHolderCommand(app, {
    name: 'logout',
    request: EmptyRequest,
    reply: LogoutReply,
    handle: async ({ companyId }) => {
      const session = requireSession(pool, companyId)
      if (session.socket) {
        // The socket closes with 401; the session wipes the auth state and the company goes offline.
        await session.socket.logout()
      } else {
        await pool.disconnect(companyId)
        await forgetCompany(app, companyId)
      }
      return { success: true as const, companyId, message: 'logged out; auth state wiped' }
    }
  })

  // Sent by initialize on any replica: the holder shows what it has, restarting when the linking mode changed.
  declareHolderCommand(app, {
    name: 'initialize',
    request: HolderInitialize,
    reply: HolderInitializeReply,
    handle: async ({ companyId, request }) => {
      if (request.restart || ['stopped', 'breaker_open', 'reconnecting'].includes(requireSession(pool, companyId).state)) {
        await pool.restart(companyId)
      }
      return { success: true as const, snapshot: pool.get(companyId)?.snapshot() ?? null }
    }
  })
}
