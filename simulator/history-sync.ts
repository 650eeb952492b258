import { deflateSync } from 'node:zlib'
import { getBinaryNodeChild, proto, unpadRandomMax16, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import { historySyncOf, PhoneHistory, type PlannedChunk } from './history.ts'
import { planInitialSync, planOnDemand } from './history-plan.ts'
import type { Recorder } from './log.ts'
import type { InboundMessage, Mailbox } from './mailbox.ts'
import { encryptMedia, type MediaServer } from './media.ts'
import type { CiphertextType } from './signal.ts'
import { stanzaId, unixNow, unixSeconds } from './stanzas.ts'

export const DEFAULT_MESSAGES_PER_CHUNK = 3_000
export const DEFAULT_RECENT_DAYS = 90

/** One chunk sent to one device, as GET /accounts/:phone/history reports it. */
export interface SentChunk {
  messageId: string
  syncType: string
  chunkOrder: number
  progress: number
  conversations: number
  messages: number
  acknowledged: boolean
}

/** A device's history sync: the planned chunks, the next to send, the one awaiting its receipt. */
interface DeviceSync {
  device: string
  chunks: PlannedChunk[]
  next: number
  inFlight?: string
  sent: SentChunk[]
}

export interface HistoryOptions {
  messagesPerChunk?: number
  recentDays?: number
}

/**
 * The phone's chat history and its sync to linked devices (PROTOCOL.md § 20). A newly linked device
 * gets the initial sync chunk by chunk: the next chunk is built (its blob encrypted and hosted) only
 * once the device acknowledged the previous one with its `hist_sync` receipt, so memory stays bounded
 * and a device that drops mid-sync resumes where it was at its next login (the chunk in flight comes
 * again from the mailbox). The phone also answers on-demand requests (HISTORY_SYNC_ON_DEMAND).
 */
export class HistoryService {
  readonly #histories = new Map<string, PhoneHistory>()
  readonly #syncs = new Map<string, DeviceSync>()
  readonly #chunkSizes = new Map<string, number>()
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #media: MediaServer
  readonly #record: Recorder
  readonly #options: HistoryOptions
  /** Called when a device acknowledges a chunk, before the next is sent (tests break connections there). */
  readonly acknowledgedListeners = new Set<(device: string, chunk: SentChunk) => void>()
  /** Called when a chunk was handed to a device's connection, before its receipt can come. */
  readonly sentListeners = new Set<(device: string, chunk: SentChunk) => void>()

  constructor (options: HistoryOptions & {
    directory: Directory, devices: LinkedDevices, mailbox: Mailbox, media: MediaServer, record: Recorder
  }) {
    this.#directory = options.directory
    this.#devices = options.devices
    this.#mailbox = options.mailbox
    this.#media = options.media
    this.#record = options.record
    this.#options = options
  }

  /** What the phone `phone` holds (created empty on first use). */
  of (phone: string): PhoneHistory {
    let history = this.#histories.get(phone)
    if (!history) {
      history = new PhoneHistory()
      this.#histories.set(phone, history)
    }
    return history
  }

  /** Chunks of this account's later syncs carry at most this many messages. */
  setMessagesPerChunk (phone: string, messages: number): void {
    this.#chunkSizes.set(phone, messages)
  }

  /** Per linked device of `phone`, the chunks sent to it. */
  syncs (phone: string): { device: string, planned: number, chunks: SentChunk[] }[] {
    return [...this.#syncs.values()].filter((sync) => sync.device.startsWith(`${phone}:`))
      .map((sync) => ({ device: sync.device, planned: sync.chunks.length, chunks: sync.sent.map((chunk) => ({ ...chunk })) }))
  }

  /**
   * A device logged in. Just linked (its first login): the phone plans its initial sync, FULL included
   * when the companion asked for it. Then the next chunk goes, unless one is still awaiting its receipt.
   */
  async loggedIn (connection: Connection): Promise<void> {
    const device = connection.device
    if (!device) return
    const name = deviceName(device)
    const account = this.#directory.account(device.user)
    const linked = account.awaitingHistory.get(device.device)
    account.awaitingHistory.delete(device.device)
    const history = this.#histories.get(device.user)
    if (linked && history && history.chats.size > 0) {
      const chunks = planInitialSync(history, {
        messagesPerChunk: this.#chunkSizes.get(device.user) ?? this.#options.messagesPerChunk ?? DEFAULT_MESSAGES_PER_CHUNK,
        recentDays: this.#options.recentDays ?? DEFAULT_RECENT_DAYS,
        full: linked.fullSync,
        now: unixSeconds()
      })
      this.#syncs.set(name, { device: name, chunks, next: 0, sent: [] })
      this.#record('history', `${name}: ${chunks.length} chunks planned (${linked.fullSync ? 'full' : 'recent'})`)
    }
    const sync = this.#syncs.get(name)
    if (sync && !sync.inFlight) await this.#sendNext(connection, sync)
  }

  /** `<receipt type="hist_sync">`: the device has the chunk; the next one follows. */
  async receipted (connection: Connection, receipt: BinaryNode): Promise<void> {
    const sync = connection.device ? this.#syncs.get(deviceName(connection.device)) : undefined
    const chunk = sync?.sent.find((sent) => sent.messageId === receipt.attrs.id)
    if (!sync || !chunk || chunk.acknowledged) return
    chunk.acknowledged = true
    for (const listener of this.acknowledgedListeners) listener(sync.device, chunk)
    if (sync.inFlight !== chunk.messageId) return
    sync.inFlight = undefined
    const live = this.#devices.get(sync.device)
    if (live) await this.#sendNext(live, sync)
  }

  /**
   * A message a device sends its own phone (`category="peer"`, one `<enc>`): the phone decrypts it and
   * answers a history request. The server acknowledges it either way.
   */
  async peerMessage (connection: Connection, node: BinaryNode): Promise<void> {
    const device = connection.device
    const enc = getBinaryNodeChild(node, 'enc')
    connection.send({ tag: 'ack', attrs: { class: 'message', id: node.attrs.id, from: node.attrs.to, t: unixNow() } })
    if (!device || !(enc?.content instanceof Uint8Array)) return
    let message: proto.IMessage
    try {
      const phone = this.#directory.account(device.user).phoneDevice
      const padded = await phone.decrypt(device, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
      message = proto.Message.decode(unpadRandomMax16(padded))
    } catch (err) {
      this.#record('error', `peer message ${node.attrs.id} from ${deviceName(device)}: ${(err as Error).message}`)
      return
    }
    // Baileys wraps what it sends its own devices as a device-sent message.
    const request = (message.deviceSentMessage?.message ?? message).protocolMessage?.peerDataOperationRequestMessage
    const onDemand = request?.historySyncOnDemandRequest
    if (request?.peerDataOperationRequestType !== proto.Message.PeerDataOperationRequestType.HISTORY_SYNC_ON_DEMAND || !onDemand) return
    const chunk = planOnDemand(this.of(device.user), {
      chatJid: onDemand.chatJid ?? '',
      oldestMsgId: onDemand.oldestMsgId ?? undefined,
      oldestMsgTimestampMs: Number(onDemand.oldestMsgTimestampMs ?? 0),
      count: onDemand.onDemandMsgCount ?? 50
    }, node.attrs.id)
    const asked = `${onDemand.onDemandMsgCount} messages of ${onDemand.chatJid} before ${onDemand.oldestMsgId}`
    this.#record('history', `${deviceName(device)} asked for ${asked}`)
    const sync = this.#syncs.get(deviceName(device)) ?? { device: deviceName(device), chunks: [], next: 0, sent: [] }
    this.#syncs.set(sync.device, sync)
    await this.#send(connection, sync, chunk)
  }

  async #sendNext (connection: Connection, sync: DeviceSync): Promise<void> {
    const chunk = sync.chunks[sync.next]
    if (!chunk) return
    // In flight from now: a login or receipt meanwhile must not send another one alongside.
    const id = stanzaId().toUpperCase()
    sync.inFlight = id
    sync.next++
    await this.#send(connection, sync, chunk, id)
  }

  /** The device was unlinked: its sync ends. */
  forget (device: string): void {
    this.#syncs.delete(device)
  }

  /** Builds the chunk's blob (HistorySync, deflated, encrypted with the history keys), hosts it and notifies the device. */
  async #send (connection: Connection, sync: DeviceSync, chunk: PlannedChunk, id = stanzaId().toUpperCase()): Promise<void> {
    const phone = connection.device!.user
    const historySync = historySyncOf(chunk, this.#media)
    const encrypted = encryptMedia(deflateSync(proto.HistorySync.encode(historySync).finish()), 'history')
    const { directPath } = this.#media.host(encrypted.body)
    const messages = chunk.segments.reduce((sum, segment) => sum + segment.to - segment.from, 0)
    const message: InboundMessage = {
      from: phone,
      to: phone,
      peer: true,
      id,
      at: unixSeconds(),
      content: {
        protocolMessage: {
          type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION,
          historySyncNotification: {
            fileSha256: encrypted.fileSha256,
            fileLength: encrypted.fileLength,
            mediaKey: encrypted.mediaKey,
            fileEncSha256: encrypted.fileEncSha256,
            directPath,
            syncType: chunk.syncType as number as proto.Message.HistorySyncType,
            chunkOrder: chunk.chunkOrder,
            progress: chunk.progress,
            ...(chunk.peerDataRequestSessionId ? { peerDataRequestSessionId: chunk.peerDataRequestSessionId } : {})
          }
        }
      }
    }
    const syncType = proto.HistorySync.HistorySyncType[chunk.syncType]
    const sent: SentChunk = {
      messageId: id,
      syncType,
      chunkOrder: chunk.chunkOrder,
      progress: chunk.progress,
      conversations: chunk.segments.length,
      messages,
      acknowledged: false
    }
    sync.sent.push(sent)
    await this.#mailbox.sendMessage(connection, message)
    for (const listener of this.sentListeners) listener(sync.device, sent)
    const size = `${messages} messages, ${encrypted.body.length} bytes`
    this.#record('history', `${sync.device}: ${syncType} #${chunk.chunkOrder} (${size}) as ${id}`)
  }
}
