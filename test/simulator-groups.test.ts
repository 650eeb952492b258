import t from 'tap'
import { curve } from 'libsignal'
import { getBinaryNodeChild, getBinaryNodeChildBuffer, proto } from '@whiskeysockets/baileys'
import { lidOf } from '../simulator/accounts.ts'
import { controlApi } from '../simulator/control.ts'
import { WhatsAppSimulator } from '../simulator/server.ts'
import { startSimulator } from './helpers/simulator.ts'
import { linkDirectly, type EventLog } from './helpers/baileys-direct.ts'
import { jpeg, sha256Hex } from './helpers/media-files.ts'
import { waitFor } from './helpers/wait.ts'

const SALON = '79001234567'
const ANNA = '79110000001'
const BORIS = '79110000002'
const VERA = '79110000003'
const GLEB = '79110000004'
const NOBODY = '79119999999'
const STEP_MS = 10_000

const pn = (phone: string) => `${phone}@s.whatsapp.net`
const lid = (phone: string) => `${lidOf(phone)}@lid`
/** The status code of a refused query (Baileys throws a Boom carrying it as `data`). */
const refusal = (promise: Promise<unknown>) => promise.then(() => 'answered', (err: { data?: unknown }) => err.data)
const until = (condition: () => boolean) => waitFor(condition, STEP_MS)
/** What Baileys emitted: every upserted message, every group update. */
const upserts = (events: EventLog) => events.of('messages.upsert').flatMap((upsert) => upsert.messages)
const groupUpdates = (events: EventLog) => events.of('groups.update').flat()
const toldOf = (events: EventLog, jid: string) => until(() => events.of('groups.upsert').flat().some((group) => group.id === jid))

t.test('a group created by the linked device: its metadata, and adds with a result per participant', async (t) => {
  const { simulator, url } = await startSimulator(t, { notOnWhatsApp: [NOBODY] })
  const { socket, events } = await linkDirectly(t, simulator, url, SALON)

  const created = await socket.groupCreate('Салон: мастера', [pn(ANNA), pn(BORIS)])
  t.match(created.id, /^120363\d{12}@g\.us$/, 'a group id of today\'s form')
  t.match(created, {
    subject: 'Салон: мастера', addressingMode: 'lid', owner: lid(SALON), ownerPn: pn(SALON), size: 3, announce: false, restrict: false
  })
  t.same(created.participants.map(({ id, phoneNumber, admin }) => ({ id, phoneNumber, admin })), [
    { id: lid(SALON), phoneNumber: pn(SALON), admin: 'superadmin' },
    { id: lid(ANNA), phoneNumber: pn(ANNA), admin: null },
    { id: lid(BORIS), phoneNumber: pn(BORIS), admin: null }
  ], 'participants by LID with their phone numbers; the creator is the superadmin')
  t.same(await socket.groupMetadata(created.id), created, 'the metadata query answers the same group')
  t.ok(await waitFor(() => events.of('groups.upsert').flat().some((group) => group.id === created.id), STEP_MS),
    'the create notification reached Baileys as groups.upsert')

  simulator.account(VERA).groupAdd = 'nobody'
  const added = await socket.groupParticipantsUpdate(created.id, [pn(VERA), pn(ANNA), pn(NOBODY), pn(GLEB)], 'add')
  t.same(added.map(({ jid, status }) => ({ jid, status })), [
    { jid: pn(VERA), status: '403' }, { jid: pn(ANNA), status: '409' }, { jid: pn(NOBODY), status: '404' }, { jid: pn(GLEB), status: '200' }
  ], 'privacy refuses, already in, not on WhatsApp, added')
  t.match(added[0].content, { content: [{ tag: 'add_request', attrs: { code: /.+/, expiration: /^\d+$/ } }] },
    'the refused add carries an invitation to send instead')
  t.ok(await waitFor(() => events.of('group-participants.update').some((update) => update.action === 'add'), STEP_MS))
  // rc14 drops the actor's phone (participantAlt is no field of the MessageKey proto), so only its LID arrives.
  t.match(events.of('group-participants.update').find((update) => update.action === 'add'), {
    id: created.id, author: lid(SALON), participants: [{ id: lid(GLEB), phoneNumber: pn(GLEB) }]
  }, 'only the one added is announced, by its adder')

  const legacy = simulator.groups.create({ creator: ANNA, subject: 'Старая группа', participants: [SALON], legacyId: true }).group
  t.match(legacy.jid, new RegExp(`^${ANNA}-\\d+@g\\.us$`), 'an older group\'s id')
  t.match(await socket.groupMetadata(legacy.jid), { id: legacy.jid, subject: 'Старая группа', owner: lid(ANNA) })
  const participating = await socket.groupFetchAllParticipating()
  t.same(Object.keys(participating).sort(), [created.id, legacy.jid].sort(), 'both groups are listed as participating')
  t.equal(participating[created.id].participants.length, 4)
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})

t.test('promote, demote and remove; refused when the linked number is no admin, not in the group, or there is no group', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events } = await linkDirectly(t, simulator, url, SALON)
  const { id } = await socket.groupCreate('Смена', [pn(ANNA), pn(BORIS), pn(GLEB)])
  const announced = (action: string) => until(() => events.of('group-participants.update').some((update) => update.action === action))

  t.match(await socket.groupParticipantsUpdate(id, [pn(ANNA)], 'promote'), [{ status: '200' }])
  t.ok(await announced('promote'))
  t.match(events.of('group-participants.update').find((update) => update.action === 'promote'), {
    author: lid(SALON), participants: [{ id: lid(ANNA), admin: 'admin' }]
  })
  t.match(await socket.groupParticipantsUpdate(id, [pn(ANNA)], 'demote'), [{ status: '200' }])
  t.match(await socket.groupParticipantsUpdate(id, [pn(BORIS), pn(VERA)], 'remove'), [{ status: '200' }, { status: '404' }],
    'a participant removed; someone not in the group: 404')
  t.ok(await announced('demote') && await announced('remove'))
  t.same((await socket.groupMetadata(id)).participants.map((participant) => [participant.id, participant.admin]),
    [[lid(SALON), 'superadmin'], [lid(ANNA), null], [lid(GLEB), null]])

  // A group of Anna's where the linked number is a plain member.
  const theirs = simulator.groups.create({ creator: ANNA, subject: 'Группа Анны', participants: [SALON, BORIS] }).group
  t.equal(await refusal(socket.groupParticipantsUpdate(theirs.jid, [pn(BORIS)], 'remove')), 401, 'not an admin: 401')
  t.equal(await refusal(socket.groupSettingUpdate(theirs.jid, 'announcement')), 401)
  simulator.groups.info.setting(theirs.jid, ANNA, 'announcement')
  const muted = await socket.sendMessage(theirs.jid, { text: 'Можно мне?' })
  // The refusal comes within the 100 ms Baileys buffers its own send for: it is folded into that upsert.
  const refused = (update: { status?: number | null, messageStubParameters?: string[] | null }) =>
    update.status === proto.WebMessageInfo.Status.ERROR && update.messageStubParameters?.[0] === '403'
  t.ok(await until(() => upserts(events).some((message) => message.key.id === muted!.key.id && refused(message)) ||
    events.of('messages.update').flat().some(({ key, update }) => key.id === muted!.key.id && refused(update))),
  'only admins write once Anna made it an announcement group: the server refuses with 403')
  t.same(simulator.groups.change(theirs.jid, ANNA, 'promote', [SALON]).map((outcome) => outcome.status), [200], 'Anna makes it an admin')
  t.ok(await waitFor(() => events.of('group-participants.update').some((update) => update.author === lid(ANNA)), STEP_MS),
    'told by Anna\'s promotion')
  t.match(await socket.groupParticipantsUpdate(theirs.jid, [pn(BORIS)], 'remove'), [{ status: '200' }], 'now it may remove')

  const without = simulator.groups.create({ creator: BORIS, subject: 'Без салона', participants: [GLEB] }).group
  t.equal(await refusal(socket.groupMetadata(without.jid)), 403, 'not in the group: 403')
  t.equal(await refusal(socket.groupMetadata('120363000000000000@g.us')), 404, 'no such group: 404')
})

t.test('subject, description, settings, disappearing messages and picture reach Baileys as group updates', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events } = await linkDirectly(t, simulator, url, SALON)
  const { id } = await socket.groupCreate('Салон', [pn(ANNA), pn(BORIS)])
  const updated = (field: string, value: unknown) =>
    until(() => groupUpdates(events).some((update) => update.id === id && (update as Record<string, unknown>)[field] === value))

  await socket.groupUpdateSubject(id, 'Салон «Ирис»')
  t.ok(await updated('subject', 'Салон «Ирис»'), 'subject')
  await socket.groupUpdateDescription(id, 'Запись по телефону')
  t.ok(await updated('desc', 'Запись по телефону'), 'description')
  const withDescription = await socket.groupMetadata(id)
  t.match(withDescription, { desc: 'Запись по телефону', descId: /.+/, descOwner: lid(SALON), descOwnerPn: pn(SALON) })
  await socket.groupUpdateDescription(id, 'Запись онлайн')
  t.ok(await updated('desc', 'Запись онлайн'), 'changed again (naming the previous description)')
  for (const setting of ['announcement', 'locked'] as const) await socket.groupSettingUpdate(id, setting)
  t.ok(await updated('announce', true) && await updated('restrict', true), 'announcement and locked')
  await socket.groupMemberAddMode(id, 'all_member_add')
  t.ok(await updated('memberAddMode', true), 'every member may add')
  await socket.groupJoinApprovalMode(id, 'on')
  t.ok(await updated('joinApprovalMode', true), 'admins approve who joins')
  await socket.groupToggleEphemeral(id, 86_400)
  t.ok(await waitFor(() => events.of('messages.upsert').some(({ messages }) =>
    messages.some((message) => message.message?.protocolMessage?.ephemeralExpiration === 86_400)), STEP_MS), 'disappearing messages on')
  t.match(await socket.groupMetadata(id), {
    subject: 'Салон «Ирис»',
    desc: 'Запись онлайн',
    announce: true,
    restrict: true,
    memberAddMode: true,
    joinApprovalMode: true,
    ephemeralDuration: 86_400
  }, 'the metadata shows every change')

  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const annaRenames = () => control.inject({ method: 'POST', url: `/groups/${id}/subject`, payload: { by: ANNA, subject: 'От Анны' } })
  t.equal((await annaRenames()).statusCode, 403, 'a locked group\'s subject is the admins\'')
  await socket.groupSettingUpdate(id, 'unlocked')
  t.equal((await annaRenames()).statusCode, 200)
  t.ok(await until(() => groupUpdates(events).some((update) => update.subject === 'От Анны' && update.author === lid(ANNA))),
    'a participant\'s change, by that participant')

  const picture = await jpeg(640, 640)
  await socket.updateProfilePicture(id, picture)
  t.ok(await waitFor(() => events.of('contacts.update').flat().some((update) => update.id === id && update.imgUrl === 'changed'), STEP_MS),
    'the picture notification')
  const pictureUrl = await socket.profilePictureUrl(id, 'image')
  const served = Buffer.from(await (await fetch(pictureUrl!)).arrayBuffer())
  t.match(served.subarray(0, 3), Buffer.from([0xff, 0xd8, 0xff]), 'the picture is served, a JPEG as Baileys made it')
  await socket.removeProfilePicture(id)
  t.equal(await refusal(socket.profilePictureUrl(id, 'image')), 404, 'and gone once removed')
})

t.test('invite links, join requests and leaving', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events } = await linkDirectly(t, simulator, url, SALON)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const { id } = await socket.groupCreate('Клиенты', [pn(ANNA)])

  const code = await socket.groupInviteCode(id)
  t.match(code, /^[A-Za-z0-9]{22}$/)
  t.match(await socket.groupGetInviteInfo(code!), { id, subject: 'Клиенты' }, 'the link shows the group')
  const fresh = await socket.groupRevokeInvite(id)
  t.not(fresh, code, 'revoking gives a new code')
  t.ok(await waitFor(() => events.of('groups.update').flat().some((update) => update.inviteCode === fresh), STEP_MS))
  t.equal(await refusal(socket.groupGetInviteInfo(code!)), 406, 'the old link no longer works')

  const annas = simulator.groups.create({ creator: ANNA, subject: 'По ссылке', participants: [BORIS] }).group
  t.equal(await socket.groupAcceptInvite(annas.inviteCode), annas.jid, 'the linked number joins by link')
  t.ok(annas.isMember(SALON))

  await socket.groupJoinApprovalMode(id, 'on')
  for (const phone of [GLEB, VERA]) {
    const asked = await control.inject({ method: 'POST', url: `/groups/${id}/join-requests`, payload: { phone } })
    t.match(asked.json(), { success: true, pending: true }, `${phone} waits for approval`)
  }
  t.ok(await waitFor(() => events.of('group.join-request').length === 2, STEP_MS), 'the admin is told of each request')
  t.match(events.of('group.join-request')[0], {
    id, participant: lid(GLEB), participantPn: pn(GLEB), action: 'created', method: 'invite_link'
  })
  t.match(await socket.groupRequestParticipantsList(id), [{ jid: lid(GLEB), phone_number: pn(GLEB) }, { jid: lid(VERA) }])
  t.match(await socket.groupRequestParticipantsUpdate(id, [lid(GLEB)], 'approve'), [{ jid: lid(GLEB), status: '200' }])
  t.match(await socket.groupRequestParticipantsUpdate(id, [lid(VERA), lid(BORIS)], 'reject'),
    [{ jid: lid(VERA), status: '200' }, { jid: lid(BORIS), status: '404' }], 'no request from Boris: 404')
  t.ok(await waitFor(() => events.of('group-participants.update').some((update) =>
    update.action === 'add' && update.participants.some((participant) => participant.id === lid(GLEB))), STEP_MS), 'Gleb joins')
  t.ok(await waitFor(() => events.of('group.join-request').some((request) => request.action === 'rejected'), STEP_MS), 'Vera is rejected')

  await socket.groupLeave(id)
  t.ok(await waitFor(() => events.of('group-participants.update').some((update) =>
    update.action === 'remove' && update.author === lid(SALON) && update.participants[0].id === lid(SALON)), STEP_MS), 'the leave is told')
  t.equal(await refusal(socket.groupMetadata(id)), 403, 'no longer in it')
  const after = (await control.inject({ method: 'GET', url: `/groups/${id}` })).json()
  t.match(after.participants, [{ phone: ANNA, role: 'admin' }, { phone: GLEB, role: 'member' }], 'the group left without an admin got one')
})

t.test('a text with a mention to a group: every participant device decrypts it; the next send carries no sender key', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events, device } = await linkDirectly(t, simulator, url, SALON)
  const { group } = simulator.groups.create({
    creator: ANNA, subject: 'Мастера', participants: [SALON, BORIS, VERA], admins: [SALON], devicesPerParticipant: 2
  })
  t.ok(await toldOf(events, group.jid), 'the linked device is told')

  const text = `@${lidOf(ANNA)} запись на 15:00 подтверждена`
  const first = await socket.sendMessage(group.jid, { text, mentions: [lid(ANNA)] })
  t.ok(await waitFor(() => simulator.groups.sends(group.jid).length === 1, STEP_MS))
  // Three participants with a phone and a companion each, and the linked number's own phone.
  t.match(simulator.groups.sends(group.jid)[0], {
    id: first!.key.id, from: device, skdms: 7, skdmsToHolders: 0, decrypted: 7, failures: []
  }, 'a sender key for each of the seven member devices, and each one decrypted the message')
  for (const phone of [ANNA, BORIS, VERA]) {
    t.match(simulator.groups.received(group.jid, phone), [{
      id: first!.key.id, from: device, kind: 'text', text, mentions: [lid(ANNA)], devices: [0, 2]
    }], `${phone} got it on both devices, with the mention`)
  }
  t.same(simulator.groups.received(group.jid, SALON), [], 'the sender\'s own account records nothing')

  const second = await socket.sendMessage(group.jid, { text: 'и ещё одно' })
  t.ok(await waitFor(() => simulator.groups.sends(group.jid).length === 2, STEP_MS))
  t.match(simulator.groups.sends(group.jid)[1], { id: second!.key.id, skdms: 0, decrypted: 7, failures: [] },
    'one skmsg, no sender key again')
  t.same(Object.values(simulator.groups.senderKeys(group.jid)), Array(7).fill([device]), 'each device holds the sender key once')
  t.ok(await waitFor(() => new Set(events.of('message-receipt.update').flat()
    .filter((receipt) => receipt.key.id === second!.key.id).map((receipt) => receipt.receipt.userJid)).size === 3, STEP_MS),
  'a delivery receipt from each participant')

  const reply = await simulator.groups.send({ group: group.jid, from: ANNA, text: 'Спасибо!', replyTo: first!.key.id!, pushName: 'Анна' })
  t.match(reply, { devices: 1, senderKeys: 1 }, 'Anna\'s first message carries her sender key to the linked device')
  const upserted = (id: string) => upserts(events).find((message) => message.key.id === id)
  t.ok(await waitFor(() => upserted(reply.id) !== undefined, STEP_MS))
  t.match(upserted(reply.id), {
    key: { remoteJid: group.jid, participant: lid(ANNA), participantAlt: pn(ANNA), fromMe: false },
    pushName: 'Анна',
    message: { extendedTextMessage: { text: 'Спасибо!', contextInfo: { stanzaId: first!.key.id, participant: lid(SALON) } } }
  }, 'Baileys decrypted the reply, its author by LID and phone')
  t.ok(await until(() => simulator.account(ANNA).receipts.some((receipt) => receipt.messageId === reply.id)), 'and reported delivery')

  const mention = await simulator.groups.send({ group: group.jid, from: ANNA, text: `@${lidOf(SALON)} ждём`, mentions: [SALON] })
  t.match(mention, { devices: 1, senderKeys: 0 }, 'her next message is an skmsg only')
  const fromCompanion = await simulator.groups.send({ group: group.jid, from: BORIS, device: 2, text: 'С компьютера' })
  t.ok(await waitFor(() => upserted(mention.id) !== undefined && upserted(fromCompanion.id) !== undefined, STEP_MS))
  t.match(upserted(mention.id)?.message?.extendedTextMessage?.contextInfo?.mentionedJid, [lid(SALON)], 'the mention of the linked number')
  t.match(upserted(fromCompanion.id), {
    key: { participant: lid(BORIS), participantAlt: pn(BORIS) }, message: { conversation: 'С компьютера' }
  }, 'a participant\'s companion device writes under its own sender key')
  t.notOk(upserts(events).some((message) => message.messageStubType === proto.WebMessageInfo.StubType.CIPHERTEXT),
    'nothing Baileys failed to decrypt')
  const direct = await socket.sendMessage(pn(BORIS), { text: 'Лично Борису' })
  t.ok(await until(() => simulator.received(BORIS).length === 1), 'a 1:1 message to a contact with a companion device')
  t.match(simulator.received(BORIS), [{ id: direct!.key.id, text: 'Лично Борису' }], 'recorded once, by the phone')
  t.same(simulator.log.filter((entry) => entry.kind === 'error'), [], 'no protocol error')
})

t.test('media to a group is fetched and checked by every participant; an offline member gets group news at its next login', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const linked = await linkDirectly(t, simulator, url, SALON)
  const { group } = simulator.groups.create({ creator: ANNA, subject: 'Фото работ', participants: [SALON, BORIS] })
  const photo = await jpeg()
  const sent = await linked.socket.sendMessage(group.jid, { image: photo, caption: 'До и после' })
  t.ok(await waitFor(() => simulator.groups.received(group.jid, BORIS).length === 1, STEP_MS))
  for (const phone of [ANNA, BORIS]) {
    t.match(simulator.groups.received(group.jid, phone), [{
      id: sent!.key.id, kind: 'media', media: { kind: 'image', caption: 'До и после', sha256: sha256Hex(photo), size: photo.length }
    }], `${phone} opened the photo`)
  }

  await linked.socket.end(undefined)
  t.ok(await waitFor(() => simulator.liveDevices().length === 0, STEP_MS))
  simulator.groups.info.subject(group.jid, ANNA, 'Фото работ 2025')
  const written = await simulator.groups.send({ group: group.jid, from: BORIS, text: 'Красота' })
  t.match(written, { devices: 0, queued: 1 })
  const again = await linked.connect()
  t.ok(await waitFor(() => again.events.of('groups.update').flat().some((update) => update.subject === 'Фото работ 2025'), STEP_MS),
    'the subject change kept for the offline device')
  t.ok(await waitFor(() => again.events.of('messages.upsert').some(({ messages }) =>
    messages.some((message) => message.key.id === written.id && message.message?.conversation === 'Красота')), STEP_MS),
  'and the message written meanwhile, decrypted')

  t.ok(simulator.groups.markDirty(linked.device), 'WhatsApp marks the groups dirty')
  t.ok(await until(() => simulator.log.some((entry) => entry.kind === 'recv' && entry.detail.includes('urn:xmpp:whatsapp:dirty'))),
    'Baileys fetched its groups again and cleaned the dirty bit')
  t.ok(again.events.of('groups.update').flat().some((update) => update.id === group.jid && update.subject === 'Фото работ 2025'))
})

t.test('256 participants with two devices each: the first send distributes 513 sender keys, the next is one skmsg', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events } = await linkDirectly(t, simulator, url, SALON)
  const participants = Array.from({ length: 256 }, (_, index) => `7920${String(index).padStart(7, '0')}`)
  let started = performance.now()
  const { group } = simulator.groups.create({
    creator: participants[0], subject: 'Большая группа', participants: [SALON, ...participants.slice(1)], devicesPerParticipant: 2
  })
  const creation = performance.now() - started
  t.ok(await waitFor(() => events.of('groups.upsert').flat().some((upsert) => upsert.id === group.jid), STEP_MS))

  /** A send's time in Baileys (until sendMessage resolved) and until every member device had decrypted it. */
  const timedSend = async (text: string, index: number) => {
    started = performance.now()
    await socket.sendMessage(group.jid, { text })
    const sent = performance.now() - started
    t.ok(await waitFor(() => simulator.groups.sends(group.jid).length === index + 1, 60_000))
    return { sent, fannedOut: performance.now() - started, report: simulator.groups.sends(group.jid)[index] }
  }
  const first = await timedSend('Всем привет', 0)
  const next = await timedSend('Ещё раз привет', 1)
  // 256 participants × 2 devices, and the linked number's own phone.
  t.match(first.report, { skdms: 513, skdmsToHolders: 0, decrypted: 513, failures: [] }, 'the first send gives every member device the key')
  t.match(next.report, { skdms: 0, decrypted: 513, failures: [] }, 'the next one is a single skmsg every device opens')
  t.equal(simulator.groups.received(group.jid, participants[255]).length, 2)
  const ms = (value: number) => `${Math.round(value)} ms`
  t.comment(`256×2 group: created in ${ms(creation)}; first send ${ms(first.sent)} in Baileys, fanned out after ${ms(first.fannedOut)}; ` +
    `next send ${ms(next.sent)}, fanned out after ${ms(next.fannedOut)}`)
})

t.test('the control API makes a group with the linked number as admin, writes to it as its participants, and reads back', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const { socket, events, device } = await linkDirectly(t, simulator, url, SALON)
  const control = controlApi(simulator)
  t.teardown(() => control.close())
  const call = async (method: 'GET' | 'POST', path: string, payload?: object) => {
    const response = await control.inject({ method, url: path, ...(payload ? { payload } : {}) })
    return { status: response.statusCode, body: response.json() }
  }

  const created = await call('POST', '/groups', {
    creator: ANNA, subject: 'Через API', participants: [SALON, BORIS], admins: [SALON], devicesPerParticipant: 2
  })
  t.match(created, {
    status: 200, body: { jid: /@g\.us$/, participants: [{ phone: ANNA, role: 'superadmin' }, { phone: SALON, role: 'admin' }] }
  })
  const { jid } = created.body as { jid: string }
  t.ok(await toldOf(events, jid))
  const written = await call('POST', `/groups/${jid}/messages`, { from: BORIS, device: 2, text: 'Привет из API', mentions: [SALON] })
  t.match(written, { status: 200, body: { devices: 1, senderKeys: 1 } })
  t.ok(await until(() => upserts(events).some((message) => message.key.id === (written.body as { id: string }).id)))

  const sent = await socket.sendMessage(jid, { text: 'Ответ салона' })
  t.ok(await until(() => simulator.groups.sends(jid).length === 1))
  t.match(await call('GET', `/groups/${jid}/participants/${BORIS}/messages`), {
    status: 200, body: { messages: [{ id: sent!.key.id, text: 'Ответ салона', devices: [0, 2] }] }
  }, 'what a participant received, decrypted')
  t.match(await call('GET', `/groups/${jid}/sends`), { body: { sends: [{ id: sent!.key.id, skdms: 5, decrypted: 5, failures: [] }] } })
  const senderKeys = (await call('GET', `/groups/${jid}/sender-keys`)).body.devices
  t.same(senderKeys[`${BORIS}:2`], [device], 'Boris\'s companion holds the salon\'s key')

  t.match(await call('POST', `/groups/${jid}/participants`, { by: ANNA, action: 'promote', participants: [BORIS] }),
    { status: 200, body: { outcomes: [{ status: 200 }] } })
  t.match(await call('POST', `/groups/${jid}/participants`, { by: BORIS, action: 'remove', participants: [GLEB] }),
    { status: 200, body: { outcomes: [{ status: 404 }] } }, 'Boris is an admin now; Gleb is not in the group')
  t.match(await call('POST', `/accounts/${VERA}/group-add`, { value: 'nobody' }), { status: 200 })
  t.match(await socket.groupParticipantsUpdate(jid, [pn(VERA)], 'add'), [{ status: '403' }], 'Vera\'s privacy refuses the add')
  t.match(await call('POST', `/groups/${jid}/leave`, { phone: BORIS }), { status: 200 })
  t.ok(await until(() => events.of('group-participants.update').some(({ action, author }) => action === 'remove' && author === lid(BORIS))))
  t.match(await call('POST', `/groups/${jid}/messages`, { from: BORIS, text: 'Я ушёл' }),
    { status: 403, body: { error: { code: 'FORBIDDEN', whatsappCode: 403 } } }, 'who left cannot write')
  t.match(await call('GET', '/groups/120363000000000000@g.us'), { status: 404, body: { error: { code: 'ITEM_NOT_FOUND' } } })
  t.match(await call('POST', `/devices/${device}/dirty-groups`), { status: 200 })
  t.match(await call('POST', '/devices/79000000000:9/dirty-groups'), { status: 404 })
})

t.test('simulated devices sign natively, and libsignal\'s own XEdDSA verifies what they sign', async (t) => {
  const account = new WhatsAppSimulator().account(ANNA)
  const bundle = account.phoneDevice.bundle(pn(ANNA))
  const bytes = (tag: string, parent = bundle) => getBinaryNodeChildBuffer(parent, tag)!
  const withType = (key: Uint8Array) => Buffer.concat([Buffer.from([5]), key])
  const signedPreKey = getBinaryNodeChild(bundle, 'skey')!
  const identity = withType(bytes('identity'))
  const signature = Buffer.from(bytes('signature', signedPreKey))
  t.ok(curve.verifySignature(identity, withType(bytes('value', signedPreKey)), signature),
    'the signed pre-key\'s signature by the identity key')
  t.notOk(curve.verifySignature(identity, curve.generateKeyPair().pubKey, signature), 'and not over another key')
})
