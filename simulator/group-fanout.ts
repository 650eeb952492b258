import { setImmediate } from 'node:timers/promises'
import { getBinaryNodeChild, getBinaryNodeChildren, proto, unpadRandomMax16, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, type DeviceAddress, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import { applyProtocolMessage, DELIVERY_RECEIPT_DELAY_MS, type Contacts } from './contacts.ts'
import type { Recorder } from './log.ts'
import type { Mailbox } from './mailbox.ts'
import { lidJid } from './group-nodes.ts'
import type { Group, Groups, GroupSend } from './groups.ts'
import { parseDistribution, parseSenderKeyMessage, SignatureChecks, type SenderKeyMessage } from './sender-keys.ts'
import type { CiphertextType } from './signal.ts'
import { unixNow } from './stanzas.ts'

/** How many sender keys the fan-out decrypts before it lets the event loop run. */
const YIELD_EVERY_DEVICES = 32

/**
 * A linked device's message to a group, fanned out by the server to every simulated member
 * device (phones and companions): each `<to>` is that device's sender key distribution message,
 * 1:1-encrypted, which it stores; the one `skmsg` is then decrypted by every device holding the
 * sender's key. What each participant decrypted is recorded in the group's inbox, and each one
 * reports delivery to the sender.
 */
export class GroupFanOut {
  readonly #groups: Groups
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #contacts: Contacts
  readonly #record: Recorder
  readonly #checks = new SignatureChecks()

  constructor (groups: Groups, directory: Directory, devices: LinkedDevices, mailbox: Mailbox, contacts: Contacts, record: Recorder) {
    this.#groups = groups
    this.#directory = directory
    this.#devices = devices
    this.#mailbox = mailbox
    this.#contacts = contacts
    this.#record = record
  }

  async relay (connection: Connection, node: BinaryNode): Promise<void> {
    const sender = connection.device
    if (!sender) return
    const { id, to } = node.attrs
    const group = this.#groups.get(to ?? '')
    // No such group: 404; not a participant, or not an admin of a group where only admins write: 403.
    const mayWrite = group?.isMember(sender.user) && (!group.announcement || group.isAdmin(sender.user))
    if (!group || !mayWrite) {
      const error = group ? '403' : '404'
      this.#record('refused', `${id} from ${deviceName(sender)} to ${to}: error ${error}`)
      connection.send({ tag: 'ack', attrs: { class: 'message', id, from: to, t: unixNow(), error } })
      return
    }
    // The server acknowledges what it accepted at once; the fan-out to the member devices follows.
    connection.send({ tag: 'ack', attrs: { class: 'message', id, from: group.jid, t: unixNow() } })
    const send: GroupSend = { id, from: deviceName(sender), at: Date.now(), skdms: 0, skdmsToHolders: 0, decrypted: 0, failures: [] }
    await this.#distributeSenderKeys(node, group, sender, send)
    const skmsg = getBinaryNodeChildren(node, 'enc').find((enc) => enc.attrs.type === 'skmsg')
    if (!(skmsg?.content instanceof Uint8Array)) {
      send.failures.push('the message carries no skmsg')
      group.sends.push(send)
      return
    }
    const decrypted = this.#decryptForMembers(group, send, parseSenderKeyMessage(skmsg.content))
    group.sends.push(send)
    this.#record('message', `${send.from} → ${group.jid} ${id}: ${send.skdms} sender keys, ${send.decrypted} devices decrypted, ` +
      `${send.failures.length} failed`)
    if (decrypted.message) {
      group.history.set(id, { author: sender.user, content: decrypted.message })
      this.#recordReceived(group, send, decrypted.message, decrypted.byPhone)
    }
    this.#reportDelivery(group, sender, id, [...decrypted.byPhone.keys()])
  }

  /** Each `<to>`: a member device's copy of the sender's key (SKDM), which it decrypts and keeps. */
  async #distributeSenderKeys (node: BinaryNode, group: Group, sender: DeviceAddress, send: GroupSend): Promise<void> {
    const recipients = getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')
    for (const [index, to] of recipients.entries()) {
      // Opening hundreds of Signal sessions takes a second: other connections get their turn in between.
      if (index % YIELD_EVERY_DEVICES === YIELD_EVERY_DEVICES - 1) await setImmediate()
      const enc = getBinaryNodeChild(to, 'enc')
      const resolved = this.#directory.resolve(to.attrs.jid ?? '')
      // Baileys may list its own device in a LID group; WhatsApp does not echo a message to its sender.
      if (resolved?.account.phone === sender.user && resolved.device === sender.device) continue
      const device = resolved?.account.simulatedDevice(resolved.device)
      if (!resolved || !device || !(enc?.content instanceof Uint8Array)) {
        send.failures.push(`${to.attrs.jid}: not a device the simulator hosts`)
        continue
      }
      const name = deviceName({ user: resolved.account.phone, device: resolved.device })
      try {
        const padded = await device.decrypt(sender, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
        const distribution = proto.Message.decode(unpadRandomMax16(padded)).senderKeyDistributionMessage
        if (!distribution?.axolotlSenderKeyDistributionMessage || distribution.groupId !== group.jid) {
          throw new Error('no sender key distribution message for this group')
        }
        const isNew = device.senderKeys.store(group.jid, send.from, parseDistribution(distribution.axolotlSenderKeyDistributionMessage))
        send.skdms++
        if (!isNew) send.skdmsToHolders++
      } catch (err) {
        send.failures.push(`${name}: ${(err as Error).message}`)
      }
    }
  }

  /** Every simulated device of every member opens the `skmsg` with the sender key it holds. */
  #decryptForMembers (group: Group, send: GroupSend, skmsg: SenderKeyMessage) {
    let message: proto.IMessage | undefined
    const byPhone = new Map<string, number[]>()
    const senderPhone = send.from.split(':')[0]
    for (const phone of group.members()) {
      for (const { device, signal } of this.#directory.account(phone).simulatedDevices()) {
        const held = signal.senderKeys.get(group.jid, send.from)
        if (!held) {
          send.failures.push(`${phone}:${device}: no sender key`)
          continue
        }
        try {
          const plain = held.decrypt(skmsg, this.#checks)
          message ??= proto.Message.decode(unpadRandomMax16(plain))
          send.decrypted++
          // The sender's own phone decrypts its account's message too, but is not among the recipients.
          if (phone !== senderPhone) byPhone.set(phone, [...byPhone.get(phone) ?? [], device])
        } catch (err) {
          send.failures.push(`${phone}:${device}: ${(err as Error).message}`)
        }
      }
    }
    return { message, byPhone }
  }

  /** Each participant records the message once (a media file is fetched once for all), with the devices that opened it. */
  #recordReceived (group: Group, send: GroupSend, message: proto.IMessage, byPhone: Map<string, number[]>): void {
    const inboxes = [...byPhone.keys()].map((phone) => group.received(phone))
    if (inboxes.every((inbox) => applyProtocolMessage(inbox, message))) return
    const received = this.#contacts.describe(send.id, send.from, message)
    for (const [phone, devices] of byPhone) group.received(phone).push({ ...received, devices })
  }

  /** Each participant whose devices got the message reports delivery to the sending device, as its phone would. */
  #reportDelivery (group: Group, sender: DeviceAddress, id: string, phones: string[]): void {
    if (phones.length === 0) return
    setTimeout(() => {
      for (const phone of phones) {
        const participant = lidJid(this.#directory.account(phone))
        const receipt: BinaryNode = { tag: 'receipt', attrs: { id, from: group.jid, participant, t: unixNow() } }
        const live = this.#devices.get(deviceName(sender))
        if (live) this.#mailbox.sendReceipt(live, receipt)
        else this.#mailbox.keep(deviceName(sender), { node: receipt })
      }
    }, DELIVERY_RECEIPT_DELAY_MS).unref()
  }
}
