import type { InboundMediaRef, OutboundFile, SentMessage } from './socket-port.ts'

/** The one chat every status post goes to and comes from. */
export const STATUS_BROADCAST = 'status@broadcast'

/** What a status shows: a text on a background (ARGB) in one of WhatsApp's fonts, or an image or video. */
export type OutboundStatus =
  | { text: string, backgroundArgb?: number, font?: number }
  | { file: OutboundFile & { kind: 'image' | 'video' } }

/** A posted status: its id, and how many batches carried it. */
export interface PostedStatus extends SentMessage {
  batches: number
}

/** A contact's status post, as it arrives from `status@broadcast`. */
export interface InboundStatus {
  id: string
  /** Who posted it, as WhatsApp names them (a LID or a phone JID), and the other form when told. */
  poster: string
  posterAlt?: string
  pushName?: string
  /** A text post's text, or a media post's caption. */
  text?: string
  backgroundArgb?: number
  font?: number
  /** A media post: what it says of its file, which the socket's `downloadMedia(id)` fetches. */
  media?: InboundMediaRef
  /** Unix seconds. */
  timestamp: number
  /** WhatsApp kept it while the device was offline. */
  offline?: boolean
}

/** Status posts through the connection. */
export interface StatusPort {
  /**
   * Posts one status to each batch of JIDs in turn, under one message id (a file is uploaded once):
   * every device of a batch gets the sender key with it. Include the number's own JID in a batch so
   * its other devices see the post.
   */
  post: (status: OutboundStatus, batches: string[][]) => Promise<PostedStatus>
}
