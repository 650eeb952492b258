import t from 'tap'
import type { EventEnvelope, PollTally } from '../contracts/index.ts'
import { COMPANY_PHONE, CONTACT, linkedGateway } from './helpers/linked-gateway.ts'
import { recordEvents, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { startSimulator, TEST_WA_VERSION } from './helpers/simulator.ts'
import { uniqueName } from './helpers/services.ts'
import { waitFor } from './helpers/wait.ts'

const LID_WRITER = '79111230177'
const OPTIONS = ['10:00', '12:00', '15:00', '18:00']
const VOTERS = Array.from({ length: 100 }, (_, index) => String(79_150_000_000 + index))

const optionVotes = (poll: PollTally) => poll.options.map((option) => option.votes)

t.test('a poll to a contact with real Baileys: votes from the phone, sealed for the LID (Baileys #2158) and from a LID chat', async (t) => {
  const { simulator, replica, companyId, events } = await linkedGateway(t)
  const api = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
    replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${url}`, ...(payload ? { payload } : {}) })
  // The contact writing from its LID has a chat the device knows by LID only.
  await simulator.deliver({ from: LID_WRITER, to: COMPANY_PHONE, text: 'Здравствуйте', byLid: true })
  t.ok(await events.waitFor('message'), 'the LID contact wrote')
  const lid = `${simulator.account(LID_WRITER).lid}@lid`

  const toContact = await api('POST', '/polls', { phone: CONTACT, question: 'Когда вам удобно?', options: OPTIONS.slice(0, 3) })
  t.equal(toContact.statusCode, 200, 'sent to the contact')
  const pollId = toContact.json().messageId
  const toLid = await api('POST', '/polls', {
    phone: lid, question: 'Какая услуга?', options: ['стрижка', 'окрашивание'], multipleAnswers: true
  })
  t.equal(toLid.statusCode, 200, 'sent to the LID chat')
  const lidPollId = toLid.json().messageId
  const receivedBy = (phone: string, id: string) => simulator.received(phone).some((message) => message.id === id)
  t.ok(await waitFor(() => receivedBy(CONTACT, pollId), 10_000), 'the contact\'s phone got the poll')
  t.match(simulator.received(CONTACT).find((message) => message.id === pollId), {
    kind: 'poll', poll: { question: 'Когда вам удобно?', options: OPTIONS.slice(0, 3), selectableCount: 1, secret: /^[0-9a-f]{64}$/ }
  }, 'decrypted, with its secret, as a single choice')
  t.ok(await waitFor(() => receivedBy(LID_WRITER, lidPollId), 10_000))

  await simulator.polls.vote({ from: CONTACT, to: COMPANY_PHONE, pollMessageId: pollId, options: ['10:00'] })
  t.ok(await events.waitFor('poll_vote'), 'a vote from the phone chat')
  // A real phone seals with its LID even in a phone chat: the gateway tries the voter's other name.
  await simulator.polls.vote({ from: CONTACT, to: COMPANY_PHONE, pollMessageId: pollId, options: ['15:00'], sealedAs: 'lid' })
  t.ok(await events.waitFor('poll_vote', 2), 'the changed vote, sealed for the LID, opened')
  await simulator.polls.vote({
    from: LID_WRITER, to: COMPANY_PHONE, pollMessageId: lidPollId, options: ['стрижка', 'окрашивание'], byLid: true
  })
  t.ok(await events.waitFor('poll_vote', 3), 'a vote from the LID chat')

  const votes = events.events.filter((event) => event.type === 'poll_vote').map((event) => event.data as Record<string, unknown>)
  t.match(votes[0], { pollMessageId: pollId, phone: CONTACT, selectedOptions: ['10:00'], previousOptions: null, groupId: null })
  t.match(votes[1], { pollMessageId: pollId, phone: CONTACT, selectedOptions: ['15:00'], previousOptions: ['10:00'] })
  t.match(votes[2], { pollMessageId: lidPollId, lid, selectedOptions: ['стрижка', 'окрашивание'] })
  const tally = (await api('GET', `/messages/${pollId}/poll`)).json().poll as PollTally
  t.same(optionVotes(tally), [0, 0, 1], 'one voter, by their latest vote')
  t.match(tally.options[2]?.voters, [{ phone: CONTACT }])
  t.same(optionVotes((await api('GET', `/messages/${lidPollId}/poll`)).json().poll), [1, 1], 'both services picked')
  const history = (await api('GET', `/messages/${pollId}`)).json()
  t.match(history, { message: { kind: 'poll', text: 'Когда вам удобно?', poll: { options: OPTIONS.slice(0, 3), multipleAnswers: false } } })
  const messageIds = events.events.filter((event) => event.type === 'message')
    .map((event) => (event.data as { messageId?: string }).messageId)
  t.notOk(messageIds.includes(votes[0]?.voteMessageId as string), 'a vote is no message')
})

t.test('100 voters of a group poll, half known only by LID, some changing their vote before, during and after a replica handoff: ' +
  'every final vote counted exactly once', async (t) => {
  const { simulator, url } = await startSimulator(t)
  const settings = await sessionCluster(t)
  const baileys = {
    waTransport: 'baileys' as const, waWsUrl: url, waVersion: TEST_WA_VERSION, waCertPublicKey: simulator.identity.publicKeyHex
  }
  const companyId = uniqueName('salon')
  const events = await recordEvents(t, settings, companyId)
  const first = await startSessionReplica(t, settings, baileys)
  const init = await first.app.inject({ method: 'POST', url: `/api/whatsapp/sessions/${companyId}/initialize` })
  simulator.scan(init.json().qr, COMPANY_PHONE)
  t.ok(await events.waitFor('connected', 1, 15_000), 'linked')
  const api = (replica: typeof first, method: 'GET' | 'POST', path: string, payload?: Record<string, unknown>) =>
    replica.app.inject({ method, url: `/api/whatsapp/sessions/${companyId}${path}`, ...(payload ? { payload } : {}) })

  const created = await api(first, 'POST', '/groups', { subject: 'Клиенты салона', participants: VOTERS })
  t.equal(created.statusCode, 200, 'a group of 100 and the company')
  const groupId = created.json().group.id as string
  const sent = await api(first, 'POST', '/polls', { phone: groupId, question: 'Когда вам удобно прийти?', options: OPTIONS })
  t.equal(sent.statusCode, 200, 'the poll went to the group')
  const pollId = sent.json().messageId as string
  const decrypted = (phone: string) => simulator.groups.received(groupId, phone).some((message) => message.id === pollId)
  t.ok(await waitFor(() => VOTERS.every(decrypted), 20_000), 'every participant decrypted the poll')

  const finalVote = new Map<string, string>()
  const vote = async (index: number, option: string) => {
    const phone = VOTERS[index]!
    // Half the voters WhatsApp names only by their LID.
    await simulator.polls.voteInGroup({
      group: groupId, from: phone, pollMessageId: pollId, options: [option], withoutPhone: index % 2 === 0
    })
    finalVote.set(phone, option)
  }
  const tallyOn = async (replica: typeof first) => (await api(replica, 'GET', `/messages/${pollId}/poll`)).json().poll as PollTally

  // Before the handoff: 60 vote, 20 of them change their mind.
  for (let index = 0; index < 60; index++) await vote(index, OPTIONS[index % 4]!)
  for (let index = 0; index < 20; index++) await vote(index, OPTIONS[(index + 1) % 4]!)
  t.ok(await waitFor(async () => (await tallyOn(first)).voters === 60, 20_000), '60 voters counted on the first replica')

  // The handoff: the first replica stops; while nobody holds the company, votes wait at WhatsApp for the device.
  await first.close()
  for (let index = 60; index < 80; index++) await vote(index, OPTIONS[index % 4]!)
  for (let index = 20; index < 30; index++) await vote(index, OPTIONS[(index + 2) % 4]!)
  const second = await startSessionReplica(t, settings, baileys)
  t.ok(await events.waitFor('connected', 2, 20_000), 'the second replica resumed the company without a QR')
  // After it: the last 20 vote, and 10 change their mind once more.
  for (let index = 80; index < 100; index++) await vote(index, OPTIONS[index % 4]!)
  for (let index = 0; index < 10; index++) await vote(index, OPTIONS[(index + 3) % 4]!)

  const expected = OPTIONS.map((option) => [...finalVote.values()].filter((chosen) => chosen === option).length)
  t.ok(await waitFor(async () => JSON.stringify(optionVotes(await tallyOn(second))) === JSON.stringify(expected), 30_000),
    `the tally is every final vote: ${JSON.stringify(expected)}`)
  const tally = await tallyOn(second)
  t.same(optionVotes(tally), expected)
  t.equal(tally.voters, 100, '100 voters')
  t.equal(tally.options.reduce((sum, option) => sum + option.voters.length, 0), 100, 'each listed once')
  const listed = tally.options.flatMap((option) => option.voters.map((voter) => voter.lid ?? voter.phone))
  t.equal(new Set(listed).size, 100, 'no voter twice under two names')
  const rows = await second.app.orm.em.fork().execute<{ n: string }[]>(
    'select count(*) as n from whatsapp_poll_votes where company_id = ? and poll_message_id = ?', [companyId, pollId], 'all')
  t.equal(Number(rows[0]?.n), 100, 'one row per voter')
  const pollVotes = events.events.filter((event: EventEnvelope) => event.type === 'poll_vote')
  t.ok(pollVotes.length >= 100, `${pollVotes.length} poll_vote events`)
  t.ok(pollVotes.every((event) => (event.data as { groupId: string }).groupId === groupId), 'each names the group')
  t.equal(simulator.log.filter((entry) => entry.kind === 'replaced').length, 0, 'never two connections at once')
})
