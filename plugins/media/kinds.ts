import { ErrorCode, type MediaKind } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

const MB = 1024 * 1024

/** What WhatsApp takes per kind: its size limit and the content types its clients play as that kind. */
const RULES: Record<MediaKind, { maxBytes: number, types: readonly string[] | 'any' }> = {
  image: { maxBytes: 16 * MB, types: ['image/jpeg', 'image/png', 'image/webp'] },
  video: { maxBytes: 16 * MB, types: ['video/mp4', 'video/3gpp', 'video/quicktime'] },
  audio: {
    maxBytes: 16 * MB,
    types: ['audio/ogg', 'audio/opus', 'audio/mpeg', 'audio/mp4', 'audio/x-m4a', 'audio/aac', 'audio/amr', 'audio/wav']
  },
  document: { maxBytes: 100 * MB, types: 'any' },
  // Static stickers are 100 KB at most, animated ones 500 KB.
  sticker: { maxBytes: 500 * 1024, types: ['image/webp'] }
}

/** The bytes file-type needs to recognise a file. */
export const SNIFF_BYTES = 4_100

/** The content type WhatsApp expects of a voice note. */
export const VOICE_NOTE_MIMETYPE = 'audio/ogg; codecs=opus'

const bare = (mimetype: string) => mimetype.split(';')[0].trim().toLowerCase()

/** The largest file of this kind the gateway takes: MEDIA_MAX_BYTES or WhatsApp's limit, whichever is smaller. */
export function maxBytesOf (kind: MediaKind, mediaMaxBytes: number): number {
  return Math.min(mediaMaxBytes, RULES[kind].maxBytes)
}

export function tooLarge (kind: MediaKind, limit: number): GatewayError {
  return new GatewayError(ErrorCode.MEDIA_TOO_LARGE, `the ${kind} is larger than ${limit} bytes, the most this gateway sends as one`)
}

/**
 * The content type of a file of `kind`, from its first bytes: it must be one the kind takes, and the
 * one declared (by the client or the server it came from) if any. Documents take anything, named
 * by what was declared when their content is not recognised.
 */
export async function contentTypeOf (kind: MediaKind, head: Uint8Array, declared: string | undefined): Promise<string> {
  // Loaded by the first file: file-type is not worth its memory to a replica that never sees one.
  const { fileTypeFromBuffer } = await import('file-type')
  const sniffed = (await fileTypeFromBuffer(head))?.mime
  const rule = RULES[kind]
  if (rule.types === 'any') {
    return declared && declared !== 'application/octet-stream' ? declared : sniffed ?? declared ?? 'application/octet-stream'
  }
  if (!sniffed) throw new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `the file is not a ${kind} WhatsApp takes (${rule.types.join(', ')})`)
  if (!rule.types.includes(bare(sniffed))) {
    throw new GatewayError(
      ErrorCode.UNSUPPORTED_MEDIA,
      `the file is ${sniffed}, which WhatsApp does not take as ${kind} (${rule.types.join(', ')})`
    )
  }
  if (declared && bare(declared) !== 'application/octet-stream' && !sameType(declared, sniffed)) {
    throw new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `the file was declared ${declared} but it is ${sniffed}`)
  }
  return kind === 'audio' && isOggOpus(sniffed) ? VOICE_NOTE_MIMETYPE : sniffed
}

/** Ogg with Opus: what WhatsApp plays as a voice note. */
export function isOggOpus (mimetype: string): boolean {
  const type = bare(mimetype)
  return type === 'audio/ogg' || type === 'audio/opus'
}

/** Declared and sniffed agree: the same type, or names of one format (audio/ogg and audio/opus, m4a and mp4). */
function sameType (declared: string, sniffed: string): boolean {
  const family = (type: string) => ({ 'audio/opus': 'audio/ogg', 'audio/x-m4a': 'audio/mp4', 'video/quicktime': 'video/mp4' })[type] ?? type
  return family(bare(declared)) === family(bare(sniffed))
}
