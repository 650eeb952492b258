import fp from 'fastify-plugin'
import multipart, { type Multipart } from '@fastify/multipart'
import type { FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ErrorCode, MEDIA_KINDS, MediaParams, type MediaKind, type OutboundMedia } from '../../contracts/index.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import { GatewayError } from '../../core/errors.ts'
import { ffmpegRuns } from './convert.ts'
import { MediaService, type StagedMedia } from './media.ts'
import type { MediaOptions } from './settings.ts'
import { MediaStore } from './store.ts'

export { settings, type MediaOptions } from './settings.ts'
export type { StagedMedia } from './media.ts'
export type { StoredMedia } from './store.ts'

/** The media plugin's public face. */
export interface Media {
  /** Checks and stores the file a send names (`url`, `data` or an `objectId` in the bucket); a bad one throws a 4xx GatewayError. */
  stage: (companyId: string, media: OutboundMedia) => Promise<StagedMedia>
  /** Stores a received file as it streams in. */
  save: MediaService['save']
  /** A stored file and its bytes, or undefined. */
  open: MediaService['open']
  /**
   * A `multipart/form-data` send: its fields (`phone`, `kind`, `caption`, …) and then one `file` part,
   * which is stored as it streams in; returns the JSON body a send takes, naming the stored file.
   */
  sendBodyFromMultipart: (request: FastifyRequest, companyId: string) => Promise<Record<string, unknown>>
  /** MEDIA_RETENTION: how long a stored file stays (a file sent later than that is gone by then). */
  readonly retentionMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    media: Media
  }
}

/** Form fields of a multipart send, besides the file. */
const MULTIPART_FIELDS = new Set(['phone', 'kind', 'caption', 'mimetype', 'fileName', 'ptt', 'idempotencyKey', 'quoted'])

export default fp<MediaOptions>(async (app, options) => {
  const store = await MediaStore.open(app.nats, options.mediaBucket, {
    retentionMs: options.mediaRetentionMs, replicas: app.config.natsReplicas, timeoutMs: app.config.natsRequestTimeoutMs
  })
  const ffmpeg = await ffmpegRuns(options.ffmpegPath)
  if (!ffmpeg) app.log.info('ffmpeg is not available: voice notes are sent only when they are already ogg/opus')
  // A URL a send names is fetched through the company's proxy, like the rest of its traffic.
  const service = new MediaService(store, options, ffmpeg, (companyId) => app.proxies.routeOf(companyId))

  // Files stream through: a part is never held whole in memory. The file's own limit is checked as it
  // streams (per kind, MEDIA_TOO_LARGE); this one only stops a body far past any limit.
  await app.register(multipart, { limits: { fileSize: options.mediaMaxBytes + 1024 * 1024, files: 1, fields: 20, fieldSize: 8192 } })

  const sendBodyFromMultipart = async (request: FastifyRequest, companyId: string) => {
    const fields: Record<string, string> = {}
    let staged: StagedMedia | undefined
    const parts = request.parts()
    for (;;) {
      let next: IteratorResult<Multipart>
      try {
        next = await parts.next()
      } catch (err) {
        throw unreadable(err)
      }
      if (next.done) break
      const part = next.value
      if (part.type === 'field') {
        if (staged) throw badMultipart('form fields must come before the file')
        if (!MULTIPART_FIELDS.has(part.fieldname)) throw badMultipart(`unknown form field \`${part.fieldname}\``)
        fields[part.fieldname] = String(part.value)
        continue
      }
      if (part.fieldname !== 'file' || staged) throw badMultipart('one file, in a part named `file`')
      const kind = fields.kind as MediaKind
      if (!MEDIA_KINDS.includes(kind)) throw badMultipart(`the \`kind\` field (${MEDIA_KINDS.join(', ')}) must come before the file`)
      const stored = await service.store(companyId, kind, {
        stream: readingForm(part.file),
        declaredType: fields.mimetype ?? (part.mimetype === 'application/octet-stream' ? undefined : part.mimetype),
        fileName: fields.fileName ?? part.filename
      }, { ptt: fields.ptt === 'true' })
      // The part was cut at the library's limit: a file far over any limit.
      if (part.file.truncated) throw new GatewayError(ErrorCode.MEDIA_TOO_LARGE, 'the file is over MEDIA_MAX_BYTES')
      staged = stored
    }
    if (!staged) throw badMultipart('no `file` part')
    return {
      phone: fields.phone,
      media: {
        kind: staged.kind,
        objectId: staged.objectId,
        mimetype: staged.mimetype,
        ...(staged.fileName ? { fileName: staged.fileName } : {}),
        ...(fields.caption ? { caption: fields.caption } : {}),
        ...(fields.ptt === 'true' ? { ptt: true } : {})
      },
      ...(fields.idempotencyKey ? { idempotencyKey: fields.idempotencyKey } : {}),
      ...(fields.quoted ? { options: { quoted: fields.quoted } } : {})
    }
  }

  app.decorate('media', {
    stage: (companyId, media) => service.stage(companyId, media),
    save: (companyId, source, meta) => service.save(companyId, source, meta),
    open: (companyId, objectId) => service.open(companyId, objectId),
    sendBodyFromMultipart,
    retentionMs: options.mediaRetentionMs
  } satisfies Media)

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/sessions/:companyId/media/:objectId', {
    // A received file is message content: the same scope as the events that name it.
    config: { access: { scope: 'events', company: 'params' } },
    schema: {
      operationId: 'getMedia',
      tags: ['media'],
      summary: 'A file from the media bucket (a received one, by the `objectId` of its `message` event), streamed',
      params: MediaParams,
      response: {
        200: {
          description: 'The file, with its content type',
          content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }
        },
        404: errorAnswer('No such file, or a company the credential does not cover (`NOT_FOUND`)')
      }
    }
  }, async (request, reply) => {
    const { companyId, objectId } = request.params
    const opened = await service.open(companyId, objectId)
    if (!opened) throw new GatewayError(ErrorCode.NOT_FOUND, `no file ${objectId} for company ${companyId} (expired, or never stored)`)
    const { media, stream } = opened
    reply.header('content-type', media.mimetype).header('content-length', String(media.size))
      .header('x-content-type-options', 'nosniff')
      .header('content-disposition', `attachment${media.fileName ? `; filename*=UTF-8''${encodeURIComponent(media.fileName)}` : ''}`)
      .header('digest', `sha-256=${Buffer.from(media.sha256, 'hex').toString('base64')}`)
    return reply.send(stream as never)
  })
}, { name: 'media', dependencies: ['config', 'nats', 'bus', 'proxy'] })

const badMultipart = (message: string) => new GatewayError(ErrorCode.VALIDATION_ERROR, `multipart send: ${message}`)

/** A form the parser cannot read (cut short, no boundary, over its limits) is the client's: a 400 naming why. */
function unreadable (err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  const status = (err as { statusCode?: number }).statusCode
  if (status === 413) return new GatewayError(ErrorCode.MEDIA_TOO_LARGE, 'the file is over MEDIA_MAX_BYTES')
  return badMultipart(`the form could not be read: ${(err as Error).message}`)
}

/** The file part's bytes, its read errors turned into the client's errors. */
async function * readingForm (file: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of file) yield chunk
  } catch (err) {
    throw unreadable(err)
  }
}
