import { randomBytes, randomInt } from 'node:crypto'
import type { proto } from '@whiskeysockets/baileys'
import type { ReceivedMessage } from './accounts.ts'
import { unixSeconds } from './stanzas.ts'

/** A participant's standing: the creator is the superadmin. */
export type GroupRole = 'member' | 'admin' | 'superadmin'
/** Who may add participants (`member_add_mode`). */
export type MemberAddMode = 'admin_add' | 'all_member_add'

export interface GroupDescription {
  id: string
  body: string
  /** The phone number that set it. */
  by: string
  at: number
}

/** Someone asked to join a group that approves its members (`membership_approval_mode`). */
export interface JoinRequest {
  phone: string
  at: number
  method: 'invite_link' | 'linked_group_join' | 'non_admin_add'
}

/** A group message the linked device sent, as the server fanned it out to the simulated member devices. */
export interface GroupSend {
  id: string
  /** The sending device (`<phone>:<device>`). */
  from: string
  at: number
  /** Member devices that got a sender key distribution message (SKDM) with this send. */
  skdms: number
  /** Of those, devices that already held that same sender key: sent twice. */
  skdmsToHolders: number
  /** Member devices that decrypted the group message (`skmsg`). */
  decrypted: number
  /** Member devices that could not (`<phone>:<device>: why`). */
  failures: string[]
}

/** What a participant's phone recorded of a group message, and which of its devices decrypted it. */
export type ReceivedGroupMessage = ReceivedMessage & { devices: number[] }

/** A WhatsApp group as the server keeps it. Participants are keyed by phone number, in the order they joined. */
export class Group {
  /** `<digits>@g.us` (groups made today) or `<creator>-<creation>@g.us` (older groups). */
  readonly jid: string
  readonly creator: string
  readonly creation: number
  readonly addressingMode = 'lid'
  subject: string
  subjectBy: string
  subjectAt: number
  description: GroupDescription | undefined
  readonly participants = new Map<string, GroupRole>()
  /** Only admins send messages. */
  announcement = false
  /** Only admins edit the group's info (subject, description, picture, disappearing messages). */
  locked = false
  memberAddMode: MemberAddMode = 'admin_add'
  /** Admins approve who joins by link. */
  joinApproval = false
  /** Disappearing messages, in seconds (0: off). */
  ephemeral = 0
  inviteCode = newInviteCode()
  readonly requests = new Map<string, JoinRequest>()
  picture: { id: string, url: string } | undefined
  /** What the linked devices sent to the group, and how the fan-out went. */
  readonly sends: GroupSend[] = []
  /** By participant phone: the group messages it received and decrypted. */
  readonly inbox = new Map<string, ReceivedGroupMessage[]>()
  /** Every message written to the group, by id: its author (phone) and content, for replies to quote. */
  readonly history = new Map<string, { author: string, content: proto.IMessage }>()

  constructor (options: { jid: string, creator: string, subject: string, creation: number }) {
    this.jid = options.jid
    this.creator = options.creator
    this.creation = options.creation
    this.subject = options.subject
    this.subjectBy = options.creator
    this.subjectAt = options.creation
    this.participants.set(options.creator, 'superadmin')
  }

  isMember (phone: string): boolean {
    return this.participants.has(phone)
  }

  isAdmin (phone: string): boolean {
    const role = this.participants.get(phone)
    return role === 'admin' || role === 'superadmin'
  }

  members (): string[] {
    return [...this.participants.keys()]
  }

  admins (): string[] {
    return this.members().filter((phone) => this.isAdmin(phone))
  }

  /** Who may change the group's info: anyone unless it is locked. */
  mayEditInfo (phone: string): boolean {
    return this.isMember(phone) && (!this.locked || this.isAdmin(phone))
  }

  mayAdd (phone: string): boolean {
    return this.isMember(phone) && (this.memberAddMode === 'all_member_add' || this.isAdmin(phone))
  }

  received (phone: string): ReceivedGroupMessage[] {
    let inbox = this.inbox.get(phone)
    if (!inbox) {
      inbox = []
      this.inbox.set(phone, inbox)
    }
    return inbox
  }

  revokeInvite (): string {
    this.inviteCode = newInviteCode()
    return this.inviteCode
  }
}

const INVITE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const INVITE_CODE_LENGTH = 22

/** An invite link's code (`chat.whatsapp.com/<code>`): 22 letters and digits. */
function newInviteCode (): string {
  return [...randomBytes(INVITE_CODE_LENGTH)].map((byte) => INVITE_ALPHABET[byte % INVITE_ALPHABET.length]).join('')
}

/** Groups made today have ids like 120363…: `120363` and 12 more digits. */
const NEW_GROUP_PREFIX = '120363'
const NEW_GROUP_DIGITS = 12

/** Every group the server knows, by JID. */
export class Groups {
  readonly #byJid = new Map<string, Group>()

  /** A new group with its creator as superadmin; `legacyId` gives it the older `<creator>-<creation>` id. */
  create (options: { creator: string, subject: string, legacyId?: boolean }): Group {
    const creation = unixSeconds()
    let jid: string
    do {
      const digits = Array.from({ length: NEW_GROUP_DIGITS }, () => randomInt(10)).join('')
      jid = options.legacyId ? `${options.creator}-${creation + randomInt(1000)}@g.us` : `${NEW_GROUP_PREFIX}${digits}@g.us`
    } while (this.#byJid.has(jid))
    const group = new Group({ jid, creator: options.creator, subject: options.subject, creation })
    this.#byJid.set(jid, group)
    return group
  }

  /** The group by JID (`…@g.us`) or bare id. */
  get (jidOrId: string): Group | undefined {
    return this.#byJid.get(jidOrId.includes('@') ? jidOrId : `${jidOrId}@g.us`)
  }

  byInviteCode (code: string): Group | undefined {
    return [...this.#byJid.values()].find((group) => group.inviteCode === code)
  }

  /** The groups the account takes part in. */
  of (phone: string): Group[] {
    return [...this.#byJid.values()].filter((group) => group.isMember(phone))
  }
}

/** WhatsApp refuses a group query: `<error code text>` (404 no such group, 403 not a participant, 401 not an admin, …). */
export class GroupRefusal extends Error {
  readonly code: number
  readonly text: string

  constructor (code: number, text: string, detail?: string) {
    super(detail ?? text)
    this.code = code
    this.text = text
  }
}

export const refusals = {
  noGroup: (jid: string) => new GroupRefusal(404, 'item-not-found', `no group ${jid}`),
  notParticipant: (phone: string) => new GroupRefusal(403, 'forbidden', `${phone} is not a participant`),
  notAdmin: (phone: string) => new GroupRefusal(401, 'not-authorized', `${phone} is not an admin`),
  badRequest: (why: string) => new GroupRefusal(400, 'bad-request', why),
  notAcceptable: (why: string) => new GroupRefusal(406, 'not-acceptable', why),
  conflict: (why: string) => new GroupRefusal(409, 'conflict', why)
}
