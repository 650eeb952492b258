import { randomBytes } from 'node:crypto'
import type { BinaryNode } from '@whiskeysockets/baileys'
import type { Account, Directory } from './accounts.ts'
import type { Recorder } from './log.ts'
import type { GroupNotifier } from './group-notifications.ts'
import { groupNode, participantNode } from './group-nodes.ts'
import { refusals, type Group, type Groups, type JoinRequest } from './groups.ts'
import { unixSeconds } from './stanzas.ts'

export type ParticipantAction = 'add' | 'remove' | 'promote' | 'demote'

/** What became of one participant of a change, as WhatsApp answers it (`<participant jid [error]>`). */
export interface ParticipantOutcome {
  /** The JID as it was asked for. */
  jid: string
  /** 200; 403 the participant's privacy refuses adds; 404 not on WhatsApp, or not in the group; 409 already in it. */
  status: number
  account?: Account
  /** With a 403: what the admin can invite the participant with instead (a group invite message). */
  addRequest?: { code: string, expiration: number }
}

/** An invitation sent instead of a refused add stays valid this long (WhatsApp: three days). */
const ADD_REQUEST_SECONDS = 3 * 24 * 3600
/** Subjects are at most this long. */
const MAX_SUBJECT_LENGTH = 100

/**
 * Who is in a group: creating it, adding, removing, promoting and demoting participants, leaving,
 * joining by invite link and the admins' answers to join requests. Every change is checked as
 * WhatsApp checks it (who may do it), applied, and told to the member devices.
 */
export class GroupMembership {
  readonly #groups: Groups
  readonly #directory: Directory
  readonly #notifier: GroupNotifier
  readonly #record: Recorder

  constructor (groups: Groups, directory: Directory, notifier: GroupNotifier, record: Recorder) {
    this.#groups = groups
    this.#directory = directory
    this.#notifier = notifier
    this.#record = record
  }

  /** The group, or 404. */
  find (jid: string): Group {
    const group = this.#groups.get(jid)
    if (!group) throw refusals.noGroup(jid)
    return group
  }

  /** The group, if `phone` takes part in it (403 otherwise). */
  asMember (jid: string, phone: string): Group {
    const group = this.find(jid)
    if (!group.isMember(phone)) throw refusals.notParticipant(phone)
    return group
  }

  /** The group, if `phone` is one of its admins (401 otherwise). */
  asAdmin (jid: string, phone: string): Group {
    const group = this.asMember(jid, phone)
    if (!group.isAdmin(phone)) throw refusals.notAdmin(phone)
    return group
  }

  /**
   * `creator` makes a group of `participants` (JIDs or phone numbers): each is added, or refused as
   * an add would be; `admins` (phone numbers) are promoted from the start. The members are told.
   */
  create (options: { creator: string, subject: string, participants: string[], admins?: string[], legacyId?: boolean }) {
    checkSubject(options.subject)
    const group = this.#groups.create({ creator: options.creator, subject: options.subject, legacyId: options.legacyId })
    const outcomes = options.participants
      .filter((jid) => this.#account(jid)?.phone !== options.creator)
      .map((jid) => this.#admit(group, jid))
    for (const phone of options.admins ?? []) if (group.participants.get(phone) === 'member') group.participants.set(phone, 'admin')
    this.#record('group', `${group.jid} "${group.subject}" created by ${options.creator} with ${group.participants.size} participants`)
    this.#notifier.changed(group, options.creator, { tag: 'create', attrs: {}, content: [groupNode(group, this.#directory)] })
    return { group, outcomes }
  }

  /** `actor` adds, removes, promotes or demotes participants; each gets its own outcome. */
  change (jid: string, actor: string, action: ParticipantAction, jids: string[]): ParticipantOutcome[] {
    const group = this.asMember(jid, actor)
    const allowed = action === 'add' ? group.mayAdd(actor) : group.isAdmin(actor)
    if (!allowed) throw refusals.notAdmin(actor)
    const before = group.members()
    const outcomes = jids.map((asked) => action === 'add' ? this.#admit(group, asked) : this.#apply(group, action, asked))
    const changed = outcomes.filter((outcome) => outcome.status === 200).map((outcome) => outcome.account!)
    if (changed.length > 0) {
      const nodes = changed.map((account) => participantNode(account, group.participants.get(account.phone)))
      this.#notifier.changed(group, actor, { tag: action, attrs: {}, content: nodes }, [...before, ...group.members()])
    }
    return outcomes
  }

  /** `actor` leaves the groups; a group left without an admin gets one (its longest-standing member). */
  leave (jids: string[], actor: string): string[] {
    const left = jids.map((jid) => this.asMember(jid, actor))
    for (const group of left) {
      const account = this.#directory.account(actor)
      group.participants.delete(actor)
      // Removing oneself is how WhatsApp tells a leave (Baileys turns it into GROUP_PARTICIPANT_LEAVE).
      this.#notifier.changed(group, actor, { tag: 'remove', attrs: {}, content: [participantNode(account)] }, [...group.members(), actor])
      this.#record('group', `${actor} left ${group.jid}`)
      const successor = group.admins().length === 0 ? group.members()[0] : undefined
      if (successor) {
        group.participants.set(successor, 'admin')
        const node = participantNode(this.#directory.account(successor), 'admin')
        this.#notifier.changed(group, undefined, { tag: 'promote', attrs: {}, content: [node] })
      }
    }
    return left.map((group) => group.jid)
  }

  /** The group an invite code opens (406 for a code that is unknown or was revoked). */
  byInvite (code: string): Group {
    const group = this.#groups.byInviteCode(code)
    if (!group) throw refusals.notAcceptable(`no group has the invite code ${code}`)
    return group
  }

  /**
   * `phone` follows an invite link: it joins, or, when admins approve members, its request waits
   * for them (they are told). Following the link of a group one is in changes nothing.
   */
  join (code: string, phone: string): { group: Group, pending: boolean } {
    const group = this.byInvite(code)
    const account = this.#directory.account(phone)
    if (group.isMember(phone)) return { group, pending: false }
    if (group.joinApproval) {
      group.requests.set(phone, { phone, at: unixSeconds(), method: 'invite_link' })
      const request: BinaryNode = {
        tag: 'created_membership_requests', attrs: { request_method: 'invite_link' }, content: [participantNode(account)]
      }
      this.#notifier.changed(group, phone, request, group.admins())
      this.#record('group', `${phone} asks to join ${group.jid}`)
      return { group, pending: true }
    }
    group.participants.set(phone, 'member')
    this.#notifier.changed(group, phone, { tag: 'add', attrs: { reason: 'invite' }, content: [participantNode(account)] })
    this.#record('group', `${phone} joined ${group.jid} by invite link`)
    return { group, pending: false }
  }

  /** The requests waiting for the admins (asked by one of them). */
  requests (jid: string, actor: string): JoinRequest[] {
    return [...this.asAdmin(jid, actor).requests.values()]
  }

  /** An admin approves (they join) or rejects join requests; a JID with no request gets 404. */
  answer (jid: string, actor: string, action: 'approve' | 'reject', jids: string[]): ParticipantOutcome[] {
    const group = this.asAdmin(jid, actor)
    const outcomes = jids.map((asked): ParticipantOutcome => {
      const account = this.#account(asked)
      if (!account || !group.requests.delete(account.phone)) return { jid: asked, status: 404 }
      if (action === 'approve') group.participants.set(account.phone, 'member')
      return { jid: asked, status: 200, account }
    })
    const answered = outcomes.filter((outcome) => outcome.status === 200).map((outcome) => participantNode(outcome.account!))
    if (answered.length > 0 && action === 'approve') {
      this.#notifier.changed(group, actor, { tag: 'add', attrs: { reason: 'approval' }, content: answered })
    } else if (answered.length > 0) {
      const requesters = outcomes.filter((outcome) => outcome.status === 200).map((outcome) => outcome.account!.phone)
      const rejection = { tag: 'revoked_membership_requests', attrs: {}, content: answered }
      this.#notifier.changed(group, actor, rejection, [...group.admins(), ...requesters])
    }
    return outcomes
  }

  /** The account a JID (phone or LID) or a bare phone number names. */
  #account (jid: string): Account | undefined {
    return this.#directory.resolve(jid.includes('@') ? jid : `${jid}@s.whatsapp.net`)?.account
  }

  /** One participant of an add: added, or refused as WhatsApp refuses it. */
  #admit (group: Group, asked: string): ParticipantOutcome {
    const account = this.#account(asked)
    if (!account?.registered) return { jid: asked, status: 404 }
    if (group.isMember(account.phone)) return { jid: asked, status: 409, account }
    if (account.groupAdd === 'nobody') {
      const addRequest = { code: randomBytes(12).toString('base64url'), expiration: unixSeconds() + ADD_REQUEST_SECONDS }
      return { jid: asked, status: 403, account, addRequest }
    }
    group.participants.set(account.phone, 'member')
    group.requests.delete(account.phone)
    return { jid: asked, status: 200, account }
  }

  #apply (group: Group, action: Exclude<ParticipantAction, 'add'>, asked: string): ParticipantOutcome {
    const account = this.#account(asked)
    if (!account || !group.isMember(account.phone)) return { jid: asked, status: 404 }
    // The creator stays superadmin whatever the other admins do.
    if (action === 'remove') group.participants.delete(account.phone)
    else if (group.participants.get(account.phone) !== 'superadmin') {
      group.participants.set(account.phone, action === 'promote' ? 'admin' : 'member')
    }
    return { jid: asked, status: 200, account }
  }
}

export function checkSubject (subject: string): void {
  if (subject.trim().length === 0) throw refusals.badRequest('a subject is required')
  if ([...subject].length > MAX_SUBJECT_LENGTH) throw refusals.notAcceptable(`a subject has at most ${MAX_SUBJECT_LENGTH} characters`)
}
