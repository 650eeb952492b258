import { ErrorCode } from '../contracts/index.ts'
import { GatewayError } from './errors.ts'

/**
 * A picture WhatsApp shows for a group or a number: a JPEG or a PNG, by its bytes rather than its
 * claim (the connection scales and re-encodes it; anything else it cannot read). `what` names it in
 * the error, e.g. "a group picture".
 */
export async function pictureOf (base64: string, what: string): Promise<Buffer> {
  const image = Buffer.from(base64, 'base64')
  // Loaded by the first picture: file-type is not worth its memory to a replica that never sees one.
  const { fileTypeFromBuffer } = await import('file-type')
  const type = await fileTypeFromBuffer(image)
  if (type?.mime !== 'image/jpeg' && type?.mime !== 'image/png') {
    throw new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `${what} is a JPEG or a PNG; this is ${type?.mime ?? 'not an image'}`)
  }
  return image
}
