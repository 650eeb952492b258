import {
  areJidsSameUser, getBinaryNodeChild, getContentType, isJidGroup, isLidUser, isPnUser, jidNormalizedUser, normalizeMessageContent, proto,
  type BinaryNode, type GroupMetadata, type GroupParticipant, type WAMessage, type WAMessageKey, type WASocket
} from '@whiskeysockets/baileys'
import { BoundedMap } from '../../core/bounded-map.ts'
import {
  WhatsAppRefusal, type GroupEvent, type GroupMember, type GroupMemberResult, type GroupMeta, type GroupPort, type InboundMessage
} from './socket-port.ts'

/** Groups whose metadata a socket keeps; a group beyond this is queried again when it is next needed. */
const CACHED_GROUPS = 256
/** Recent group messages whose author a socket remembers, for a reply, a reaction or a read receipt to them. */
const REMEMBERED_AUTHORS = 2_000

const Stub = proto.WebMessageInfo.StubType

/**
 * The metadata of the groups a socket sends to, so a send does not ask WhatsApp for it each time:
 * Baileys reads it through its `cachedGroupMetadata` option before every group send and queries
 * the group itself only when that answers nothing. A miss is fetched once (concurrent sends share
 * the query) and kept until a notification about the group, or a change this socket made, says it
 * may be stale: the next send then fetches it again, so a new member gets the sender key.
 */
export class GroupMetadataCache {
  readonly #entries = new BoundedMap<string, GroupMetadata>(CACHED_GROUPS)
  readonly #fetching = new Map<string, Promise<GroupMetadata>>()
  readonly #fetch: (groupJid: string) => Promise<GroupMetadata>

  constructor (fetch: (groupJid: string) => Promise<GroupMetadata>) {
    this.#fetch = fetch
  }

  /** The group's metadata, fetched when not kept. */
  async get (groupJid: string): Promise<GroupMetadata> {
    const kept = this.#entries.get(groupJid)
    if (kept) return kept
    const under = this.#fetching.get(groupJid)
    if (under) return under
    const fetching = this.#fetch(groupJid)
    this.#fetching.set(groupJid, fetching)
    // A notification that arrives while the query is under way makes its answer stale: kept only if not forgotten meanwhile.
    const current = () => this.#fetching.get(groupJid) === fetching
    fetching
      .then((metadata) => { if (current()) this.#entries.set(groupJid, metadata) }, () => {})
      .finally(() => { if (current()) this.#fetching.delete(groupJid) })
    return fetching
  }

  set (metadata: GroupMetadata): void {
    this.#fetching.delete(metadata.id)
    this.#entries.set(metadata.id, metadata)
  }

  forget (groupJid: string): void {
    this.#fetching.delete(groupJid)
    this.#entries.delete(groupJid)
  }
}

function memberOf (participant: Pick<GroupParticipant, 'id' | 'phoneNumber' | 'lid' | 'admin'>): GroupMember {
  const phone = participant.phoneNumber ?? (isPnUser(participant.id) ? participant.id : undefined)
  const lid = participant.lid ?? (isLidUser(participant.id) ? participant.id : undefined)
  return {
    jid: participant.id,
    ...(phone ? { phone } : {}),
    ...(lid ? { lid } : {}),
    ...(participant.admin ? { admin: participant.admin } : {})
  }
}

/** Baileys' GroupMetadata in the port's terms. */
export function groupMetaOf (metadata: GroupMetadata): GroupMeta {
  return {
    id: metadata.id,
    subject: metadata.subject ?? '',
    ...(metadata.desc ? { description: metadata.desc } : {}),
    ...(metadata.owner ? { owner: metadata.owner } : {}),
    ...(metadata.ownerPn ? { ownerPhone: metadata.ownerPn } : {}),
    // Baileys reads the attribute with `+`: NaN when WhatsApp left it out.
    ...(Number.isFinite(metadata.creation) ? { creation: metadata.creation } : {}),
    size: metadata.size ?? metadata.participants.length,
    participants: metadata.participants.map(memberOf),
    announce: metadata.announce === true,
    restrict: metadata.restrict === true,
    joinApproval: metadata.joinApprovalMode === true,
    memberAddMode: metadata.memberAddMode === true,
    ephemeralSeconds: metadata.ephemeralDuration ?? 0
  }
}

/**
 * WhatsApp's `<error code text>` answer to a query, which Baileys throws as a Boom: the code is its
 * `data` (`assertNodeErrorFree`, for every query) or, from `extractGroupMetadata`, the error node
 * itself. Anything else (a timeout, a closed connection) is no refusal and is thrown as it came.
 */
export function refusalOf (err: unknown): unknown {
  const boom = err as { isBoom?: boolean, data?: unknown, message?: string } | undefined
  if (!boom?.isBoom) return err
  const errorNode = boom.data as { tag?: string, attrs?: { code?: string } } | undefined
  const code = typeof boom.data === 'number' ? boom.data : errorNode?.tag === 'error' ? Number(errorNode.attrs?.code) : NaN
  return Number.isFinite(code) ? new WhatsAppRefusal(code, boom.message ?? 'refused') : err
}

async function asking<T> (query: () => Promise<T>): Promise<T> {
  try {
    return await query()
  } catch (err) {
    throw refusalOf(err)
  }
}

function answered<T> (value: T | undefined, what: string): T {
  if (value === undefined || value === null) throw new Error(`WhatsApp answered no ${what}`)
  return value
}

/**
 * One participant's outcome as Baileys reads it: `status` is the `error` attribute ("403", …) or "200";
 * an add refused by the participant's privacy carries `<add_request code expiration>` in `content`.
 */
function resultOf ({ jid, status, content }: { jid?: string, status: string, content?: BinaryNode }): GroupMemberResult {
  const addRequest = content ? getBinaryNodeChild(content, 'add_request')?.attrs : undefined
  return {
    jid: jid ?? '',
    status: Number(status),
    ...(addRequest?.code ? { addRequest: { code: addRequest.code, expiration: Number(addRequest.expiration) } } : {})
  }
}

/** The port's group calls on a Baileys socket; a change the number makes itself drops the group's cached metadata. */
export function groupPortOf (sock: WASocket, cache: GroupMetadataCache): GroupPort {
  const changing = async (groupJid: string, change: () => Promise<unknown>) => {
    await asking(change)
    cache.forget(groupJid)
  }
  return {
    create: async (subject, participantJids) => {
      const metadata = await asking(() => sock.groupCreate(subject, participantJids))
      cache.set(metadata)
      return groupMetaOf(metadata)
    },
    metadata: async (groupJid) => groupMetaOf(await asking(() => cache.get(groupJid))),
    participating: async () => {
      const groups = Object.values(await asking(() => sock.groupFetchAllParticipating()))
      for (const metadata of groups) cache.set(metadata)
      return groups.map(groupMetaOf)
    },
    updateParticipants: async (groupJid, jids, action) => {
      const results = await asking(() => sock.groupParticipantsUpdate(groupJid, jids, action))
      cache.forget(groupJid)
      return results.map(resultOf)
    },
    setSubject: (groupJid, subject) => changing(groupJid, () => sock.groupUpdateSubject(groupJid, subject)),
    // Baileys asks for the metadata first (the current description's id goes with the change): two queries.
    setDescription: (groupJid, description) => changing(groupJid, () => sock.groupUpdateDescription(groupJid, description)),
    setPicture: (groupJid, image) => asking(() => sock.updateProfilePicture(groupJid, image)),
    setSetting: (groupJid, setting) => changing(groupJid, () => sock.groupSettingUpdate(groupJid, setting)),
    setMemberAddMode: (groupJid, membersCanAdd) =>
      changing(groupJid, () => sock.groupMemberAddMode(groupJid, membersCanAdd ? 'all_member_add' : 'admin_add')),
    setJoinApproval: (groupJid, on) => changing(groupJid, () => sock.groupJoinApprovalMode(groupJid, on ? 'on' : 'off')),
    // The cached duration matters: Baileys marks each group send with it (`expiration`).
    setDisappearing: (groupJid, seconds) => changing(groupJid, () => sock.groupToggleEphemeral(groupJid, seconds)),
    inviteCode: async (groupJid) => answered(await asking(() => sock.groupInviteCode(groupJid)), 'invite code'),
    revokeInvite: async (groupJid) => answered(await asking(() => sock.groupRevokeInvite(groupJid)), 'invite code'),
    inviteInfo: async (code) => groupMetaOf(await asking(() => sock.groupGetInviteInfo(code))),
    // WhatsApp answers `<group jid>` when it joined, a `<membership_approval_request>` (no group) when admins must approve.
    acceptInvite: async (code) => (await asking(() => sock.groupAcceptInvite(code))) ?? undefined,
    joinRequests: async (groupJid) => {
      const requests = await asking(() => sock.groupRequestParticipantsList(groupJid)) as { [attribute: string]: string }[]
      return requests.map((request) => ({
        jid: request.jid,
        ...(request.phone_number ? { phone: request.phone_number } : {}),
        ...(Number.isFinite(Number(request.request_time)) ? { requestedAt: Number(request.request_time) } : {})
      }))
    },
    decideJoinRequests: async (groupJid, jids, action) => {
      const results = await asking(() => sock.groupRequestParticipantsUpdate(groupJid, jids, action))
      cache.forget(groupJid)
      return results.map(resultOf)
    },
    leave: (groupJid) => changing(groupJid, () => sock.groupLeave(groupJid))
  }
}

/** Whether the JID is the linked number's own, by phone or by LID. */
function isMe (sock: WASocket, jid: string | undefined): boolean {
  const me = sock.authState.creds.me
  return !!jid && !!me && (areJidsSameUser(jid, me.id) || (!!me.lid && areJidsSameUser(jid, me.lid)))
}

export const isEphemeralSetting = (message: WAMessage) =>
  normalizeMessageContent(message.message)?.protocolMessage?.type === proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING

/** A group message someone wrote: not a notification Baileys turned into a stub or into a disappearing-messages setting. */
export function isGroupMessageFromPerson (message: WAMessage): boolean {
  return !!message.message && !message.messageStubType && !isEphemeralSetting(message) && !!message.key.participant
}

/** A stub parameter Baileys wrote as JSON; undefined if it is not. */
function parsed<T> (parameter: string | undefined): T | undefined {
  try {
    return parameter ? JSON.parse(parameter) as T : undefined
  } catch {
    return undefined
  }
}

function participantsOf (message: WAMessage): GroupParticipant[] {
  const parameters: string[] = message.messageStubParameters ?? []
  return parameters.flatMap((parameter) => parsed<GroupParticipant>(parameter) ?? [])
}

const PARTICIPANT_ACTIONS = new Map<number, 'add' | 'remove' | 'promote' | 'demote'>([
  [Stub.GROUP_PARTICIPANT_ADD, 'add'],
  [Stub.GROUP_PARTICIPANT_INVITE, 'add'],
  [Stub.GROUP_PARTICIPANT_ADD_REQUEST_JOIN, 'add'],
  [Stub.GROUP_PARTICIPANT_REMOVE, 'remove'],
  [Stub.GROUP_PARTICIPANT_LEAVE, 'remove'],
  [Stub.GROUP_PARTICIPANT_PROMOTE, 'promote'],
  [Stub.GROUP_PARTICIPANT_DEMOTE, 'demote']
])

const isOn = (value: string | undefined) => value === 'on' || value === 'true'

/** A settings stub's change, read as Baileys' processMessage reads it. */
function settingChangeOf (message: WAMessage): Extract<GroupEvent, { kind: 'update' }>['change'] | undefined {
  const [first] = message.messageStubParameters ?? []
  switch (message.messageStubType) {
    case Stub.GROUP_CHANGE_SUBJECT: return { subject: first ?? '' }
    // A removed description comes without a parameter.
    case Stub.GROUP_CHANGE_DESCRIPTION: return { description: first ?? '' }
    case Stub.GROUP_CHANGE_ANNOUNCE: return { announce: isOn(first) }
    case Stub.GROUP_CHANGE_RESTRICT: return { restrict: isOn(first) }
    case Stub.GROUP_CHANGE_INVITE_LINK: return first ? { inviteCode: first } : undefined
    case Stub.GROUP_MEMBER_ADD_MODE: return { memberAddMode: first === 'all_member_add' }
    case Stub.GROUP_MEMBERSHIP_JOIN_APPROVAL_MODE: return { joinApproval: first === 'on' }
    // A new picture carries its id; a removed one nothing.
    case Stub.GROUP_CHANGE_ICON: return { picture: first !== undefined }
  }
  return undefined
}

/**
 * The group changes among upserted messages. Baileys turns each group notification into a stub
 * message (or, for disappearing messages, a protocol message) and derives its group events from
 * it; the events are read from the stubs instead because Baileys' event buffer keeps only the
 * first `groups.update` per group (event-buffer.js), so changes handed over together at login
 * (offline) would be lost, and the picture and disappearing-messages changes have no group event.
 */
function groupEventsOf (sock: WASocket, message: WAMessage): GroupEvent[] {
  const group = message.key.remoteJid
  if (!group || !isJidGroup(group)) return []
  const authorJid = message.key.participant ?? message.participant
  const author = authorJid ? { author: jidNormalizedUser(authorJid) } : {}
  if (isEphemeralSetting(message)) {
    const seconds = Number(normalizeMessageContent(message.message)?.protocolMessage?.ephemeralExpiration ?? 0)
    return [{ kind: 'update', group, ...author, change: { ephemeralSeconds: seconds } }]
  }
  const stub = message.messageStubType
  if (!stub) return []
  if (stub === Stub.GROUP_CREATE) {
    const subject = message.messageStubParameters?.[0]
    return [{ kind: 'joined', group, ...author, ...(subject ? { subject } : {}) }]
  }
  const action = PARTICIPANT_ACTIONS.get(stub)
  if (action) {
    const participants = participantsOf(message)
    const mine = participants.filter(({ id, phoneNumber, lid }) => [id, phoneNumber, lid].some((jid) => isMe(sock, jid)))
    const others = participants.filter((participant) => !mine.includes(participant)).map(memberOf)
    const events: GroupEvent[] = []
    if (mine.length > 0 && action === 'add') events.push({ kind: 'joined', group, ...author })
    if (mine.length > 0 && action === 'remove') events.push({ kind: 'left', group, ...author })
    // Its own promotion or demotion concerns the number like anyone's: it stays among the participants.
    const told = action === 'promote' || action === 'demote' ? participants.map(memberOf) : others
    if (told.length > 0) events.push({ kind: 'participants', group, ...author, action, participants: told })
    return events
  }
  if (stub === Stub.GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST_NON_ADMIN_ADD) {
    // [{ lid, pn } of who asks, 'created' | 'revoked' | 'rejected', method]: only a new request has a place in the port.
    const [asker, state] = message.messageStubParameters ?? []
    const { lid, pn } = parsed<{ lid?: string, pn?: string }>(asker) ?? {}
    const jid = lid ?? pn
    if (state !== 'created' || !jid) return []
    const member: GroupMember = { jid, ...(pn ? { phone: pn } : {}), ...(lid ? { lid } : {}) }
    return [{ kind: 'participants', group, ...author, action: 'join_request', participants: [member] }]
  }
  const change = settingChangeOf(message)
  return change ? [{ kind: 'update', group, ...author, change }] : []
}

/**
 * Emits the socket's group changes and keeps its metadata cache current: a group's metadata Baileys
 * reports in full (a group it was told of, every group after a fetch of all) is kept; any change
 * notified about a group drops its metadata, except the creation, which came with it.
 */
export function watchGroups (sock: WASocket, cache: GroupMetadataCache, emit: (events: GroupEvent[]) => void): void {
  sock.ev.on('groups.upsert', (groups) => { for (const metadata of groups) cache.set(metadata) })
  sock.ev.on('groups.update', (updates) => {
    // groupFetchAllParticipating reports every group in full this way; a notified change comes as a stub, below.
    for (const update of updates) if (update.id && Array.isArray(update.participants)) cache.set(update as GroupMetadata)
  })
  sock.ev.on('messages.upsert', ({ messages }) => {
    const events = messages.flatMap((message) => groupEventsOf(sock, message))
    for (const event of events) if (event.kind !== 'joined') cache.forget(event.group)
    if (events.length > 0) emit(events)
  })
}

/** Who wrote a group message, as the group names them and by phone when WhatsApp said. */
export function groupAuthorOf (key: WAMessageKey): Pick<InboundMessage, 'participant' | 'participantAlt'> {
  if (!isJidGroup(key.remoteJid ?? undefined) || !key.participant) return {}
  return {
    participant: jidNormalizedUser(key.participant),
    ...(key.participantAlt ? { participantAlt: jidNormalizedUser(key.participantAlt) } : {})
  }
}

/** The JIDs a message (a text, a caption, …) mentions. */
export function mentionsOf (message: proto.IMessage | null | undefined): Pick<InboundMessage, 'mentions'> {
  const content = normalizeMessageContent(message)
  const type = getContentType(content ?? undefined)
  const inner = type ? content?.[type] as { contextInfo?: proto.IContextInfo | null } | string | null | undefined : undefined
  const mentions = typeof inner === 'object' ? inner?.contextInfo?.mentionedJid : undefined
  return mentions?.length ? { mentions: [...mentions] } : {}
}

/**
 * The authors of recent group messages by id: WhatsApp needs a group message's author in the key
 * of a reply (`contextInfo.participant`; Baileys would name the group), a reaction or a read
 * receipt, and the port names a message by its id alone.
 */
export class GroupAuthors {
  readonly #authors = new BoundedMap<string, string>(REMEMBERED_AUTHORS)

  remember (key: WAMessageKey): void {
    if (!key.remoteJid || !key.id || !key.participant || !isJidGroup(key.remoteJid)) return
    this.#authors.set(`${key.remoteJid}/${key.id}`, key.participant)
  }

  /** A key for a message of the chat, with its author when it is someone's group message. */
  keyOf (jid: string, id: string, fromMe: boolean): WAMessageKey {
    const participant = fromMe ? undefined : this.#authors.get(`${jid}/${id}`)
    return { remoteJid: jid, id, fromMe, ...(participant ? { participant } : {}) }
  }
}
