import type { Readable } from 'node:stream'
import type { AuthenticationCreds, SignalKeyStore } from '@whiskeysockets/baileys'
import type { ContactCard, Location, MediaKind } from '../../contracts/index.ts'
import type { FastifyBaseLogger } from 'fastify'
import type { CallEvent, CallPort } from './calls-port.ts'
import type { HistoryNotice, HistoryPort, HistorySettings } from './history-port.ts'
import type { ProxyFailure, ProxyRoute } from '../../core/proxy.ts'
import type { ChatEvent, ChatPort } from './chats-port.ts'
import type { InboundPollVote, PollPort } from './polls-port.ts'
import type { BlocklistEvent, PictureChange, ProfilePort } from './profiles-port.ts'
import type { InboundStatus, StatusPort } from './status-port.ts'

/** What a session needs of a WhatsApp connection; the Baileys adapter and the test double both provide it. */
export interface ConnectionUpdate {
  connection?: 'connecting' | 'open' | 'close'
  /** A QR reference to show the phone (raw string). */
  qr?: string
  /** Close code (Baileys' `lastDisconnect.error.output.statusCode`); undefined after our own end(). */
  closeCode?: number
  isNewLogin?: boolean
  /** The connection went through a proxy and the proxy failed it (unreachable, or it refused the credentials). */
  proxyFailure?: { kind: ProxyFailure, message: string }
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
  /** In a group (`from` is the group's JID): who wrote it, as the group addresses them (a LID JID in LID groups). */
  participant?: string
  /** In a group: the writer's phone JID, when WhatsApp tells it (`participant_pn`). */
  participantAlt?: string
  /** JIDs the message mentions (`@…` in its text). */
  mentions?: string[]
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

/** A group as WhatsApp describes it, without Baileys' names. */
export interface GroupMeta {
  id: string
  subject: string
  description?: string
  /** The creator's JID, and phone JID when known. */
  owner?: string
  ownerPhone?: string
  /** Unix seconds. */
  creation?: number
  size: number
  participants: GroupMember[]
  announce: boolean
  restrict: boolean
  joinApproval: boolean
  memberAddMode: boolean
  ephemeralSeconds: number
}

export interface GroupMember {
  /** As the group addresses the member: a LID JID in LID groups. */
  jid: string
  phone?: string
  lid?: string
  admin?: 'admin' | 'superadmin'
}

/** One participant's answer to an add, remove, promote, demote or join-request decision: WhatsApp answers each apart. */
export interface GroupMemberResult {
  jid: string
  /** 200 done; 403 privacy blocks adding; 404 not on WhatsApp (or not in the group); 409 already in; … */
  status: number
  /** With a 403 add: the invitation WhatsApp offers instead (for a group invite message to them; `expiration` in Unix seconds). */
  addRequest?: { code: string, expiration: number }
}

export type GroupSetting = 'announcement' | 'not_announcement' | 'locked' | 'unlocked'

/** What WhatsApp refused, with its code (401 not an admin, 403 not a participant, 404 no such group, …). */
export class WhatsAppRefusal extends Error {
  readonly code: number
  constructor (code: number, message: string) {
    super(message)
    this.code = code
  }
}

/** Groups through the connection; each call is one `w:g2` query and throws WhatsAppRefusal when WhatsApp says no. */
export interface GroupPort {
  create: (subject: string, participantJids: string[]) => Promise<GroupMeta>
  /** The group's metadata, from the connection's cache when the group's events have not changed it. */
  metadata: (groupJid: string) => Promise<GroupMeta>
  participating: () => Promise<GroupMeta[]>
  updateParticipants: (groupJid: string, jids: string[], action: 'add' | 'remove' | 'promote' | 'demote') => Promise<GroupMemberResult[]>
  setSubject: (groupJid: string, subject: string) => Promise<void>
  /** An empty description removes it. */
  setDescription: (groupJid: string, description: string) => Promise<void>
  setPicture: (groupJid: string, image: Buffer) => Promise<void>
  setSetting: (groupJid: string, setting: GroupSetting) => Promise<void>
  setMemberAddMode: (groupJid: string, membersCanAdd: boolean) => Promise<void>
  setJoinApproval: (groupJid: string, on: boolean) => Promise<void>
  /** 0 turns disappearing messages off. */
  setDisappearing: (groupJid: string, seconds: number) => Promise<void>
  inviteCode: (groupJid: string) => Promise<string>
  /** A new code; the old link stops working. */
  revokeInvite: (groupJid: string) => Promise<string>
  inviteInfo: (code: string) => Promise<GroupMeta>
  /** Joins by an invite code; the group's JID (undefined when joining waits for an admin's approval). */
  acceptInvite: (code: string) => Promise<string | undefined>
  joinRequests: (groupJid: string) => Promise<{ jid: string, phone?: string, requestedAt?: number }[]>
  decideJoinRequests: (groupJid: string, jids: string[], action: 'approve' | 'reject') => Promise<GroupMemberResult[]>
  leave: (groupJid: string) => Promise<void>
}

/**
 * A change to a group the number is in, as WhatsApp notified it: `author` is who made it (a JID),
 * `self` whether it concerns the company's own number (it joined, left, was added or removed).
 */
export type GroupEvent =
  | {
    kind: 'update',
    group: string,
    author?: string,
    change: Partial<Pick<GroupMeta, 'subject' | 'description' | 'announce' |
    'restrict' | 'joinApproval' | 'memberAddMode' | 'ephemeralSeconds'>> & { inviteCode?: string, picture?: boolean }
  }
  | {
    kind: 'participants',
    group: string,
    author?: string,
    action: 'add' | 'remove' | 'promote' | 'demote' | 'join_request',
    participants: GroupMember[]
  }
  | { kind: 'joined', group: string, author?: string, subject?: string }
  | { kind: 'left', group: string, author?: string }

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
  groups: GroupEvent[]
  pollVotes: InboundPollVote[]
  calls: CallEvent[]
  blocklist: BlocklistEvent[]
  pictures: PictureChange[]
  chats: ChatEvent[]
  statuses: InboundStatus[]
  /** History chunks the phone announced that the company's mode takes (history-port.ts). */
  historyNotices: HistoryNotice[]
}

export interface SentMessage {
  messageId: string
  /** Unix seconds. */
  timestamp: number
}

export interface WaSocket {
  on: <K extends keyof SocketEvents>(event: K, listener: (payload: SocketEvents[K]) => void) => void
  /** `jid` is a person's JID or a group's; `mentions` (JIDs) become WhatsApp mentions of a text or a caption. */
  sendText: (jid: string, text: string, options?: SendOptions) => Promise<SentMessage>
  sendMedia: (jid: string, file: OutboundFile, options?: SendOptions) => Promise<SentMessage>
  sendContent: (jid: string, content: OutboundContent, options?: SendOptions) => Promise<SentMessage>
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
  groups: GroupPort
  polls: PollPort
  calls: CallPort
  profiles: ProfilePort
  chats: ChatPort
  status: StatusPort
  history: HistoryPort
}

export interface SendOptions {
  quoted?: Quoted
  mentions?: string[]
  /**
   * WhatsApp's id for the message, chosen by the caller instead of a new one: a scheduled message's is
   * derived from its own id, so a resend after a holder died mid-send is the same message, which
   * WhatsApp's clients show once.
   */
  messageId?: string
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
  /** The company's proxy: every connection of the socket (WebSocket, uploads, downloads) goes through it; unset: direct. */
  proxy?: ProxyRoute
  /** What of the phone's history the connection takes (default: what WhatsApp sends, no age limit). */
  history?: HistorySettings
}

export type SocketFactory = (options: SocketOptions) => WaSocket
