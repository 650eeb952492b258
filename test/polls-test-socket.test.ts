import t from 'tap'
import { connect } from '@nats-io/transport-node'
import { decryptPollVote } from '@whiskeysockets/baileys'
import { createGatewayClient, type EventEnvelope, type PollTally } from '../contracts/index.ts'
import { openPollVote, pollOptionHash, sealPollVote } from '../core/poll-vote.ts'
import { parseSealingKeys, Sealer } from '../core/sealing.ts'
import { resealPollSecrets } from '../plugins/polls/index.ts'
import { PollStore } from '../plugins/polls/store.ts'
import { TEST_SEALING_KEYS } from './helpers/build.ts'
import { linkCompany, sessionCluster, startSessionReplica } from './helpers/sessions.ts'
import { waitFor } from './helpers/wait.ts'

const VOTER = '79005550001'
const LID_VOTER = '79005550002'
const LID = '140000000000002@lid'

t.test('a vote sealed as a voter\'s phone does opens with Baileys\' decryptPollVote, and only for the same parties', async (t) => {
  const parties = {
    secret: Buffer.alloc(32, 7), pollMessageId: '3EB0AAAA', creatorJid: '79001230101@s.whatsapp.net', voterJid: '140000000000002@lid'
  }
  const sealed = sealPollVote(['10:00', '12:00'], parties)
  const opened = decryptPollVote(sealed, {
    pollEncKey: parties.secret, pollCreatorJid: parties.creatorJid, pollMsgId: parties.pollMessageId, voterJid: parties.voterJid
  })
  t.same(opened.selectedOptions?.map((hash) => Buffer.from(hash).toString('hex')),
    ['10:00', '12:00'].map((option) => pollOptionHash(option).toString('hex')), 'Baileys reads the options')
  const hex = (hashes: Uint8Array[] | null | undefined) => hashes?.map((hash) => Buffer.from(hash).toString('hex'))
  t.same(hex(openPollVote(sealed, parties)), hex(opened.selectedOptions), 'and so does ours')
  t.throws(() => openPollVote(sealed, { ...parties, voterJid: '79005550002@s.whatsapp.net' }), 'not under the voter\'s other name')
  t.throws(() => decryptPollVote(sealed, {
    pollEncKey: Buffer.alloc(32, 8), pollCreatorJid: parties.creatorJid, pollMsgId: parties.pollMessageId, voterJid: parties.voterJid
  }), 'nor with another poll\'s secret')
  t.same(openPollVote(sealPollVote([], parties), parties), [], 'an empty vote withdraws')
})

t.test('polls on the test double: votes by phone and by LID, a change, a withdrawal, the tally on HTTP and NATS, bad input', async (t) => {
  const settings = await sessionCluster(t)
  const replica = await startSessionReplica(t, settings)
  const companyId = `salon-${Date.now().toString(36)}`
  const events = await linkCompany(replica, companyId, settings, t)
  const whatsapp = replica.app.testWhatsApp!

  const bad = async (payload: Record<string, unknown>) => (await replica.app.inject({
    method: 'POST', url: `/api/whatsapp/sessions/${companyId}/polls`, payload
  }))
  for (const [payload, why] of [
    [{ phone: VOTER, question: 'When?', options: ['10:00'] }, 'one option'],
    [{ phone: VOTER, question: 'When?', options: Array.from({ length: 13 }, (_, i) => `${i}:00`) }, 'thirteen options'],
    [{ phone: VOTER, question: 'When?', options: ['10:00', '10:00'] }, 'the same option twice'],
    [{ phone: VOTER, question: '', options: ['a', 'b'] }, 'no question'],
    [{ phone: 'not a phone', question: 'When?', options: ['a', 'b'] }, 'a bad phone'],
    [{ phone: VOTER, question: 'When?', options: ['a', 'b'], extra: 1 }, 'an unknown field']
  ] as const) {
    const reply = await bad(payload)
    t.equal(reply.statusCode, 400, `refused: ${why}`)
    t.match(reply.json(), { success: false, error: { code: /VALIDATION_ERROR|INVALID_PHONE/ } })
  }

  const sent = await replica.app.inject({
    method: 'POST',
    url: `/api/whatsapp/sessions/${companyId}/polls`,
    payload: { phone: `+${VOTER}`, question: 'Which time suits you?', options: ['10:00', '12:00', '15:00'] }
  })
  t.equal(sent.statusCode, 200, sent.body)
  const { messageId } = sent.json()
  t.match(sent.json(), { success: true, phone: VOTER, question: 'Which time suits you?', options: ['10:00', '12:00', '15:00'] })
  t.match(whatsapp.sentTo(companyId, `${VOTER}@s.whatsapp.net`).at(-1), { poll: { question: 'Which time suits you?', selectableCount: 1 } })
  t.ok(await events.waitFor('message_sent'), 'message_sent')
  t.match(events.events.find((event) => event.type === 'message_sent')?.data, {
    kind: 'poll', text: 'Which time suits you?', poll: { options: ['10:00', '12:00', '15:00'], multipleAnswers: false }
  })

  const start = Date.now()
  whatsapp.polls.vote(messageId, { phone: VOTER, options: ['10:00'], timestampMs: start })
  whatsapp.polls.vote(messageId, { phone: LID_VOTER, lid: LID, options: ['12:00'], timestampMs: start + 1 })
  t.ok(await events.waitFor('poll_vote', 2), 'two poll_vote events')
  // The voter changes their mind; a replay of the first vote, arriving late, changes nothing.
  whatsapp.polls.vote(messageId, { phone: VOTER, options: ['15:00'], timestampMs: start + 10 })
  t.ok(await events.waitFor('poll_vote', 3))
  whatsapp.polls.vote(messageId, { phone: VOTER, options: ['12:00'], timestampMs: start + 5 })
  const votes = () => events.events.filter((event) => event.type === 'poll_vote') as EventEnvelope[]
  t.match(votes()[0]?.data, { pollMessageId: messageId, phone: VOTER, selectedOptions: ['10:00'], previousOptions: null })
  t.match(votes()[1]?.data, { phone: null, lid: LID, selectedOptions: ['12:00'] })
  t.match(votes()[2]?.data, { phone: VOTER, selectedOptions: ['15:00'], previousOptions: ['10:00'] })

  const tally = async () => (await replica.app.inject({ url: `/api/whatsapp/sessions/${companyId}/messages/${messageId}/poll` })).json()
  t.ok(await waitFor(async () => (await tally()).poll.voters === 2, 5_000), 'two voters')
  t.equal(votes().length, 3, 'the stale replay was no event')
  const counted = (await tally()).poll
  const votesOf = (poll: { options: { name: string, votes: number }[] }) => poll.options.map((option) => [option.name, option.votes])
  t.same(votesOf(counted), [['10:00', 0], ['12:00', 1], ['15:00', 1]])
  t.match(counted, { phone: VOTER, groupId: null, question: 'Which time suits you?', multipleAnswers: false })
  t.match(counted.options[1].voters, [{ phone: null, lid: LID }])

  // Withdrawn: the voter is no longer counted.
  whatsapp.polls.vote(messageId, { phone: LID_VOTER, lid: LID, options: [], timestampMs: start + 20 })
  t.ok(await waitFor(async () => (await tally()).poll.voters === 1, 5_000), 'a withdrawn vote counts no more')
  // A vote naming options the poll does not have is not counted (nor taken for a withdrawal); the next real one is.
  t.ok(await events.waitFor('poll_vote', 4), 'the withdrawal was an event')
  const before = votes().length
  whatsapp.polls.vote(messageId, { phone: VOTER, options: ['23:00'], timestampMs: start + 30 })
  whatsapp.polls.vote(messageId, { phone: VOTER, options: ['10:00'], timestampMs: start + 31 })
  t.ok(await events.waitFor('poll_vote', before + 1), 'the real vote')
  t.match(votes().at(-1)?.data, { selectedOptions: ['10:00'], previousOptions: ['15:00'] }, 'replacing the last counted one')
  t.equal(votes().length, before + 1, 'the doctored vote was no event')

  const nc = await connect({ servers: settings.natsUrl })
  t.teardown(() => nc.close())
  const client = createGatewayClient(nc, { namespace: settings.natsNamespace })
  const viaNats = await client.pollTally(companyId, messageId)
  t.same(viaNats.poll.options.map((option) => option.votes), [1, 0, 0], 'the tally over NATS')
  await t.rejects(client.pollTally(companyId, 'NOPE'), { code: 'NOT_FOUND' })
  const multi = await client.sendPoll(companyId, {
    phone: VOTER, question: 'Which services?', options: ['cut', 'colour', 'nails'], multipleAnswers: true
  })
  whatsapp.polls.vote(multi.messageId, { phone: VOTER, options: ['cut', 'nails'] })
  t.ok(await waitFor(async () => (await client.pollTally(companyId, multi.messageId)).poll.voters === 1, 5_000))
  t.match((await client.pollTally(companyId, multi.messageId)).poll, {
    multipleAnswers: true, options: [{ name: 'cut', votes: 1 }, { name: 'colour', votes: 0 }, { name: 'nails', votes: 1 }]
  })
  const listed = await client.listPolls(companyId)
  t.same(listed.polls.map((poll) => poll.messageId), [multi.messageId, messageId], 'the latest polls, newest first')
  t.equal(listed.polls[0]?.voters, 1, 'each with its tally')
  const firstOnly = await replica.app.inject({ url: `/api/whatsapp/sessions/${companyId}/polls?limit=1` })
  t.same(firstOnly.json().polls.map((poll: PollTally) => poll.messageId), [multi.messageId], 'over HTTP, limited')
  t.equal((await replica.app.inject({ url: `/api/whatsapp/sessions/${companyId}/polls?limit=0` })).statusCode, 400)
  const missing = await replica.app.inject({ url: `/api/whatsapp/sessions/${companyId}/messages/NOPE/poll` })
  t.equal(missing.statusCode, 404)

  // rotate-keys: the secrets are sealed under the new first key and still open to the same poll.
  const stored = () => replica.app.orm.em.fork().execute<{ secret: { k: string } }[]>(
    'select secret from whatsapp_polls where company_id = ?', [companyId], 'all')
  t.ok((await stored()).every((row) => row.secret.k === TEST_SEALING_KEYS[0]!.id), 'sealed under the current key')
  const rotated = new Sealer([...parseSealingKeys(`new:${Buffer.alloc(32, 9).toString('base64')}`)!, ...TEST_SEALING_KEYS])
  const secretBefore = (await new PollStore(() => replica.app.orm.em.fork(), replica.app.sealer).find(companyId, messageId))!.secret
  t.ok(await resealPollSecrets(() => replica.app.orm.em.fork(), rotated) >= 2, 'both polls resealed')
  t.ok((await stored()).every((row) => row.secret.k === 'new'), 'under the new key')
  const secretAfter = (await new PollStore(() => replica.app.orm.em.fork(), rotated).find(companyId, messageId))!.secret
  t.same(secretAfter, secretBefore, 'the same secret')
})
