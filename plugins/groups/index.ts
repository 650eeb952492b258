import fp from 'fastify-plugin'
import {
  ErrorCode, GroupCreateRequest, GroupIdReply, GroupInviteReply, GroupJoinReply, GroupNoFields, GroupParams, GroupParticipantsReply,
  GroupParticipantsRequest, GroupPictureRequest, GroupReply, GroupRequest, GroupsListReply, GroupUpdateRequest, InviteParams,
  InviteRequest, JoinRequestsReply, JoinRequestsUpdate, userOfJid, type GroupUpdateRequest as GroupUpdate
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { pictureOf } from '../../core/pictures.ts'
import { declareHolderCommand, memberJidOf, WhatsAppRefusal, type GroupMeta, type WaSocket } from '../session-pool/index.ts'
import { eventOf, groupInfoOf, outcomeOf, refusalOf } from './translate.ts'

const TAGS = ['groups']
const BASE = '/api/whatsapp/sessions/:companyId/groups'
const inviteLink = (code: string) => `https://chat.whatsapp.com/${code}`

/**
 * Groups: create them, read them, change them, and hear of their changes, through the company's
 * connection (session-pool's public face: its sockets' group port, its holder commands and its
 * socket listeners). Sending to a group is a send like any (a chat `…@g.us`); its events are the one
 * event path's.
 */
export default fp(async (app) => {
  /** The holder's connection, and who the company's number is in groups. */
  const connection = (companyId: string) => {
    const session = app.sessionPool.get(companyId)
    const socket = session?.socket
    if (!socket) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`)
    const phone = session.status().phoneNumber
    return { socket, self: { phone: phone ? userOfJid(phone) : null, lid: null } }
  }
  /** A WhatsApp refusal becomes the gateway's error, named by what it means for the number. */
  const refused = async <T>(groupId: string | undefined, run: () => Promise<T>): Promise<T> => {
    try {
      return await run()
    } catch (err) {
      throw refusalOf(err, groupId)
    }
  }
  type Self = { phone: string | null, lid: string | null }
  const info = (meta: GroupMeta, self: Self) => ({ success: true as const, group: groupInfoOf(meta, self) })
  /** Participants as the group addresses them: a phone becomes the member's JID (a LID in LID groups) when it is in. */
  const jidsOf = async (socket: WaSocket, groupId: string | undefined, participants: string[], action: string) => {
    const members = groupId && action !== 'add' ? (await socket.groups.metadata(groupId)).participants : []
    return participants.map((participant) => memberJidOf(app, members, participant))
  }

  declareHolderCommand(app, {
    name: 'groups-list',
    request: GroupNoFields,
    reply: GroupsListReply,
    http: { method: 'GET', url: BASE, operationId: 'listGroups', tags: TAGS, summary: 'The groups the company\'s number is in' },
    handle: async ({ companyId }) => {
      const { socket, self } = connection(companyId)
      const groups = await refused(undefined, () => socket.groups.participating())
      return { success: true as const, groups: groups.map((meta) => groupInfoOf(meta, self)) }
    }
  })

  declareHolderCommand(app, {
    name: 'group-create',
    request: GroupCreateRequest,
    reply: GroupReply,
    http: {
      method: 'POST',
      url: BASE,
      operationId: 'createGroup',
      tags: TAGS,
      summary: 'Create a group with these participants; the company\'s number is its superadmin',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket, self } = connection(companyId)
      const jids = await jidsOf(socket, undefined, request.participants, 'add')
      return info(await refused(undefined, () => socket.groups.create(request.subject, jids)), self)
    }
  })

  declareHolderCommand(app, {
    name: 'group-get',
    request: GroupRequest,
    reply: GroupReply,
    http: {
      method: 'GET',
      url: `${BASE}/:groupId`,
      params: GroupParams,
      operationId: 'getGroup',
      tags: TAGS,
      summary: 'One group: subject, description, owner, participants with phone and LID, settings, whether the number is an admin',
      errors: [409]
    },
    handle: async ({ companyId, request }) => {
      const { socket, self } = connection(companyId)
      return info(await refused(request.groupId, () => socket.groups.metadata(request.groupId)), self)
    }
  })

  declareHolderCommand(app, {
    name: 'group-participants',
    request: GroupParticipantsRequest,
    reply: GroupParticipantsReply,
    http: {
      method: 'POST',
      url: `${BASE}/:groupId/participants`,
      params: GroupParams,
      operationId: 'updateGroupParticipants',
      tags: TAGS,
      summary: 'Add, remove, promote or demote participants: each one\'s outcome (added, already in, not on WhatsApp, privacy' +
        ' blocks adding: with the invite link to send instead), never a partial failure as a failure',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const { groupId, action, participants } = request
      const jids = await refused(groupId, () => jidsOf(socket, groupId, participants, action))
      const results = await refused(groupId, () => socket.groups.updateParticipants(groupId, jids, action))
      const outcomes = participants.map((participant, index) => outcomeOf(action, participant, results.find((result) =>
        result.jid === jids[index] || userOfJid(result.jid) === userOfJid(jids[index]))))
      // Someone whose privacy refuses adds can be sent the invite link instead.
      if (outcomes.some((outcome) => outcome.outcome === 'privacy_blocked')) {
        const code = await socket.groups.inviteCode(groupId).catch(() => undefined)
        if (code) for (const outcome of outcomes) if (outcome.outcome === 'privacy_blocked') outcome.inviteLink = inviteLink(code)
      }
      const changed = outcomes.filter((outcome) => outcome.code === 200).length
      return { success: true as const, groupId, action, results: outcomes, changed }
    }
  })

  declareHolderCommand(app, {
    name: 'group-update',
    request: GroupUpdateRequest,
    reply: GroupReply,
    http: {
      method: 'PATCH',
      url: `${BASE}/:groupId`,
      params: GroupParams,
      operationId: 'updateGroup',
      tags: TAGS,
      summary: 'Change the subject, the description or settings (announcement-only, locked info, join approval, who adds,' +
        ' disappearing timer); answers the group as it is then',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket, self } = connection(companyId)
      await refused(request.groupId, () => applyUpdate(socket, request))
      return info(await refused(request.groupId, () => socket.groups.metadata(request.groupId)), self)
    }
  })

  declareHolderCommand(app, {
    name: 'group-picture',
    request: GroupPictureRequest,
    reply: GroupIdReply,
    http: {
      method: 'PUT',
      url: `${BASE}/:groupId/picture`,
      params: GroupParams,
      operationId: 'setGroupPicture',
      tags: TAGS,
      summary: 'Set the group\'s picture (a JPEG or PNG, base64)',
      errors: [409, 413, 415, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const image = await pictureOf(request.data, 'a group picture')
      await refused(request.groupId, async () => {
        try {
          await socket.groups.setPicture(request.groupId, image)
        } catch (err) {
          // The connection scales the picture itself: what it cannot read is the picture's fault, not a fault here.
          if (err instanceof WhatsAppRefusal || (err as { isBoom?: boolean }).isBoom) throw err
          throw new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `the picture could not be read: ${(err as Error).message}`)
        }
      })
      return { success: true as const, groupId: request.groupId }
    }
  })

  declareHolderCommand(app, {
    name: 'group-invite',
    request: GroupRequest,
    reply: GroupInviteReply,
    http: {
      method: 'GET',
      url: `${BASE}/:groupId/invite`,
      params: GroupParams,
      operationId: 'groupInvite',
      tags: TAGS,
      summary: 'The group\'s invite code and link (the number must be an admin)',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const code = await refused(request.groupId, () => socket.groups.inviteCode(request.groupId))
      return { success: true as const, groupId: request.groupId, code, link: inviteLink(code) }
    }
  })

  declareHolderCommand(app, {
    name: 'group-revoke-invite',
    request: GroupRequest,
    reply: GroupInviteReply,
    http: {
      method: 'DELETE',
      url: `${BASE}/:groupId/invite`,
      params: GroupParams,
      operationId: 'revokeGroupInvite',
      tags: TAGS,
      summary: 'Revoke the invite link: the old one stops working, a new code answers',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const code = await refused(request.groupId, () => socket.groups.revokeInvite(request.groupId))
      return { success: true as const, groupId: request.groupId, code, link: inviteLink(code) }
    }
  })

  declareHolderCommand(app, {
    name: 'group-invite-info',
    request: InviteRequest,
    reply: GroupReply,
    http: {
      method: 'GET',
      url: '/api/whatsapp/sessions/:companyId/group-invites/:code',
      params: InviteParams,
      operationId: 'groupInviteInfo',
      tags: TAGS,
      summary: 'The group an invite code leads to, without joining it',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket, self } = connection(companyId)
      return info(await refused(undefined, () => socket.groups.inviteInfo(request.code)), self)
    }
  })

  declareHolderCommand(app, {
    name: 'group-join',
    request: InviteRequest,
    reply: GroupJoinReply,
    http: {
      method: 'POST',
      url: '/api/whatsapp/sessions/:companyId/group-invites/:code',
      params: InviteParams,
      operationId: 'joinGroup',
      tags: TAGS,
      summary: 'Join a group by its invite code (where joins need approval, it waits for an admin\'s)',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const groupId = await refused(undefined, () => socket.groups.acceptInvite(request.code))
      return { success: true as const, groupId: groupId ?? null, pendingApproval: groupId === undefined }
    }
  })

  declareHolderCommand(app, {
    name: 'group-join-requests',
    request: GroupRequest,
    reply: JoinRequestsReply,
    http: {
      method: 'GET',
      url: `${BASE}/:groupId/join-requests`,
      params: GroupParams,
      operationId: 'groupJoinRequests',
      tags: TAGS,
      summary: 'Who asks to join (groups that approve joins; the number must be an admin)',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const requests = await refused(request.groupId, () => socket.groups.joinRequests(request.groupId))
      return {
        success: true as const,
        groupId: request.groupId,
        requests: requests.map((asking) => ({
          jid: asking.jid,
          phone: asking.phone ? userOfJid(asking.phone) : asking.jid.endsWith('@s.whatsapp.net') ? userOfJid(asking.jid) : null,
          requestedAt: asking.requestedAt ? new Date(asking.requestedAt * 1000).toISOString() : null
        }))
      }
    }
  })

  declareHolderCommand(app, {
    name: 'group-decide-join-requests',
    request: JoinRequestsUpdate,
    reply: GroupParticipantsReply,
    http: {
      method: 'POST',
      url: `${BASE}/:groupId/join-requests`,
      params: GroupParams,
      operationId: 'decideGroupJoinRequests',
      tags: TAGS,
      summary: 'Approve or reject requests to join: each one\'s outcome',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const { groupId, action, participants } = request
      const jids = await jidsOf(socket, undefined, participants, 'add')
      const results = await refused(groupId, () => socket.groups.decideJoinRequests(groupId, jids, action))
      const outcomes = participants.map((participant, index) => outcomeOf(action, participant, results.find((result) =>
        userOfJid(result.jid) === userOfJid(jids[index]))))
      const changed = outcomes.filter((outcome) => outcome.code === 200).length
      return { success: true as const, groupId, action, results: outcomes, changed }
    }
  })

  declareHolderCommand(app, {
    name: 'group-leave',
    request: GroupRequest,
    reply: GroupIdReply,
    http: {
      method: 'DELETE',
      url: `${BASE}/:groupId`,
      params: GroupParams,
      operationId: 'leaveGroup',
      tags: TAGS,
      summary: 'Leave the group',
      errors: [409, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      await refused(request.groupId, () => socket.groups.leave(request.groupId))
      return { success: true as const, groupId: request.groupId }
    }
  })

  // Every group change WhatsApp tells a holder's connection becomes the gateway's event, under the session's lease.
  app.sessionPool.onSocket((socket, { emit }) => {
    socket.on('groups', (events) => {
      for (const event of events) {
        const { type, data } = eventOf(event)
        emit(type, data as never)
      }
    })
  })
}, { name: 'groups', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })

/** A group change as WhatsApp takes it: one query per thing changed, the subject first. */
async function applyUpdate (socket: WaSocket, request: GroupUpdate): Promise<void> {
  const { groupId, subject, description, settings = {} } = request
  if (subject !== undefined) await socket.groups.setSubject(groupId, subject)
  if (description !== undefined) await socket.groups.setDescription(groupId, description)
  if (settings.announcementOnly !== undefined) {
    await socket.groups.setSetting(groupId, settings.announcementOnly ? 'announcement' : 'not_announcement')
  }
  if (settings.locked !== undefined) await socket.groups.setSetting(groupId, settings.locked ? 'locked' : 'unlocked')
  if (settings.joinApproval !== undefined) await socket.groups.setJoinApproval(groupId, settings.joinApproval)
  if (settings.membersCanAdd !== undefined) await socket.groups.setMemberAddMode(groupId, settings.membersCanAdd)
  if (settings.disappearingSeconds !== undefined) await socket.groups.setDisappearing(groupId, settings.disappearingSeconds)
}
