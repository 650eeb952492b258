import { isJidGroup, proto } from '@whiskeysockets/baileys'
import { lidOf, userJid } from './accounts.ts'
import { encryptMedia, MESSAGE_FIELD, type MediaServer } from './media.ts'

/** A message the phone holds, kept small: its protobuf is made only when a chunk carrying it is built. */
export interface HistoryMessage {
  id: string
  fromMe: boolean
  /** Unix seconds. */
  timestamp: number
  text?: string
  media?: HistoryMedia
  /** A group message's sender (phone JID); absent for the account's own. */
  participant?: string
  /** The sender's name on a received group message (a person chat's messages carry the chat's name). */
  pushName?: string
}

export interface HistoryMedia {
  kind: 'image' | 'document'
  fileName?: string
  /** Set once the file is hosted (the first time a chunk carries the message). */
  hosted?: { directPath: string, url: string, mediaKey: Buffer, fileSha256: Buffer, fileEncSha256: Buffer, fileLength: number }
}

/** One chat on the phone: its messages oldest first. */
export interface HistoryChat {
  /** The conversation's id as WhatsApp names it: a phone JID, a LID (its phone known) or a group. */
  id: string
  name?: string
  /** Phone JID and LID of a person chat, both when known. */
  pnJid?: string
  lidJid?: string
  messages: HistoryMessage[]
}

/** What the control API adds to a phone's history. */
export interface ChatInput {
  jid: string
  name?: string
  /** The contact's LID (`<digits>@lid`, or true: the simulator's own for that phone): the chat is addressed by it. */
  lid?: string | boolean
  messages: MessageInput[]
}

export interface MessageInput {
  id?: string
  fromMe: boolean
  text?: string
  media?: { kind: 'image' | 'document', fileName?: string }
  /** Unix seconds. */
  timestamp: number
  participant?: string
  pushName?: string
}

export interface GenerateInput {
  chats: number
  messagesPerChat: number
  days?: number
  lidShare?: number
  mediaShare?: number
}

/** The chats and messages one account's phone holds, by chat id; a chat's messages oldest first. */
export class PhoneHistory {
  readonly chats = new Map<string, HistoryChat>()
  #generated = 0
  /** Messages added without an id get `H<n>` by this count. */
  #unnamed = 0

  get messageCount (): number {
    let count = 0
    for (const chat of this.chats.values()) count += chat.messages.length
    return count
  }

  add (inputs: ChatInput[]): void {
    for (const input of inputs) {
      const chat = this.#chat(input.jid, input.name, input.lid)
      for (const message of input.messages) {
        chat.messages.push({
          id: message.id ?? `HM${this.#unnamed++}`,
          fromMe: message.fromMe,
          timestamp: message.timestamp,
          ...(message.text !== undefined ? { text: message.text } : {}),
          ...(message.media ? { media: { ...message.media } } : {}),
          ...(message.participant ? { participant: message.participant } : {}),
          ...(message.pushName ? { pushName: message.pushName } : {})
        })
      }
      chat.messages.sort((a, b) => a.timestamp - b.timestamp)
    }
  }

  /**
   * Deterministic chats for load: contact `n` is 7900<n padded>, ids `H<chat>-<n>`, timestamps spread
   * evenly over the last `days` days (the newest chat first), every other message the account's own.
   */
  generate (input: GenerateInput, now: number): void {
    const span = (input.days ?? 30) * 86_400
    const total = input.chats * input.messagesPerChat
    const everyLid = input.lidShare ? Math.round(1 / input.lidShare) : 0
    const everyMedia = input.mediaShare ? Math.round(1 / input.mediaShare) : 0
    let sequence = 0
    for (let n = 0; n < input.chats; n++) {
      const index = this.#generated++
      const phone = `7900${String(index).padStart(7, '0')}`
      const chat = this.#chat(userJid(phone), `Contact ${index}`, everyLid > 0 && index % everyLid === everyLid - 1)
      for (let m = 0; m < input.messagesPerChat; m++) {
        // Message `sequence` of `total`: the first chats' messages are the newest.
        const age = Math.floor(span * (sequence++ + 0.5) / total)
        const media = everyMedia > 0 && m % everyMedia === everyMedia - 1
        chat.messages.push({
          id: `H${index}-${m}`,
          fromMe: m % 2 === 1,
          timestamp: now - age,
          ...(media ? { media: { kind: m % 2 === 0 ? 'image' as const : 'document' as const, fileName: `file-${index}-${m}.pdf` } } : {}),
          // Every seventh text carries a link: WhatsApp sends those as extendedTextMessage.
          text: media ? `caption ${index}-${m}` : m % 7 === 6 ? `see https://example.com/${index}/${m}` : `message ${m} of chat ${index}`
        })
      }
      chat.messages.sort((a, b) => a.timestamp - b.timestamp)
    }
  }

  #chat (jid: string, name: string | undefined, lid: string | boolean | undefined): HistoryChat {
    const group = isJidGroup(jid)
    const lidJid = group || !lid ? undefined : typeof lid === 'string' ? lid : `${lidOf(jid.split('@')[0])}@lid`
    const id = lidJid ?? jid
    let chat = this.chats.get(id)
    if (!chat) {
      chat = { id, messages: [], ...(group ? {} : { pnJid: jid }), ...(lidJid ? { lidJid } : {}) }
      this.chats.set(id, chat)
    }
    if (name) chat.name = name
    return chat
  }
}

/** A run of one chat's messages (indices into its oldest-first list, `from` inclusive, `to` exclusive). */
export interface Segment { chat: HistoryChat, from: number, to: number }

/** One history sync chunk as planned: built into a blob only when sent. */
export interface PlannedChunk {
  syncType: proto.HistorySync.HistorySyncType
  chunkOrder: number
  progress: number
  segments: Segment[]
  /** A PUSH_NAME chunk: the contacts' names instead of conversations. */
  pushNames?: { id: string, pushname: string }[]
  /** An ON_DEMAND answer: the request's message id. */
  peerDataRequestSessionId?: string
}

/** Build the conversations of a chunk: each segment's messages newest first, as WhatsApp orders them. */
export function historySyncOf (chunk: PlannedChunk, media: MediaServer): proto.IHistorySync {
  const mappings = new Map<string, string>()
  const conversations = chunk.segments.map(({ chat, from, to }): proto.IConversation => {
    if (chat.pnJid && chat.lidJid) mappings.set(chat.pnJid, chat.lidJid)
    const messages: proto.IHistorySyncMsg[] = []
    for (let index = to - 1; index >= from; index--) {
      messages.push({ message: webMessageOf(chat, chat.messages[index], media), msgOrderId: index + 1 })
    }
    const last = chat.messages.at(-1)
    return {
      id: chat.id,
      ...(chat.name ? { name: chat.name, displayName: chat.name } : {}),
      ...(chat.pnJid && chat.id !== chat.pnJid ? { pnJid: chat.pnJid } : {}),
      ...(chat.lidJid && chat.id !== chat.lidJid ? { lidJid: chat.lidJid } : {}),
      ...(last ? { conversationTimestamp: last.timestamp, lastMsgTimestamp: last.timestamp } : {}),
      messages
    }
  })
  return {
    syncType: chunk.syncType,
    chunkOrder: chunk.chunkOrder,
    progress: chunk.progress,
    conversations,
    ...(chunk.pushNames ? { pushnames: chunk.pushNames } : {}),
    phoneNumberToLidMappings: [...mappings].map(([pnJid, lidJid]) => ({ pnJid, lidJid }))
  }
}

function webMessageOf (chat: HistoryChat, record: HistoryMessage, media: MediaServer): proto.IWebMessageInfo {
  const group = isJidGroup(chat.id)
  const participant = group && !record.fromMe ? record.participant : undefined
  return {
    key: { remoteJid: chat.id, fromMe: record.fromMe, id: record.id, ...(participant ? { participant } : {}) },
    message: contentOf(record, media),
    messageTimestamp: record.timestamp,
    ...(participant ? { participant } : {}),
    ...(record.fromMe
      ? { status: proto.WebMessageInfo.Status.READ }
      : { pushName: record.pushName ?? (group ? undefined : chat.name), status: proto.WebMessageInfo.Status.DELIVERY_ACK })
  }
}

const LINK = /https?:\/\//

/** The file of a history media message (made up, small): what downloading it must give. */
export const historyFileOf = (messageId: string) => Buffer.from(`history file of ${messageId}`.padEnd(300, '.'))

/** A small made-up file per media message, hosted once (the phone uploaded it when it was sent). */
function contentOf (record: HistoryMessage, media: MediaServer): proto.IMessage {
  // WhatsApp sends a text with a link as an extendedTextMessage (it carries the preview), a plain one as conversation.
  if (!record.media) {
    return LINK.test(record.text ?? '') ? { extendedTextMessage: { text: record.text } } : { conversation: record.text ?? '' }
  }
  const kind = record.media.kind
  if (!record.media.hosted) {
    const plain = historyFileOf(record.id)
    const encrypted = encryptMedia(plain, kind)
    const { directPath, url } = media.host(encrypted.body)
    record.media.hosted = { directPath, url, ...encrypted }
  }
  const { directPath, url, mediaKey, fileSha256, fileEncSha256, fileLength } = record.media.hosted
  const common = { url, directPath, mediaKey, fileSha256, fileEncSha256, fileLength, mediaKeyTimestamp: record.timestamp }
  if (kind === 'image') return { [MESSAGE_FIELD.image]: { ...common, mimetype: 'image/jpeg', caption: record.text } }
  const fileName = record.media.fileName ?? 'file.pdf'
  return { [MESSAGE_FIELD.document]: { ...common, mimetype: 'application/pdf', fileName, caption: record.text } }
}
