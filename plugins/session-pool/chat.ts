import type { FastifyInstance } from 'fastify'
import { ErrorCode, isGroupJid, userOfJid } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import type { GroupMember, Quoted, WaSocket } from './socket-port.ts'

/** A chat as a command names it: by phone (any notation) or by LID JID, with what is known of the other. */
export interface Chat {
  /** Where WhatsApp delivers: the phone JID, or the LID JID when the contact is known only by LID. */
  jid: string
  /** E.164 digits, when known. */
  phone: string | null
  lid: string | null
  /** The budgets' and events' name of the chat: the phone, else the LID's user part; a group's JID. */
  recipient: string
  /** A group (`jid` is `…@g.us`): one send reaches every participant, and counts once. */
  group: boolean
}

const LID_JID = /^\d{1,40}@lid$/

/** Resolves a command's `phone` (a phone in any notation, a phone JID, a LID JID, or a group's JID) to one chat. */
export async function chatOf (app: FastifyInstance, companyId: string, input: string): Promise<Chat> {
  if (input.endsWith('@g.us')) {
    if (!isGroupJid(input)) throw new GatewayError(ErrorCode.INVALID_PHONE, `${input} is not a group JID (<digits>@g.us)`)
    return { jid: input, phone: null, lid: null, recipient: input, group: true }
  }
  if (input.endsWith('@lid')) {
    if (!LID_JID.test(input)) throw new GatewayError(ErrorCode.INVALID_PHONE, `${input} is not a LID JID (<digits>@lid)`)
    const phone = await app.conversations.phoneOfLid(companyId, input) ?? null
    return { jid: input, phone, lid: input, recipient: phone ?? input.split('@')[0], group: false }
  }
  const phone = app.phone.normalize(input)
  const lid = await app.conversations.lidOfPhone(companyId, phone) ?? null
  return { jid: app.phone.toJid(phone), phone, lid, recipient: phone, group: false }
}

/** `@all` in a send's mentions: every participant of the group it goes to. */
export const MENTION_ALL = '@all'

/**
 * A send's mentions as WhatsApp carries them (JIDs): in a group, a phone becomes the participant's
 * JID as the group addresses it (a LID in LID groups), and `@all` every participant but the number itself
 * (members' `phone` is a phone JID).
 */
export async function mentionsOf (
  app: FastifyInstance, socket: WaSocket, chat: Chat, mentions: string[] | undefined, companyId: string
): Promise<string[] | undefined> {
  if (!mentions?.length) return undefined
  // The number's own phone, left out of `@all`: read only for a send that mentions.
  const ownJid = app.sessionPool.get(companyId)?.status().phoneNumber
  const ownPhone = ownJid ? userOfJid(ownJid) : null
  const members = chat.group ? (await socket.groups.metadata(chat.jid)).participants : []
  const jids = new Set<string>()
  for (const mention of mentions) {
    if (mention === MENTION_ALL) {
      if (!chat.group) throw new GatewayError(ErrorCode.VALIDATION_ERROR, '`@all` mentions every participant of a group: send to a group')
      for (const member of members) if (!member.phone || userOfJid(member.phone) !== ownPhone) jids.add(member.jid)
      continue
    }
    jids.add(memberJidOf(app, members, mention))
  }
  return [...jids]
}

/**
 * A person as a group addresses them: a LID JID as it is; a phone (any notation) as the member's JID
 * when they are among `members` (a LID in LID groups), else as its phone JID.
 */
export function memberJidOf (app: FastifyInstance, members: GroupMember[], person: string): string {
  if (person.endsWith('@lid')) return person
  const phone = app.phone.normalize(person)
  return members.find((member) => member.phone && userOfJid(member.phone) === phone)?.jid ?? app.phone.toJid(phone)
}

/** The message a reply quotes: one the history has (WhatsApp shows its text in the reply). */
export async function quotedOf (app: FastifyInstance, companyId: string, messageId: string | undefined, strict: boolean) {
  if (!messageId) return undefined
  const known = await app.conversations.message(companyId, messageId)
  if (!known) {
    if (!strict) return { id: messageId, fromMe: false } satisfies Quoted
    throw new GatewayError(ErrorCode.NOT_FOUND, `no message ${messageId} in the history of ${companyId} to reply to`)
  }
  return { id: messageId, fromMe: known.direction === 'out', ...(known.text ? { text: known.text } : {}) } satisfies Quoted
}
