import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { createGatewayClient, type EventEnvelope, type GroupInfo, type ParticipantOutcome } from '../contracts/index.ts'
import { COMPANY_PHONE, linkedGateway } from './helpers/linked-gateway.ts'
import { jpeg } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const GLEB = '79110000004'
const NOBODY = '79119999999'
const STEP_MS = 10_000

/**
 * Groups end to end: the gateway's HTTP API and typed client, real Baileys on the simulator, whose
 * simulated contacts decrypt what the company sends and write back.
 */
t.test('a group of simulated contacts: create, send with a mention, hear a reply, add and remove with outcomes, leave', async (t) => {
  const gateway = await linkedGateway(t, {}, { notOnWhatsApp: [NOBODY] })
  const { simulator, replica, companyId, events } = gateway
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const eventsOf = (type: string) => events.events.filter((event) => event.type === type) as EventEnvelope[]

  // Create, then find it in the list.
  const created = await api('POST', '/groups', { subject: 'Салон: клиенты', participants: [ANNA, '+7 911 000-00-02'] })
  t.equal(created.statusCode, 200, created.body)
  const group = created.json().group as GroupInfo
  t.match(group, { subject: 'Салон: клиенты', isAdmin: true, settings: { announcementOnly: false, disappearingSeconds: 0 } })
  t.match(group.id, /@g\.us$/)
  t.same(group.participants.map((member) => [member.phone, member.role]).sort(),
    [[COMPANY_PHONE, 'superadmin'], [ANNA, 'member'], [BORIS, 'member']], 'participants by phone, with roles')
  t.ok(group.participants.every((member) => member.lid?.endsWith('@lid')), 'and their LIDs')
  t.ok(await waitFor(() => eventsOf('group_joined').some((event) => event.data.groupId === group.id), STEP_MS), 'group_joined')
  t.ok((await api('GET', '/groups')).json().groups.some((listed: GroupInfo) => listed.id === group.id), 'listed')

  // A text with a mention, then a photo: every participant decrypts both.
  const text = await api('POST', '/send', { phone: group.id, message: `@${ANNA} ваша запись в 15:00`, mentions: [ANNA] })
  t.equal(text.statusCode, 200, text.body)
  const photo = await api('POST', '/send', {
    phone: group.id, media: { kind: 'image', data: (await jpeg()).toString('base64'), caption: 'Наши работы @all' }, mentions: ['@all']
  })
  t.equal(photo.statusCode, 200, photo.body)
  for (const phone of [ANNA, BORIS]) {
    t.ok(await waitFor(() => simulator.groups.received(group.id, phone).length === 2, STEP_MS), `${phone} received both`)
    const [first, second] = simulator.groups.received(group.id, phone)
    t.match(first, { text: `@${ANNA} ваша запись в 15:00` })
    t.equal(first.mentions?.length, 1, 'one mention')
    t.ok(second.media, 'and the photo')
    t.equal(second.mentions?.length, 2, `@all mentions both participants: ${JSON.stringify(second.mentions)}`)
  }
  const sends = simulator.groups.sends(group.id)
  t.equal(sends.length, 2)
  t.equal(sends[1].skdms, 0, 'the second send distributes no sender key again')

  // A participant replies: a message event naming the group and the writer, and the group's history.
  await simulator.groups.send({ group: group.id, from: ANNA, text: 'Спасибо, буду!', replyTo: text.json().messageId, pushName: 'Анна' })
  t.ok(await waitFor(() => eventsOf('message').some((event) => event.data.groupId === group.id), STEP_MS), 'the reply is an event')
  const reply = eventsOf('message').find((event) => event.data.groupId === group.id)!
  t.match(reply.data, { groupId: group.id, phone: ANNA, text: 'Спасибо, буду!', pushName: 'Анна', quotedMessageId: text.json().messageId })
  const groupHistory = async () => (await api('GET', `/messages?chat=${encodeURIComponent(group.id)}`)).json().messages
  t.ok(await waitFor(async () => (await groupHistory()).length === 3, STEP_MS))
  const history = await groupHistory()
  t.same(history.map((message: { direction: string }) => message.direction), ['in', 'out', 'out'], 'the group is one chat')
  t.ok(history.every((message: { groupId: string }) => message.groupId === group.id))
  t.notOk((await api('GET', `/messages?chat=${ANNA}`)).json().messages.some((message: { groupId?: string }) => message.groupId),
    'Anna\'s own chat leaves the group out')

  // Adds answer per participant: privacy (with the invite link), already in, not on WhatsApp, added.
  simulator.account(VERA).groupAdd = 'nobody'
  const added = await api('POST', `/groups/${group.id}/participants`, { action: 'add', participants: [VERA, ANNA, NOBODY, GLEB] })
  t.equal(added.statusCode, 200, added.body)
  const outcomes = added.json().results as ParticipantOutcome[]
  t.same(outcomes.map(({ participant, outcome, code }) => [participant, outcome, code]), [
    [VERA, 'privacy_blocked', 403], [ANNA, 'already_in', 409], [NOBODY, 'not_on_whatsapp', 404], [GLEB, 'added', 200]
  ])
  t.match(outcomes[0].inviteLink, /^https:\/\/chat\.whatsapp\.com\/[A-Za-z0-9_-]+$/, 'the invite link to send Vera instead')
  t.equal(added.json().changed, 1)
  t.ok(await waitFor(() => eventsOf('group_participants').some((event) => event.data.action === 'add'), STEP_MS), 'group_participants')
  const removed = await api('POST', `/groups/${group.id}/participants`, { action: 'remove', participants: [GLEB, VERA] })
  t.same(removed.json().results.map((result: ParticipantOutcome) => result.outcome), ['removed', 'not_in_group'])

  // Subject and settings; the change comes back as group_update.
  const updated = await api('PATCH', `/groups/${group.id}`, { subject: 'Салон: VIP', settings: { announcementOnly: true } })
  t.equal(updated.statusCode, 200, updated.body)
  t.match(updated.json().group, { subject: 'Салон: VIP', settings: { announcementOnly: true } })
  t.ok(await waitFor(() => eventsOf('group_update').some((event) => event.data.subject === 'Салон: VIP'), STEP_MS), 'group_update')
  const invite = await api('GET', `/groups/${group.id}/invite`)
  const revoked = await api('DELETE', `/groups/${group.id}/invite`)
  t.not(revoked.json().code, invite.json().code, 'revoking answers a new code')

  // Over NATS, the typed client says the same.
  const nc = await connect({ servers: gateway.settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: gateway.settings.natsNamespace })
  t.match((await client.getGroup(companyId, group.id)).group, { subject: 'Салон: VIP', size: 3 })

  // Leave: group_left, and the list no longer has it.
  t.equal((await api('DELETE', `/groups/${group.id}`)).statusCode, 200)
  t.ok(await waitFor(() => eventsOf('group_left').some((event) => event.data.groupId === group.id), STEP_MS), 'group_left')
  t.notOk((await api('GET', '/groups')).json().groups.some((listed: GroupInfo) => listed.id === group.id), 'no longer listed')
})

t.test('a group the number is only a member of: admin changes are refused with NOT_GROUP_ADMIN; bad input is 4xx', async (t) => {
  const { simulator, replica, companyId } = await linkedGateway(t)
  const api = (method: string, url: string, payload?: unknown) => replica.app.inject({
    method: method as never, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload: payload as never } : {})
  })
  const { group } = simulator.groups.create({ creator: ANNA, subject: 'Группа Анны', participants: [COMPANY_PHONE, BORIS] })
  const listed = async () => (await api('GET', '/groups')).json().groups?.some((one: GroupInfo) => one.id === group.jid)
  t.ok(await waitFor(listed, STEP_MS))
  const info = (await api('GET', `/groups/${group.jid}`)).json().group as GroupInfo
  t.equal(info.isAdmin, false)
  const promote = await api('POST', `/groups/${group.jid}/participants`, { action: 'promote', participants: [BORIS] })
  t.equal(promote.statusCode, 409)
  t.match(promote.json(), { success: false, error: { code: 'NOT_GROUP_ADMIN' } })
  t.match((await api('GET', `/groups/${group.jid}/invite`)).json(), { error: { code: 'NOT_GROUP_ADMIN' } })
  t.equal((await api('GET', '/groups/12345@g.us')).statusCode, 404, 'an unknown group')
  t.equal((await api('GET', '/groups/not-a-group')).statusCode, 400, 'not a group JID')
  t.equal((await api('POST', '/groups', { subject: '', participants: [] })).statusCode, 400)
  t.equal((await api('POST', `/groups/${group.jid}/participants`, { action: 'ban', participants: [BORIS] })).statusCode, 400)
  t.equal((await api('POST', '/send', { phone: '123@g.us', message: 'x' })).statusCode, 400, 'a malformed group JID')
  t.equal((await api('POST', '/send', { phone: ANNA, message: 'x', mentions: ['@all'] })).statusCode, 400, '@all outside a group')
  const elsewhere = simulator.groups.create({ creator: ANNA, subject: 'Без салона', participants: [BORIS] }).group
  const outsider = await api('POST', '/send', { phone: elsewhere.jid, message: 'Можно к вам?' })
  t.equal(outsider.statusCode, 409, outsider.body)
  t.match(outsider.json(), { error: { code: 'NOT_IN_GROUP' } }, 'a send to a group the number is not in')
  t.equal((await api('PUT', `/groups/${group.jid}/picture`, { data: Buffer.from('not a picture').toString('base64') })).statusCode, 415)
})
