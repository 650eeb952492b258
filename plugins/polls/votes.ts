import type { FastifyInstance } from 'fastify'
import { userOfJid, type PollVoteEventData } from '../../contracts/index.ts'
import { pollOptionHash } from '../../core/poll-vote.ts'
import type { InboundPollVote, WaSocket } from '../session-pool/index.ts'
import type { PollStore, StoredPoll } from './store.ts'

/** What became of a vote: counted (with its event), not newer than the one counted, waiting for its poll, or unreadable. */
export type VoteResult =
  | { kind: 'counted', event: PollVoteEventData }
  | { kind: 'superseded' }
  | { kind: 'waiting' }
  | { kind: 'unreadable' }

/**
 * Opens a vote with its poll's secret and records it as the voter's latest. A vote for a poll not
 * stored yet waits for it (PollStore.wait); one that opens under no name of the voter or the number
 * is reported, not guessed at.
 */
export async function takeVote (
  app: FastifyInstance, store: PollStore, socket: WaSocket, companyId: string, vote: InboundPollVote, waited = false
): Promise<VoteResult> {
  let poll = await store.find(companyId, vote.pollMessageId)
  if (!poll) {
    await store.wait(companyId, vote.id, vote.pollMessageId, serializeVote(vote))
    // The poll may have been stored, and its waiting votes taken, while this one was being kept: then it is counted here.
    poll = await store.find(companyId, vote.pollMessageId)
    if (!poll) return { kind: 'waiting' }
    waited = true
  }
  const result = await countVote(app, store, socket, companyId, poll, vote)
  if (waited) await store.forgetWaiting(companyId, vote.id)
  return result
}

async function countVote (
  app: FastifyInstance, store: PollStore, socket: WaSocket, companyId: string, poll: StoredPoll, vote: InboundPollVote
): Promise<VoteResult> {
  const voter = await voterOf(app, socket, companyId, vote)
  // The voter's other name, as far as anyone here knows it: the vote may be sealed for either.
  const otherName = vote.voter.endsWith('@lid') ? voter.phone && `${voter.phone}@s.whatsapp.net` : voter.lid
  const hashes = await socket.polls.openVote({ ...vote, voterAlt: vote.voterAlt ?? otherName ?? undefined }, poll.secret)
  if (!hashes) return { kind: 'unreadable' }
  const selected = selectedIndexes(poll, hashes)
  // Options the poll does not have (a doctored vote) are no withdrawal: such a vote is not counted at all.
  if (hashes.length > 0 && selected.length === 0) return { kind: 'unreadable' }
  const outcome = await store.recordVote(companyId, poll.messageId, {
    ...voter, selected, votedAtMs: vote.timestampMs, voteMessageId: vote.id
  })
  if (!outcome.changed) return { kind: 'superseded' }
  const names = (indexes: number[]) => indexes.map((index) => poll.options[index]!)
  return {
    kind: 'counted',
    event: {
      pollMessageId: poll.messageId,
      voteMessageId: vote.id,
      ...voter,
      groupId: poll.chat.endsWith('@g.us') ? poll.chat : null,
      selectedOptions: names(selected),
      previousOptions: outcome.previous ? names(outcome.previous) : null,
      votedAt: new Date(vote.timestampMs).toISOString()
    }
  }
}

/** The options a vote names by their hashes (a hash of no option names nothing). */
function selectedIndexes (poll: StoredPoll, hashes: Buffer[]): number[] {
  const wanted = new Set(hashes.map((hash) => hash.toString('hex')))
  return poll.options.flatMap((option, index) => wanted.has(pollOptionHash(option).toString('hex')) ? [index] : [])
}

/** The voter by both names, as far as the vote, the history's contacts and the connection know them. */
async function voterOf (app: FastifyInstance, socket: WaSocket, companyId: string, vote: InboundPollVote) {
  const names = [vote.voter, vote.voterAlt].filter((jid): jid is string => !!jid)
  const phoneJid = names.find((jid) => jid.endsWith('@s.whatsapp.net'))
  const lid = names.find((jid) => jid.endsWith('@lid')) ?? null
  let phone = phoneJid ? userOfJid(phoneJid) : null
  if (!phone && lid) {
    const known = await app.conversations.phoneOfLid(companyId, lid) ?? await socket.phoneOfLid(lid)
    phone = known ? userOfJid(known) : null
  }
  return { phone, lid: lid ?? (phone ? await app.conversations.lidOfPhone(companyId, phone) ?? null : null) }
}

/** A vote as the waiting table keeps it (its bytes in base64). */
export function serializeVote (vote: InboundPollVote): Record<string, unknown> {
  return {
    ...vote,
    ...(vote.sealed
      ? { sealed: { encPayload: vote.sealed.encPayload.toString('base64'), encIv: vote.sealed.encIv.toString('base64') } }
      : {}),
    ...(vote.selectedHashes ? { selectedHashes: vote.selectedHashes.map((hash) => hash.toString('base64')) } : {})
  }
}

export function deserializeVote (stored: Record<string, unknown>): InboundPollVote {
  const sealed = stored.sealed as { encPayload: string, encIv: string } | undefined
  const hashes = stored.selectedHashes as string[] | undefined
  return {
    ...(stored as unknown as InboundPollVote),
    ...(sealed ? { sealed: { encPayload: Buffer.from(sealed.encPayload, 'base64'), encIv: Buffer.from(sealed.encIv, 'base64') } } : {}),
    ...(hashes ? { selectedHashes: hashes.map((hash) => Buffer.from(hash, 'base64')) } : {})
  }
}
