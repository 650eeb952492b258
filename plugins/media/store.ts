import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type { NatsConnection } from '@nats-io/nats-core'
import { Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj'
import { StorageType } from '@nats-io/jetstream'
import { nanos } from '@nats-io/nats-core'
import { mediaObjectName, type MediaKind } from '../../contracts/index.ts'
import { duringElections, ensureStreamConfig, jetstreamOf } from '../../core/nats/kv.ts'

/** What the bucket keeps with a file, besides its size and SHA-256. */
export interface StoredMeta {
  kind: MediaKind
  mimetype: string
  fileName?: string
  /** Checked by the gateway when it stored it (its type sniffed, its size counted): not checked again. */
  checked?: boolean
}

export interface StoredMedia extends StoredMeta {
  objectId: string
  size: number
  /** Hex SHA-256 of the file (the Object Store's own digest). */
  sha256: string
}

/** Set-up of a replicated bucket takes seconds on a cluster. */
const SETUP_TIMEOUT_MS = 10_000
/**
 * Each chunk is one JetStream publish awaited before the next: 256 KiB chunks take a quarter of the
 * round trips of the client's default (128 KiB) for a few hundred KiB more in flight per transfer.
 */
const CHUNK_BYTES = 256 * 1024

/** A new object id: 128 random bits. */
export const newObjectId = () => randomBytes(16).toString('base64url')

/**
 * The media bucket (a NATS Object Store): files are stored in chunks as they stream in, so memory
 * does not grow with a file's size, under `<companyId>/<objectId>`, and expire after the retention.
 */
export class MediaStore {
  readonly #store: ObjectStore

  private constructor (store: ObjectStore) {
    this.#store = store
  }

  static async open (nc: NatsConnection, bucket: string, options: { retentionMs: number, replicas: number, timeoutMs: number }) {
    const store = await duringElections(async () => {
      const opened = await new Objm(jetstreamOf(nc, Math.max(options.timeoutMs, SETUP_TIMEOUT_MS))).create(bucket, {
        ttl: nanos(options.retentionMs), replicas: options.replicas, storage: StorageType.File
      })
      await ensureStreamConfig(nc, `OBJ_${bucket}`, { replicas: options.replicas })
      return opened
    })
    return new MediaStore(store)
  }

  async put (companyId: string, objectId: string, meta: StoredMeta, data: ReadableStream<Uint8Array>): Promise<StoredMedia> {
    const name = mediaObjectName(companyId, objectId)
    try {
      const info = await this.#store.put({ name, metadata: metadataOf(meta), options: { max_chunk_size: CHUNK_BYTES } }, data)
      return storedOf(objectId, info, meta)
    } catch (err) {
      // Whatever chunks made it in are of no use.
      await this.#store.delete(name).catch(() => {})
      throw err
    }
  }

  async delete (companyId: string, objectId: string): Promise<void> {
    await this.#store.delete(mediaObjectName(companyId, objectId))
  }

  async info (companyId: string, objectId: string): Promise<StoredMedia | undefined> {
    const info = await this.#store.info(mediaObjectName(companyId, objectId))
    if (!info || info.deleted) return undefined
    return storedOf(objectId, info, metaOf(info))
  }

  /** The file as a stream, or undefined when there is none (never stored, expired or deleted). */
  async open (companyId: string, objectId: string): Promise<{ media: StoredMedia, stream: Readable } | undefined> {
    const result = await this.#store.get(mediaObjectName(companyId, objectId))
    if (!result || result.info.deleted) return undefined
    const stream = Readable.fromWeb(result.data as import('node:stream/web').ReadableStream<Uint8Array>)
    // A chunk missing or a digest mismatch surfaces here, after the last chunk.
    result.error.then((err) => { if (err) stream.destroy(err) }).catch(() => {})
    return { media: storedOf(objectId, result.info, metaOf(result.info)), stream }
  }
}

function metadataOf (meta: StoredMeta): Record<string, string> {
  return {
    kind: meta.kind,
    mimetype: meta.mimetype,
    ...(meta.fileName ? { fileName: meta.fileName } : {}),
    ...(meta.checked ? { checked: 'true' } : {})
  }
}

/** Files a client put in the bucket itself may carry no metadata: they are named by what the send says. */
function metaOf (info: ObjectInfo): StoredMeta {
  const metadata = info.metadata ?? {}
  return {
    kind: (metadata.kind ?? 'document') as MediaKind,
    mimetype: metadata.mimetype ?? 'application/octet-stream',
    ...(metadata.fileName ? { fileName: metadata.fileName } : {}),
    ...(metadata.checked === 'true' ? { checked: true } : {})
  }
}

function storedOf (objectId: string, info: ObjectInfo, meta: StoredMeta): StoredMedia {
  // The Object Store's digest is `SHA-256=<base64url>`.
  const digest = info.digest.replace(/^SHA-256=/i, '')
  return { ...meta, objectId, size: info.size, sha256: Buffer.from(digest, 'base64url').toString('hex') }
}
