import type { BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, type Account, type Directory } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import type { Mailbox } from './mailbox.ts'
import { groupNotification } from './group-nodes.ts'
import type { Group } from './groups.ts'
import { unixNow } from './stanzas.ts'

/**
 * Tells member devices about group changes. Simulated devices read the group's state directly;
 * linked devices get the notification on their connection, or at their next login when offline,
 * and acknowledge it with `<ack class="notification">` (the mailbox keeps it until then).
 */
export class GroupNotifier {
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
   * A `w:gp2` notification of `change` by `actor` (a phone number) to the linked devices of the
   * accounts given (by default the group's members; a removal also tells whoever was removed).
   */
  changed (group: Group, actor: string | undefined, change: BinaryNode, recipients: Iterable<string> = group.members()): void {
    this.#deliver(group, actor, change, 'w:gp2', recipients)
  }

  /** The group's picture was set or removed: a `picture` notification (`<set id author>`, `<delete author>`). */
  pictureChanged (group: Group, actor: string, change: BinaryNode): void {
    this.#deliver(group, actor, change, 'picture', group.members())
  }

  /** WhatsApp tells a device to fetch its groups again (`<ib><dirty type="groups">`); it answers with `<clean>`. */
  dirty (connection: Connection): void {
    connection.send({ tag: 'ib', attrs: {}, content: [{ tag: 'dirty', attrs: { type: 'groups', timestamp: unixNow() } }] })
    this.#record('group', `groups dirty for ${connection.device ? deviceName(connection.device) : '?'}`)
  }

  #deliver (group: Group, actor: string | undefined, change: BinaryNode, type: string, recipients: Iterable<string>): void {
    const actorAccount: Account | undefined = actor ? this.#directory.account(actor) : undefined
    const notification = groupNotification(group, actorAccount, change, type)
    let live = 0
    let kept = 0
    for (const phone of new Set(recipients)) {
      for (const device of this.#directory.account(phone).knownDevices) {
        const name = deviceName({ user: phone, device })
        const connection = this.#devices.get(name)
        if (connection) {
          this.#mailbox.sendNotification(connection, notification)
          live++
        } else {
          this.#mailbox.keep(name, { notification })
          kept++
        }
      }
    }
    this.#record('group', `${group.jid} ${type} <${change.tag}> by ${actor ?? 'WhatsApp'}: ${live} devices, ${kept} kept`)
  }
}
