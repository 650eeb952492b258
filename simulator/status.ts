import {
  getBinaryNodeChild, getBinaryNodeChildren, proto, unpadRandomMax16, writeRandomPadMax16, type BinaryNode
} from '@whiskeysockets/baileys'
import { deviceName, userJid, type DeviceAddress, type Directory, type ReceivedMessage } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Contacts } from './contacts.ts'
import { lidDeviceJid } from './group-nodes.ts'
import { pairwise } from './group-participants.ts'
import type { Recorder } from './log.ts'
import { deliverToLinkedDevices, receiptIds, type ContactMedia, type InboundMessage, type Mailbox } from './mailbox.ts'
import { OwnSenderKey, parseDistribution, parseSenderKeyMessage, SignatureChecks } from './sender-keys.ts'
import type { CiphertextType } from './signal.ts'
import { stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/** The one chat every status post goes to; its sender keys are named after it like a group's. */
export const STATUS_JID = 'status@broadcast'

/** A status post of a linked device, as the server fanned it out; a post sent in batches under one id is one post. */
export interface StatusPost {
  id: string
  /** The posting device (`<phone>:<device>`). */
  from: string
  at: number
  /** How many `<message to="status@broadcast">` stanzas carried it. */
  batches: number
  /** Devices that got the poster's sender key (SKDM) with the post: every listed device, in every batch. */
  skdms: number
  /** By contact phone: the simulated devices that decrypted it (the poster's own account is in `ownDevices`). */
  recipients: Record<string, number[]>
  /** The poster's account's other simulated devices (its phone, companions) that decrypted it. */
  ownDevices: number[]
  /** What the post showed: its text or media, and a text post's background (ARGB) and font. */
  content: ReceivedMessage & { backgroundArgb?: number, font?: number }
  /** Devices that could not open it (`<phone>:<device>: why`). */
  failures: string[]
}

export interface ContactStatusOptions {
  /** The poster's phone number, and which of its simulated devices posts (the phone by default). */
  from: string
  device?: number
  /** The accounts whose linked devices see it (the poster's contacts that are linked numbers). */
  to: string[]
  text?: string
  /** A text post's background, ARGB, and font (WhatsApp's FontType). */
  backgroundArgb?: number
  font?: number
  /** An image or video post; `text` is then its caption. */
  media?: ContactMedia
  id?: string
  pushName?: string
}

/** How many devices the fan-out decrypts for before it lets the event loop run. */
const YIELD_EVERY_DEVICES = 32

/**
 * Status posts (stories), PROTOCOL.md § 18. A linked device's post is a sender-key message to
 * `status@broadcast` listing every device it goes to, each with the sender key (SKDM) 1:1-encrypted
 * in `<to>`: the server opens it for each simulated device and records who could read it. A contact's
 * post reaches the linked devices of the accounts it is for as `<message from="status@broadcast"
 * participant=…>`, its SKDM then the `skmsg`.
 */
export class StatusService {
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #contacts: Contacts
  readonly #record: Recorder
  readonly #checks = new SignatureChecks()
  /** By id: the posts linked devices made. */
  readonly #posts = new Map<string, StatusPost>()
  /** By `<phone>:<device>`: the sender key a simulated device posts its statuses with. */
  readonly #ownKeys = new Map<string, OwnSenderKey>()

  constructor (options: { directory: Directory, devices: LinkedDevices, mailbox: Mailbox, contacts: Contacts, record: Recorder }) {
    this.#directory = options.directory
    this.#devices = options.devices
    this.#mailbox = options.mailbox
    this.#contacts = options.contacts
    this.#record = options.record
  }

  /** The posts linked devices made, oldest first; only those of the account `from` when given. */
  posts (from?: string): StatusPost[] {
    return [...this.#posts.values()].filter((post) => !from || post.from.split(':')[0] === from)
  }

  /** A linked device posts (one batch of a post): acknowledged at once, then opened by every device it lists. */
  async relay (connection: Connection, node: BinaryNode): Promise<void> {
    const sender = connection.device
    if (!sender) return
    const id = node.attrs.id ?? ''
    connection.send({ tag: 'ack', attrs: { class: 'message', id, from: STATUS_JID, t: unixNow() } })
    const from = deviceName(sender)
    const at = Date.now()
    const post = this.#posts.get(id) ??
      { id, from, at, batches: 0, skdms: 0, recipients: {}, ownDevices: [], content: { id, from, at, kind: 'other' }, failures: [] }
    this.#posts.set(id, post)
    post.batches++
    const listed = await this.#distributeSenderKeys(node, sender, post)
    const skmsg = getBinaryNodeChildren(node, 'enc').find((enc) => enc.attrs.type === 'skmsg')
    if (!(skmsg?.content instanceof Uint8Array)) {
      post.failures.push(`batch ${post.batches}: no skmsg`)
      return
    }
    const message = this.#decryptFor(listed, post, skmsg.content)
    if (message && post.content.kind === 'other') post.content = this.#describe(id, from, message)
    this.#record('message', `${from} → ${STATUS_JID} ${id} batch ${post.batches}: ${listed.length} devices, ${post.failures.length} failed`)
  }

  /** A linked device's receipt for a contact's status: the poster's phone records it, as for a message. */
  receiptFromDevice (connection: Connection, node: BinaryNode): void {
    const poster = this.#directory.resolve(node.attrs.participant ?? '')
    if (!poster || !connection.device) return
    const delivered = node.attrs.type === undefined || node.attrs.type === 'inactive'
    const type = delivered ? 'delivered' : node.attrs.type === 'read' ? 'read' : 'other'
    for (const messageId of receiptIds(node)) {
      poster.account.receipts.push({ messageId, from: deviceName(connection.device), type, at: Date.now() })
    }
  }

  /**
   * A contact posts a status: the linked devices of each account in `to` get it now, or at their
   * next login. Every device gets the poster's sender key with it, as WhatsApp's clients send statuses.
   */
  async post (options: ContactStatusOptions): Promise<{ id: string, devices: number, queued: number }> {
    const poster = this.#directory.account(options.from)
    const device = options.device ?? 0
    const signal = poster.simulatedDevice(device)
    if (!signal) throw new Error(`${options.from} has no simulated device ${device}`)
    const id = options.id ?? stanzaId().toUpperCase()
    const content: proto.IMessage = options.media
      ? this.#contacts.uploadAsPhone(id, options.media, options.text)
      : {
          extendedTextMessage: {
            text: options.text ?? '',
            ...(options.backgroundArgb !== undefined ? { backgroundArgb: options.backgroundArgb } : {}),
            ...(options.font !== undefined ? { font: options.font } : {})
          }
        }
    const senderName = deviceName({ user: poster.phone, device })
    const key = this.#ownKey(senderName)
    const distribution = key.distribution()
    const skmsg = key.encrypt(writeRandomPadMax16(proto.Message.encode(content).finish()))
    const encrypt = async (recipient: DeviceAddress): Promise<BinaryNode[]> => [
      await pairwise(this.#directory, this.#record, signal, recipient, {
        senderKeyDistributionMessage: { groupId: STATUS_JID, axolotlSenderKeyDistributionMessage: distribution }
      }),
      { tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: skmsg }
    ]
    const message = (to: string): InboundMessage => ({
      from: poster.phone,
      to,
      id,
      at: unixSeconds(),
      content,
      pushName: options.pushName ?? poster.pushName,
      ...(options.media ? { mediaKind: options.media.kind } : {}),
      group: { jid: STATUS_JID, participant: lidDeviceJid(poster, device), participantPn: userJid(poster.phone), encrypt }
    })
    const { devices, queued } = await deliverToLinkedDevices(this.#directory, this.#devices, this.#mailbox, options.to, message)
    this.#record('inbound', `${senderName} → ${STATUS_JID} ${id} (${devices} devices, ${queued} queued)`)
    return { id, devices, queued }
  }

  /** Each `<to>`: a listed device's copy of the poster's sender key, which it opens and keeps. */
  async #distributeSenderKeys (node: BinaryNode, sender: DeviceAddress, post: StatusPost): Promise<DeviceAddress[]> {
    const listed: DeviceAddress[] = []
    const recipients = getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')
    for (const [index, to] of recipients.entries()) {
      // Opening hundreds of Signal sessions takes a while: other connections get their turn in between.
      if (index % YIELD_EVERY_DEVICES === YIELD_EVERY_DEVICES - 1) await new Promise((resolve) => setImmediate(resolve))
      const enc = getBinaryNodeChild(to, 'enc')
      const resolved = this.#directory.resolve(to.attrs.jid ?? '')
      if (resolved?.account.phone === sender.user && resolved.device === sender.device) continue
      const device = resolved?.account.simulatedDevice(resolved.device)
      if (!resolved || !device || !(enc?.content instanceof Uint8Array)) {
        post.failures.push(`${to.attrs.jid}: not a device the simulator hosts`)
        continue
      }
      const address = { user: resolved.account.phone, device: resolved.device }
      try {
        const padded = await device.decrypt(sender, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
        const distribution = proto.Message.decode(unpadRandomMax16(padded)).senderKeyDistributionMessage
        if (!distribution?.axolotlSenderKeyDistributionMessage || distribution.groupId !== STATUS_JID) {
          throw new Error('no sender key distribution message for status@broadcast')
        }
        device.senderKeys.store(STATUS_JID, post.from, parseDistribution(distribution.axolotlSenderKeyDistributionMessage))
        post.skdms++
        listed.push(address)
      } catch (err) {
        post.failures.push(`${deviceName(address)}: ${(err as Error).message}`)
      }
    }
    return listed
  }

  /** The listed devices open the `skmsg` with the key they were just given; the poster's own are counted apart. */
  #decryptFor (listed: DeviceAddress[], post: StatusPost, bytes: Uint8Array): proto.IMessage | undefined {
    const skmsg = parseSenderKeyMessage(bytes)
    let message: proto.IMessage | undefined
    const posterPhone = post.from.split(':')[0]
    for (const address of listed) {
      const held = this.#directory.account(address.user).simulatedDevice(address.device)?.senderKeys.get(STATUS_JID, post.from)
      try {
        if (!held) throw new Error('no sender key')
        const plain = held.decrypt(skmsg, this.#checks)
        message ??= proto.Message.decode(unpadRandomMax16(plain))
        if (address.user === posterPhone) post.ownDevices.push(address.device)
        else post.recipients[address.user] = [...post.recipients[address.user] ?? [], address.device]
      } catch (err) {
        post.failures.push(`${deviceName(address)}: ${(err as Error).message}`)
      }
    }
    return message
  }

  #describe (id: string, from: string, message: proto.IMessage): StatusPost['content'] {
    const text = message.extendedTextMessage
    return {
      ...this.#contacts.describe(id, from, message),
      ...(text?.backgroundArgb != null ? { backgroundArgb: text.backgroundArgb } : {}),
      ...(text?.font != null ? { font: text.font } : {})
    }
  }

  #ownKey (senderName: string): OwnSenderKey {
    let key = this.#ownKeys.get(senderName)
    if (!key) {
      key = new OwnSenderKey()
      this.#ownKeys.set(senderName, key)
    }
    return key
  }
}
