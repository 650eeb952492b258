import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { lidOf } from '../simulator/accounts.ts'
import { controlApi } from '../simulator/control.ts'
import type { WhatsAppSimulator } from '../simulator/server.ts'
import { WhatsAppRefusal, type GroupEvent, type InboundMessage, type WaSocket } from '../plugins/session-pool/socket-port.ts'
import { startSimulator } from './helpers/simulator.ts'
import { linkDirectly } from './helpers/baileys-direct.ts'
import { jpeg, sha256Hex } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

// The gateway's own Baileys adapter (baileysFactory, the WaSocket port) against the simulator's groups.
const SALON = '79001234567'
const OTHER_SALON = '79001234568'
const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const GLEB = '79110000004'
const NOBODY = '79119999999'
const STEP_MS = 10_000

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const lid = (phone: string) => `${lidOf(phone)}@lid`
/** How the group names a member, by LID with the phone beside it. */
const member = (phone: string, admin?: 'admin' | 'superadmin') =>
  ({ jid: lid(phone), phone: pn(phone), lid: lid(phone), ...(admin ? { admin } : {}) })
const until = (condition: () => boolean) => waitFor(condition, STEP_MS)
/** The code of a refusal (a WhatsAppRefusal), or what else the call did. */
const refusal = (promise: Promise<unknown>) =>
  promise.then(() => 'answered', (err: unknown) => err instanceof WhatsAppRefusal ? err.code : `not a refusal: ${String(err)}`)

/**
 * The metadata queries Baileys sent for a group: `<iq xmlns="w:g2" type="get" to=group>` (the simulator
 * logs each stanza's attributes). Only the metadata, the invite code and the join requests are such gets.
 */
const metadataQueries = (simulator: WhatsAppSimulator, groupJid: string) => simulator.log.filter((entry) =>
  entry.kind === 'recv' && entry.detail.startsWith('iq ') && entry.detail.includes('"xmlns":"w:g2"') &&
  entry.detail.includes('"type":"get"') && entry.detail.includes(`"to":"${groupJid}"`)).length

/** Every group event and inbound message the socket emitted. */
function recording (socket: WaSocket) {
  const events: GroupEvent[] = []
  const messages: InboundMessage[] = []
  socket.on('groups', (batch) => events.push(...batch))
  socket.on('messages', (batch) => messages.push(...batch))
  const has = (expected: (event: GroupEvent) => boolean) => until(() => events.some(expected))
  return { events, messages, has }
}

async function controlOf (t: Test, simulator: WhatsAppSimulator) {
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  return async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const response = await control.inject({ method, url, ...(payload ? { payload } : {}) })
    return { status: response.statusCode, body: response.json() }
  }
}

t.test('a group created through the port: metadata from the cache, sends without a metadata query, an outcome per add', async (t) => {
  const { simulator, link } = await startSimulator(t, { notOnWhatsApp: [NOBODY] })
  const { socket } = await link(SALON)
  const { events, has } = recording(socket)
  const call = await controlOf(t, simulator)
  t.match(await call('POST', `/accounts/${VERA}/group-add`, { value: 'nobody' }), { status: 200 }, 'Vera lets nobody add her')

  const created = await socket.groups.create('Салон: мастера', [pn(ANNA), pn(BORIS)])
  t.match(created, {
    id: /^120363\d{12}@g\.us$/,
    subject: 'Салон: мастера',
    owner: lid(SALON),
    ownerPhone: pn(SALON),
    creation: Number,
    size: 3,
    announce: false,
    restrict: false,
    joinApproval: false,
    memberAddMode: false,
    ephemeralSeconds: 0
  })
  t.same(created.participants, [member(SALON, 'superadmin'), member(ANNA), member(BORIS)], 'members by LID, with their phones')
  const { id } = created
  t.ok(await has((event) => event.kind === 'joined' && event.group === id && event.subject === 'Салон: мастера'),
    'the create notification: the number joined')
  t.same(await socket.groups.metadata(id), created, 'the metadata')
  t.equal(metadataQueries(simulator, id), 0, 'served from what the create answered')

  for (const text of ['Первое', 'Второе']) await socket.sendText(id, text)
  t.ok(await until(() => simulator.groups.sends(id).length === 2))
  t.equal(metadataQueries(simulator, id), 0, 'two sends, and Baileys asked for the metadata of neither')
  t.match(simulator.groups.received(id, ANNA), [{ text: 'Первое' }, { text: 'Второе' }])

  const added = await socket.groups.updateParticipants(id, [pn(VERA), pn(ANNA), pn(NOBODY), pn(GLEB)], 'add')
  t.match(added, [
    { jid: pn(VERA), status: 403, addRequest: { code: /.+/, expiration: Number } },
    { jid: pn(ANNA), status: 409 },
    { jid: pn(NOBODY), status: 404 },
    { jid: pn(GLEB), status: 200 }
  ], 'privacy (with the invitation to send instead), already in, not on WhatsApp, added')
  t.ok(await has((event) => event.kind === 'participants' && event.action === 'add' && event.author === lid(SALON) &&
    event.participants.length === 1 && event.participants[0].jid === lid(GLEB)), 'the add is told, by the number')

  await socket.sendText(id, 'Третье')
  t.ok(await until(() => simulator.groups.sends(id).length === 3))
  t.equal(metadataQueries(simulator, id), 1, 'the change made the metadata stale: the next send fetched it once')
  t.match(simulator.groups.received(id, GLEB), [{ text: 'Третье' }], 'so the new member got the sender key and the message')
  await socket.sendText(id, 'Четвёртое')
  t.ok(await until(() => simulator.groups.sends(id).length === 4))
  t.equal(metadataQueries(simulator, id), 1, 'and the one after that asked nothing')
  t.same((await socket.groups.metadata(id)).participants, [member(SALON, 'superadmin'), member(ANNA), member(BORIS), member(GLEB)])
  t.equal(metadataQueries(simulator, id), 1, 'the port reads the same cache')

  const theirs = simulator.groups.create({ creator: ANNA, subject: 'Группа Анны', participants: [SALON] }).group
  const participating = await socket.groups.participating()
  t.same(participating.map((group) => group.id).sort(), [id, theirs.jid].sort(), 'both groups are listed')
  t.match(participating.find((group) => group.id === theirs.jid), { subject: 'Группа Анны', owner: lid(ANNA), size: 2 })
  t.notOk(events.some((event) => event.kind === 'update'), 'fetching every group is no change to report')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})

t.test('for comparison, Baileys without cachedGroupMetadata asks for the group\'s metadata before every send', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket } = await linkDirectly(t, simulator, url, OTHER_SALON)
  const { group } = simulator.groups.create({ creator: ANNA, subject: 'Без кэша', participants: [OTHER_SALON, BORIS] })
  for (const text of ['Первое', 'Второе', 'Третье']) await socket.sendMessage(group.jid, { text })
  t.ok(await until(() => simulator.groups.sends(group.jid).length === 3))
  t.equal(metadataQueries(simulator, group.jid), 3, 'one metadata query per send')
  t.comment(`three sends to a group: ${metadataQueries(simulator, group.jid)} metadata queries without the cache, none with it`)
})

t.test('the number\'s own changes, each told back as a group event; invite links, join requests and leaving', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const { has } = recording(socket)
  const call = await controlOf(t, simulator)
  const { id } = await socket.groups.create('Салон', [pn(ANNA), pn(BORIS)])
  /** An update event of this group by the number, with this change. */
  const updated = (change: object) => has((event) => event.kind === 'update' && event.group === id && event.author === lid(SALON) &&
    Object.entries(change).every(([field, value]) => (event.change as Record<string, unknown>)[field] === value))

  await socket.groups.setSubject(id, 'Салон «Ирис»')
  t.ok(await updated({ subject: 'Салон «Ирис»' }), 'subject')
  await socket.groups.setDescription(id, 'Запись по телефону')
  t.ok(await updated({ description: 'Запись по телефону' }), 'description')
  t.match(await socket.groups.metadata(id), { description: 'Запись по телефону' })
  await socket.groups.setDescription(id, '')
  t.ok(await updated({ description: '' }), 'description removed')
  t.notOk('description' in await socket.groups.metadata(id), 'and gone from the metadata')
  await socket.groups.setSetting(id, 'announcement')
  await socket.groups.setSetting(id, 'locked')
  t.ok(await updated({ announce: true }) && await updated({ restrict: true }), 'announcement group, locked settings')
  await socket.groups.setMemberAddMode(id, true)
  t.ok(await updated({ memberAddMode: true }), 'every member may add')
  await socket.groups.setJoinApproval(id, true)
  t.ok(await updated({ joinApproval: true }), 'admins approve who joins')
  await socket.groups.setDisappearing(id, 86_400)
  t.ok(await updated({ ephemeralSeconds: 86_400 }), 'disappearing messages (a protocol message in Baileys, not a group update)')
  await socket.groups.setPicture(id, await jpeg(640, 640))
  t.ok(await updated({ picture: true }), 'a picture (a stub in Baileys, no group update)')
  t.match(await socket.groups.metadata(id), {
    subject: 'Салон «Ирис»', announce: true, restrict: true, memberAddMode: true, joinApproval: true, ephemeralSeconds: 86_400
  }, 'the metadata shows every change')
  await socket.sendText(id, 'Сообщение исчезнет')
  t.ok(await until(() => simulator.groups.received(id, ANNA).length === 1), 'a send after the changes reaches the members')

  const code = await socket.groups.inviteCode(id)
  t.match(code, /^[A-Za-z0-9]{22}$/)
  t.match(await socket.groups.inviteInfo(code), { id, subject: 'Салон «Ирис»', size: 3 }, 'the link shows the group')
  const fresh = await socket.groups.revokeInvite(id)
  t.not(fresh, code, 'revoking gives a new code')
  t.ok(await updated({ inviteCode: fresh }), 'told as the new code')
  t.equal(await refusal(socket.groups.inviteInfo(code)), 406, 'the old link no longer works')

  for (const phone of [GLEB, VERA]) {
    t.match(await call('POST', `/groups/${id}/join-requests`, { phone }), { body: { pending: true } }, `${phone} asks to join`)
  }
  t.ok(await has((event) => event.kind === 'participants' && event.action === 'join_request' &&
    event.participants[0]?.jid === lid(GLEB) && event.participants[0].phone === pn(GLEB)), 'a join request, with the phone')
  t.match(await socket.groups.joinRequests(id), [
    { jid: lid(GLEB), phone: pn(GLEB), requestedAt: Number }, { jid: lid(VERA), phone: pn(VERA) }
  ])
  t.same(await socket.groups.decideJoinRequests(id, [lid(GLEB)], 'approve'), [{ jid: lid(GLEB), status: 200 }])
  t.same(await socket.groups.decideJoinRequests(id, [lid(VERA), lid(BORIS)], 'reject'),
    [{ jid: lid(VERA), status: 200 }, { jid: lid(BORIS), status: 404 }], 'Boris asked nothing: 404')
  t.ok(await has((event) => event.kind === 'participants' && event.action === 'add' && event.participants[0]?.jid === lid(GLEB)),
    'the approved one joins')
  t.same((await socket.groups.metadata(id)).participants.map((participant) => participant.jid),
    [lid(SALON), lid(ANNA), lid(BORIS), lid(GLEB)], 'the metadata fetched again after the approval')

  const annas = simulator.groups.create({ creator: ANNA, subject: 'По ссылке', participants: [BORIS] }).group
  t.equal(await socket.groups.acceptInvite(annas.inviteCode), annas.jid, 'joins by a link')
  t.ok(await has((event) => event.kind === 'joined' && event.group === annas.jid), 'and is told it joined')
  const approving = simulator.groups.create({ creator: ANNA, subject: 'С одобрением', participants: [BORIS] }).group
  simulator.groups.info.joinApproval(approving.jid, ANNA, true)
  t.equal(await socket.groups.acceptInvite(approving.inviteCode), undefined, 'a group whose admins approve: no group yet')

  await socket.groups.leave(id)
  t.ok(await has((event) => event.kind === 'left' && event.group === id && event.author === lid(SALON)), 'the number left')
  t.equal(await refusal(socket.groups.metadata(id)), 403, 'and is no longer in it: not served from the cache')
})

t.test('what WhatsApp refuses is a WhatsAppRefusal with its code', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const theirs = simulator.groups.create({ creator: ANNA, subject: 'Группа Анны', participants: [SALON, BORIS] }).group

  const notAdmin = await socket.groups.updateParticipants(theirs.jid, [pn(BORIS)], 'remove').catch((err: unknown) => err)
  t.ok(notAdmin instanceof WhatsAppRefusal, 'a WhatsAppRefusal')
  t.match(notAdmin, { code: 401, message: 'not-authorized' }, 'not an admin: 401, with WhatsApp\'s text')
  t.equal(await refusal(socket.groups.setSetting(theirs.jid, 'announcement')), 401)
  t.equal(await refusal(socket.groups.joinRequests(theirs.jid)), 401)
  t.equal(await refusal(socket.groups.inviteCode(theirs.jid)), 401)
  simulator.groups.info.setting(theirs.jid, ANNA, 'locked')
  t.equal(await refusal(socket.groups.setSubject(theirs.jid, 'Моя группа')), 401, 'a locked group\'s subject is the admins\'')
  const without = simulator.groups.create({ creator: BORIS, subject: 'Без салона', participants: [GLEB] }).group
  t.equal(await refusal(socket.groups.metadata(without.jid)), 403, 'not in the group: 403')
  t.equal(await refusal(socket.groups.setSubject(without.jid, 'Чужая')), 403)
  t.equal(await refusal(socket.groups.metadata('120363000000000000@g.us')), 404, 'no such group: 404')
  t.equal(await refusal(socket.groups.acceptInvite('AAAAAAAAAAAAAAAAAAAAAA')), 406, 'an unknown invite code: 406')
})

t.test('changes participants make are told as group events, those made while the number was offline too, each one', async (t) => {
  const { simulator, link, connect } = await startSimulator(t)
  const { socket, creds, keys } = await link(SALON)
  const online = recording(socket)
  const call = await controlOf(t, simulator)
  const created = await call('POST', '/groups', { creator: ANNA, subject: 'Мастера', participants: [SALON, BORIS, VERA], admins: [SALON] })
  const { jid } = created.body as { jid: string }
  t.ok(await online.has((event) => event.kind === 'joined' && event.group === jid && event.subject === 'Мастера'),
    'the number joined a group Anna made')

  t.match(await call('POST', `/groups/${jid}/subject`, { by: ANNA, subject: 'Мастера салона' }), { status: 200 })
  t.ok(await online.has((event) => event.kind === 'update' && event.author === lid(ANNA) && event.change.subject === 'Мастера салона'))
  t.match(await call('POST', `/groups/${jid}/participants`, { by: ANNA, action: 'add', participants: [GLEB] }), { status: 200 })
  t.ok(await online.has((event) => event.kind === 'participants' && event.action === 'add' && event.author === lid(ANNA)))
  t.match(online.events.find((event) => event.kind === 'participants' && event.action === 'add'), { participants: [member(GLEB)] })
  t.match(await call('POST', `/groups/${jid}/participants`, { by: ANNA, action: 'promote', participants: [BORIS] }), { status: 200 })
  t.ok(await online.has((event) => event.kind === 'participants' && event.action === 'promote'))
  t.match(online.events.find((event) => event.kind === 'participants' && event.action === 'promote'), {
    author: lid(ANNA), participants: [member(BORIS, 'admin')]
  })
  t.match(await call('POST', `/groups/${jid}/leave`, { phone: BORIS }), { status: 200 })
  t.ok(await online.has((event) => event.kind === 'participants' && event.action === 'remove' && event.author === lid(BORIS) &&
    event.participants[0]?.jid === lid(BORIS)), 'Boris left (a remove by himself)')
  t.same(online.messages, [], 'notifications are no messages')

  await socket.end()
  t.ok(await until(() => simulator.liveDevices().length === 0))
  simulator.groups.info.subject(jid, ANNA, 'Вечерняя смена')
  simulator.groups.info.setting(jid, ANNA, 'locked')
  simulator.groups.info.subject(jid, ANNA, 'Утренняя смена')
  const written = await call('POST', `/groups/${jid}/messages`, { from: VERA, text: 'Пока вас не было' })
  t.match(written.body, { queued: 1 })
  const again = connect(creds, keys)
  const offline = recording(again.socket)
  t.ok(await until(() => again.updates.some((update) => update.connection === 'open')))
  t.ok(await until(() => offline.events.length >= 3 && offline.messages.length >= 1))
  t.same(offline.events.filter((event) => event.kind === 'update'), [
    { kind: 'update', group: jid, author: lid(ANNA), change: { subject: 'Вечерняя смена' } },
    { kind: 'update', group: jid, author: lid(ANNA), change: { restrict: true } },
    { kind: 'update', group: jid, author: lid(ANNA), change: { subject: 'Утренняя смена' } }
  ], 'every change, in order (Baileys\' groups.update keeps only the first per group of a batch)')
  const meanwhile = { participant: lid(VERA), participantAlt: pn(VERA), text: 'Пока вас не было', offline: true }
  t.match(offline.messages, [{ id: (written.body as { id: string }).id, from: jid, ...meanwhile }],
    'the message written meanwhile, and none for the notifications')
  t.equal(offline.messages.length, 1)

  simulator.groups.change(jid, ANNA, 'remove', [SALON])
  t.ok(await offline.has((event) => event.kind === 'left' && event.group === jid && event.author === lid(ANNA)), 'removed by Anna: left')
  simulator.groups.change(jid, ANNA, 'add', [SALON])
  t.ok(await offline.has((event) => event.kind === 'joined' && event.group === jid && event.author === lid(ANNA)), 'added back: joined')
  t.notOk(offline.events.some((event) => event.kind === 'participants' && event.participants.some((one) => one.jid === lid(SALON))),
    'the number\'s own add and removal are told as joined and left, not as participants')
})

t.test('group messages both ways: the writer and mentions of inbound ones; mentions, replies and read receipts going out', async (t) => {
  const { simulator, link } = await startSimulator(t)
  const { socket } = await link(SALON)
  const { messages, has } = recording(socket)
  const { group } = simulator.groups.create({
    creator: ANNA, subject: 'Мастера', participants: [SALON, BORIS], admins: [SALON], devicesPerParticipant: 2
  })
  t.ok(await has((event) => event.kind === 'joined' && event.group === group.jid))

  const text = `@${lidOf(ANNA)} запись на 15:00 подтверждена`
  const sent = await socket.sendText(group.jid, text, { mentions: [lid(ANNA)] })
  t.ok(await until(() => simulator.groups.received(group.jid, BORIS).length === 1))
  for (const phone of [ANNA, BORIS]) {
    t.match(simulator.groups.received(group.jid, phone), [{ id: sent.messageId, text, mentions: [lid(ANNA)], devices: [0, 2] }],
      `${phone} decrypted it on both devices, with the mention`)
  }
  const photo = await jpeg()
  const captioned = await socket.sendMedia(group.jid,
    { kind: 'image', stream: Readable.from([photo]), mimetype: 'image/jpeg', caption: `@${lidOf(BORIS)} до и после` },
    { mentions: [lid(BORIS)] })
  t.ok(await until(() => simulator.groups.received(group.jid, ANNA).length === 2))
  t.match(simulator.groups.received(group.jid, ANNA)[1], {
    id: captioned.messageId, kind: 'media', media: { kind: 'image', sha256: sha256Hex(photo) }, mentions: [lid(BORIS)]
  }, 'a caption mentions too')

  const reply = await simulator.groups.send({
    group: group.jid, from: ANNA, text: `@${lidOf(SALON)} спасибо!`, mentions: [SALON], replyTo: sent.messageId, pushName: 'Анна'
  })
  t.ok(await until(() => messages.some((message) => message.id === reply.id)))
  t.same(messages.find((message) => message.id === reply.id), {
    id: reply.id,
    from: group.jid,
    fromAlt: undefined,
    participant: lid(ANNA),
    participantAlt: pn(ANNA),
    pushName: 'Анна',
    text: `@${lidOf(SALON)} спасибо!`,
    mentions: [lid(SALON)],
    quotedMessageId: sent.messageId,
    timestamp: messages.find((message) => message.id === reply.id)!.timestamp
  }, 'the group, its writer by LID and phone, the mention of the number, what it replies to')
  const fromCompanion = await simulator.groups.send({ group: group.jid, from: BORIS, device: 2, text: 'С компьютера' })
  t.ok(await until(() => messages.some((message) => message.id === fromCompanion.id)))
  t.match(messages.find((message) => message.id === fromCompanion.id), { participant: lid(BORIS), participantAlt: pn(BORIS) },
    'a companion device\'s message names the person, not the device')
  t.notOk('mentions' in messages.find((message) => message.id === fromCompanion.id)!, 'and mentions no one')

  const answer = await socket.sendText(group.jid, 'Пожалуйста', { quoted: { id: reply.id, fromMe: false, text: 'спасибо!' } })
  t.ok(await until(() => simulator.groups.received(group.jid, ANNA).some((message) => message.id === answer.messageId)))
  t.match(simulator.groups.received(group.jid, ANNA).find((message) => message.id === answer.messageId), { quotedMessageId: reply.id })
  // A group's read receipt names the writer (`participant`): the simulator records it on Anna only when it does.
  await socket.markRead(group.jid, [reply.id])
  t.ok(await until(() => simulator.account(ANNA).receipts.some((receipt) => receipt.messageId === reply.id && receipt.type === 'read')),
    'the read receipt reaches the writer')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})
