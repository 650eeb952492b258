import type { Readable } from 'node:stream'
import type { AuthenticationCreds, SignalKeyStore } from '@whiskeysockets/baileys'
import type { ContactCard, Location, MediaKind } from '../../contracts/index.ts'
import type { FastifyBaseLogger } from 'fastify'

/** What a session needs of a WhatsApp connection; the Baileys adapter and the test double both provide it. */
export interface ConnectionUpdate {
  connection?: 'connecting' | 'open' | 'close'
  /** A QR reference to show the phone (raw string). */
  qr?: string
  /** Close code (Baileys' `lastDisconnect.error.output.statusCode`); undefined after our own end(). */
  closeCode?: number
  isNewLogin?: boolean
}

export interface InboundMessage {
  id: string
  /** Chat JID: a phone JID or a LID JID (`…@lid`). */
  from: string
  /** The phone JID when `from` is a LID (Baileys 7 `remoteJidAlt`). */
  fromAlt?: string
  pushName?: string
  text?: string
  /** Unix seconds. */
  timestamp: number
  /** WhatsApp kept it while this device was offline and handed it over at login. */
  offline?: boolean
  /** A media message: what it says of its file, which `downloadMedia(id)` fetches. */
  media?: InboundMediaRef
  location?: Location
  contact?: { name: string, vcard: string }
  /** The message it replies to. */
  quotedMessageId?: string
}

export interface InboundMediaRef {
  kind: MediaKind
  mimetype?: string
  fileName?: string
  caption?: string
  seconds?: number
  ptt?: boolean
  /** Hex SHA-256 of the file, as the sender declared it. */
  sha256?: string
}

/** A file to send, read as it goes out. */
export interface OutboundFile {
  kind: MediaKind
  stream: Readable
  mimetype: string
  fileName?: string
  caption?: string
  ptt?: boolean
}

export interface Receipt {
  id: string
  to: string
  status: 'server' | 'delivered' | 'read' | 'played' | 'error'
  timestamp: number
  /** For `error`: WhatsApp's refusal code (463, …). */
  code?: string
}

/** A contact's phone JID and LID, as WhatsApp told the connection they belong together. */
export interface LidMapping {
  lid: string
  phone: string
}

/** A message to quote: its id, whose it is, and its text when known (WhatsApp shows it in the reply). */
export interface Quoted {
  id: string
  fromMe: boolean
  text?: string
}

/** What else a connection sends besides texts, media and reactions. */
export type OutboundContent =
  | { location: Location }
  | { contact: { name: string, vcard: string } }
  | { edit: { messageId: string, text: string } }
  | { delete: { messageId: string } }
export type { ContactCard }

export interface InboundReaction {
  messageId: string
  from: string
  emoji: string
  timestamp: number
}

export interface SocketEvents {
  connection: ConnectionUpdate
  creds: AuthenticationCreds
  messages: InboundMessage[]
  receipts: Receipt[]
  reactions: InboundReaction[]
  lids: LidMapping[]
}

export interface SentMessage {
  messageId: string
  /** Unix seconds. */
  timestamp: number
}

export interface WaSocket {
  on: <K extends keyof SocketEvents>(event: K, listener: (payload: SocketEvents[K]) => void) => void
  sendText: (jid: string, text: string, options?: { quoted?: Quoted }) => Promise<SentMessage>
  sendMedia: (jid: string, file: OutboundFile, options?: { quoted?: Quoted }) => Promise<SentMessage>
  sendContent: (jid: string, content: OutboundContent, options?: { quoted?: Quoted }) => Promise<SentMessage>
  /**
   * The file of a recent media message, decrypted, as a stream. When WhatsApp's media server no
   * longer has it (404/410), the phone is asked to upload it again first.
   */
  downloadMedia: (messageId: string) => Promise<Readable>
  react: (jid: string, key: { id: string, fromMe: boolean }, emoji: string) => Promise<SentMessage>
  markRead: (jid: string, messageIds: string[]) => Promise<void>
  setPresence: (presence: 'available' | 'unavailable' | 'composing' | 'recording' | 'paused', jid?: string) => Promise<void>
  /** Whether each phone JID is on WhatsApp, with its LID when WhatsApp gives one. */
  onWhatsApp: (jids: string[]) => Promise<{ jid: string, exists: boolean, lid?: string }[]>
  /** The phone JID WhatsApp gave for a LID (what the connection learned), if any. */
  phoneOfLid: (lid: string) => Promise<string | undefined>
  /** E.164 digits without `+`; the socket must be waiting for a QR. */
  requestPairingCode: (phoneDigits: string) => Promise<string>
  /** Closes without a close event and removes every listener; a closing handshake that takes too long is cut (WA_CLOSE_TIMEOUT_MS). */
  end: () => Promise<void>
  /** Unlinks the device; the socket then closes with 401. */
  logout: () => Promise<void>
}

export interface SocketAuth {
  creds: AuthenticationCreds
  keys: SignalKeyStore
}

export interface SocketOptions {
  companyId: string
  auth: SocketAuth
  log: FastifyBaseLogger
  /**
   * The monotonic time (performance.now()) after which the socket writes nothing and cuts itself
   * off: its lease may belong to another replica by then, even if this one's timers ran late.
   */
  writableUntil?: () => number
}

export type SocketFactory = (options: SocketOptions) => WaSocket
