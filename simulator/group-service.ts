import { getBinaryNodeChild, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Contacts } from './contacts.ts'
import type { Recorder } from './log.ts'
import type { Mailbox } from './mailbox.ts'
import type { MediaServer } from './media.ts'
import { GroupFanOut } from './group-fanout.ts'
import { GroupInfo } from './group-info.ts'
import { GroupMembership, type ParticipantAction, type ParticipantOutcome } from './group-membership.ts'
import { GroupNotifier } from './group-notifications.ts'
import { ParticipantMessages, type ParticipantMessageOptions } from './group-participants.ts'
import { answerGroupIq } from './group-queries.ts'
import { GroupRefusal, Groups, type Group, type GroupSend, type ReceivedGroupMessage } from './groups.ts'
import { iqError, iqResult } from './stanzas.ts'

export interface GroupCreation {
  /** The phone number that creates it (its superadmin). */
  creator: string
  subject: string
  /** Phone numbers (or JIDs) added at creation. */
  participants: string[]
  /** Phone numbers made admins from the start. */
  admins?: string[]
  /** Give every simulated participant this many devices in all (the phone and companions). */
  devicesPerParticipant?: number
  /** The older `<creator>-<creation>@g.us` id form. */
  legacyId?: boolean
}

/**
 * WhatsApp groups in the simulator: the state, the `w:g2` queries linked devices send, the `w:gp2`
 * notifications member devices get, and group messages both ways. Also what tests and the control
 * API do as the simulated participants, and what they read back.
 */
export class GroupService {
  readonly registry = new Groups()
  readonly membership: GroupMembership
  readonly info: GroupInfo
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #notifier: GroupNotifier
  readonly #fanOut: GroupFanOut
  readonly #participants: ParticipantMessages

  constructor (deps: {
    directory: Directory, devices: LinkedDevices, mailbox: Mailbox, contacts: Contacts, media: MediaServer, record: Recorder
  }) {
    const { directory, devices, mailbox, contacts, media, record } = deps
    this.#directory = directory
    this.#devices = devices
    this.#notifier = new GroupNotifier(directory, devices, mailbox, record)
    this.membership = new GroupMembership(this.registry, directory, this.#notifier, record)
    this.info = new GroupInfo(this.membership, directory, this.#notifier, media, record)
    this.#fanOut = new GroupFanOut(this.registry, directory, devices, mailbox, contacts, record)
    this.#participants = new ParticipantMessages(this.registry, directory, devices, mailbox, record)
  }

  /** A linked device's `<iq xmlns="w:g2">`. */
  answerIq (connection: Connection, iq: BinaryNode): void {
    answerGroupIq(connection, iq, { groups: this.registry, membership: this.membership, info: this.info, directory: this.#directory })
  }

  /**
   * A group's picture goes through the profile-picture query (`xmlns="w:profile:picture"`, `target` the
   * group): set with the JPEG, removed without it, read back as a URL on the media server.
   */
  answerPictureIq (connection: Connection, iq: BinaryNode): void {
    const target = iq.attrs.target ?? ''
    const actor = connection.device?.user ?? ''
    try {
      const result = iqResult(iq)
      if (iq.attrs.type === 'get') {
        const picture = this.membership.find(target).picture
        if (!picture) throw new GroupRefusal(404, 'item-not-found')
        result.content = [{ tag: 'picture', attrs: { id: picture.id, url: picture.url, type: 'image' } }]
      } else {
        const jpeg = getBinaryNodeChild(iq, 'picture')?.content
        const id = this.info.picture(target, actor, jpeg instanceof Uint8Array ? Buffer.from(jpeg) : undefined)
        if (id) result.content = [{ tag: 'picture', attrs: { id } }]
      }
      connection.send(result)
    } catch (err) {
      if (!(err instanceof GroupRefusal)) throw err
      connection.send(iqError(iq, err.code, err.text))
    }
  }

  /** A linked device's message to a group: acknowledged and fanned out to the member devices. */
  relay (connection: Connection, node: BinaryNode): Promise<void> {
    return this.#fanOut.relay(connection, node)
  }

  /** A linked device's receipt for a participant's group message. */
  receiptFromDevice (connection: Connection, node: BinaryNode): void {
    this.#participants.receiptFromDevice(connection, node)
  }

  /** A group of simulated contacts (and, among `participants`, a linked number), told to the members' linked devices. */
  create (options: GroupCreation): { group: Group, outcomes: ParticipantOutcome[] } {
    for (const participant of [options.creator, ...options.participants]) {
      const account = participant.includes('@') ? this.#directory.resolve(participant)?.account : this.#directory.account(participant)
      // A number with linked devices (a test's Baileys) has its devices already: only contacts get companions.
      if (!account || account.knownDevices.size > 0) continue
      while (account.simulatedDevices().length < (options.devicesPerParticipant ?? 1)) account.addCompanion()
    }
    return this.membership.create(options)
  }

  get (jid: string): Group | undefined {
    return this.registry.get(jid)
  }

  /** A participant writes to the group. */
  send (options: ParticipantMessageOptions): ReturnType<ParticipantMessages['send']> {
    return this.#participants.send(options)
  }

  /** A participant adds, removes, promotes or demotes others. */
  change (jid: string, actor: string, action: ParticipantAction, phones: string[]): ParticipantOutcome[] {
    return this.membership.change(jid, actor, action, phones.map((phone) => `${phone}@s.whatsapp.net`))
  }

  /** Someone asks to join by the group's invite link: joins, or waits for the admins when they approve members. */
  requestJoin (jid: string, phone: string): { pending: boolean } {
    const group = this.membership.find(jid)
    return { pending: this.membership.join(group.inviteCode, phone).pending }
  }

  /** What the participant received in the group, decrypted. */
  received (jid: string, phone: string): ReceivedGroupMessage[] {
    return [...this.membership.find(jid).received(phone)]
  }

  /** The linked devices' sends to the group and how their fan-out went (sender keys distributed, devices that decrypted). */
  sends (jid: string): GroupSend[] {
    return [...this.membership.find(jid).sends]
  }

  /** Which sending devices' keys each simulated member device holds (`<phone>:<device>` → senders). */
  senderKeys (jid: string): Record<string, string[]> {
    const group = this.membership.find(jid)
    const held: Record<string, string[]> = {}
    for (const phone of group.members()) {
      for (const { device, signal } of this.#directory.account(phone).simulatedDevices()) {
        const keys = signal.senderKeys.list().filter((key) => key.group === group.jid)
        held[deviceName({ user: phone, device })] = keys.map((key) => key.sender)
      }
    }
    return held
  }

  /** WhatsApp asks the device to fetch its groups again (`<ib><dirty type="groups">`); false when it is not connected. */
  markDirty (device: string): boolean {
    const connection = this.#devices.get(device)
    if (!connection) return false
    this.#notifier.dirty(connection)
    return true
  }
}
