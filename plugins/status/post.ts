import { ErrorCode, STATUS_FONTS, type StatusPostRequest } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/**
 * How many JIDs one status send lists: WhatsApp takes a status to a few contacts at a time (Evolution
 * API sends batches of 10), and every device of a batch gets the sender key, so a batch stays small.
 */
export const STATUS_BATCH_SIZE = 10

const invalid = (field: string, message: string) =>
  new GatewayError(ErrorCode.VALIDATION_ERROR, message, { details: [{ field, message }] })

/** A request's content and audience are each given exactly one way; a background and a font go with a text only. */
export function checkStatusRequest (request: StatusPostRequest): void {
  if ((request.text === undefined) === (request.media === undefined)) {
    throw invalid('/text', 'a status is either a `text` or a `media` (an image or a video with its `caption`)')
  }
  if (request.media && (request.backgroundColor !== undefined || request.font !== undefined)) {
    throw invalid('/backgroundColor', '`backgroundColor` and `font` are a text status\'s; a media status has a `caption`')
  }
  if ((request.recipients === undefined) === (request.audience === undefined)) {
    throw invalid('/recipients', 'name who sees it: `recipients` (phones) or `audience: "contacts"` (every contact of the history)')
  }
}

/** `#RRGGBB` (opaque) or `#AARRGGBB` as the ARGB number WhatsApp carries. */
export function argbOf (color: string): number {
  const hex = color.replace('#', '')
  return Number.parseInt(hex.length === 6 ? `ff${hex}` : hex, 16)
}

/** A font by its number or its name, as WhatsApp numbers it. */
export function fontOf (font: StatusPostRequest['font']): number | undefined {
  if (font === undefined) return undefined
  return typeof font === 'number' ? font : STATUS_FONTS[font as keyof typeof STATUS_FONTS]
}

/**
 * The sends of one post: the contacts in batches of STATUS_BATCH_SIZE, the company's own JID in the
 * first, so its phone and other linked devices show the post too (once, not with every batch).
 */
export function batchesOf (ownJid: string, contactJids: string[]): string[][] {
  const batches: string[][] = []
  for (let start = 0; start < contactJids.length; start += STATUS_BATCH_SIZE) {
    batches.push(contactJids.slice(start, start + STATUS_BATCH_SIZE))
  }
  batches[0] = [ownJid, ...batches[0] ?? []]
  return batches
}
