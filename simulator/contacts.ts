import { getBinaryNodeChild, getBinaryNodeChildren, proto, unpadRandomMax16, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, PHONE_DEVICE, userJid, type Directory, type ReceivedMessage } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import type { InboundMessage, InboundOptions, Mailbox } from './mailbox.ts'
import type { CiphertextType } from './signal.ts'
import { stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/**
 * A contact's phone reports delivery this long after the server took the message, as a real one
 * does: a receipt in the same instant as the send would be folded by Baileys into the sent message.
 */
const DELIVERY_RECEIPT_DELAY_MS = 50

/**
 * The contacts' phones: they decrypt and record what linked devices send them and report delivery,
 * write to accounts, and read what they got. Their messages and receipts go through the mailbox.
 */
export class Contacts {
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #record: Recorder

  constructor (directory: Directory, devices: LinkedDevices, mailbox: Mailbox, record: Recorder) {
    this.#directory = directory
    this.#devices = devices
    this.#mailbox = mailbox
    this.#record = record
  }

  /**
   * A message from a linked device: each `<to>` addressed to a phone is decrypted with that phone's
   * Signal identity and recorded. The server acknowledges it, and each contact reports delivery.
   */
  async relay (connection: Connection, node: BinaryNode): Promise<void> {
    const sender = connection.device
    if (!sender) return
    const id = node.attrs.id
    const delivered = new Set<string>()
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      const resolved = this.#directory.resolve(to.attrs.jid ?? '')
      if (!enc || !resolved || resolved.device !== PHONE_DEVICE || !(enc.content instanceof Uint8Array)) continue
      try {
        const padded = await resolved.account.phoneDevice.decrypt(sender, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
        const message = proto.Message.decode(unpadRandomMax16(padded))
        // The sender's own phone gets a copy of what it sent (a device-sent message); only contacts record it.
        if (resolved.account.phone === sender.user) continue
        resolved.account.received.push(describe(id, deviceName(sender), message))
        delivered.add(resolved.account.phone)
        this.#record('message', `${deviceName(sender)} → ${resolved.account.phone} ${id}`)
      } catch (err) {
        this.#record('error', `cannot decrypt ${id} for ${to.attrs.jid}: ${(err as Error).message}`)
      }
    }
    connection.send({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: unixNow() } })
    if (delivered.size === 0) return
    setTimeout(() => {
      for (const phone of delivered) {
        const receipt: BinaryNode = { tag: 'receipt', attrs: { id, from: userJid(phone), t: unixNow() } }
        // The sending device went offline meanwhile (a handoff): it gets the receipt when it is back.
        const live = this.#devices.get(deviceName(sender))
        if (live) this.#mailbox.sendReceipt(live, receipt)
        else this.#mailbox.keep(deviceName(sender), { node: receipt })
      }
    }, DELIVERY_RECEIPT_DELAY_MS).unref()
  }

  /** A linked device reports that it got (or read) a contact's message. */
  receiptFromDevice (connection: Connection, node: BinaryNode): void {
    const resolved = this.#directory.resolve(node.attrs.to ?? '')
    if (!resolved || !connection.device) return
    const ids = [node.attrs.id, ...getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'item').map((item) => item.attrs.id)]
    // A client that is not marked online acknowledges delivery as 'inactive'.
    const type = node.attrs.type === undefined || node.attrs.type === 'inactive'
      ? 'delivered'
      : node.attrs.type === 'read' ? 'read' : 'other'
    for (const messageId of ids) {
      if (messageId) resolved.account.receipts.push({ messageId, from: deviceName(connection.device), type, at: Date.now() })
    }
  }

  /**
   * The contact `from` writes to the account `to`: every live linked device of `to` gets the
   * message, encrypted when the device has opened a Signal session with the contact, otherwise as
   * plaintext. Returns the message id and how many devices it reached.
   */
  async deliver (options: InboundOptions): Promise<{ id: string, devices: number, encrypted: number, queued: number }> {
    const id = options.id ?? stanzaId().toUpperCase()
    const message: InboundMessage = { ...options, id, at: unixSeconds() }
    let devices = 0
    let encrypted = 0
    let queued = 0
    const account = this.#directory.account(options.to)
    for (const device of account.knownDevices) {
      const connection = this.#devices.get(deviceName({ user: options.to, device }))
      if (connection?.device) {
        if (await this.#mailbox.sendMessage(connection, message)) encrypted++
        devices++
      } else {
        // WhatsApp keeps messages for a linked device that is offline and hands them over when it logs in.
        this.#mailbox.keep(deviceName({ user: options.to, device }), { message })
        queued++
      }
    }
    this.#record('inbound', `${options.from} → ${options.to} ${id} (${devices} devices, ${queued} queued)`)
    return { id, devices, encrypted, queued }
  }

  /** The contact `phone` reads messages it received from `to`'s devices: they get a read receipt. */
  read (phone: string, to: string, messageIds: string[]): number {
    let devices = 0
    for (const connection of this.#devices.of(to)) {
      for (const id of messageIds) {
        this.#mailbox.sendReceipt(connection, { tag: 'receipt', attrs: { id, from: userJid(phone), type: 'read', t: unixNow() } })
      }
      devices++
    }
    return devices
  }
}

/** What a contact's phone records of a message it decrypted. */
function describe (id: string, from: string, message: proto.IMessage): ReceivedMessage {
  const at = Date.now()
  const text = message.conversation ?? message.extendedTextMessage?.text
  if (typeof text === 'string') return { id, from, at, kind: 'text', text }
  const reaction = message.reactionMessage
  if (reaction) {
    const reacted = { messageId: reaction.key?.id ?? '', emoji: reaction.text ?? '', fromMe: Boolean(reaction.key?.fromMe) }
    return { id, from, at, kind: 'reaction', reaction: reacted }
  }
  return { id, from, at, kind: 'other' }
}
