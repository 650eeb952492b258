import type makeWASocket from '@whiskeysockets/baileys'
import type { AnyMessageContent, MiscMessageGenerationOptions, WAMessage } from '@whiskeysockets/baileys'
import type { FastifyBaseLogger } from 'fastify'
import type { SentMessage, SocketEvents } from './socket-port.ts'

/**
 * What a feature area of the Baileys adapter (polls, calls, profiles, chats, status) is given to
 * build its part of the socket: Baileys' socket, the adapter's events and sends, and a way to take
 * upserted messages that are the area's (a vote, a status post) out of the inbound messages.
 */
export interface BaileysArea {
  sock: ReturnType<typeof makeWASocket>
  log: FastifyBaseLogger
  emit: <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => void
  /** The adapter's send: under an id chosen here, reported as sent even when its keys could not be stored. */
  send: (jid: string, content: AnyMessageContent, options?: MiscMessageGenerationOptions) => Promise<SentMessage>
  /** Upserted messages `owns` accepts are the area's to handle: they are no contact's inbound message. */
  claim: (owns: (message: WAMessage) => boolean) => void
  /** Keeps a received media message for the socket's `downloadMedia(id)`, as inbound messages' are. */
  rememberMedia: (message: WAMessage) => void
}
