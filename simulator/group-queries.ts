import { getBinaryNodeChild, getBinaryNodeChildren, type BinaryNode } from '@whiskeysockets/baileys'
import type { Directory } from './accounts.ts'
import type { Connection } from './connections.ts'
import type { GroupInfo, GroupSetting } from './group-info.ts'
import type { GroupMembership, ParticipantAction, ParticipantOutcome } from './group-membership.ts'
import { groupNode, participantNode } from './group-nodes.ts'
import { GroupRefusal, refusals, type Groups, type MemberAddMode } from './groups.ts'
import { iqError, iqResult } from './stanzas.ts'

/** The parts of the simulator a group query touches. */
export interface GroupQueryContext {
  groups: Groups
  membership: GroupMembership
  info: GroupInfo
  directory: Directory
}

const SETTINGS = new Set<string>(['announcement', 'not_announcement', 'locked', 'unlocked'])
const PARTICIPANT_ACTIONS = new Set<string>(['add', 'remove', 'promote', 'demote'])

const text = (node: BinaryNode | undefined) => node?.content instanceof Uint8Array
  ? Buffer.from(node.content).toString('utf8')
  : typeof node?.content === 'string' ? node.content : undefined

/**
 * Answers a linked device's `<iq xmlns="w:g2">` (Baileys' src/Socket/groups.ts): to `@g.us` for
 * creating, listing, leaving and invite links, to the group's JID for everything about one group.
 * A refusal is `<error code text>`, which Baileys throws.
 */
export function answerGroupIq (connection: Connection, iq: BinaryNode, context: GroupQueryContext): void {
  const actor = connection.device?.user
  const child = Array.isArray(iq.content) ? iq.content[0] : undefined
  try {
    if (!actor || !child) throw refusals.badRequest('a group query from a logged-in device, with one child')
    const to = iq.attrs.to ?? ''
    const content = to.replace(/^@/, '') === 'g.us'
      ? acrossGroups(iq.attrs.type, child, actor, context)
      : aboutOneGroup(to, iq.attrs.type, child, actor, context)
    const result = iqResult(iq)
    if (to) result.attrs.from = to
    if (content) result.content = [content]
    connection.send(result)
  } catch (err) {
    if (!(err instanceof GroupRefusal)) throw err
    connection.send(iqError(iq, err.code, err.text))
  }
}

function acrossGroups (type: string, child: BinaryNode, actor: string, context: GroupQueryContext): BinaryNode | undefined {
  const { directory, membership } = context
  if (type === 'get' && child.tag === 'participating') {
    return { tag: 'groups', attrs: {}, content: context.groups.of(actor).map((group) => groupNode(group, directory)) }
  }
  if (type === 'set' && child.tag === 'create') {
    const participants = getBinaryNodeChildren(child, 'participant').map((participant) => participant.attrs.jid)
    const { group } = membership.create({ creator: actor, subject: child.attrs.subject ?? '', participants })
    return groupNode(group, directory)
  }
  if (type === 'set' && child.tag === 'leave') {
    const left = membership.leave(getBinaryNodeChildren(child, 'group').map((group) => group.attrs.id), actor)
    return { tag: 'leave', attrs: {}, content: left.map((id) => ({ tag: 'group', attrs: { id } })) }
  }
  if (child.tag === 'invite' && child.attrs.code) {
    if (type === 'get') return groupNode(membership.byInvite(child.attrs.code), directory)
    const { group, pending } = membership.join(child.attrs.code, actor)
    return { tag: pending ? 'membership_approval_request' : 'group', attrs: { jid: group.jid } }
  }
  throw refusals.badRequest(`no ${type} <${child.tag}> across groups`)
}

function aboutOneGroup (jid: string, type: string, child: BinaryNode, actor: string, context: GroupQueryContext): BinaryNode | undefined {
  const { directory, membership, info } = context
  const { tag } = child
  if (type === 'get' && tag === 'query') return groupNode(membership.asMember(jid, actor), directory)
  if (type === 'set' && PARTICIPANT_ACTIONS.has(tag)) {
    const jids = getBinaryNodeChildren(child, 'participant').map((participant) => participant.attrs.jid)
    return { tag, attrs: {}, content: membership.change(jid, actor, tag as ParticipantAction, jids).map(outcomeNode) }
  }
  if (type === 'set' && tag === 'subject') info.subject(jid, actor, text(child) ?? '')
  else if (type === 'set' && tag === 'description') {
    const body = child.attrs.delete === 'true' ? undefined : text(getBinaryNodeChild(child, 'body')) ?? ''
    info.description(jid, actor, { id: child.attrs.id, previous: child.attrs.prev, body })
  } else if (type === 'set' && SETTINGS.has(tag)) info.setting(jid, actor, tag as GroupSetting)
  else if (type === 'set' && tag === 'ephemeral') info.ephemeral(jid, actor, Number(child.attrs.expiration ?? 0))
  else if (type === 'set' && tag === 'not_ephemeral') info.ephemeral(jid, actor, 0)
  else if (type === 'set' && tag === 'member_add_mode') info.memberAddMode(jid, actor, memberAddMode(text(child)))
  else if (type === 'set' && tag === 'membership_approval_mode') {
    info.joinApproval(jid, actor, getBinaryNodeChild(child, 'group_join')?.attrs.state === 'on')
  } else if (tag === 'invite') {
    return { tag: 'invite', attrs: { code: type === 'get' ? info.inviteCode(jid, actor) : info.revokeInvite(jid, actor) } }
  } else if (type === 'get' && tag === 'membership_approval_requests') {
    return { tag, attrs: {}, content: membership.requests(jid, actor).map((request) => requestNode(context, request)) }
  } else if (type === 'set' && tag === 'membership_requests_action') {
    const [answer] = Array.isArray(child.content) ? child.content : []
    if (answer?.tag !== 'approve' && answer?.tag !== 'reject') throw refusals.badRequest('approve or reject')
    const jids = getBinaryNodeChildren(answer, 'participant').map((participant) => participant.attrs.jid)
    const outcomes = membership.answer(jid, actor, answer.tag, jids)
    return { tag, attrs: {}, content: [{ tag: answer.tag, attrs: {}, content: outcomes.map(outcomeNode) }] }
  } else throw refusals.badRequest(`no ${type} <${tag}> for a group`)
  return undefined
}

function memberAddMode (value: string | undefined): MemberAddMode {
  if (value !== 'admin_add' && value !== 'all_member_add') throw refusals.badRequest('admin_add or all_member_add')
  return value
}

/** One participant's outcome: the JID asked for, its LID or phone beside it, an error code unless 200. */
function outcomeNode (outcome: ParticipantOutcome): BinaryNode {
  const attrs: Record<string, string> = { jid: outcome.jid }
  if (outcome.account && outcome.jid.endsWith('@lid')) attrs.phone_number = `${outcome.account.phone}@s.whatsapp.net`
  else if (outcome.account) attrs.lid = `${outcome.account.lid}@lid`
  if (outcome.status !== 200) attrs.error = String(outcome.status)
  const content = outcome.addRequest
    ? [{ tag: 'add_request', attrs: { code: outcome.addRequest.code, expiration: String(outcome.addRequest.expiration) } }]
    : undefined
  return { tag: 'participant', attrs, ...(content ? { content } : {}) }
}

function requestNode (context: GroupQueryContext, request: { phone: string, at: number, method: string }): BinaryNode {
  const { attrs } = participantNode(context.directory.account(request.phone))
  return { tag: 'membership_approval_request', attrs: { ...attrs, request_method: request.method, request_time: String(request.at) } }
}
