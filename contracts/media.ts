import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

export const MEDIA_KINDS = ['image', 'video', 'audio', 'document', 'sticker'] as const
export type MediaKind = (typeof MEDIA_KINDS)[number]
export const MediaKind = Type.Union([
  Type.Literal('image'), Type.Literal('video'), Type.Literal('audio'), Type.Literal('document'), Type.Literal('sticker')
])

export const OBJECT_ID_PATTERN = '^[A-Za-z0-9_-]{8,128}$'
export const ObjectId = Type.String({
  pattern: OBJECT_ID_PATTERN,
  description: 'A file in the media bucket (MEDIA_BUCKET), stored under the object name `<companyId>/<objectId>`'
})

/** Where a company's file lives in the media bucket (NATS Object Store): clients on NATS put and get it there. */
export function mediaObjectName (companyId: string, objectId: string): string {
  return `${companyId}/${objectId}`
}

export const MAX_CAPTION_LENGTH = 1024

/** A file to send: exactly one of `url`, `data` and `objectId`. */
export const OutboundMedia = Type.Object({
  kind: MediaKind,
  url: Type.Optional(Type.String({
    minLength: 8,
    maxLength: 2048,
    description: 'An http(s) URL the gateway fetches (public addresses only)'
  })),
  data: Type.Optional(Type.String({ minLength: 1, description: 'The file, base64 (small files: a NATS message holds 1 MB)' })),
  objectId: Type.Optional(ObjectId),
  mimetype: Type.Optional(Type.String({ minLength: 3, maxLength: 255, description: 'Checked against the file\'s content' })),
  fileName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  caption: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_CAPTION_LENGTH })),
  ptt: Type.Optional(Type.Boolean({ description: 'Audio as a voice note (sent as ogg/opus; other formats are converted with ffmpeg)' }))
})
export type OutboundMedia = Static<typeof OutboundMedia>

/** What the `message` event says of a media message; the file itself is in the media bucket. */
export const InboundMedia = Type.Object({
  kind: MediaKind,
  mimetype: Type.String(),
  size: Type.Integer({ description: 'Bytes' }),
  sha256: Type.String({ description: 'Hex SHA-256 of the file' }),
  objectId: ObjectId,
  fileName: Type.Optional(Type.String()),
  caption: Type.Optional(Type.String()),
  seconds: Type.Optional(Type.Integer()),
  ptt: Type.Optional(Type.Boolean())
})
export type InboundMedia = Static<typeof InboundMedia>

/** What a received media message says of its file, whether or not the file itself is at hand. */
export const DescribedMedia = {
  kind: MediaKind,
  mimetype: Type.Optional(Type.String()),
  fileName: Type.Optional(Type.String()),
  caption: Type.Optional(Type.String()),
  seconds: Type.Optional(Type.Integer()),
  ptt: Type.Optional(Type.Boolean())
}

/** A media message whose file could not be fetched: the event still says what it was. */
export const UnavailableMedia = Type.Object({
  ...DescribedMedia,
  error: Type.Object({ code: Type.String(), message: Type.String() })
})
export type UnavailableMedia = Static<typeof UnavailableMedia>

export const MediaParams = Type.Object({ companyId: CompanyId, objectId: ObjectId })
export type MediaParams = Static<typeof MediaParams>
