import { getBinaryNodeChild, getBinaryNodeChildren, proto, writeRandomPadMax16, type BinaryNode } from '@whiskeysockets/baileys'
import type { MediaKind } from './media.ts'
import { deviceName, userJid, type DeviceAddress, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'

export interface InboundOptions {
  /** The contact's phone number (digits). */
  from: string
  /** The account (phone number) whose linked devices receive it. */
  to: string
  /** A text message, or the caption of `media`. */
  text?: string
  /** A file the contact's phone encrypts, uploads and sends. */
  media?: ContactMedia
  id?: string
  pushName?: string
  /** The contact writes as WhatsApp's LID-addressed chats do: from `<lid>@lid`, its phone not given. */
  byLid?: boolean
  /** A message other than a text or a file (a poll vote, a protocol message setting a chat's disappearing timer), as the
   * phone encodes it; `text` and `media` are then unused. */
  content?: proto.IMessage
  /** The stanza's `type` when it is not `text` or `media` (a vote travels as `poll`). */
  stanzaType?: string
  /** Between the account's own devices (its phone's app-state key share): WhatsApp marks it `category="peer"`. */
  peer?: boolean
}

export interface ContactMedia {
  kind: MediaKind
  data: Buffer
  mimetype: string
  fileName?: string
  ptt?: boolean
  seconds?: number
  /** The media server has already dropped the file (an old message): the device must ask the phone for it again. */
  expired?: boolean
}

/** How a group message reaches a linked device: from the group, on behalf of the sending participant. */
export interface GroupEnvelope {
  /** The group's JID. */
  jid: string
  /** The sending device as a LID group names it (`<lid>@lid`, `<lid>:<device>@lid`), and its phone JID (unless WhatsApp withholds it). */
  participant: string
  participantPn?: string
  /** The `<enc>` nodes for one device: the sender's key (pkmsg/msg) when the device lacks it, then the `skmsg`. */
  encrypt: (device: DeviceAddress) => Promise<BinaryNode[]>
}

/**
 * A contact's message for a linked device, with the id and time (Unix seconds) WhatsApp gave it,
 * and its content as the phone encoded it; a group message says how it is wrapped for the group.
 */
export type InboundMessage = Omit<InboundOptions, 'media'> & {
  id: string, at: number, content: proto.IMessage, mediaKind?: MediaKind, group?: GroupEnvelope
}
/** What WhatsApp keeps for an offline device: contacts' messages, receipts for what it sent, group notifications and calls. */
export type Kept = { message: InboundMessage } | { node: BinaryNode } | { notification: BinaryNode } | { call: BinaryNode }

/** A message refused with an error ack is sent again this many times, this long after the refusal. */
const REDELIVERIES_AFTER_ERROR = 5
const REDELIVERY_DELAY_MS = 1_000

/** What a connection was sent and its device has not acknowledged yet. */
interface Unacknowledged {
  messages: Map<string, InboundMessage>
  /** By `<id>:<type>:<participant>`, as the device's ack names a receipt. */
  receipts: Map<string, BinaryNode>
  /** Notifications (group changes), by id. */
  notifications: Map<string, BinaryNode>
  /** Call stanzas (offers and their ends), by stanza id. */
  calls: Map<string, BinaryNode>
}

/** A receipt as its ack names it: a group message gets one receipt per participant, under the same id. */
const receiptKey = (attrs: Record<string, string | undefined>) => `${attrs.id ?? ''}:${attrs.type ?? 'delivery'}:${attrs.participant ?? ''}`

/**
 * The receipt types with which a device says it has a message (Baileys, `handleMessage` and
 * `sendReceipt`): delivered (no type; `inactive` while not marked online; `sender` and `peer_msg`
 * for its own account's messages), read (`read`, `read-self`) and played. A device that could not
 * decrypt a message sends `type="retry"` (then an error ack), and `server-error` asks for media
 * again: neither means it has the message.
 */
const HAS_IT = new Set([undefined, 'inactive', 'sender', 'peer_msg', 'read', 'read-self', 'played', 'played-self'])

/** Whether a device's receipt of this type says it has the message (delivered, read, played). */
export const receiptMeansReceived = (type: string | undefined) => HAS_IT.has(type)

/** The message ids a receipt names: its `id` and, for a batch, each `<list><item id>`. */
export const receiptIds = (receipt: BinaryNode): string[] =>
  [receipt.attrs.id, ...getBinaryNodeChildren(getBinaryNodeChild(receipt, 'list'), 'item').map((item) => item.attrs.id)]
    .filter((id): id is string => Boolean(id))

/**
 * What WhatsApp holds for linked devices: contacts' messages and receipts go to a device's live
 * connection and are forgotten only once the device acknowledges them (a message by its delivery
 * or read receipt, or an `<ack>` without error; a receipt by an `<ack>`); what a device did not get
 * (it was offline, or its connection broke first) is kept and handed over at its next login.
 */
export class Mailbox {
  /** By device (`<user>:<device>`). */
  readonly #kept = new Map<string, Kept[]>()
  readonly #unacknowledged = new WeakMap<Connection, Unacknowledged>()
  /** How many times each message was refused with an error ack. */
  readonly #refusals = new Map<string, number>()
  readonly #directory: Directory
  readonly #record: Recorder

  constructor (directory: Directory, record: Recorder) {
    this.#directory = directory
    this.#record = record
  }

  keep (device: string, kept: Kept): void {
    this.#kept.set(device, [...(this.#kept.get(device) ?? []), kept])
  }

  /** The device was unlinked: what was kept for it is dropped. */
  discard (device: string): void {
    this.#kept.delete(device)
  }

  /** One contact's message to one live device; true when it went Signal-encrypted. */
  async sendMessage (connection: Connection, message: InboundMessage, offline = false): Promise<boolean> {
    this.#unacknowledgedOf(connection).messages.set(message.id, message)
    const contact = this.#directory.account(message.from)
    const device = connection.device!
    // WhatsApp marks media on the stanza and on each <enc>, as clients do when they send it.
    const media = message.mediaKind ? (message.content.audioMessage?.ptt ? 'ptt' : message.mediaKind) : undefined
    const common = {
      id: message.id,
      t: String(message.at),
      type: message.stanzaType ?? (media ? 'media' : 'text'),
      ...(message.pushName ? { notify: message.pushName } : {}),
      ...(offline ? { offline: '1' } : {}),
      ...(message.peer ? { category: 'peer' } : {})
    }
    if (message.group) {
      const { jid, participant, participantPn } = message.group
      // A participant WhatsApp names only by LID gets no participant_pn.
      const pn: Record<string, string> = participantPn ? { participant_pn: participantPn } : {}
      const attrs = { from: jid, participant, ...pn, addressing_mode: 'lid', ...common }
      connection.send({ tag: 'message', attrs, content: await message.group.encrypt(device) })
      return true
    }
    const bytes = Buffer.from(proto.Message.encode(message.content).finish())
    let payload: BinaryNode
    let encrypted = false
    // Encrypted only on a session the device opened by writing to the contact first (see PROTOCOL.md § 9).
    if (contact.phoneDevice.hasSession(device)) {
      const { type, ciphertext } = await contact.phoneDevice.encrypt(device, writeRandomPadMax16(bytes))
      payload = { tag: 'enc', attrs: { v: '2', type, ...(media ? { mediatype: media } : {}) }, content: ciphertext }
      encrypted = true
    } else {
      payload = { tag: 'plaintext', attrs: {}, content: bytes }
    }
    const from = message.byLid ? `${contact.lid}@lid` : userJid(contact.phone)
    connection.send({ tag: 'message', attrs: { from, ...common }, content: [payload] })
    return encrypted
  }

  /** A receipt for what the device sent, kept until the device acknowledges it (like a message). */
  sendReceipt (connection: Connection, receipt: BinaryNode): void {
    this.#unacknowledgedOf(connection).receipts.set(receiptKey(receipt.attrs), receipt)
    connection.send(receipt)
  }

  /** A notification (a group change), kept until the device acknowledges it. */
  sendNotification (connection: Connection, notification: BinaryNode): void {
    this.#unacknowledgedOf(connection).notifications.set(notification.attrs.id, notification)
    connection.send(notification)
  }

  /** A call stanza (an offer, its end), kept until the device acknowledges it (`<ack class="call">`). */
  sendCall (connection: Connection, call: BinaryNode): void {
    this.#unacknowledgedOf(connection).calls.set(call.attrs.id, call)
    connection.send(call)
  }

  /**
   * The device's `<ack>` of a message or a receipt: WhatsApp forgets it. An ack carrying an `error`
   * (the device could not process the message, e.g. its key store was unreachable) is a refusal:
   * the message is sent again shortly, a few times, and stays kept for the next login meanwhile.
   */
  acknowledged (connection: Connection, ack: BinaryNode): void {
    const unacknowledged = this.#unacknowledged.get(connection)
    if (ack.attrs.class === 'message') {
      const message = unacknowledged?.messages.get(ack.attrs.id)
      const attempts = (this.#refusals.get(ack.attrs.id) ?? 0) + 1
      if (ack.attrs.error !== undefined && message && attempts <= REDELIVERIES_AFTER_ERROR) {
        this.#refusals.set(ack.attrs.id, attempts)
        const device = connection.device ? deviceName(connection.device) : '?'
        this.#record('refused', `${ack.attrs.id} by ${device} (error ${ack.attrs.error}); again in 1 s`)
        setTimeout(() => {
          const open = connection.socket.readyState === connection.socket.OPEN
          if (!open || !this.#unacknowledged.get(connection)?.messages.has(message.id)) return
          this.sendMessage(connection, message)
            .catch((err: unknown) => this.#record('error', `redelivery of ${message.id}: ${(err as Error).message}`))
        }, REDELIVERY_DELAY_MS).unref()
        return
      }
      this.#refusals.delete(ack.attrs.id)
      unacknowledged?.messages.delete(ack.attrs.id)
    } else if (ack.attrs.class === 'receipt') {
      unacknowledged?.receipts.delete(receiptKey(ack.attrs))
    } else if (ack.attrs.class === 'notification') {
      unacknowledged?.notifications.delete(ack.attrs.id)
    } else if (ack.attrs.class === 'call') {
      unacknowledged?.calls.delete(ack.attrs.id)
    }
  }

  /**
   * The device's receipt for messages it was sent: a delivery or read receipt from the contact's
   * chat is its acknowledgement, as WhatsApp takes it, so the messages are forgotten. A retry
   * receipt (it could not decrypt) or any other keeps them.
   */
  receipted (connection: Connection, receipt: BinaryNode): void {
    const unacknowledged = this.#unacknowledged.get(connection)
    if (!unacknowledged || !HAS_IT.has(receipt.attrs.type)) return
    const chat = this.#directory.resolve(receipt.attrs.to ?? '')
    for (const id of receiptIds(receipt)) {
      const message = unacknowledged.messages.get(id)
      // The receipt names the chat the message came from (the contact's phone or LID, or the group).
      const fromThatChat = message?.group ? receipt.attrs.to === message.group.jid : chat?.account.phone === message?.from
      if (!message || !fromThatChat) continue
      unacknowledged.messages.delete(id)
      this.#refusals.delete(id)
    }
  }

  /** The connection closed: what its device did not acknowledge comes again at the next login. */
  closed (connection: Connection): void {
    const unacknowledged = this.#unacknowledged.get(connection)
    if (!connection.device || !unacknowledged) return
    for (const message of unacknowledged.messages.values()) this.keep(deviceName(connection.device), { message })
    for (const node of unacknowledged.receipts.values()) this.keep(deviceName(connection.device), { node })
    for (const notification of unacknowledged.notifications.values()) this.keep(deviceName(connection.device), { notification })
    for (const call of unacknowledged.calls.values()) this.keep(deviceName(connection.device), { call })
  }

  /** The device logged in on `connection`: it gets what was kept for it, marked offline, then how many (`<ib><offline>`). */
  handOver (connection: Connection): Promise<void> {
    const name = deviceName(connection.device!)
    const waiting = this.#kept.get(name) ?? []
    this.#kept.delete(name)
    return this.#sendKept(connection, name, waiting).catch((err: unknown) => {
      this.#record('error', `offline messages for ${name}: ${(err as Error).message}`)
    })
  }

  async #sendKept (connection: Connection, name: string, waiting: Kept[]): Promise<void> {
    const offline = (node: BinaryNode) => ({ ...node, attrs: { ...node.attrs, offline: '1' } })
    for (const kept of waiting) {
      if ('message' in kept) await this.sendMessage(connection, kept.message, true)
      else if ('notification' in kept) this.sendNotification(connection, offline(kept.notification))
      else if ('call' in kept) this.sendCall(connection, offline(kept.call))
      else this.sendReceipt(connection, offline(kept.node))
    }
    connection.send({ tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: String(waiting.length) } }] })
    if (waiting.length > 0) this.#record('inbound', `${waiting.length} kept messages handed to ${name}`)
  }

  #unacknowledgedOf (connection: Connection): Unacknowledged {
    let unacknowledged = this.#unacknowledged.get(connection)
    if (!unacknowledged) {
      unacknowledged = { messages: new Map(), receipts: new Map(), notifications: new Map(), calls: new Map() }
      this.#unacknowledged.set(connection, unacknowledged)
    }
    return unacknowledged
  }
}

/**
 * A message to every linked device of these accounts (`messageFor(phone)` wraps it for one): at once to
 * the devices online, kept for the others until their next login. Counts both.
 */
export async function deliverToLinkedDevices (
  directory: Directory, devices: LinkedDevices, mailbox: Mailbox, phones: Iterable<string>, messageFor: (phone: string) => InboundMessage
): Promise<{ devices: number, queued: number }> {
  let live = 0
  let queued = 0
  for (const phone of phones) {
    for (const linked of directory.account(phone).knownDevices) {
      const name = deviceName({ user: phone, device: linked })
      const connection = devices.get(name)
      if (connection?.device) {
        await mailbox.sendMessage(connection, messageFor(phone))
        live++
      } else {
        mailbox.keep(name, { message: messageFor(phone) })
        queued++
      }
    }
  }
  return { devices: live, queued }
}
