import type { FastifyBaseLogger } from 'fastify'
import { ErrorCode, type InboundMedia, type UnavailableMedia } from '../../contracts/index.ts'
import type { Media } from '../media/index.ts'
import type { InboundMediaRef, WaSocket } from './socket-port.ts'

/** What fetching a received file needs: the message, its connection (none once it closed) and where files are kept. */
export interface InboundFile {
  companyId: string
  messageId: string
  ref: InboundMediaRef
  socket: WaSocket | undefined
  save: Media['save']
  log: FastifyBaseLogger
}

/**
 * Downloads a received file (a contact's message, a status post) into the media bucket; one that
 * cannot be had is described with why, so its event still goes out.
 */
export async function fetchInboundMedia (file: InboundFile): Promise<InboundMedia | UnavailableMedia> {
  const { companyId, messageId, ref, socket, save, log } = file
  const described = {
    kind: ref.kind,
    ...(ref.fileName ? { fileName: ref.fileName } : {}),
    ...(ref.caption ? { caption: ref.caption } : {}),
    ...(ref.seconds ? { seconds: ref.seconds } : {}),
    ...(ref.ptt ? { ptt: true } : {})
  }
  const mimetype = ref.mimetype ?? 'application/octet-stream'
  try {
    if (!socket) throw new Error('the connection closed before the file was fetched')
    const stored = await save(companyId, await socket.downloadMedia(messageId), {
      kind: ref.kind, mimetype, ...(ref.fileName ? { fileName: ref.fileName } : {})
    })
    // Baileys checks neither the MAC nor the hashes of what it downloads; the declared SHA-256 is checked here.
    if (ref.sha256 && ref.sha256 !== stored.sha256) throw new Error('the file does not match the SHA-256 its message declares')
    return { ...described, mimetype, size: stored.size, sha256: stored.sha256, objectId: stored.objectId }
  } catch (err) {
    log.warn({ err, companyId, messageId }, 'a received file could not be fetched')
    return { ...described, mimetype, error: { code: ErrorCode.MEDIA_UNAVAILABLE, message: (err as Error).message } }
  }
}
