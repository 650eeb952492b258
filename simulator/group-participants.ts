import { proto, writeRandomPadMax16, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, userJid, type DeviceAddress, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import { deliverToLinkedDevices, receiptIds, receiptMeansReceived, type InboundMessage, type Mailbox } from './mailbox.ts'
import { lidDeviceJid, lidJid } from './group-nodes.ts'
import { refusals, type Group, type Groups } from './groups.ts'
import { OwnSenderKey } from './sender-keys.ts'
import type { SignalDevice } from './signal.ts'
import { stanzaId, unixSeconds } from './stanzas.ts'

export interface ParticipantMessageOptions {
  group: string
  /** The participant's phone number, and which of its simulated devices sends (the phone by default). */
  from: string
  device?: number
  /** The text; or `content`, a message other than a text (a poll vote), as the phone encodes it. */
  text?: string
  content?: proto.IMessage
  /** The stanza's `type` when not `text` (a vote travels as `poll`). */
  stanzaType?: string
  /** WhatsApp names the writer by LID only (no participant_pn). */
  withoutPhone?: boolean
  /** The id of a message in the group this one replies to. */
  replyTo?: string
  /** Phone numbers of the participants it mentions (`@` in the text is the sender's business). */
  mentions?: string[]
  id?: string
  pushName?: string
}

/**
 * Simulated participants writing to a group: each sending device has its own sender key; the
 * message is encrypted once (`skmsg`) and every linked device of a member gets it, preceded by the
 * sender's key (SKDM, 1:1-encrypted to that device) until the device has acknowledged a message
 * carrying it. Baileys decrypts both; its receipts come back to the participant.
 */
export class ParticipantMessages {
  readonly #groups: Groups
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #record: Recorder
  /** By `<group>::<phone>:<device>`: the sender key that device writes to the group with. */
  readonly #ownKeys = new Map<string, OwnSenderKey>()
  /** By `<group>::<phone>:<device>`: linked devices that acknowledged a message carrying that key. */
  readonly #holders = new Map<string, Set<string>>()

  constructor (groups: Groups, directory: Directory, devices: LinkedDevices, mailbox: Mailbox, record: Recorder) {
    this.#groups = groups
    this.#directory = directory
    this.#devices = devices
    this.#mailbox = mailbox
    this.#record = record
  }

  /** A participant writes to the group: the linked devices of every member get it (or at their next login). */
  async send (options: ParticipantMessageOptions): Promise<{ id: string, devices: number, queued: number, senderKeys: number }> {
    const group = this.#groups.get(options.group)
    if (!group) throw refusals.noGroup(options.group)
    if (!group.isMember(options.from)) throw refusals.notParticipant(options.from)
    if (group.announcement && !group.isAdmin(options.from)) throw refusals.notAdmin(options.from)
    const author = this.#directory.account(options.from)
    const device = options.device ?? 0
    const signal = author.simulatedDevice(device)
    if (!signal) throw refusals.badRequest(`${options.from} has no simulated device ${device}`)
    const id = options.id ?? stanzaId().toUpperCase()
    const content = this.#content(group, options)
    group.history.set(id, { author: author.phone, content })
    const senderName = deviceName({ user: author.phone, device })
    const key = this.#ownKey(group, senderName)
    // The key as it stands before this message: a device given it can open this message and the next ones.
    const distribution = key.distribution()
    const skmsg = key.encrypt(writeRandomPadMax16(proto.Message.encode(content).finish()))
    let senderKeys = 0
    const encrypt = async (recipient: DeviceAddress): Promise<BinaryNode[]> => {
      const nodes: BinaryNode[] = []
      if (!this.#holdersOf(group, senderName).has(deviceName(recipient))) {
        const senderKeyDistributionMessage = { groupId: group.jid, axolotlSenderKeyDistributionMessage: distribution }
        nodes.push(await pairwise(this.#directory, this.#record, signal, recipient, { senderKeyDistributionMessage }))
        senderKeys++
      }
      nodes.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: skmsg })
      return nodes
    }
    const message = (to: string): InboundMessage => ({
      from: author.phone,
      to,
      id,
      at: unixSeconds(),
      content,
      pushName: options.pushName ?? author.pushName,
      ...(options.stanzaType ? { stanzaType: options.stanzaType } : {}),
      group: {
        jid: group.jid,
        participant: lidDeviceJid(author, device),
        ...(options.withoutPhone ? {} : { participantPn: userJid(author.phone) }),
        encrypt
      }
    })
    const { devices, queued } = await deliverToLinkedDevices(this.#directory, this.#devices, this.#mailbox, group.members(), message)
    this.#record('inbound', `${senderName} → ${group.jid} ${id} (${devices} devices, ${queued} queued, ${senderKeys} sender keys)`)
    return { id, devices, queued, senderKeys }
  }

  /**
   * A linked device's receipt for a participant's group message (`to` the group, `participant` the
   * sender): recorded for the participant; a delivery means the device now holds the sender's key,
   * a retry that it does not.
   */
  receiptFromDevice (connection: Connection, node: BinaryNode): void {
    const group = this.#groups.get(node.attrs.to ?? '')
    const author = this.#directory.resolve(node.attrs.participant ?? '')
    if (!group || !author || !connection.device) return
    const from = deviceName(connection.device)
    // As for 1:1 messages: a client not marked online acknowledges delivery as 'inactive'.
    const delivered = node.attrs.type === undefined || node.attrs.type === 'inactive'
    const type = delivered ? 'delivered' : node.attrs.type === 'read' ? 'read' : 'other'
    for (const messageId of receiptIds(node)) author.account.receipts.push({ messageId, from, type, at: Date.now() })
    const holders = this.#holdersOf(group, deviceName({ user: author.account.phone, device: author.device }))
    if (receiptMeansReceived(node.attrs.type)) holders.add(from)
    else if (node.attrs.type === 'retry') holders.delete(from)
  }

  #content (group: Group, options: ParticipantMessageOptions): proto.IMessage {
    if (options.content) return options.content
    if (options.text === undefined) throw refusals.badRequest('a participant\'s message needs a text or a content')
    const quoted = options.replyTo ? group.history.get(options.replyTo) : undefined
    if (options.replyTo && !quoted) throw refusals.badRequest(`no message ${options.replyTo} in ${group.jid} to reply to`)
    const mentionedJid = (options.mentions ?? []).map((phone) => lidJid(this.#directory.account(phone)))
    const contextInfo: proto.IContextInfo = {
      ...(mentionedJid.length ? { mentionedJid } : {}),
      ...(quoted
        ? { stanzaId: options.replyTo, participant: lidJid(this.#directory.account(quoted.author)), quotedMessage: quoted.content }
        : {})
    }
    return Object.keys(contextInfo).length
      ? { extendedTextMessage: { text: options.text, contextInfo } }
      : { conversation: options.text }
  }

  #ownKey (group: Group, senderName: string): OwnSenderKey {
    let key = this.#ownKeys.get(`${group.jid}::${senderName}`)
    if (!key) {
      key = new OwnSenderKey()
      this.#ownKeys.set(`${group.jid}::${senderName}`, key)
    }
    return key
  }

  #holdersOf (group: Group, senderName: string): Set<string> {
    let holders = this.#holders.get(`${group.jid}::${senderName}`)
    if (!holders) {
      holders = new Set()
      this.#holders.set(`${group.jid}::${senderName}`, holders)
    }
    return holders
  }
}

/**
 * A message for one linked device, 1:1-encrypted by a simulated device (a participant's sender key,
 * a status poster's): on the session that linked device opened with the sender, or a new one from the
 * keys it registered when it was linked (pkmsg). A device linked elsewhere has neither: it gets the
 * message in plaintext, which WhatsApp itself never does (logged).
 */
export async function pairwise (
  directory: Directory, record: Recorder, sender: SignalDevice, recipient: DeviceAddress, message: proto.IMessage
): Promise<BinaryNode> {
  const bytes = Buffer.from(proto.Message.encode(message).finish())
  if (!sender.hasSession(recipient)) {
    const keys = directory.account(recipient.user).registeredKeys.get(recipient.device)
    if (keys) await sender.openSession(recipient, keys)
  }
  if (!sender.hasSession(recipient)) {
    record('error', `no Signal keys for ${deviceName(recipient)}: its message goes in plaintext`)
    return { tag: 'plaintext', attrs: {}, content: bytes }
  }
  const { type, ciphertext } = await sender.encrypt(recipient, writeRandomPadMax16(bytes))
  return { tag: 'enc', attrs: { v: '2', type }, content: ciphertext }
}
