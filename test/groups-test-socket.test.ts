import t from 'tap'
import { Readable } from 'node:stream'
import { initAuthCreds } from '@whiskeysockets/baileys'
import pino from 'pino'
import type { LedgerPort } from '../plugins/ownership/index.ts'
import {
  WhatsAppRefusal, type GroupEvent, type InboundMessage, type Receipt, type SocketAuth
} from '../plugins/session-pool/socket-port.ts'
import { lidOf } from '../plugins/session-pool/test-groups.ts'
import { TestWhatsApp, type TestSocket } from '../plugins/session-pool/test-socket.ts'
import { lidOf as simulatorLidOf } from '../simulator/accounts.ts'
import { waitFor } from './helpers/wait.ts'

// The test double's groups, through the socket port as a session uses it, and the controls tests
// use to act as the other participants (TestWhatsApp.groups).

const ANNA = '79110000001'
const BORIS = '79110000002'
const CLARA = '79110000003'
const DORA = '79110000004'
/** A number the tests mark as not on WhatsApp, and one whose privacy refuses adds. */
const GHOST = '79110000009'
const PRIVATE = '79110000008'
const NO_GROUP = '120363000000000000@g.us'
const EVENT_TIMEOUT_MS = 2_000

const log = pino({ level: 'silent' })
const phoneJid = (phone: string) => `${phone}@s.whatsapp.net`
const lidJid = (phone: string) => `${lidOf(phone)}@lid`
/** A participant as the group lists it: by LID, its phone beside it, its role unless a plain member. */
const member = (phone: string, admin?: 'admin' | 'superadmin') => ({
  jid: lidJid(phone), phone: phoneJid(phone), lid: lidJid(phone), ...(admin ? { admin } : {})
})

/** One open connection per company, as the ownership ledger allows. */
function oneConnectionPerCompany (): LedgerPort {
  const open = new Set<string>()
  return {
    open: async (companyId) => {
      if (open.has(companyId)) return false
      open.add(companyId)
      return true
    },
    close: async (companyId) => { open.delete(companyId) }
  }
}

interface Company {
  companyId: string
  auth: SocketAuth
  socket: TestSocket
  /** The linked number, and its LID JID as groups name it. */
  phone: string
  lid: string
  /** The group events the connection has emitted and the tests have not taken yet. */
  events: GroupEvent[]
  messages: InboundMessage[]
  receipts: Receipt[]
  /** Waits for at least `count` group events, then takes every one emitted so far. */
  take: (count: number) => Promise<GroupEvent[]>
}

async function connect (whatsapp: TestWhatsApp, companyId: string, auth: SocketAuth): Promise<Company> {
  const socket = whatsapp.factory('replica')({ companyId, auth, log }) as TestSocket
  const events: GroupEvent[] = []
  const messages: InboundMessage[] = []
  const receipts: Receipt[] = []
  socket.on('groups', (batch) => events.push(...batch))
  socket.on('messages', (batch) => messages.push(...batch))
  socket.on('receipts', (batch) => receipts.push(...batch))
  if (!await waitFor(() => socket.state === 'open', EVENT_TIMEOUT_MS, 1)) throw new Error(`${companyId} did not open`)
  const phone = socket.phone!
  const take = async (count: number) => {
    const arrived = await waitFor(() => events.length >= count, EVENT_TIMEOUT_MS, 1)
    if (!arrived) throw new Error(`${count} group events expected, ${events.length} came`)
    return events.splice(0)
  }
  return { companyId, auth, socket, phone, lid: lidJid(phone), events, messages, receipts, take }
}

/** A company linked by scanning its QR, then connected as a session reconnects after the 515. */
async function linkCompany (whatsapp: TestWhatsApp, companyId: string): Promise<Company> {
  const auth: SocketAuth = { creds: initAuthCreds(), keys: { get: async () => ({}), set: async () => {} } }
  const linking = whatsapp.factory('replica')({ companyId, auth, log }) as TestSocket
  if (!await waitFor(() => linking.state === 'qr', EVENT_TIMEOUT_MS, 1)) throw new Error(`${companyId} showed no QR`)
  if (!whatsapp.scan(companyId)) throw new Error(`${companyId} could not be scanned`)
  return connect(whatsapp, companyId, auth)
}

/** The code WhatsApp refused with, or what else the call ended with. */
async function refusal (call: () => Promise<unknown>): Promise<number | string> {
  try {
    await call()
    return 'done'
  } catch (err) {
    return err instanceof WhatsAppRefusal ? err.code : String(err)
  }
}

function controlRefusal (call: () => unknown): number | string {
  try {
    call()
    return 'done'
  } catch (err) {
    return err instanceof WhatsAppRefusal ? err.code : String(err)
  }
}

t.test('a company creates a group: a 120363… id, LID addressing, its number superadmin, contacts added or refused apart', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'create')
  whatsapp.groups.setOnWhatsApp(GHOST, false)
  whatsapp.groups.refuseAdds(PRIVATE)

  const asked = [ANNA, BORIS, GHOST, PRIVATE, company.phone].map(phoneJid)
  const group = await company.socket.groups.create('Поставщики', asked)
  t.match(group.id, /^120363\d{12}@g\.us$/, 'a group id of today\'s form')
  t.match(group, {
    subject: 'Поставщики',
    owner: company.lid,
    ownerPhone: phoneJid(company.phone),
    size: 3,
    announce: false,
    restrict: false,
    joinApproval: false,
    memberAddMode: false,
    ephemeralSeconds: 0
  })
  t.equal(group.description, undefined, 'no description yet')
  t.ok(Math.abs(group.creation! - Date.now() / 1000) < 5, 'created now (unix seconds)')
  t.same(group.participants, [member(company.phone, 'superadmin'), member(ANNA), member(BORIS)],
    'the creator first, then the contacts that could be added; the number not on WhatsApp and the private one are not in')
  t.match(lidJid(ANNA), /^\d{15}@lid$/, 'a LID is 15 digits')
  t.equal(lidOf(ANNA), simulatorLidOf(ANNA), 'the same LID the simulator gives the number')

  t.same(await company.take(1), [{ kind: 'joined', group: group.id, author: company.lid, subject: 'Поставщики' }],
    'WhatsApp echoes the creation')
  t.same(await company.socket.groups.metadata(group.id), group, 'metadata answers what creation answered')
  t.same((await company.socket.groups.participating()).map(({ id }) => id), [group.id])
  t.same(await company.socket.onWhatsApp([phoneJid(GHOST), phoneJid(ANNA)]), [
    { jid: phoneJid(GHOST), exists: false }, { jid: phoneJid(ANNA), exists: true }
  ], 'onWhatsApp agrees with the adds about who is on WhatsApp')

  t.equal(await refusal(() => company.socket.groups.create('   ', [phoneJid(ANNA)])), 400, 'a subject is required')
  t.equal(await refusal(() => company.socket.groups.create('я'.repeat(101), [phoneJid(ANNA)])), 406, 'at most 100 characters')
  t.equal(await refusal(() => company.socket.groups.create('я'.repeat(100), [])), 'done', '100 characters are fine')
})

t.test('adds, removals, promotions and demotions are answered per participant (200, 403, 404, 409) and echoed', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'participants')
  const { groups } = company.socket
  const group = (await groups.create('Склад', [phoneJid(ANNA)])).id
  await company.take(1)
  whatsapp.groups.setOnWhatsApp(GHOST, false)
  whatsapp.groups.refuseAdds(PRIVATE)

  const asked = [phoneJid(BORIS), phoneJid(ANNA), phoneJid(GHOST), phoneJid(PRIVATE), '100000000000001@lid']
  const results = await groups.updateParticipants(group, asked, 'add')
  t.same(results.map(({ jid, status }) => ({ jid, status })), [
    { jid: phoneJid(BORIS), status: 200 },
    { jid: phoneJid(ANNA), status: 409 },
    { jid: phoneJid(GHOST), status: 404 },
    { jid: phoneJid(PRIVATE), status: 403 },
    { jid: '100000000000001@lid', status: 404 }
  ], 'added; already in; not on WhatsApp; privacy refuses; a LID that names nobody')
  const threeDays = Date.now() / 1000 + 3 * 24 * 3600
  t.match(results[3].addRequest, { code: /^[\w-]{16}$/ }, 'the privacy refusal comes with an invitation to send instead')
  t.ok(Math.abs(results[3].addRequest!.expiration - threeDays) < 5, 'valid three days')
  t.same(results.filter(({ addRequest }) => addRequest).length, 1, 'and only that one')
  t.same(await company.take(1), [{ kind: 'participants', group, author: company.lid, action: 'add', participants: [member(BORIS)] }],
    'only the participants who changed are told')

  whatsapp.groups.refuseAdds(PRIVATE, false)
  t.same(await groups.updateParticipants(group, [lidJid(PRIVATE)], 'add'), [{ jid: lidJid(PRIVATE), status: 200 }],
    'once its privacy allows it, the number is added, here by its LID')
  whatsapp.groups.setOnWhatsApp(GHOST, true)
  t.same(await groups.updateParticipants(group, [phoneJid(GHOST)], 'add'), [{ jid: phoneJid(GHOST), status: 200 }])
  await company.take(2)

  t.same(await groups.updateParticipants(group, [phoneJid(BORIS), phoneJid(CLARA)], 'remove'), [
    { jid: phoneJid(BORIS), status: 200 }, { jid: phoneJid(CLARA), status: 404 }
  ], 'a number not in the group cannot be removed')
  t.same(await groups.updateParticipants(group, [lidJid(ANNA), phoneJid(BORIS)], 'promote'), [
    { jid: lidJid(ANNA), status: 200 }, { jid: phoneJid(BORIS), status: 404 }
  ])
  t.same(await groups.updateParticipants(group, [phoneJid(company.phone), phoneJid(PRIVATE)], 'demote'), [
    { jid: phoneJid(company.phone), status: 200 }, { jid: phoneJid(PRIVATE), status: 200 }
  ])
  t.same(await company.take(3), [
    { kind: 'participants', group, author: company.lid, action: 'remove', participants: [member(BORIS)] },
    { kind: 'participants', group, author: company.lid, action: 'promote', participants: [member(ANNA, 'admin')] },
    {
      kind: 'participants',
      group,
      author: company.lid,
      action: 'demote',
      participants: [member(company.phone, 'superadmin'), member(PRIVATE)]
    }
  ])
  t.same(whatsapp.groups.get(group)?.participants, [
    { phone: company.phone, role: 'superadmin' }, { phone: ANNA, role: 'admin' },
    { phone: PRIVATE, role: 'member' }, { phone: GHOST, role: 'member' }
  ], 'the creator stays superadmin whoever demotes it; the rest in the order they joined')
})

t.test('a member not an admin is refused admin changes (401); members add once admins allow it; a locked group\'s info is the admins\'',
  async (t) => {
    const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
    const company = await linkCompany(whatsapp, 'roles')
    const { groups } = company.socket
    const { jid: group } = whatsapp.groups.create({ creator: ANNA, subject: 'Соседи', participants: [company.phone, BORIS] })
    await company.take(1)

    const adminOnly: Record<string, () => Promise<unknown>> = {
      add: () => groups.updateParticipants(group, [phoneJid(CLARA)], 'add'),
      remove: () => groups.updateParticipants(group, [phoneJid(BORIS)], 'remove'),
      promote: () => groups.updateParticipants(group, [phoneJid(BORIS)], 'promote'),
      demote: () => groups.updateParticipants(group, [phoneJid(ANNA)], 'demote'),
      announcement: () => groups.setSetting(group, 'announcement'),
      locked: () => groups.setSetting(group, 'locked'),
      memberAddMode: () => groups.setMemberAddMode(group, true),
      joinApproval: () => groups.setJoinApproval(group, true),
      inviteCode: () => groups.inviteCode(group),
      revokeInvite: () => groups.revokeInvite(group),
      joinRequests: () => groups.joinRequests(group),
      decideJoinRequests: () => groups.decideJoinRequests(group, [phoneJid(CLARA)], 'approve')
    }
    for (const [change, call] of Object.entries(adminOnly)) t.equal(await refusal(call), 401, `${change}: admins only`)
    t.equal(company.events.length, 0, 'a refused change changes nothing and tells nothing')

    t.equal(await refusal(() => groups.setSubject(group, 'Соседи по даче')), 'done', 'an unlocked group\'s info is every member\'s')
    t.equal(await refusal(() => groups.setDescription(group, 'Про полив')), 'done')
    t.equal(await refusal(() => groups.setDisappearing(group, 86_400)), 'done')
    t.equal(await refusal(() => groups.setPicture(group, Buffer.from('jpeg'))), 'done')
    await company.take(4)

    whatsapp.groups.change(group, ANNA, 'promote', [company.phone])
    await company.take(1)
    await groups.setMemberAddMode(group, true)
    await groups.setSetting(group, 'locked')
    whatsapp.groups.change(group, ANNA, 'demote', [company.phone])
    await company.take(3)
    t.same(await groups.updateParticipants(group, [phoneJid(CLARA)], 'add'), [{ jid: phoneJid(CLARA), status: 200 }],
      'a plain member adds when members may add')
    t.equal(await refusal(() => groups.updateParticipants(group, [phoneJid(CLARA)], 'remove')), 401, 'but removes nobody')
    for (const [change, call] of Object.entries({
      subject: () => groups.setSubject(group, 'Новое'),
      description: () => groups.setDescription(group, ''),
      disappearing: () => groups.setDisappearing(group, 0),
      picture: () => groups.setPicture(group, Buffer.from('jpeg'))
    })) t.equal(await refusal(call), 401, `${change}: admins only once the group is locked`)
  })

t.test('about a group that does not exist: 404; about one the number is not in: 403', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'refusals')
  const { groups } = company.socket
  const { jid: foreign } = whatsapp.groups.create({ creator: ANNA, subject: 'Чужая', participants: [BORIS] })
  const queries = (group: string): Record<string, () => Promise<unknown>> => ({
    metadata: () => groups.metadata(group),
    add: () => groups.updateParticipants(group, [phoneJid(CLARA)], 'add'),
    remove: () => groups.updateParticipants(group, [phoneJid(BORIS)], 'remove'),
    subject: () => groups.setSubject(group, 'Тема'),
    description: () => groups.setDescription(group, 'Описание'),
    picture: () => groups.setPicture(group, Buffer.from('jpeg')),
    setting: () => groups.setSetting(group, 'announcement'),
    memberAddMode: () => groups.setMemberAddMode(group, true),
    joinApproval: () => groups.setJoinApproval(group, true),
    disappearing: () => groups.setDisappearing(group, 604_800),
    inviteCode: () => groups.inviteCode(group),
    revokeInvite: () => groups.revokeInvite(group),
    joinRequests: () => groups.joinRequests(group),
    decideJoinRequests: () => groups.decideJoinRequests(group, [phoneJid(CLARA)], 'reject'),
    leave: () => groups.leave(group),
    sendText: () => company.socket.sendText(group, 'Здравствуйте')
  })
  for (const [query, call] of Object.entries(queries(NO_GROUP))) t.equal(await refusal(call), 404, `${query}: no such group`)
  for (const [query, call] of Object.entries(queries(foreign))) t.equal(await refusal(call), 403, `${query}: not a participant`)
  t.equal(await refusal(() => groups.inviteInfo('NoSuchCode')), 406, 'an unknown invite code')
  t.equal(await refusal(() => groups.acceptInvite('NoSuchCode')), 406)
  t.same(whatsapp.groups.get(foreign)?.participants, [{ phone: ANNA, role: 'superadmin' }, { phone: BORIS, role: 'member' }], 'unchanged')
})

t.test('subject, description, settings, who adds, join approval, disappearing, picture: applied and echoed as updates', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'updates')
  const { groups } = company.socket
  const group = (await groups.create('Кухня', [phoneJid(ANNA)])).id
  await company.take(1)
  const picture = Buffer.from('a JPEG, as far as the double cares')

  await groups.setSubject(group, 'Кухня и бар')
  await groups.setDescription(group, 'Смены и заказы')
  await groups.setSetting(group, 'announcement')
  await groups.setSetting(group, 'locked')
  await groups.setMemberAddMode(group, true)
  await groups.setJoinApproval(group, true)
  await groups.setDisappearing(group, 604_800)
  await groups.setPicture(group, picture)
  const update = (change: object) => ({ kind: 'update', group, author: company.lid, change })
  t.same(await company.take(8), [
    update({ subject: 'Кухня и бар' }), update({ description: 'Смены и заказы' }), update({ announce: true }), update({ restrict: true }),
    update({ memberAddMode: true }), update({ joinApproval: true }), update({ ephemeralSeconds: 604_800 }), update({ picture: true })
  ])
  t.match(await groups.metadata(group), {
    subject: 'Кухня и бар',
    description: 'Смены и заказы',
    announce: true,
    restrict: true,
    memberAddMode: true,
    joinApproval: true,
    ephemeralSeconds: 604_800
  })
  t.match(whatsapp.groups.get(group), { picture: { size: picture.length, sha256: /^[0-9a-f]{64}$/ } })

  await groups.setDescription(group, '')
  await groups.setSetting(group, 'not_announcement')
  await groups.setSetting(group, 'unlocked')
  await groups.setMemberAddMode(group, false)
  await groups.setJoinApproval(group, false)
  await groups.setDisappearing(group, 0)
  t.same(await company.take(6), [
    update({ description: '' }), update({ announce: false }), update({ restrict: false }), update({ memberAddMode: false }),
    update({ joinApproval: false }), update({ ephemeralSeconds: 0 })
  ], 'an empty description removes it')
  const meta = await groups.metadata(group)
  t.equal(meta.description, undefined)
  t.match(meta, { announce: false, restrict: false, memberAddMode: false, joinApproval: false, ephemeralSeconds: 0 })
  t.equal(await refusal(() => groups.setDisappearing(group, -1)), 400, 'no negative timer')
})

t.test('invite links: the code, info without joining, joining by it or asking the admins, and a revoked code stops working', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const admin = await linkCompany(whatsapp, 'invite-admin')
  const guest = await linkCompany(whatsapp, 'invite-guest')
  const group = (await admin.socket.groups.create('Партнёры', [phoneJid(ANNA)])).id
  await admin.take(1)

  const code = await admin.socket.groups.inviteCode(group)
  t.match(code, /^[A-Za-z0-9]{22}$/)
  t.equal(whatsapp.groups.get(group)?.inviteCode, code)
  t.match(await guest.socket.groups.inviteInfo(code), { id: group, subject: 'Партнёры', size: 2 }, 'the link tells what it opens')
  t.equal(await guest.socket.groups.acceptInvite(code), group, 'joined')
  t.same(await admin.take(1), [{ kind: 'participants', group, author: guest.lid, action: 'add', participants: [member(guest.phone)] }])
  t.same(await guest.take(1), [{ kind: 'joined', group, author: guest.lid }], 'an add names no subject: the metadata tells it')
  t.equal(await guest.socket.groups.acceptInvite(code), group, 'following the link of a group one is in changes nothing')

  const renewed = await admin.socket.groups.revokeInvite(group)
  t.not(renewed, code)
  t.same(await admin.take(1), [{ kind: 'update', group, author: admin.lid, change: { inviteCode: renewed } }])
  t.same(await guest.take(1), [{ kind: 'update', group, author: admin.lid, change: { inviteCode: renewed } }], 'every member is told')
  t.equal(await refusal(() => guest.socket.groups.inviteInfo(code)), 406, 'the old link opens nothing')
  t.equal(await refusal(() => guest.socket.groups.acceptInvite(code)), 406)

  await guest.socket.groups.leave(group)
  await admin.take(1)
  await guest.take(1)
  await admin.socket.groups.setJoinApproval(group, true)
  await admin.take(1)
  t.equal(await guest.socket.groups.acceptInvite(renewed), undefined, 'joining now waits for an admin')
  t.same(whatsapp.groups.requestJoin(group, CLARA), { pending: true })
  t.same(await admin.take(2), [
    { kind: 'participants', group, author: guest.lid, action: 'join_request', participants: [member(guest.phone)] },
    { kind: 'participants', group, author: lidJid(CLARA), action: 'join_request', participants: [member(CLARA)] }
  ], 'the admins are told of each request')
  const requests = await admin.socket.groups.joinRequests(group)
  t.match(requests, [
    { jid: guest.lid, phone: phoneJid(guest.phone), requestedAt: Number },
    { jid: lidJid(CLARA), phone: phoneJid(CLARA), requestedAt: Number }
  ])
  t.equal(await refusal(() => guest.socket.groups.metadata(group)), 403, 'a request is not a membership')

  t.same(await admin.socket.groups.decideJoinRequests(group, [phoneJid(guest.phone)], 'approve'), [
    { jid: phoneJid(guest.phone), status: 200 }
  ])
  t.same(await guest.take(1), [{ kind: 'joined', group, author: admin.lid }])
  t.same(await admin.take(1), [{ kind: 'participants', group, author: admin.lid, action: 'add', participants: [member(guest.phone)] }])
  t.same(await admin.socket.groups.decideJoinRequests(group, [lidJid(CLARA), phoneJid(DORA)], 'reject'), [
    { jid: lidJid(CLARA), status: 200 }, { jid: phoneJid(DORA), status: 404 }
  ], 'a number that asked nothing: 404')
  t.same(whatsapp.groups.get(group)?.requests, [], 'no request waits')
  t.same(whatsapp.groups.get(group)?.participants.map(({ phone }) => phone), [admin.phone, ANNA, guest.phone], 'the rejected one is not in')
})

t.test('leaving: the one who left is told so, and a group left without admins makes its longest-standing member admin', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'leave')
  const other = await linkCompany(whatsapp, 'leave-other')
  const { groups } = company.socket
  const group = (await groups.create('Уходим', [phoneJid(ANNA), phoneJid(other.phone), phoneJid(BORIS)])).id
  await company.take(1)
  await other.take(1)

  await groups.leave(group)
  t.same(await company.take(1), [{ kind: 'left', group, author: company.lid }])
  t.same(await other.take(2), [
    { kind: 'participants', group, author: company.lid, action: 'remove', participants: [member(company.phone)] },
    { kind: 'participants', group, action: 'promote', participants: [member(ANNA, 'admin')] }
  ], 'the oldest member is promoted by WhatsApp itself (no author)')
  t.same(whatsapp.groups.get(group)?.participants, [
    { phone: ANNA, role: 'admin' }, { phone: other.phone, role: 'member' }, { phone: BORIS, role: 'member' }
  ])
  t.equal(await refusal(() => groups.metadata(group)), 403, 'gone from the group')
  t.equal(await refusal(() => groups.leave(group)), 403)
  t.same(await groups.participating(), [])

  await other.socket.groups.leave(group)
  t.same(await other.take(1), [{ kind: 'left', group, author: other.lid }])
  t.same(whatsapp.groups.get(group)?.participants, [{ phone: ANNA, role: 'admin' }, { phone: BORIS, role: 'member' }],
    'with an admin left, nobody is promoted')
})

t.test('a contact\'s group with the company in it: the contact superadmin, admins from the start, each participant answered', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'contact-group')
  whatsapp.groups.setOnWhatsApp(GHOST, false)
  t.equal(whatsapp.phoneOf('contact-group'), company.phone, 'the company\'s number, as groups name it')

  const { jid, outcomes } = whatsapp.groups.create({
    creator: ANNA, subject: 'Родители 5Б', participants: [company.phone, BORIS, GHOST], admins: [BORIS]
  })
  t.match(jid, /^120363\d{12}@g\.us$/)
  t.same(outcomes, [{ jid: company.phone, status: 200 }, { jid: BORIS, status: 200 }, { jid: GHOST, status: 404 }])
  t.same(await company.take(1), [{ kind: 'joined', group: jid, author: lidJid(ANNA), subject: 'Родители 5Б' }])
  t.match(await company.socket.groups.metadata(jid), {
    owner: lidJid(ANNA),
    ownerPhone: phoneJid(ANNA),
    participants: [member(ANNA, 'superadmin'), member(company.phone), member(BORIS, 'admin')]
  })
  t.equal(controlRefusal(() => whatsapp.groups.create({ creator: ANNA, subject: '', participants: [BORIS] })), 400, 'a subject is required')
})

t.test('a participant writes to the group: the company gets it from the group, the writer by LID and phone, mentions by LID', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'inbound')
  const { jid: group } = whatsapp.groups.create({
    creator: ANNA, subject: 'Заказы', participants: [company.phone, BORIS], admins: [company.phone]
  })
  await company.take(1)

  const id = whatsapp.groups.write(group, ANNA, '@компания @Борис, где заказ?', {
    mentions: [company.phone, BORIS], quotedMessageId: '3EB0AAAA', pushName: 'Анна'
  })
  t.ok(await waitFor(() => company.messages.length === 1, EVENT_TIMEOUT_MS, 1))
  t.match(company.messages[0], {
    id,
    from: group,
    participant: lidJid(ANNA),
    participantAlt: phoneJid(ANNA),
    text: '@компания @Борис, где заказ?',
    pushName: 'Анна',
    mentions: [company.lid, lidJid(BORIS)],
    quotedMessageId: '3EB0AAAA',
    timestamp: Number
  })
  t.equal(company.messages[0].fromAlt, undefined, 'the group is the chat; the writer is the participant')

  whatsapp.groups.write(group, BORIS, 'Без упоминаний', { id: 'PLAIN1' })
  t.ok(await waitFor(() => company.messages.length === 2, EVENT_TIMEOUT_MS, 1))
  t.same(company.messages[1].mentions, undefined)
  t.equal(company.messages[1].id, 'PLAIN1')

  t.equal(controlRefusal(() => whatsapp.groups.write(group, CLARA, 'Я не в группе')), 403, 'not a participant')
  t.equal(controlRefusal(() => whatsapp.groups.write(NO_GROUP, ANNA, 'Куда?')), 404)
  await company.socket.groups.setSetting(group, 'announcement')
  t.equal(controlRefusal(() => whatsapp.groups.write(group, BORIS, 'Можно?')), 401, 'only admins write in an announcement group')
  t.equal(controlRefusal(() => whatsapp.groups.write(group, ANNA, 'Можно.')), 'done')
  t.ok(await waitFor(() => company.messages.length === 3, EVENT_TIMEOUT_MS, 1))
})

t.test('participants change the company\'s membership: added it joins, promoted it is told, removed it has left', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'membership')
  const { jid: group } = whatsapp.groups.create({ creator: ANNA, subject: 'Склад', participants: [BORIS] })

  t.same(whatsapp.groups.change(group, ANNA, 'add', [company.phone, BORIS, DORA]), [
    { jid: company.phone, status: 200 }, { jid: BORIS, status: 409 }, { jid: DORA, status: 200 }
  ])
  t.same(await company.take(2), [
    { kind: 'joined', group, author: lidJid(ANNA) },
    { kind: 'participants', group, author: lidJid(ANNA), action: 'add', participants: [member(DORA)] }
  ], 'the company joined, and is told of the others added with it')
  t.same(whatsapp.groups.change(group, ANNA, 'promote', [company.phone]), [{ jid: company.phone, status: 200 }])
  t.same(await company.take(1), [
    { kind: 'participants', group, author: lidJid(ANNA), action: 'promote', participants: [member(company.phone, 'admin')] }
  ])
  whatsapp.groups.rename(group, ANNA, 'Склад №2')
  t.same(await company.take(1), [{ kind: 'update', group, author: lidJid(ANNA), change: { subject: 'Склад №2' } }])
  t.same(whatsapp.groups.requestJoin(group, CLARA), { pending: false }, 'without approval, the link lets one in')
  t.same(await company.take(1), [{ kind: 'participants', group, author: lidJid(CLARA), action: 'add', participants: [member(CLARA)] }])
  t.equal(controlRefusal(() => whatsapp.groups.change(group, BORIS, 'remove', [ANNA])), 401, 'a plain member removes nobody')
  whatsapp.groups.leave(group, BORIS)
  t.same(await company.take(1), [{ kind: 'participants', group, author: lidJid(BORIS), action: 'remove', participants: [member(BORIS)] }])

  t.same(whatsapp.groups.change(group, ANNA, 'remove', [DORA, company.phone]), [
    { jid: DORA, status: 200 }, { jid: company.phone, status: 200 }
  ])
  t.same(await company.take(2), [
    { kind: 'left', group, author: lidJid(ANNA) },
    { kind: 'participants', group, author: lidJid(ANNA), action: 'remove', participants: [member(DORA)] }
  ])
  t.equal(await refusal(() => company.socket.groups.metadata(group)), 403)
})

t.test('sends to a group are recorded with their mentions, and refused (403) where the number may not write', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'sends')
  const { socket } = company
  const { jid: group } = whatsapp.groups.create({
    creator: ANNA, subject: 'Рассылка', participants: [company.phone, BORIS], admins: [company.phone]
  })
  await company.take(1)

  const text = await socket.sendText(group, '@Анна, счёт готов', { mentions: [lidJid(ANNA)], quoted: { id: 'IN1', fromMe: false } })
  const file = { kind: 'image' as const, stream: Readable.from([Buffer.from('png')]), mimetype: 'image/png', caption: '@Борис' }
  const media = await socket.sendMedia(group, file, { mentions: [lidJid(BORIS)] })
  const location = await socket.sendContent(group, { location: { latitude: 55.75, longitude: 37.62 } })
  const sent = whatsapp.sentTo('sends', group)
  t.match(sent, [
    { to: group, text: '@Анна, счёт готов', mentions: [lidJid(ANNA)], quoted: 'IN1', messageId: text.messageId },
    { to: group, media: { kind: 'image', caption: '@Борис', size: 3 }, mentions: [lidJid(BORIS)], messageId: media.messageId },
    { to: group, content: { location: { latitude: 55.75 } }, messageId: location.messageId }
  ])
  t.notOk('mentions' in sent[2], 'a send that mentions nobody records no mentions')
  t.ok(await waitFor(() => company.receipts.some((receipt) => receipt.id === text.messageId && receipt.to === group), EVENT_TIMEOUT_MS, 1),
    'a text is delivered as before')

  await socket.groups.setSetting(group, 'announcement')
  whatsapp.groups.change(group, ANNA, 'demote', [company.phone])
  t.equal(await refusal(() => socket.sendText(group, 'Можно?')), 403, 'an announcement group takes only admins\' messages')
  const refusedFile = { kind: 'image' as const, stream: Readable.from([Buffer.from('png')]), mimetype: 'image/png' }
  t.equal(await refusal(() => socket.sendMedia(group, refusedFile)), 403)
  t.equal(await refusal(() => socket.sendContent(group, { location: { latitude: 1, longitude: 2 } })), 403)
  t.equal(await refusal(() => socket.react(group, { id: 'IN1', fromMe: false }, '👍')), 403)
  whatsapp.groups.change(group, ANNA, 'promote', [company.phone])
  t.equal(await refusal(() => socket.sendText(group, 'Теперь можно')), 'done', 'an admin writes')
  whatsapp.groups.change(group, ANNA, 'remove', [company.phone])
  t.equal(await refusal(() => socket.sendText(group, 'А теперь?')), 403, 'a number removed from the group writes there no more')
  t.equal(await refusal(() => socket.sendText(NO_GROUP, 'Куда?')), 404)
  t.same(whatsapp.sentTo('sends', group).map((item) => item.text ?? item.media?.kind ?? 'location'),
    ['@Анна, счёт готов', 'image', 'location', 'Теперь можно'], 'refused sends are not recorded')

  t.equal(await refusal(() => socket.sendText(phoneJid(CLARA), 'Лично')), 'done', 'a person\'s chat is not a group')
  t.same(whatsapp.sentTo('sends', phoneJid(CLARA)).map((item) => item.text), ['Лично'])
})

t.test('groups reach only the open connections of their members, outlive a connection, and a closed one queries nothing', async (t) => {
  const whatsapp = new TestWhatsApp(oneConnectionPerCompany())
  const company = await linkCompany(whatsapp, 'reach')
  const bystander = await linkCompany(whatsapp, 'reach-bystander')
  const group = (await company.socket.groups.create('Только свои', [phoneJid(ANNA)])).id
  // Both connections' events are scheduled at once: once the member has its own, the bystander would have had one too.
  await company.take(1)
  t.same(bystander.events, [], 'a company not in the group hears nothing of it')

  await company.socket.end()
  whatsapp.groups.rename(group, ANNA, 'Пока вас не было')
  const closed = await company.socket.groups.metadata(group)
    .then(() => undefined, (err: Error & { output?: { statusCode: number } }) => err)
  t.equal(closed?.output?.statusCode, 428, 'a closed connection\'s group query fails as its writes do')
  t.equal(whatsapp.phoneOf('reach'), company.phone, 'the number is remembered while no connection is open')

  const reconnected = await connect(whatsapp, 'reach', company.auth)
  t.match(await reconnected.socket.groups.metadata(group), {
    subject: 'Пока вас не было', participants: [member(company.phone, 'superadmin'), member(ANNA)]
  },
  'WhatsApp keeps the groups; the next connection finds them')
})
