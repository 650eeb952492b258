import type { AuthenticationCreds, SignalKeyStore } from '@whiskeysockets/baileys'
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
}

export interface Receipt {
  id: string
  to: string
  status: 'server' | 'delivered' | 'read' | 'played' | 'error'
  timestamp: number
}

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
}

export interface SentMessage {
  messageId: string
  /** Unix seconds. */
  timestamp: number
}

export interface WaSocket {
  on: <K extends keyof SocketEvents>(event: K, listener: (payload: SocketEvents[K]) => void) => void
  sendText: (jid: string, text: string, options?: { quoted?: string }) => Promise<SentMessage>
  react: (jid: string, key: { id: string, fromMe: boolean }, emoji: string) => Promise<SentMessage>
  markRead: (jid: string, messageIds: string[]) => Promise<void>
  setPresence: (presence: 'available' | 'unavailable' | 'composing' | 'paused', jid?: string) => Promise<void>
  onWhatsApp: (jids: string[]) => Promise<{ jid: string, exists: boolean }[]>
  /** E.164 digits without `+`; the socket must be waiting for a QR. */
  requestPairingCode: (phoneDigits: string) => Promise<string>
  /** Closes without a close event and removes every listener. */
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
}

export type SocketFactory = (options: SocketOptions) => WaSocket
