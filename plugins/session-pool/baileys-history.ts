import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { createInflate, inflate } from 'node:zlib'
import protobuf from 'protobufjs/minimal.js'
import {
  downloadContentFromMessage, jidNormalizedUser, normalizeMessageContent, proto, type WAMessageKey
} from '@whiskeysockets/baileys'
import type { Dispatcher } from 'undici'
import { HISTORY_SYNC_TYPES, type MediaKind } from '../../contracts/index.ts'
import type { BaileysArea } from './baileys-area.ts'
import { detailsOf, mediaOf, textOf } from './baileys-content.ts'
import { groupAuthorOf, mentionsOf } from './baileys-groups.ts'
import {
  SYNC_TYPES_OF, type HistoryChunk, type HistoryMessage,
  type HistoryNotice, type HistoryPort, type HistorySettings, type StoredMediaRef
} from './history-port.ts'
import { mediaHostDispatcher } from './media-host.ts'

const STATE: Partial<Record<number, HistoryMessage['state']>> = {
  [proto.WebMessageInfo.Status.ERROR]: 'failed',
  [proto.WebMessageInfo.Status.SERVER_ACK]: 'server_ack',
  [proto.WebMessageInfo.Status.DELIVERY_ACK]: 'delivered',
  [proto.WebMessageInfo.Status.READ]: 'read',
  [proto.WebMessageInfo.Status.PLAYED]: 'played'
}

const MEDIA_FIELD: Record<MediaKind, 'imageMessage' | 'videoMessage' | 'audioMessage' | 'documentMessage' | 'stickerMessage'> = {
  image: 'imageMessage', video: 'videoMessage', audio: 'audioMessage', document: 'documentMessage', sticker: 'stickerMessage'
}

const inflateAsync = promisify(inflate)

const base64 = (bytes: Uint8Array | null | undefined) => (bytes?.length ? Buffer.from(bytes).toString('base64') : undefined)

/** A history-sync notification as a notice: what reading its chunk takes, under an id the same chunk always gets. */
export function noticeOf (notification: proto.Message.IHistorySyncNotification): HistoryNotice | undefined {
  const syncType = (HISTORY_SYNC_TYPES as readonly string[])[notification.syncType ?? -1] as HistoryNotice['syncType'] | undefined
  const inline = base64(notification.initialHistBootstrapInlinePayload)
  const identity = notification.fileEncSha256?.length ? notification.fileEncSha256 : notification.initialHistBootstrapInlinePayload
  // Baileys asks once with an empty notification whether history is wanted at all: that is no chunk.
  if (!syncType || !identity?.length || (!notification.directPath && !inline)) return undefined
  return {
    id: createHash('sha256').update(identity).digest('hex'),
    syncType,
    chunkOrder: notification.chunkOrder ?? 0,
    progress: typeof notification.progress === 'number' ? notification.progress : null,
    pointer: {
      ...(notification.directPath ? { directPath: notification.directPath } : {}),
      ...(base64(notification.mediaKey) ? { mediaKey: base64(notification.mediaKey) } : {}),
      ...(base64(notification.fileEncSha256) ? { fileEncSha256: base64(notification.fileEncSha256) } : {}),
      ...(base64(notification.fileSha256) ? { fileSha256: base64(notification.fileSha256) } : {}),
      ...(notification.fileLength ? { fileLength: Number(notification.fileLength) } : {}),
      ...(inline ? { inline } : {})
    },
    ...(notification.peerDataRequestSessionId ? { requestId: notification.peerDataRequestSessionId } : {})
  }
}

/**
 * Where history notifications are taken, before Baileys would process them: Baileys' own import
 * (its `shouldSyncHistoryMessage` answered true) downloads the chunk after the message was already
 * acknowledged to WhatsApp and hands it over only as an event; a holder that died in between would
 * lose it. Baileys is told no to every chunk, and each one the company's mode takes is passed on as
 * a notice (kept by the history plugin before it is read, so another holder can finish it).
 * Answering no also spares a new link Baileys' 20 s wait for the first chunk with every event held.
 */
export class HistoryNotices {
  readonly settings: HistorySettings
  readonly #accepted: Set<string>
  #emit: ((notices: HistoryNotice[]) => void) | undefined
  readonly #early: HistoryNotice[] = []

  constructor (settings: HistorySettings) {
    this.settings = settings
    this.#accepted = new Set(SYNC_TYPES_OF[settings.mode])
  }

  /** Baileys' `shouldSyncHistoryMessage`. */
  readonly offer = (notification: proto.Message.IHistorySyncNotification): boolean => {
    const notice = noticeOf(notification)
    if (!notice || !this.#accepted.has(notice.syncType)) return false
    if (this.#emit) this.#emit([notice])
    else this.#early.push(notice)
    return false
  }

  attach (emit: (notices: HistoryNotice[]) => void): void {
    this.#emit = emit
    if (this.#early.length > 0) emit(this.#early.splice(0))
  }
}

/** A history message's file: where it is and its key, to fetch it when someone asks. */
function mediaRefOf (message: proto.IMessage, kind: MediaKind): StoredMediaRef | undefined {
  const media = normalizeMessageContent(message)?.[MEDIA_FIELD[kind]]
  const mediaKey = base64(media?.mediaKey)
  if (!media || !mediaKey || (!media.directPath && !media.url)) return undefined
  return { kind, mediaKey, ...(media.directPath ? { directPath: media.directPath } : {}), ...(media.url ? { url: media.url } : {}) }
}

/** WhatsApp's timestamps are numbers or Longs (protobufjs' 64-bit integers), in seconds. */
const secondsOf = (value: number | { toNumber: () => number } | null | undefined) =>
  value === null || value === undefined ? 0 : typeof value === 'number' ? value : value.toNumber()

/**
 * A stored message as the history keeps it; system stubs and what describes no content (reactions,
 * protocol messages) are left out. `chat` is the message's chat, normalized once per conversation.
 * Built by assignment: this runs for every message of a sync (100,000 and more), and each spread of
 * an optional field is an object more for the garbage collector.
 */
export function historyMessageOf (info: proto.IWebMessageInfo, chat?: string): HistoryMessage | undefined {
  const { key, message } = info
  const from = chat ?? (key?.remoteJid ? jidNormalizedUser(key.remoteJid) : undefined)
  if (!key?.id || !from || !message || info.messageStubType) return undefined
  const media = mediaOf(message)
  const text = textOf(message)
  const details = detailsOf(message)
  if (!media && text === undefined && !details.location && !details.contact) return undefined
  const result: HistoryMessage = { id: key.id, from, timestamp: secondsOf(info.messageTimestamp), fromMe: key.fromMe === true }
  if (text !== undefined) result.text = text
  if (media) {
    result.media = media
    const mediaRef = mediaRefOf(message, media.kind)
    if (mediaRef) result.mediaRef = mediaRef
  }
  if (details.location) result.location = details.location
  if (details.contact) result.contact = details.contact
  if (details.quotedMessageId) result.quotedMessageId = details.quotedMessageId
  const participant = key.participant ?? info.participant
  if (participant && from.endsWith('@g.us')) Object.assign(result, groupAuthorOf({ ...key, participant } as WAMessageKey))
  const { mentions } = mentionsOf(message)
  if (mentions) result.mentions = mentions
  const alt = (key as WAMessageKey).remoteJidAlt
  if (alt) result.fromAlt = jidNormalizedUser(alt)
  if (info.pushName) result.pushName = info.pushName
  if (key.fromMe) {
    const state = STATE[info.status ?? -1]
    if (state) result.state = state
  }
  return result
}

/**
 * How many messages a slice of a chunk holds before it is handed over (a conversation is not split).
 * A slice lives until its rows are written; kept this small, its objects die in V8's young generation
 * (4 MB semi-spaces, GATEWAY_NODE_FLAGS) instead of piling up in the old one until a major GC. By
 * bench:history (100,000 messages): 500 grew the RSS by 109 MB, 200 by 55-58 MB, 100 by 47-51 MB at
 * 6,700-7,600 messages/s.
 */
const SLICE_MESSAGES = 100

const emptySlice = (): HistoryChunk => ({ chats: [], contacts: [], messages: [], lids: [] })

/** A conversation of a chunk into a slice: the chat, its name as a contact's, its LID pair and its messages. */
function addConversation (slice: HistoryChunk, conversation: proto.IConversation): void {
  if (!conversation.id) return
  const jid = jidNormalizedUser(conversation.id)
  const isLid = jid.endsWith('@lid')
  const alt = isLid ? conversation.pnJid : conversation.lidJid
  if (alt && !jid.endsWith('@g.us')) {
    slice.lids.push(isLid ? { lid: jid, phone: jidNormalizedUser(alt) } : { lid: jidNormalizedUser(alt), phone: jid })
  }
  const name = conversation.displayName ?? conversation.name ?? undefined
  slice.chats.push({
    jid,
    ...(name ? { name } : {}),
    ...(alt ? { alt: jidNormalizedUser(alt) } : {}),
    ...(conversation.unreadCount ? { unreadCount: conversation.unreadCount } : {}),
    ...(conversation.archived ? { archived: true } : {}),
    ...(conversation.pinned ? { pinned: true } : {}),
    ...(conversation.muteEndTime ? { mutedUntil: Number(conversation.muteEndTime) } : {})
  })
  if (name && !jid.endsWith('@g.us')) {
    slice.contacts.push({
      jid,
      name,
      ...(isLid ? { lid: jid } : { phone: jid }),
      ...(alt ? (isLid ? { phone: jidNormalizedUser(alt) } : { lid: jidNormalizedUser(alt) }) : {})
    })
  }
  for (const item of conversation.messages ?? []) {
    const message = item.message ? historyMessageOf(item.message, jid) : undefined
    if (message) slice.messages.push(message)
  }
}

/**
 * Reads an inflated `HistorySync` field by field (as its generated decoder does, without keeping the
 * whole message): each conversation is decoded, turned into the port's shape and let go, and a slice
 * is handed to `take` once it holds SLICE_MESSAGES messages, so a chunk's thousands of messages never
 * live as objects all at once. Push names and the LID map (written after the conversations) come in
 * the last slice.
 */
export async function readHistorySync (inflated: Uint8Array, take: (slice: HistoryChunk) => Promise<void>): Promise<void> {
  const reader = protobuf.Reader.create(inflated)
  let slice = emptySlice()
  const handOver = async () => {
    const full = slice
    slice = emptySlice()
    if (full.chats.length + full.contacts.length + full.messages.length + full.lids.length > 0) await take(full)
  }
  while (reader.pos < reader.len) {
    const tag = reader.uint32()
    switch (tag >>> 3) {
      case HISTORY_SYNC_FIELDS.conversations:
        addConversation(slice, proto.Conversation.decode(reader, reader.uint32()))
        if (slice.messages.length >= SLICE_MESSAGES) await handOver()
        break
      case HISTORY_SYNC_FIELDS.pushnames: {
        const { id, pushname } = proto.Pushname.decode(reader, reader.uint32())
        if (id && pushname) slice.contacts.push({ jid: jidNormalizedUser(id), notify: pushname })
        break
      }
      case HISTORY_SYNC_FIELDS.phoneNumberToLidMappings: {
        const { lidJid, pnJid } = proto.PhoneNumberToLIDMapping.decode(reader, reader.uint32())
        if (lidJid && pnJid) slice.lids.push({ lid: lidJid, phone: pnJid })
        break
      }
      default:
        reader.skipType(tag & 7)
    }
  }
  await handOver()
}

/** The fields of `HistorySync` (WAProto.proto) the gateway reads. */
const HISTORY_SYNC_FIELDS = { conversations: 2, pushnames: 7, phoneNumberToLidMappings: 15 } as const

/**
 * Buffers chunks are inflated into, used again from one chunk to the next: a sync of a hundred
 * chunks would otherwise leave a hundred blobs of a few MB each for the garbage collector, which
 * frees memory outside V8's heap only after a full collection. At most BLOB_BUFFERS_KEPT wait here,
 * and none once no history was read for BLOB_BUFFERS_IDLE_MS.
 */
const blobBuffers: Buffer[] = []
const BLOB_BUFFERS_KEPT = 2
const BLOB_BUFFER_BYTES = 4 * 1024 * 1024
const BLOB_BUFFERS_IDLE_MS = 60_000
let blobBuffersIdle: NodeJS.Timeout | undefined

/**
 * A chunk's blob, downloaded, decrypted and inflated into a reused buffer, handed to `read` (a few MB
 * at most). What is read out of it must not keep views of it: the history port's messages hold strings.
 */
async function withInflatedBlob (
  notice: HistoryNotice, options: RequestInit, read: (blob: Uint8Array) => Promise<void>
): Promise<void> {
  const { pointer } = notice
  if (pointer.inline) return read(await inflateAsync(Buffer.from(pointer.inline, 'base64')))
  const stream = await downloadContentFromMessage({
    directPath: pointer.directPath, mediaKey: bytes(pointer.mediaKey)
  }, 'md-msg-hist', { options })
  let buffer = blobBuffers.pop() ?? Buffer.allocUnsafe(BLOB_BUFFER_BYTES)
  let length = 0
  const inflater = createInflate()
  inflater.on('data', (part: Buffer) => {
    if (length + part.length > buffer.length) {
      const larger = Buffer.allocUnsafe(Math.max(buffer.length * 2, length + part.length))
      buffer.copy(larger, 0, 0, length)
      buffer = larger
    }
    part.copy(buffer, length)
    length += part.length
  })
  try {
    await pipeline(stream, inflater)
    await read(buffer.subarray(0, length))
  } finally {
    if (blobBuffers.length < BLOB_BUFFERS_KEPT) blobBuffers.push(buffer)
    clearTimeout(blobBuffersIdle)
    blobBuffersIdle = setTimeout(() => { blobBuffers.length = 0 }, BLOB_BUFFERS_IDLE_MS).unref()
  }
}

const bytes = (value: string | undefined) => (value ? Buffer.from(value, 'base64') : undefined)

/**
 * History in the Baileys adapter: chunks are downloaded (through the server's own media host when it
 * is not WhatsApp's: Baileys fetches history blobs from WhatsApp's fixed host), read into the port's
 * shape, and their LID map given to the connection, as Baileys' own import does.
 */
export function historyPortOf (
  area: BaileysArea, notices: HistoryNotices, options: { standIn: boolean, dispatcher?: Dispatcher }
): HistoryPort {
  const { sock, emit, log } = area
  notices.attach((list) => emit('historyNotices', list))
  let dispatcher: Promise<Dispatcher | undefined> | undefined
  // Through the company's proxy (when it has one), and, on a stand-in for WhatsApp, to its media host.
  const fetchOptions = async (): Promise<RequestInit> => {
    if (!options.standIn) return options.dispatcher ? { dispatcher: options.dispatcher } as RequestInit : {}
    dispatcher ??= sock.refreshMediaConn(false).then((conn) => {
      const host = conn.hosts[0]?.hostname
      return host ? mediaHostDispatcher(host, options.dispatcher) : options.dispatcher
    })
    const chosen = await dispatcher.catch((err: unknown) => {
      dispatcher = undefined
      throw err
    })
    return chosen ? { dispatcher: chosen } as RequestInit : {}
  }
  return {
    settings: notices.settings,
    read: async (notice, take) => {
      await withInflatedBlob(notice, await fetchOptions(), (blob) => readHistorySync(blob, async (slice) => {
        if (slice.lids.length > 0) {
          await sock.signalRepository.lidMapping.storeLIDPNMappings(slice.lids.map(({ lid, phone }) => ({ lid, pn: phone })))
            .catch((err: unknown) => log.warn({ err }, 'the LID map of a history chunk was not kept by the connection'))
        }
        await take(slice)
      }))
    },
    requestOlder: async (anchor, count) =>
      sock.fetchMessageHistory(count, { remoteJid: anchor.chat, id: anchor.messageId, fromMe: anchor.fromMe }, anchor.timestampMs),
    downloadMedia: async (ref) => downloadContentFromMessage({
      mediaKey: bytes(ref.mediaKey), directPath: ref.directPath, url: ref.url
    }, ref.kind, { options: await fetchOptions() }) as Promise<Readable>
  }
}
