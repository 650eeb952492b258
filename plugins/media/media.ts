import { Readable } from 'node:stream'
import { ErrorCode, type MediaKind, type OutboundMedia } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { toVoiceNote } from './convert.ts'
import { contentTypeOf, isOggOpus, maxBytesOf, SNIFF_BYTES, tooLarge, VOICE_NOTE_MIMETYPE } from './kinds.ts'
import type { MediaOptions } from './settings.ts'
import { MediaStore, newObjectId, type StoredMedia } from './store.ts'
import { fetchMediaUrl } from './url-fetch.ts'
import type { ProxyRoute } from '../../core/proxy.ts'

/** A file ready to send: in the media bucket, its type checked against its kind. */
export interface StagedMedia extends StoredMedia {
  caption?: string
  ptt?: boolean
}

/** Bytes from the client (multipart, base64) or a server, not yet checked or stored. */
export interface IncomingFile {
  stream: AsyncIterable<Uint8Array>
  /** The content type its sender declared. */
  declaredType?: string
  fileName?: string
}

/**
 * The gateway's media: files to send are staged (fetched, checked, converted, stored) before any
 * message goes out, so a bad file is a 4xx and nothing is sent; received files are stored as they
 * stream in; both live in the media bucket, read back as streams.
 */
export class MediaService {
  readonly #store: MediaStore
  readonly #options: MediaOptions
  readonly #ffmpeg: boolean

  readonly #proxyOf: (companyId: string) => Promise<ProxyRoute | undefined>

  constructor (store: MediaStore, options: MediaOptions, ffmpeg: boolean, proxyOf: (companyId: string) => Promise<ProxyRoute | undefined>) {
    this.#store = store
    this.#options = options
    this.#ffmpeg = ffmpeg
    this.#proxyOf = proxyOf
  }

  /**
   * Checks and stores what a send names: one of `url`, `data` and `objectId`. Already staged
   * (an `objectId` in the bucket): its size and type are checked, nothing is copied.
   */
  async stage (companyId: string, media: OutboundMedia): Promise<StagedMedia> {
    const sources = [media.url, media.data, media.objectId].filter((source) => source !== undefined).length
    if (sources !== 1) {
      throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'media takes exactly one of `url`, `data` and `objectId`', {
        details: [{ field: '/media', message: `${sources} sources given` }]
      })
    }
    const extras = { ...(media.caption ? { caption: media.caption } : {}), ...(media.ptt ? { ptt: true } : {}) }
    if (media.objectId) return { ...await this.#checkStored(companyId, media), ...extras }
    const limit = maxBytesOf(media.kind, this.#options.mediaMaxBytes)
    let file: IncomingFile
    if (media.data) {
      const bytes = decodeBase64(media.data)
      if (bytes.length > limit) throw tooLarge(media.kind, limit)
      file = { stream: Readable.from([bytes]), declaredType: media.mimetype, fileName: media.fileName }
    } else {
      const proxy = await this.#proxyOf(companyId)
      const fetched = await fetchMediaUrl(media.url!, {
        ...(proxy ? { proxyAgent: proxy.agent } : {}),
        allowPrivate: this.#options.mediaUrlAllowPrivate,
        connectTimeoutMs: this.#options.mediaConnectTimeoutMs,
        totalTimeoutMs: this.#options.mediaFetchTimeoutMs,
        maxBytes: limit
      })
      file = {
        stream: fetched.body,
        declaredType: media.mimetype ?? fetched.contentType,
        fileName: media.fileName ?? fileNameOf(media.url!)
      }
    }
    return { ...await this.store(companyId, media.kind, file, { ptt: media.ptt === true }), ...extras }
  }

  /** Stores an outgoing file after checking its type (and converting a voice note): the send's source. */
  async store (companyId: string, kind: MediaKind, file: IncomingFile, options: { ptt: boolean }): Promise<StoredMedia> {
    const limit = maxBytesOf(kind, this.#options.mediaMaxBytes)
    const { head, rest } = await readHead(file.stream, SNIFF_BYTES)
    if (head.length === 0) throw new GatewayError(ErrorCode.VALIDATION_ERROR, 'the media file is empty')
    let mimetype = await contentTypeOf(kind, head, file.declaredType)
    let body = counted(head, rest, limit, kind)
    let finished: Promise<void> | undefined
    if (options.ptt) {
      if (kind !== 'audio') throw new GatewayError(ErrorCode.VALIDATION_ERROR, '`ptt` is for audio only')
      if (!isOggOpus(mimetype)) {
        if (!this.#ffmpeg) {
          throw new GatewayError(ErrorCode.MEDIA_CONVERSION_UNAVAILABLE,
            `a voice note must be ogg/opus and this ${mimetype} cannot be converted here (no ffmpeg);` +
              ' send it as ogg/opus or without `ptt`')
        }
        const converted = toVoiceNote(this.#options.ffmpegPath, body)
        body = counted(Buffer.alloc(0), converted.output[Symbol.asyncIterator](), limit, kind)
        finished = converted.finished
      }
      mimetype = VOICE_NOTE_MIMETYPE
    }
    const objectId = newObjectId()
    const meta = { kind, mimetype, checked: true, ...(file.fileName ? { fileName: file.fileName } : {}) }
    const stored = await this.#store.put(companyId, objectId, meta, ReadableStream.from(body))
    if (finished) {
      await finished.catch(async (err: unknown) => {
        await this.#store.delete(companyId, objectId).catch(() => {})
        throw err
      })
    }
    return stored
  }

  /** Stores a received file as it streams in (no type check: it is what WhatsApp delivered). */
  async save (companyId: string, source: AsyncIterable<Uint8Array>, meta: { kind: MediaKind, mimetype: string, fileName?: string }) {
    const limit = this.#options.mediaMaxBytes
    return this.#store.put(
      companyId,
      newObjectId(),
      meta,
      ReadableStream.from(counted(Buffer.alloc(0), source[Symbol.asyncIterator](), limit, meta.kind))
    )
  }

  /** A stored file and its bytes, or undefined when the bucket has no such file. */
  open (companyId: string, objectId: string): Promise<{ media: StoredMedia, stream: Readable } | undefined> {
    return this.#store.open(companyId, objectId)
  }

  async #checkStored (companyId: string, media: OutboundMedia): Promise<StoredMedia> {
    // Staged by a replica (an HTTP upload forwarded to the holder): already checked for this kind.
    const known = await this.#store.info(companyId, media.objectId!)
    if (known?.checked && known.kind === media.kind && (!media.ptt || isOggOpus(known.mimetype))) {
      return { ...known, ...(media.fileName ? { fileName: media.fileName } : {}) }
    }
    const opened = await this.#store.open(companyId, media.objectId!)
    if (!opened) throw new GatewayError(ErrorCode.NOT_FOUND, `no file ${media.objectId} in the media bucket for company ${companyId}`)
    const limit = maxBytesOf(media.kind, this.#options.mediaMaxBytes)
    if (opened.media.size > limit) {
      opened.stream.destroy()
      throw tooLarge(media.kind, limit)
    }
    const { head } = await readHead(opened.stream, SNIFF_BYTES)
    opened.stream.destroy()
    const declared = media.mimetype ?? (opened.media.mimetype === 'application/octet-stream' ? undefined : opened.media.mimetype)
    const mimetype = await contentTypeOf(media.kind, head, declared)
    if (media.ptt && !isOggOpus(mimetype)) {
      throw new GatewayError(
        ErrorCode.UNSUPPORTED_MEDIA,
        'a voice note by `objectId` must already be ogg/opus; send it by `data` or `url` to convert it'
      )
    }
    return {
      ...opened.media,
      kind: media.kind,
      mimetype: media.ptt ? VOICE_NOTE_MIMETYPE : mimetype,
      ...(media.fileName ? { fileName: media.fileName } : {})
    }
  }
}

/** Strict base64 (or base64url): anything else is a client's mistake, not a file. */
function decodeBase64 (data: string): Buffer {
  const compact = data.replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact)) {
    throw new GatewayError(
      ErrorCode.VALIDATION_ERROR,
      '`media.data` is not base64',
      { details: [{ field: '/media/data', message: 'not base64' }] }
    )
  }
  return Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64')
}

function fileNameOf (url: string): string | undefined {
  try {
    const last = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '')
    return last.length > 0 && last.length <= 255 ? last : undefined
  } catch {
    return undefined
  }
}

/** The first `bytes` of a stream (fewer if it is shorter), and an iterator over the rest. */
async function readHead (source: AsyncIterable<Uint8Array>, bytes: number): Promise<{ head: Buffer, rest: AsyncIterator<Uint8Array> }> {
  const rest = source[Symbol.asyncIterator]()
  const chunks: Buffer[] = []
  let length = 0
  while (length < bytes) {
    const next = await rest.next()
    if (next.done) break
    chunks.push(Buffer.from(next.value))
    length += next.value.length
  }
  return { head: Buffer.concat(chunks), rest }
}

/** The head and then the rest, ending with MEDIA_TOO_LARGE once more than `limit` bytes went through. */
async function * counted (head: Buffer, rest: AsyncIterator<Uint8Array>, limit: number, kind: MediaKind): AsyncGenerator<Uint8Array> {
  let length = head.length
  if (length > limit) throw tooLarge(kind, limit)
  if (length > 0) yield head
  for (;;) {
    const next = await rest.next()
    if (next.done) return
    length += next.value.length
    if (length > limit) {
      await rest.return?.()
      throw tooLarge(kind, limit)
    }
    yield next.value
  }
}
