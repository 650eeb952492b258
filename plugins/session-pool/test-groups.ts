import { createHash, randomBytes } from 'node:crypto'
import type { GroupEvent, GroupMemberResult, GroupPort, GroupSetting, InboundMessage, SocketEvents } from './socket-port.ts'
import { checkSubject, Directory, Group, newGroupJid, phoneJid, refusals, type GroupRole } from './test-group-state.ts'

export { isGroupJid, lidOf } from './test-group-state.ts'
export type { GroupRole } from './test-group-state.ts'

export type ParticipantAction = 'add' | 'remove' | 'promote' | 'demote'

/** How the model reaches a company: the open connection of the linked number, which emits as Baileys would. */
export interface GroupListener {
  emitLater: <K extends keyof SocketEvents>(event: K, payload: SocketEvents[K]) => void
}

/** What a test reads of a group: the participants by number with their roles, its settings and who waits to join. */
export interface GroupState {
  jid: string
  subject: string
  description?: string
  creator: string
  participants: { phone: string, role: GroupRole }[]
  announce: boolean
  restrict: boolean
  memberAddMode: boolean
  joinApproval: boolean
  ephemeralSeconds: number
  inviteCode: string
  requests: string[]
  /** The last picture set: the size and hex SHA-256 of the image. */
  picture?: { size: number, sha256: string }
}

export interface GroupMessageOptions {
  /** Numbers (or JIDs) the text mentions; the group names them by LID. */
  mentions?: string[]
  quotedMessageId?: string
  id?: string
  pushName?: string
}

type GroupChange = Extract<GroupEvent, { kind: 'update' }>['change']

/** An add refused by privacy comes with an invitation that stays valid this long (WhatsApp: three days). */
const ADD_REQUEST_SECONDS = 3 * 24 * 3600

/**
 * WhatsApp's groups in the test double, with the rules the simulator enforces (simulator/groups.ts,
 * group-membership.ts, group-info.ts): LID-addressed groups, the creator as superadmin, each
 * participant of a change answered apart (200; 403 privacy, with the invitation to send instead;
 * 404 not on WhatsApp or not in the group; 409 already in), refusals for the whole query (401 not an
 * admin, 403 not a participant, 404 no such group). A company acts through `port()` with its linked
 * number; tests act as the other participants through the public methods. Every change is told, as
 * `groups` socket events, to the open connection of every member it concerns, its author's included
 * (WhatsApp echoes its notifications), in the shapes the Baileys adapter gives them (baileys-groups.ts).
 */
export class TestGroups {
  readonly #groups = new Map<string, Group>()
  readonly #directory = new Directory()
  readonly #reach: (phone: string) => GroupListener[]

  constructor (reach: (phone: string) => GroupListener[]) {
    this.#reach = reach
  }

  /** The group port of a company's connection: `actingAs` checks the connection may write and gives its linked number. */
  port (actingAs: () => Promise<string>): GroupPort {
    const asMember = async (jid: string) => {
      const actor = await actingAs()
      return { actor, group: this.#asMember(jid, actor) }
    }
    return {
      create: async (subject, jids) => this.#create(await actingAs(), subject, jids).group.meta(this.#directory),
      metadata: async (jid) => (await asMember(jid)).group.meta(this.#directory),
      participating: async () => {
        const actor = await actingAs()
        return [...this.#groups.values()].filter((group) => group.isMember(actor)).map((group) => group.meta(this.#directory))
      },
      updateParticipants: async (jid, jids, action) => this.#change(jid, await actingAs(), action, jids),
      setSubject: async (jid, subject) => this.#rename(jid, await actingAs(), subject),
      setDescription: async (jid, description) => {
        const { actor, group } = await asMember(jid)
        // An empty description removes it.
        this.#edit(group, actor, { description }, () => { group.description = description || undefined })
      },
      setPicture: async (jid, image) => {
        const { actor, group } = await asMember(jid)
        const picture = { size: image.length, sha256: createHash('sha256').update(image).digest('hex') }
        this.#edit(group, actor, { picture: true }, () => { group.picture = picture })
      },
      setSetting: async (jid, setting) => this.#adminSetting(jid, await actingAs(), settingChange(setting)),
      setMemberAddMode: async (jid, membersCanAdd) => this.#adminSetting(jid, await actingAs(), { memberAddMode: membersCanAdd }),
      setJoinApproval: async (jid, on) => this.#adminSetting(jid, await actingAs(), { joinApproval: on }),
      setDisappearing: async (jid, seconds) => {
        const { actor, group } = await asMember(jid)
        if (!Number.isInteger(seconds) || seconds < 0) throw refusals.badRequest(`no disappearing timer of ${seconds} s`)
        this.#edit(group, actor, { ephemeralSeconds: seconds }, () => { group.ephemeralSeconds = seconds })
      },
      inviteCode: async (jid) => this.#asAdmin(jid, await actingAs()).inviteCode,
      revokeInvite: async (jid) => {
        const actor = await actingAs()
        const group = this.#asAdmin(jid, actor)
        const inviteCode = group.revokeInvite()
        this.#tellUpdate(group, actor, { inviteCode })
        return inviteCode
      },
      inviteInfo: async (code) => {
        await actingAs()
        return this.#byInvite(code).meta(this.#directory)
      },
      acceptInvite: async (code) => {
        const { group, pending } = this.#join(this.#byInvite(code), await actingAs())
        return pending ? undefined : group.jid
      },
      joinRequests: async (jid) => {
        const group = this.#asAdmin(jid, await actingAs())
        return [...group.requests].map(([phone, requestedAt]) => ({
          jid: this.#directory.lidJid(phone), phone: phoneJid(phone), requestedAt
        }))
      },
      decideJoinRequests: async (jid, jids, action) => this.#answer(jid, await actingAs(), action, jids),
      leave: async (jid) => this.#leave(jid, await actingAs())
    }
  }

  /** Whether the number is on WhatsApp (onWhatsApp answers it, adds give 404 when not). */
  isOnWhatsApp (jid: string): boolean {
    const phone = this.#directory.phoneOf(jid)
    return phone === undefined || this.#directory.isOnWhatsApp(phone)
  }

  /** A company's message to a group: 404 for no group; 403 unless the number is in it and may write. */
  assertMayWrite (jid: string, phone: string | undefined): void {
    const group = this.#find(jid)
    if (phone === undefined || !group.mayWrite(phone)) throw refusals.mayNotWrite(phone ?? 'an unlinked device', jid)
  }

  // What tests do as the other participants. Numbers are E.164 digits; participants may also be JIDs.

  /**
   * `creator` (a contact) makes a group of `participants`, which may include a company's number
   * (TestWhatsApp.phoneOf); `admins` are promoted from the start. Each participant is added or
   * refused as an add would be; members' connections get `joined`.
   */
  create (options: { creator: string, subject: string, participants: string[], admins?: string[] }): {
    jid: string, outcomes: GroupMemberResult[]
  } {
    const admins = (options.admins ?? []).map((admin) => this.#number(admin))
    const { group, outcomes } = this.#create(this.#number(options.creator), options.subject, options.participants, admins)
    return { jid: group.jid, outcomes }
  }

  /**
   * A participant writes a text to the group: every other member's connection gets it as a `messages`
   * event from the group, `participant` its LID JID and `participantAlt` its phone JID. Refused as
   * WhatsApp refuses it: 403 not a participant, 401 not an admin of an announcement group.
   */
  write (jid: string, writer: string, text: string, options: GroupMessageOptions = {}): string {
    const from = this.#number(writer)
    const group = this.#asMember(jid, from)
    if (!group.mayWrite(from)) throw refusals.notAdmin(from)
    const id = options.id ?? `3A${randomBytes(9).toString('hex').toUpperCase()}`
    const mentions = (options.mentions ?? []).map((mentioned) => {
      const phone = this.#phone(mentioned)
      return phone === undefined ? mentioned : this.#directory.lidJid(phone)
    })
    const message: InboundMessage = {
      id,
      from: group.jid,
      participant: this.#directory.lidJid(from),
      participantAlt: phoneJid(from),
      text,
      timestamp: Math.floor(Date.now() / 1000),
      ...(options.pushName ? { pushName: options.pushName } : {}),
      ...(mentions.length > 0 ? { mentions } : {}),
      ...(options.quotedMessageId ? { quotedMessageId: options.quotedMessageId } : {})
    }
    for (const phone of group.members()) {
      // WhatsApp does not echo a message to its sender.
      if (phone === from) continue
      for (const listener of this.#reach(phone)) listener.emitLater('messages', [message])
    }
    return id
  }

  /** A participant adds, removes, promotes or demotes others: as an admin would through the port, each answered apart. */
  change (jid: string, by: string, action: ParticipantAction, participants: string[]): GroupMemberResult[] {
    return this.#change(jid, this.#number(by), action, participants)
  }

  rename (jid: string, by: string, subject: string): void {
    this.#rename(jid, this.#number(by), subject)
  }

  leave (jid: string, phone: string): void {
    this.#leave(jid, this.#number(phone))
  }

  /** The number follows the group's invite link: it joins, or waits for the admins when they approve members. */
  requestJoin (jid: string, phone: string): { pending: boolean } {
    return { pending: this.#join(this.#find(jid), this.#number(phone)).pending }
  }

  /** The number's privacy refuses (or again allows) being added to groups: its adds answer 403. */
  refuseAdds (phone: string, refuses = true): void {
    this.#directory.setRefusesAdds(this.#number(phone), refuses)
  }

  /** The number is not (or again is) on WhatsApp: onWhatsApp answers it does not exist, adds answer 404. */
  setOnWhatsApp (phone: string, onWhatsApp: boolean): void {
    this.#directory.setOnWhatsApp(this.#number(phone), onWhatsApp)
  }

  /** The number's LID JID, as groups name it. */
  lidJid (phone: string): string {
    return this.#directory.lidJid(this.#number(phone))
  }

  get (jid: string): GroupState | undefined {
    const group = this.#groups.get(jid)
    if (!group) return undefined
    return {
      jid: group.jid,
      subject: group.subject,
      ...(group.description ? { description: group.description } : {}),
      creator: group.creator,
      participants: group.members().map((phone) => ({ phone, role: group.participants.get(phone)! })),
      announce: group.announcement,
      restrict: group.locked,
      memberAddMode: group.membersCanAdd,
      joinApproval: group.joinApproval,
      ephemeralSeconds: group.ephemeralSeconds,
      inviteCode: group.inviteCode,
      requests: [...group.requests.keys()],
      ...(group.picture ? { picture: { ...group.picture } } : {})
    }
  }

  // The rules, for a company and a test's participant alike.

  #find (jid: string): Group {
    const group = this.#groups.get(jid)
    if (!group) throw refusals.noGroup(jid)
    return group
  }

  #asMember (jid: string, phone: string): Group {
    const group = this.#find(jid)
    if (!group.isMember(phone)) throw refusals.notParticipant(phone)
    return group
  }

  #asAdmin (jid: string, phone: string): Group {
    const group = this.#asMember(jid, phone)
    if (!group.isAdmin(phone)) throw refusals.notAdmin(phone)
    return group
  }

  #byInvite (code: string): Group {
    const group = [...this.#groups.values()].find((candidate) => candidate.inviteCode === code)
    if (!group) throw refusals.notAcceptable(`no group has the invite code ${code}`)
    return group
  }

  #phone (jid: string): string | undefined {
    return this.#directory.phoneOf(jid)
  }

  /** A test's participant, as digits or a JID: its number (an unknown LID stays as given, and is in no group). */
  #number (phoneOrJid: string): string {
    return this.#phone(phoneOrJid) ?? phoneOrJid
  }

  #create (creator: string, subject: string, participants: string[], admins: string[] = []) {
    checkSubject(subject)
    const group = new Group(newGroupJid((jid) => this.#groups.has(jid)), creator, subject)
    this.#groups.set(group.jid, group)
    const outcomes = participants.filter((jid) => this.#phone(jid) !== creator).map((jid) => this.#admit(group, jid))
    for (const phone of admins) if (group.participants.get(phone) === 'member') group.participants.set(phone, 'admin')
    const author = this.#directory.lidJid(creator)
    this.#tell(group.members(), () => [{ kind: 'joined', group: group.jid, author, subject }])
    return { group, outcomes }
  }

  #change (jid: string, actor: string, action: ParticipantAction, asked: string[]): GroupMemberResult[] {
    const group = this.#asMember(jid, actor)
    const allowed = action === 'add' ? group.mayAdd(actor) : group.isAdmin(actor)
    if (!allowed) throw refusals.notAdmin(actor)
    const before = group.members()
    const outcomes = asked.map((asking) => action === 'add' ? this.#admit(group, asking) : this.#apply(group, action, asking))
    const changed = outcomes.filter((outcome) => outcome.status === 200).map((outcome) => this.#phone(outcome.jid)!)
    if (changed.length > 0) this.#tellParticipants(group, actor, action, changed, [...before, ...group.members()])
    return outcomes
  }

  /** One participant of an add: added, or refused as WhatsApp refuses it. */
  #admit (group: Group, asked: string): GroupMemberResult {
    const phone = this.#phone(asked)
    if (phone === undefined || !this.#directory.isOnWhatsApp(phone)) return { jid: asked, status: 404 }
    if (group.isMember(phone)) return { jid: asked, status: 409 }
    if (this.#directory.refusesAdds(phone)) {
      // WhatsApp offers an invitation to send instead, valid three days.
      const addRequest = { code: randomBytes(12).toString('base64url'), expiration: Math.floor(Date.now() / 1000) + ADD_REQUEST_SECONDS }
      return { jid: asked, status: 403, addRequest }
    }
    group.participants.set(phone, 'member')
    group.requests.delete(phone)
    return { jid: asked, status: 200 }
  }

  #apply (group: Group, action: Exclude<ParticipantAction, 'add'>, asked: string): GroupMemberResult {
    const phone = this.#phone(asked)
    if (phone === undefined || !group.isMember(phone)) return { jid: asked, status: 404 }
    // The creator stays superadmin whatever the other admins do, as in the simulator.
    if (action === 'remove') group.participants.delete(phone)
    else if (group.participants.get(phone) !== 'superadmin') group.participants.set(phone, action === 'promote' ? 'admin' : 'member')
    return { jid: asked, status: 200 }
  }

  /** `actor` leaves; a group left without an admin gets one, its longest-standing member. */
  #leave (jid: string, actor: string): void {
    const group = this.#asMember(jid, actor)
    group.participants.delete(actor)
    this.#tellParticipants(group, actor, 'remove', [actor], [...group.members(), actor])
    const successor = group.admins().length === 0 ? group.members()[0] : undefined
    if (successor) {
      group.participants.set(successor, 'admin')
      this.#tellParticipants(group, undefined, 'promote', [successor], group.members())
    }
  }

  /** Following an invite link: joins, or asks the admins when they approve members; one already in changes nothing. */
  #join (group: Group, phone: string): { group: Group, pending: boolean } {
    if (group.isMember(phone)) return { group, pending: false }
    if (group.joinApproval) {
      group.requestToJoin(phone)
      this.#tellParticipants(group, phone, 'join_request', [phone], group.admins())
      return { group, pending: true }
    }
    group.participants.set(phone, 'member')
    this.#tellParticipants(group, phone, 'add', [phone], group.members())
    return { group, pending: false }
  }

  /** An admin approves (they join) or rejects join requests; a JID with no request gets 404. */
  #answer (jid: string, actor: string, action: 'approve' | 'reject', asked: string[]): GroupMemberResult[] {
    const group = this.#asAdmin(jid, actor)
    const approved: string[] = []
    const outcomes = asked.map((asking) => {
      const phone = this.#phone(asking)
      if (phone === undefined || !group.requests.delete(phone)) return { jid: asking, status: 404 }
      if (action === 'approve') {
        group.participants.set(phone, 'member')
        approved.push(phone)
      }
      return { jid: asking, status: 200 }
    })
    // A rejection has no GroupEvent to tell it by (Baileys' group.join-request 'rejected'): nothing is emitted for it.
    if (approved.length > 0) this.#tellParticipants(group, actor, 'add', approved, group.members())
    return outcomes
  }

  #rename (jid: string, actor: string, subject: string): void {
    const group = this.#asMember(jid, actor)
    this.#edit(group, actor, { subject }, () => {
      checkSubject(subject)
      group.subject = subject
    })
  }

  /** A change to the group's info: anyone in it, or only admins once it is locked (401). */
  #edit (group: Group, actor: string, change: GroupChange, apply: () => void): void {
    if (!group.mayEditInfo(actor)) throw refusals.notAdmin(actor)
    apply()
    this.#tellUpdate(group, actor, change)
  }

  /** Who may write, who may edit the info, who may add, whether joining waits for approval: the admins' to set. */
  #adminSetting (jid: string, actor: string, change: Pick<GroupChange, 'announce' | 'restrict' | 'memberAddMode' | 'joinApproval'>): void {
    const group = this.#asAdmin(jid, actor)
    if (change.announce !== undefined) group.announcement = change.announce
    if (change.restrict !== undefined) group.locked = change.restrict
    if (change.memberAddMode !== undefined) group.membersCanAdd = change.memberAddMode
    if (change.joinApproval !== undefined) group.joinApproval = change.joinApproval
    this.#tellUpdate(group, actor, change)
  }

  /**
   * A change of participants as each recipient's connection is told it, as the Baileys adapter reads
   * the notification (baileys-groups.ts): a number added is told it `joined`, one removed (or leaving)
   * that it `left`, and of the others in the same change as anyone is; a promotion or demotion names
   * everyone it concerns, the recipient included, with their roles after it.
   */
  #tellParticipants (group: Group, actor: string | undefined, action: Extract<GroupEvent, { kind: 'participants' }>['action'],
    phones: string[], recipients: string[]): void {
    const author = actor === undefined ? {} : { author: this.#directory.lidJid(actor) }
    this.#tell(recipients, (recipient) => {
      const concernsRecipient = phones.includes(recipient) && (action === 'add' || action === 'remove')
      const told = concernsRecipient ? phones.filter((phone) => phone !== recipient) : phones
      const participants = told.map((phone) => this.#directory.member(phone, group.participants.get(phone)))
      const events: GroupEvent[] = []
      if (concernsRecipient) events.push({ kind: action === 'add' ? 'joined' : 'left', group: group.jid, ...author })
      if (participants.length > 0) events.push({ kind: 'participants', group: group.jid, ...author, action, participants })
      return events
    })
  }

  #tellUpdate (group: Group, actor: string, change: GroupChange): void {
    this.#tell(group.members(), () => [{ kind: 'update', group: group.jid, author: this.#directory.lidJid(actor), change }])
  }

  /** Each recipient's open connections get the events of one notification together, as one batch. */
  #tell (recipients: Iterable<string>, eventsFor: (recipient: string) => GroupEvent[]): void {
    for (const phone of new Set(recipients)) {
      const listeners = this.#reach(phone)
      if (listeners.length === 0) continue
      const events = eventsFor(phone)
      for (const listener of listeners) listener.emitLater('groups', events)
    }
  }
}

function settingChange (setting: GroupSetting): { announce: boolean } | { restrict: boolean } {
  if (setting === 'announcement' || setting === 'not_announcement') return { announce: setting === 'announcement' }
  return { restrict: setting === 'locked' }
}
