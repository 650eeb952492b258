import {
  ErrorCode, userOfJid, type GroupInfo, type GroupParticipantsRequest, type ParticipantOutcome, type EventData
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { WhatsAppRefusal, type GroupEvent, type GroupMeta, type GroupMember, type GroupMemberResult } from '../session-pool/index.ts'

/** What the gateway says of a group, from what the connection says of it; `self` names the company's number. */
export function groupInfoOf (meta: GroupMeta, self: { phone: string | null, lid: string | null }): GroupInfo {
  const participants = meta.participants.map((member) => ({
    jid: member.jid,
    phone: phoneOf(member),
    lid: member.lid ?? (member.jid.endsWith('@lid') ? member.jid : null),
    role: member.admin ?? 'member' as const
  }))
  const isSelf = (member: { phone: string | null, lid: string | null }) =>
    (self.phone !== null && member.phone === self.phone) || (self.lid !== null && member.lid === self.lid)
  const me = participants.find(isSelf)
  return {
    id: meta.id,
    subject: meta.subject,
    description: meta.description || null,
    owner: meta.ownerPhone ? userOfJid(meta.ownerPhone) : meta.owner ?? null,
    createdAt: meta.creation ? new Date(meta.creation * 1000).toISOString() : null,
    size: meta.size || participants.length,
    participants,
    settings: {
      announcementOnly: meta.announce,
      locked: meta.restrict,
      joinApproval: meta.joinApproval,
      membersCanAdd: meta.memberAddMode,
      disappearingSeconds: meta.ephemeralSeconds
    },
    isAdmin: me !== undefined && me.role !== 'member'
  }
}

function phoneOf (member: GroupMember): string | null {
  if (member.phone) return userOfJid(member.phone)
  return member.jid.endsWith('@s.whatsapp.net') ? userOfJid(member.jid) : null
}

type Action = GroupParticipantsRequest['action'] | 'approve' | 'reject'
const DONE: Record<Action, ParticipantOutcome['outcome']> = {
  add: 'added', remove: 'removed', promote: 'promoted', demote: 'demoted', approve: 'approved', reject: 'rejected'
}

/**
 * One participant's outcome from WhatsApp's status for it: a partial result is a result, never a
 * failure of the whole request. 403 on an add is the participant's privacy (an invite link is the way).
 */
export function outcomeOf (action: Action, participant: string, result: GroupMemberResult | undefined) {
  const code = result?.status ?? 500
  const adding = action === 'add'
  const outcome: ParticipantOutcome['outcome'] = code === 200
    ? DONE[action]
    : code === 409 && adding
      ? 'already_in'
      : code === 404
        ? (adding ? 'not_on_whatsapp' : 'not_in_group')
        : code === 403 && adding ? 'privacy_blocked' : 'refused'
  const answer: ParticipantOutcome = { participant, jid: result?.jid ?? null, outcome, code }
  return answer
}

/** A refusal WhatsApp gave, as the gateway's error: the number's role decides most of them. */
export function refusalOf (err: unknown, groupId?: string): unknown {
  if (!(err instanceof WhatsAppRefusal)) return err
  const group = groupId ? ` ${groupId}` : ''
  if (err.code === 401) return new GatewayError(ErrorCode.NOT_GROUP_ADMIN, `the company's number is not an admin of the group${group}`)
  if (err.code === 403) return new GatewayError(ErrorCode.NOT_IN_GROUP, `the company's number is not a participant of the group${group}`)
  if (err.code === 404) return new GatewayError(ErrorCode.NOT_FOUND, `WhatsApp knows no group${group} (or no such invite)`)
  return new GatewayError(ErrorCode.WHATSAPP_REFUSED, `WhatsApp refused (${err.code}): ${err.message}`)
}

/** A group change as the gateway's event: its type and data. */
export function eventOf (event: GroupEvent): { type: 'group_update', data: EventData<'group_update'> } |
{ type: 'group_participants', data: EventData<'group_participants'> } | { type: 'group_joined', data: EventData<'group_joined'> } |
{ type: 'group_left', data: EventData<'group_left'> } {
  const author = event.author ?? null
  if (event.kind === 'joined') return { type: 'group_joined', data: { groupId: event.group, author, subject: event.subject ?? null } }
  if (event.kind === 'left') return { type: 'group_left', data: { groupId: event.group, author } }
  if (event.kind === 'participants') {
    return {
      type: 'group_participants',
      data: {
        groupId: event.group,
        author,
        action: event.action,
        participants: event.participants.map((member) => ({ jid: member.jid, phone: phoneOf(member), lid: member.lid ?? null }))
      }
    }
  }
  const { change } = event
  return {
    type: 'group_update',
    data: {
      groupId: event.group,
      author,
      ...(change.subject !== undefined ? { subject: change.subject } : {}),
      ...(change.description !== undefined ? { description: change.description } : {}),
      ...(change.announce !== undefined ? { announcementOnly: change.announce } : {}),
      ...(change.restrict !== undefined ? { locked: change.restrict } : {}),
      ...(change.joinApproval !== undefined ? { joinApproval: change.joinApproval } : {}),
      ...(change.memberAddMode !== undefined ? { membersCanAdd: change.memberAddMode } : {}),
      ...(change.ephemeralSeconds !== undefined ? { disappearingSeconds: change.ephemeralSeconds } : {}),
      ...(change.inviteCode !== undefined ? { inviteCode: change.inviteCode } : {}),
      ...(change.picture ? { picture: true } : {})
    }
  }
}
