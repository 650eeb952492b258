import type { BinaryNode } from '@whiskeysockets/baileys'
import { userJid, type Account, type Directory } from './accounts.ts'
import type { Group, GroupRole } from './groups.ts'
import { stanzaId, unixNow } from './stanzas.ts'

/**
 * The wire shapes of groups, as Baileys parses them (`extractGroupMetadata`, src/Socket/groups.ts;
 * `handleGroupNotification`, src/Socket/messages-recv.ts). Groups are LID-addressed: a participant
 * is named by its LID, its phone number beside it.
 */

export const lidJid = (account: Account) => `${account.lid}@lid`

/** A device of the account as a LID group names a message's sender: the phone without a device number. */
export const lidDeviceJid = (account: Account, device: number) => device === 0 ? lidJid(account) : `${account.lid}:${device}@lid`

/** A participant as a LID group lists it: its LID, phone number and role. */
export function participantNode (account: Account, role?: GroupRole): BinaryNode {
  const attrs: Record<string, string> = { jid: lidJid(account), phone_number: userJid(account.phone) }
  if (role && role !== 'member') attrs.type = role
  return { tag: 'participant', attrs }
}

/** The `<group>` node that metadata queries, creation and invite lookups answer with. */
export function groupNode (group: Group, directory: Directory): BinaryNode {
  const account = (phone: string) => directory.account(phone)
  const creator = account(group.creator)
  const subjectOwner = account(group.subjectBy)
  const content: BinaryNode[] = group.members().map((phone) => participantNode(account(phone), group.participants.get(phone)))
  if (group.description) {
    const { id, at, by } = group.description
    content.push({
      tag: 'description',
      attrs: { id, t: String(at), participant: lidJid(account(by)), participant_pn: userJid(by) },
      content: [{ tag: 'body', attrs: {}, content: Buffer.from(group.description.body) }]
    })
  }
  if (group.ephemeral > 0) content.push({ tag: 'ephemeral', attrs: { expiration: String(group.ephemeral) } })
  if (group.announcement) content.push({ tag: 'announcement', attrs: {} })
  if (group.locked) content.push({ tag: 'locked', attrs: {} })
  content.push({ tag: 'member_add_mode', attrs: {}, content: group.memberAddMode })
  if (group.joinApproval) content.push(joinApprovalNode(true))
  return {
    tag: 'group',
    attrs: {
      // WhatsApp gives the bare id; Baileys appends @g.us.
      id: group.jid.replace(/@g\.us$/, ''),
      subject: group.subject,
      s_o: lidJid(subjectOwner),
      s_o_pn: userJid(subjectOwner.phone),
      s_t: String(group.subjectAt),
      creation: String(group.creation),
      creator: lidJid(creator),
      creator_pn: userJid(creator.phone),
      addressing_mode: group.addressingMode,
      size: String(group.participants.size)
    },
    content
  }
}

export function joinApprovalNode (on: boolean): BinaryNode {
  return { tag: 'membership_approval_mode', attrs: {}, content: [{ tag: 'group_join', attrs: { state: on ? 'on' : 'off' } }] }
}

/**
 * A group change as every member device is told it: `<notification type="w:gp2">` from the group,
 * the actor as `participant` (its LID) and `participant_pn`, the change as the only child.
 */
export function groupNotification (group: Group, actor: Account | undefined, change: BinaryNode, type = 'w:gp2'): BinaryNode {
  return {
    tag: 'notification',
    attrs: {
      from: group.jid,
      type,
      id: stanzaId(),
      t: unixNow(),
      addressing_mode: group.addressingMode,
      ...(actor ? { participant: lidJid(actor), participant_pn: userJid(actor.phone) } : {}),
      ...(actor?.pushName ? { notify: actor.pushName } : {})
    },
    content: [change]
  }
}
