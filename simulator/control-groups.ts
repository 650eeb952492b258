import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'
import { GroupRefusal, type Group } from './groups.ts'
import type { ParticipantOutcome } from './group-membership.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const GroupJid = Type.Object({ jid: Type.String({ pattern: '^\\d{5,30}(-\\d{5,12})?@g\\.us$', description: 'the group\'s JID' }) })
const Device = Type.Object({ device: Type.String({ pattern: '^\\d{5,20}:\\d{1,4}$', description: '<phone>:<device>' }) })

/** WhatsApp's refusals (its iq error codes) as HTTP answers. */
const HTTP_STATUS: Record<number, number> = { 400: 400, 401: 403, 403: 403, 404: 404, 406: 400, 409: 409 }

async function answering<T> (reply: FastifyReply, work: () => T | Promise<T>): Promise<T | FastifyReply> {
  try {
    return await work()
  } catch (err) {
    if (!(err instanceof GroupRefusal)) throw err
    return reply.code(HTTP_STATUS[err.code] ?? 400).send({
      success: false, error: { code: err.text.toUpperCase().replaceAll('-', '_'), message: err.message, whatsappCode: err.code }
    })
  }
}

const outcomesOf = (outcomes: ParticipantOutcome[]) => outcomes.map(({ jid, status }) => ({ jid, status }))

/** A group as the control API shows it: its settings, participants with their roles, and pending join requests. */
function describeGroup (group: Group) {
  return {
    jid: group.jid,
    subject: group.subject,
    description: group.description?.body ?? null,
    creator: group.creator,
    participants: group.members().map((phone) => ({ phone, role: group.participants.get(phone) })),
    announcement: group.announcement,
    locked: group.locked,
    memberAddMode: group.memberAddMode,
    joinApproval: group.joinApproval,
    ephemeral: group.ephemeral,
    inviteCode: group.inviteCode,
    requests: [...group.requests.values()]
  }
}

/**
 * The control API's group routes (PROTOCOL.md § 13): the simulated participants make groups, write
 * to them and change them, as a test's other members would; what they received can be read back.
 */
export const groupControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  const groups = simulator.groups

  app.post('/groups', {
    schema: {
      body: Type.Object({
        creator: Phone,
        subject: Type.String({ minLength: 1, maxLength: 100 }),
        participants: Type.Array(Phone, { maxItems: 1024, description: 'added at creation; may include a linked number' }),
        admins: Type.Optional(Type.Array(Phone, { description: 'participants who are admins from the start' })),
        devicesPerParticipant: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: 'the phone and companions' })),
        legacyId: Type.Optional(Type.Boolean({ description: 'an id of the older <creator>-<time>@g.us form' }))
      })
    }
  }, async (request, reply) => answering(reply, () => {
    const { group, outcomes } = groups.create(request.body)
    return { success: true, ...describeGroup(group), outcomes: outcomesOf(outcomes) }
  }))

  app.get('/groups/:jid', { schema: { params: GroupJid } }, async (request, reply) => answering(reply, () => ({
    success: true, ...describeGroup(groups.membership.find(request.params.jid))
  })))

  app.post('/groups/:jid/messages', {
    schema: {
      params: GroupJid,
      body: Type.Object({
        from: Phone,
        device: Type.Optional(Type.Integer({ minimum: 0, maximum: 99, description: 'which simulated device writes (0: the phone)' })),
        text: Type.String({ minLength: 1, maxLength: 65536 }),
        replyTo: Type.Optional(Type.String({ minLength: 4, maxLength: 64, description: 'the id of a message in the group' })),
        mentions: Type.Optional(Type.Array(Phone, { maxItems: 1024 })),
        id: Type.Optional(Type.String({ pattern: '^[0-9A-Za-z]{4,64}$' })),
        pushName: Type.Optional(Type.String({ maxLength: 64 }))
      })
    }
  }, async (request, reply) => answering(reply, async () => ({
    success: true, ...await groups.send({ group: request.params.jid, ...request.body })
  })))

  app.post('/groups/:jid/participants', {
    schema: {
      params: GroupJid,
      body: Type.Object({
        by: Phone,
        action: Type.Union([Type.Literal('add'), Type.Literal('remove'), Type.Literal('promote'), Type.Literal('demote')]),
        participants: Type.Array(Phone, { minItems: 1, maxItems: 1024 })
      })
    }
  }, async (request, reply) => answering(reply, () => {
    const { by, action, participants } = request.body
    return { success: true, outcomes: outcomesOf(groups.change(request.params.jid, by, action, participants)) }
  }))

  app.post('/groups/:jid/leave', { schema: { params: GroupJid, body: Type.Object({ phone: Phone }) } }, async (request, reply) =>
    answering(reply, () => {
      groups.membership.leave([request.params.jid], request.body.phone)
      return { success: true }
    }))

  app.post('/groups/:jid/join-requests', { schema: { params: GroupJid, body: Type.Object({ phone: Phone }) } }, async (request, reply) =>
    answering(reply, () => ({ success: true, ...groups.requestJoin(request.params.jid, request.body.phone) })))

  app.post('/groups/:jid/subject', {
    schema: { params: GroupJid, body: Type.Object({ by: Phone, subject: Type.String({ minLength: 1, maxLength: 200 }) }) }
  }, async (request, reply) => answering(reply, () => {
    groups.info.subject(request.params.jid, request.body.by, request.body.subject)
    return { success: true }
  }))

  app.get('/groups/:jid/participants/:phone/messages', {
    schema: { params: Type.Intersect([GroupJid, Type.Object({ phone: Phone })]) }
  }, async (request, reply) => answering(reply, () => ({
    success: true, messages: groups.received(request.params.jid, request.params.phone)
  })))

  app.get('/groups/:jid/sends', { schema: { params: GroupJid } }, async (request, reply) => answering(reply, () => ({
    success: true, sends: groups.sends(request.params.jid)
  })))

  app.get('/groups/:jid/sender-keys', { schema: { params: GroupJid } }, async (request, reply) => answering(reply, () => ({
    success: true, devices: groups.senderKeys(request.params.jid)
  })))

  // The account's privacy setting "who can add me to groups": nobody makes an add answer 403 with an invitation.
  app.post('/accounts/:phone/group-add', {
    schema: {
      params: Type.Object({ phone: Phone }),
      body: Type.Object({ value: Type.Union([Type.Literal('all'), Type.Literal('nobody')]) })
    }
  }, async (request) => {
    simulator.account(request.params.phone).groupAdd = request.body.value
    return { success: true }
  })

  app.post('/devices/:device/dirty-groups', { schema: { params: Device } }, async (request, reply) => {
    if (!groups.markDirty(request.params.device)) {
      const message = `device ${request.params.device} is not connected`
      return reply.code(404).send({ success: false, error: { code: 'NOT_FOUND', message } })
    }
    return { success: true }
  })
}
