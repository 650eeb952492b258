import type { Readable } from 'node:stream'
import type { HistorySyncMode, HistorySyncType, MediaKind } from '../../contracts/index.ts'
import type { InboundMessage, LidMapping } from './socket-port.ts'

export interface HistorySettings {
  mode: HistorySyncMode
  /** Messages older than this many days are left out; null: no limit. */
  days: number | null
}

/** The chunks each mode takes; an answer to the company's own request (`on_demand`) is taken unless the mode is off. */
export const SYNC_TYPES_OF: Record<HistorySyncMode, readonly HistorySyncType[]> = {
  off: [],
  recent: ['initial_bootstrap', 'recent', 'push_name', 'on_demand'],
  full: ['initial_bootstrap', 'recent', 'full', 'push_name', 'on_demand']
}

/**
 * A history chunk the phone announced (a history-sync notification), with what reading it takes.
 * It is JSON-safe: it is kept until its chunk is imported, so a holder that takes over can read a
 * chunk its predecessor was told of but did not finish.
 */
export interface HistoryNotice {
  /** Hex SHA-256 of the blob's encrypted hash (or of an inline payload): the same chunk told twice has one id. */
  id: string
  syncType: HistorySyncType
  chunkOrder: number
  /** 0–100, as the phone reports how far its sync is; null when it does not say. */
  progress: number | null
  pointer: {
    directPath?: string
    /** Base64 fields, as the notification carries them. */
    mediaKey?: string
    fileEncSha256?: string
    fileSha256?: string
    fileLength?: number
    /** A small first chunk may come inside the notification (zlib-compressed, base64). */
    inline?: string
  }
  /** For an `on_demand` chunk: the id of the request it answers, when the phone names it. */
  requestId?: string
}

/** What a history media message needs to be fetched later, when someone asks for its file (JSON-safe). */
export interface StoredMediaRef {
  kind: MediaKind
  directPath?: string
  url?: string
  /** Base64. */
  mediaKey: string
}

/** A message of the history: as a live one reads, plus whose it is and how far an own message got. */
export interface HistoryMessage extends InboundMessage {
  fromMe: boolean
  /** An own message's delivery state, as the phone last knew it. */
  state?: 'server_ack' | 'delivered' | 'read' | 'played' | 'failed'
  /** A media message's file, fetched only when asked for. */
  mediaRef?: StoredMediaRef
}

export interface HistoryChat {
  /** The chat's JID as WhatsApp names it (a phone's, a LID's or a group's). */
  jid: string
  name?: string
  /** The other name of a person's chat: its phone JID for a LID chat, its LID for a phone one. */
  alt?: string
  /** Messages the phone shows as unread. */
  unreadCount?: number
  archived?: boolean
  pinned?: boolean
  /** Unix seconds; muted until then. */
  mutedUntil?: number
}

export interface HistoryContact {
  jid: string
  /** The name the company's phone saved the contact under. */
  name?: string
  /** The name the contact gave themselves (push name). */
  notify?: string
  lid?: string
  phone?: string
}

/** A chunk's content, read. */
export interface HistoryChunk {
  chats: HistoryChat[]
  contacts: HistoryContact[]
  messages: HistoryMessage[]
  lids: LidMapping[]
}

/** The oldest message a request for older history starts from. */
export interface HistoryAnchor {
  chat: string
  messageId: string
  fromMe: boolean
  /** Unix milliseconds. */
  timestampMs: number
}

/** History through the connection. */
export interface HistoryPort {
  readonly settings: HistorySettings
  /**
   * Downloads an announced chunk and hands its content to `take` in slices of a few hundred
   * messages, each taken before the next is read: a chunk (thousands of messages) is never held
   * whole as objects. The LID map comes in the slices too (at the end, as WhatsApp writes it).
   */
  read: (notice: HistoryNotice, take: (slice: HistoryChunk) => Promise<void>) => Promise<void>
  /**
   * Asks the phone for up to `count` messages of the chat older than `anchor`; the answer comes as an
   * `on_demand` chunk. Resolves to the request's id.
   */
  requestOlder: (anchor: HistoryAnchor, count: number) => Promise<string>
  /** A history media message's file, decrypted. */
  downloadMedia: (ref: StoredMediaRef) => Promise<Readable>
}
