import { createHash, randomBytes } from 'node:crypto'
import { WhatsAppRefusal, type GroupMember, type GroupMeta } from './socket-port.ts'

/**
 * The state behind the test double's groups (test-groups.ts): who is on WhatsApp and how each
 * number is addressed, and a group as WhatsApp keeps it. Numbers are E.164 digits throughout.
 */

export type GroupRole = 'member' | 'admin' | 'superadmin'

const LID_DIGITS = 15n
const LID_SPACE = 10n ** (LID_DIGITS - 1n)

/**
 * A LID is a 15-digit number unrelated to the phone number; derived from it exactly as the simulator
 * derives it (simulator/accounts.ts), so a contact has the same LID in both.
 */
export function lidOf (phone: string): string {
  const hash = BigInt('0x' + createHash('sha256').update(`lid:${phone}`).digest('hex').slice(0, 16))
  return String(LID_SPACE + (hash % (9n * LID_SPACE)))
}

export const phoneJid = (phone: string) => `${phone}@s.whatsapp.net`

export const isGroupJid = (jid: string) => jid.endsWith('@g.us')

/** The numbers the double knows: their LIDs, and the few a test said are not on WhatsApp or refuse to be added. */
export class Directory {
  readonly #phoneByLid = new Map<string, string>()
  readonly #notOnWhatsApp = new Set<string>()
  readonly #refusingAdds = new Set<string>()

  /** The number's LID JID; from then on the LID names the number in every query. */
  lidJid (phone: string): string {
    const lid = lidOf(phone)
    this.#phoneByLid.set(lid, phone)
    return `${lid}@lid`
  }

  /**
   * The number a JID names: a phone JID (a device suffix is dropped), bare digits, or the LID JID of a
   * number named to the double before. WhatsApp knows every number's LID; a hash cannot be turned back
   * into its number, so the double learns each LID when its number is first named. Anything else names nobody.
   */
  phoneOf (jid: string): string | undefined {
    const [address, server = 's.whatsapp.net'] = jid.split('@')
    const user = address.split(':')[0]
    if (!/^\d+$/.test(user)) return undefined
    if (server === 's.whatsapp.net') {
      this.#phoneByLid.set(lidOf(user), user)
      return user
    }
    if (server === 'lid') return this.#phoneByLid.get(user)
    return undefined
  }

  /** Every number is on WhatsApp, as the double's onWhatsApp has always answered, unless a test says otherwise. */
  isOnWhatsApp (phone: string): boolean {
    return !this.#notOnWhatsApp.has(phone)
  }

  setOnWhatsApp (phone: string, onWhatsApp: boolean): void {
    if (onWhatsApp) this.#notOnWhatsApp.delete(phone)
    else this.#notOnWhatsApp.add(phone)
  }

  /** The privacy setting "who can add me to groups: nobody". */
  refusesAdds (phone: string): boolean {
    return this.#refusingAdds.has(phone)
  }

  setRefusesAdds (phone: string, refuses: boolean): void {
    if (refuses) this.#refusingAdds.add(phone)
    else this.#refusingAdds.delete(phone)
  }

  /** A participant as a LID group lists it: its LID, its phone beside it, and its role unless a plain member. */
  member (phone: string, role?: GroupRole): GroupMember {
    const lid = this.lidJid(phone)
    return { jid: lid, phone: phoneJid(phone), lid, ...(role && role !== 'member' ? { admin: role } : {}) }
  }
}

/** WhatsApp's refusals, with the codes its `<error>` carries. */
export const refusals = {
  noGroup: (jid: string) => new WhatsAppRefusal(404, `item-not-found: no group ${jid}`),
  notParticipant: (phone: string) => new WhatsAppRefusal(403, `forbidden: ${phone} is not a participant`),
  notAdmin: (phone: string) => new WhatsAppRefusal(401, `not-authorized: ${phone} is not an admin`),
  mayNotWrite: (phone: string, jid: string) => new WhatsAppRefusal(403, `forbidden: ${phone} may not write to ${jid}`),
  badRequest: (why: string) => new WhatsAppRefusal(400, `bad-request: ${why}`),
  notAcceptable: (why: string) => new WhatsAppRefusal(406, `not-acceptable: ${why}`)
}

const MAX_SUBJECT_LENGTH = 100

export function checkSubject (subject: string): void {
  if (subject.trim().length === 0) throw refusals.badRequest('a subject is required')
  if ([...subject].length > MAX_SUBJECT_LENGTH) throw refusals.notAcceptable(`a subject has at most ${MAX_SUBJECT_LENGTH} characters`)
}

const INVITE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const INVITE_CODE_LENGTH = 22

/** An invite link's code (`chat.whatsapp.com/<code>`): 22 letters and digits. */
function newInviteCode (): string {
  return [...randomBytes(INVITE_CODE_LENGTH)].map((byte) => INVITE_ALPHABET[byte % INVITE_ALPHABET.length]).join('')
}

const unixSeconds = () => Math.floor(Date.now() / 1000)

/** A group as WhatsApp keeps it. Participants are keyed by number, in the order they joined (the oldest first). */
export class Group {
  readonly jid: string
  readonly creator: string
  readonly creation = unixSeconds()
  subject: string
  description: string | undefined
  readonly participants = new Map<string, GroupRole>()
  /** Only admins send messages. */
  announcement = false
  /** Only admins edit the group's info (subject, description, picture, disappearing messages). */
  locked = false
  /** Every member may add participants, not only admins (`member_add_mode` all_member_add). */
  membersCanAdd = false
  /** Admins approve who joins by link. */
  joinApproval = false
  ephemeralSeconds = 0
  inviteCode = newInviteCode()
  /** Numbers waiting for the admins' approval, and when they asked (unix seconds). */
  readonly requests = new Map<string, number>()
  picture: { sha256: string, size: number } | undefined

  constructor (jid: string, creator: string, subject: string) {
    this.jid = jid
    this.creator = creator
    this.subject = subject
    this.participants.set(creator, 'superadmin')
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

  /** Anyone in it edits the group's info, unless it is locked. */
  mayEditInfo (phone: string): boolean {
    return this.isMember(phone) && (!this.locked || this.isAdmin(phone))
  }

  mayAdd (phone: string): boolean {
    return this.isMember(phone) && (this.membersCanAdd || this.isAdmin(phone))
  }

  /** Members write, unless only admins may (announcement). */
  mayWrite (phone: string): boolean {
    return this.isMember(phone) && (!this.announcement || this.isAdmin(phone))
  }

  revokeInvite (): string {
    this.inviteCode = newInviteCode()
    return this.inviteCode
  }

  /** The number asks to join; the admins answer. */
  requestToJoin (phone: string): void {
    this.requests.set(phone, unixSeconds())
  }

  /** The group as metadata queries answer it: participants by LID with their phones, creator as `owner`. */
  meta (directory: Directory): GroupMeta {
    return {
      id: this.jid,
      subject: this.subject,
      ...(this.description ? { description: this.description } : {}),
      owner: directory.lidJid(this.creator),
      ownerPhone: phoneJid(this.creator),
      creation: this.creation,
      size: this.participants.size,
      participants: this.members().map((phone) => directory.member(phone, this.participants.get(phone))),
      announce: this.announcement,
      restrict: this.locked,
      joinApproval: this.joinApproval,
      memberAddMode: this.membersCanAdd,
      ephemeralSeconds: this.ephemeralSeconds
    }
  }
}

/** Groups made today have ids like 120363…: `120363` and 12 more digits. */
const NEW_GROUP_PREFIX = '120363'
const NEW_GROUP_DIGITS = 12

export function newGroupJid (taken: (jid: string) => boolean): string {
  let jid: string
  do {
    const digits = [...randomBytes(NEW_GROUP_DIGITS)].map((byte) => byte % 10).join('')
    jid = `${NEW_GROUP_PREFIX}${digits}@g.us`
  } while (taken(jid))
  return jid
}
