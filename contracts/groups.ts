import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

/** A WhatsApp group: `<digits>@g.us`, or the older `<creator digits>-<seconds>@g.us`. */
export const GROUP_JID_PATTERN = '^[0-9]{5,40}(-[0-9]{1,20})?@g\\.us$'
export const GroupJid = Type.String({ pattern: GROUP_JID_PATTERN, description: 'A group JID, e.g. `120363025246125486@g.us`' })
export const isGroupJid = (value: string) => new RegExp(GROUP_JID_PATTERN).test(value)

const Phone = Type.String({ minLength: 1, maxLength: 64, description: 'A phone in any notation, a phone JID or a LID JID' })
const Phones = Type.Array(Phone, { minItems: 1, maxItems: 256, uniqueItems: true })
const Subject = Type.String({ minLength: 1, maxLength: 100, description: 'The group\'s name (WhatsApp allows 100 characters)' })
const Description = Type.String({ maxLength: 2048, description: 'The group\'s description; "" removes it' })
const InviteCode = Type.String({
  pattern: '^[A-Za-z0-9_-]{6,64}$', description: 'The code of an invite link `https://chat.whatsapp.com/<code>`'
})

export const GroupParticipant = Type.Object({
  jid: Type.String({ description: 'How the group addresses the participant: a LID JID in LID groups' }),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'E.164 digits, when WhatsApp tells them' }),
  lid: Type.Union([Type.String(), Type.Null()]),
  role: Type.Union([Type.Literal('member'), Type.Literal('admin'), Type.Literal('superadmin')])
})
export type GroupParticipant = Static<typeof GroupParticipant>

export const GroupSettings = Type.Object({
  announcementOnly: Type.Boolean({ description: 'Only admins send messages' }),
  locked: Type.Boolean({ description: 'Only admins change the subject, description and picture' }),
  joinApproval: Type.Boolean({ description: 'Joining by link needs an admin\'s approval' }),
  membersCanAdd: Type.Boolean({ description: 'Members (not only admins) add participants' }),
  disappearingSeconds: Type.Integer({ minimum: 0, description: 'Disappearing messages timer; 0: off' })
})
export type GroupSettings = Static<typeof GroupSettings>

export const GroupInfo = Type.Object({
  id: GroupJid,
  subject: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  owner: Type.Union([Type.String(), Type.Null()], { description: 'Who created it (phone digits when known, else the JID)' }),
  createdAt: Type.Union([Type.String(), Type.Null()]),
  size: Type.Integer(),
  participants: Type.Array(GroupParticipant),
  settings: GroupSettings,
  /** Whether the company's number may change the group. */
  isAdmin: Type.Boolean({ description: 'Whether the company\'s number is an admin of the group' })
})
export type GroupInfo = Static<typeof GroupInfo>

export const GroupParams = Type.Object({ companyId: CompanyId, groupId: GroupJid })
export type GroupParams = Static<typeof GroupParams>
export const InviteParams = Type.Object({ companyId: CompanyId, code: InviteCode })
export type InviteParams = Static<typeof InviteParams>

/** A holder command's body names the group; over HTTP it comes from the path. */
const inGroup = { groupId: GroupJid }

export const GroupCreateRequest = Type.Object({ subject: Subject, participants: Phones }, { additionalProperties: false })
export type GroupCreateRequest = Static<typeof GroupCreateRequest>

export const GroupRequest = Type.Object(inGroup, { additionalProperties: false })
export type GroupRequest = Static<typeof GroupRequest>

export const GroupParticipantsRequest = Type.Object({
  ...inGroup,
  action: Type.Union([Type.Literal('add'), Type.Literal('remove'), Type.Literal('promote'), Type.Literal('demote')]),
  participants: Phones
}, { additionalProperties: false })
export type GroupParticipantsRequest = Static<typeof GroupParticipantsRequest>

/**
 * What became of one participant: WhatsApp answers each one apart, and a partial result is a
 * result. `privacy_blocked` carries the invite link to send instead when the number may have one.
 */
export const ParticipantOutcome = Type.Object({
  participant: Type.String({ description: 'As the request named it' }),
  jid: Type.Union([Type.String(), Type.Null()]),
  outcome: Type.Union([
    Type.Literal('added'), Type.Literal('removed'), Type.Literal('promoted'), Type.Literal('demoted'), Type.Literal('approved'),
    Type.Literal('rejected'), Type.Literal('already_in'), Type.Literal('not_in_group'), Type.Literal('not_on_whatsapp'),
    Type.Literal('privacy_blocked'), Type.Literal('refused')
  ]),
  code: Type.Integer({ description: 'WhatsApp\'s status for this participant (200, 403, 404, 409, …)' }),
  inviteLink: Type.Optional(Type.String({
    description: 'With privacy_blocked: the group\'s invite link, to send to the participant instead'
  }))
})
export type ParticipantOutcome = Static<typeof ParticipantOutcome>

export const GroupParticipantsReply = Type.Object({
  success: Type.Literal(true),
  groupId: GroupJid,
  action: Type.String(),
  results: Type.Array(ParticipantOutcome),
  /** How many participants the action took effect for. */
  changed: Type.Integer()
})
export type GroupParticipantsReply = Static<typeof GroupParticipantsReply>

export const GroupUpdateRequest = Type.Object({
  ...inGroup,
  subject: Type.Optional(Subject),
  description: Type.Optional(Description),
  settings: Type.Optional(Type.Partial(GroupSettings))
}, { additionalProperties: false, minProperties: 2 })
export type GroupUpdateRequest = Static<typeof GroupUpdateRequest>

export const GroupPictureRequest = Type.Object({
  ...inGroup,
  data: Type.String({ minLength: 1, maxLength: 8_000_000, description: 'A JPEG or PNG, base64' })
}, { additionalProperties: false })
export type GroupPictureRequest = Static<typeof GroupPictureRequest>

export const GroupReply = Type.Object({ success: Type.Literal(true), group: GroupInfo })
export type GroupReply = Static<typeof GroupReply>

export const GroupsListReply = Type.Object({ success: Type.Literal(true), groups: Type.Array(GroupInfo) })
export type GroupsListReply = Static<typeof GroupsListReply>

export const GroupInviteReply = Type.Object({
  success: Type.Literal(true),
  groupId: GroupJid,
  code: InviteCode,
  link: Type.String({ description: '`https://chat.whatsapp.com/<code>`' })
})
export type GroupInviteReply = Static<typeof GroupInviteReply>

export const InviteRequest = Type.Object({ code: InviteCode }, { additionalProperties: false })
export type InviteRequest = Static<typeof InviteRequest>

export const GroupJoinReply = Type.Object({
  success: Type.Literal(true),
  groupId: Type.Union([GroupJid, Type.Null()], { description: 'null: the group approves joins, and an admin has yet to' }),
  pendingApproval: Type.Boolean()
})
export type GroupJoinReply = Static<typeof GroupJoinReply>

export const JoinRequest = Type.Object({
  jid: Type.String(),
  phone: Type.Union([Type.String(), Type.Null()]),
  requestedAt: Type.Union([Type.String(), Type.Null()])
})
export const JoinRequestsReply = Type.Object({ success: Type.Literal(true), groupId: GroupJid, requests: Type.Array(JoinRequest) })
export type JoinRequestsReply = Static<typeof JoinRequestsReply>

export const GroupNoFields = Type.Object({}, { additionalProperties: false })

export const JoinRequestsUpdate = Type.Object({
  ...inGroup,
  action: Type.Union([Type.Literal('approve'), Type.Literal('reject')]),
  participants: Phones
}, { additionalProperties: false })
export type JoinRequestsUpdate = Static<typeof JoinRequestsUpdate>

/** A change that answers nothing but which group it was (the picture, leaving). */
export const GroupIdReply = Type.Object({ success: Type.Literal(true), groupId: GroupJid })
export type GroupIdReply = Static<typeof GroupIdReply>
