import { randomBytes } from 'node:crypto'
import { openPollVote, sealPollVote } from '../../core/poll-vote.ts'
import type { InboundPollVote, OutboundPoll, PollPort } from './polls-port.ts'
import type { TestArea } from './test-area.ts'
import type { TestSocket } from './test-socket.ts'

const POLL_SECRET_BYTES = 32

interface KnownPoll extends OutboundPoll {
  companyId: string
  chat: string
  secret: Buffer
  /** The company's number, as the poll's creator: votes are sealed for it. */
  creatorJid: string
}

/** A contact's vote, as a test casts it. */
export interface TestVote {
  /** The voter's phone (E.164 digits). */
  phone: string
  /** The options' texts; none withdraws the vote. */
  options: string[]
  /** The voter is known only by this LID (`<digits>@lid`): the vote is sealed for it and names no phone. */
  lid?: string
  /** Unix milliseconds the voter's device stamps (now by default): a later one replaces an earlier. */
  timestampMs?: number
}

/** The test double's polls: what companies sent, and contacts voting on them as WhatsApp delivers votes. */
export class TestPolls {
  readonly #polls = new Map<string, KnownPoll>()
  readonly #socketOf: (companyId: string) => TestSocket | undefined

  constructor (socketOf: (companyId: string) => TestSocket | undefined) {
    this.#socketOf = socketOf
  }

  remember (messageId: string, poll: KnownPoll): void {
    this.#polls.set(messageId, poll)
  }

  /** A contact votes on a poll: the company's open connection gets the vote, sealed; its id. */
  vote (pollMessageId: string, vote: TestVote): string {
    const poll = this.#polls.get(pollMessageId)
    if (!poll) throw new Error(`no poll ${pollMessageId} was sent`)
    const phoneJid = `${vote.phone}@s.whatsapp.net`
    const voter = vote.lid ?? phoneJid
    const sealed = sealPollVote(vote.options, { secret: poll.secret, pollMessageId, creatorJid: poll.creatorJid, voterJid: voter })
    const id = `VOTE${randomBytes(8).toString('hex').toUpperCase()}`
    const group = poll.chat.endsWith('@g.us')
    const inbound: InboundPollVote = {
      id,
      pollMessageId,
      chat: group ? poll.chat : voter,
      voter,
      timestampMs: vote.timestampMs ?? Date.now(),
      sealed
    }
    const socket = this.#socketOf(poll.companyId)
    if (!socket) throw new Error(`company ${poll.companyId} has no open connection`)
    socket.emitLater('pollVotes', [inbound])
    return id
  }
}

export function testPollPort (area: TestArea): PollPort {
  return {
    send: async (jid, poll, options = {}) => {
      await area.writable(jid)
      const phone = area.phone()!
      const messageId = options.messageId ?? `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
      const secret = randomBytes(POLL_SECRET_BYTES)
      area.record({ to: jid, poll, messageId, at: performance.now() })
      const creatorJid = `${phone}@s.whatsapp.net`
      area.whatsapp.polls.remember(messageId, { ...poll, companyId: area.companyId, chat: jid, secret, creatorJid })
      return { messageId, timestamp: Math.floor(Date.now() / 1000), secret }
    },
    openVote: async (vote, secret) => {
      if (vote.selectedHashes) return vote.selectedHashes
      if (!vote.sealed) return undefined
      const creatorJid = `${area.phone()}@s.whatsapp.net`
      for (const voterJid of [vote.voter, vote.voterAlt].filter((jid): jid is string => !!jid)) {
        try {
          return openPollVote(vote.sealed, { secret, pollMessageId: vote.pollMessageId, creatorJid, voterJid })
        } catch {
          // Sealed for the voter's other name.
        }
      }
      return undefined
    }
  }
}
