import { randomBytes } from 'node:crypto'
import { userJid, type Directory } from './accounts.ts'
import type { Recorder } from './log.ts'
import type { MediaServer } from './media.ts'
import { checkSubject, type GroupMembership } from './group-membership.ts'
import type { GroupNotifier } from './group-notifications.ts'
import { joinApprovalNode, lidJid } from './group-nodes.ts'
import { refusals, type Group, type MemberAddMode } from './groups.ts'
import { unixSeconds } from './stanzas.ts'

/** The switches an admin flips with an empty child of the same name. */
export type GroupSetting = 'announcement' | 'not_announcement' | 'locked' | 'unlocked'

/**
 * What a group says about itself and how it behaves: subject, description, picture, the admins'
 * settings, disappearing messages and the invite link. Each change is checked (a locked group's
 * info is the admins'), applied and told to the member devices.
 */
export class GroupInfo {
  readonly #membership: GroupMembership
  readonly #directory: Directory
  readonly #notifier: GroupNotifier
  readonly #media: MediaServer
  readonly #record: Recorder

  constructor (membership: GroupMembership, directory: Directory, notifier: GroupNotifier, media: MediaServer, record: Recorder) {
    this.#membership = membership
    this.#directory = directory
    this.#notifier = notifier
    this.#media = media
    this.#record = record
  }

  subject (jid: string, actor: string, subject: string): void {
    const group = this.#editable(jid, actor)
    checkSubject(subject)
    Object.assign(group, { subject, subjectBy: actor, subjectAt: unixSeconds() })
    const owner = this.#directory.account(actor)
    this.#notifier.changed(group, actor, {
      tag: 'subject', attrs: { subject, s_o: lidJid(owner), s_o_pn: userJid(owner.phone), s_t: String(group.subjectAt) }
    })
  }

  /**
   * Sets the description (`body`), or deletes it (no body). `previous` is the id the client last saw:
   * a stale one means someone changed it meanwhile (409), as WhatsApp answers.
   */
  description (jid: string, actor: string, change: { id?: string, previous?: string, body?: string }): void {
    const group = this.#editable(jid, actor)
    if (change.previous !== undefined && change.previous !== group.description?.id) {
      throw refusals.conflict(`the description changed since ${change.previous}`)
    }
    if (change.body === undefined) {
      const id = group.description?.id ?? randomBytes(8).toString('hex').toUpperCase()
      group.description = undefined
      this.#notifier.changed(group, actor, { tag: 'description', attrs: { id, delete: 'true' } })
      return
    }
    const id = change.id ?? randomBytes(8).toString('hex').toUpperCase()
    group.description = { id, body: change.body, by: actor, at: unixSeconds() }
    this.#notifier.changed(group, actor, {
      tag: 'description', attrs: { id }, content: [{ tag: 'body', attrs: {}, content: Buffer.from(change.body) }]
    })
  }

  /** Admins only: who may send (announcement) and who may edit the group's info (locked). */
  setting (jid: string, actor: string, setting: GroupSetting): void {
    const group = this.#membership.asAdmin(jid, actor)
    if (setting === 'announcement' || setting === 'not_announcement') group.announcement = setting === 'announcement'
    else group.locked = setting === 'locked'
    this.#notifier.changed(group, actor, { tag: setting, attrs: {} })
  }

  memberAddMode (jid: string, actor: string, mode: MemberAddMode): void {
    const group = this.#membership.asAdmin(jid, actor)
    group.memberAddMode = mode
    this.#notifier.changed(group, actor, { tag: 'member_add_mode', attrs: {}, content: mode })
  }

  /** Admins approve who joins by link, or not; requests already waiting stay until answered. */
  joinApproval (jid: string, actor: string, on: boolean): void {
    const group = this.#membership.asAdmin(jid, actor)
    group.joinApproval = on
    this.#notifier.changed(group, actor, joinApprovalNode(on))
  }

  /** Disappearing messages, in seconds (0 turns them off). */
  ephemeral (jid: string, actor: string, seconds: number): void {
    const group = this.#editable(jid, actor)
    group.ephemeral = seconds
    this.#notifier.changed(group, actor, seconds > 0
      ? { tag: 'ephemeral', attrs: { expiration: String(seconds) } }
      : { tag: 'not_ephemeral', attrs: {} })
  }

  /** The invite link's code (admins only). */
  inviteCode (jid: string, actor: string): string {
    return this.#membership.asAdmin(jid, actor).inviteCode
  }

  /** A new invite code; the old link stops working. */
  revokeInvite (jid: string, actor: string): string {
    const group = this.#membership.asAdmin(jid, actor)
    const code = group.revokeInvite()
    this.#notifier.changed(group, actor, { tag: 'invite', attrs: { code } })
    this.#record('group', `${group.jid} invite link reset by ${actor}`)
    return code
  }

  /**
   * Sets the group's picture (the JPEG Baileys made) or removes it (none): hosted on the media server
   * for `profilePictureUrl`, and told with a `picture` notification.
   */
  picture (jid: string, actor: string, jpeg: Buffer | undefined): string | undefined {
    const group = this.#editable(jid, actor)
    const author = lidJid(this.#directory.account(actor))
    if (!jpeg) {
      group.picture = undefined
      this.#notifier.pictureChanged(group, actor, { tag: 'delete', attrs: { author } })
      return undefined
    }
    const id = String(unixSeconds())
    group.picture = { id, url: this.#media.host(jpeg).url }
    this.#notifier.pictureChanged(group, actor, { tag: 'set', attrs: { id, author } })
    return id
  }

  /** The group, if `actor` may change its info: anyone in it, or only admins once it is locked. */
  #editable (jid: string, actor: string): Group {
    const group = this.#membership.asMember(jid, actor)
    if (!group.mayEditInfo(actor)) throw refusals.notAdmin(actor)
    return group
  }
}
