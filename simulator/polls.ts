import { sealPollVote } from '../core/poll-vote.ts'
import { userJid, type Directory, type ReceivedMessage } from './accounts.ts'
import type { Contacts } from './contacts.ts'
import type { GroupService } from './group-service.ts'
import { GroupRefusal, refusals } from './groups.ts'

/** Which of the voter's names a vote is sealed for (and names the poll's creator by): WhatsApp uses the chat's addressing. */
export type SealedAs = 'phone' | 'lid'

export interface DirectVote {
  /** The voter, a contact the poll was sent to, and the account (phone) that sent it. */
  from: string
  to: string
  pollMessageId: string
  /** The options' texts; none withdraws the vote. */
  options: string[]
  /** The voter writes from its LID (a LID-addressed chat), its phone not given. */
  byLid?: boolean
  /** Default: as the chat addresses them (LIDs in a LID chat, else phones); `lid` in a phone chat as real phones do (Baileys #2158). */
  sealedAs?: SealedAs
  id?: string
}

export interface GroupVote {
  group: string
  from: string
  pollMessageId: string
  options: string[]
  /** WhatsApp names the voter by LID only (no participant_pn). */
  withoutPhone?: boolean
  /** By default `lid`: a LID group names everyone by LID. */
  sealedAs?: SealedAs
  id?: string
}

/**
 * Simulated contacts voting on polls a linked device sent them or their group, as a phone does
 * (whatsmeow's EncryptPollVote): the vote is sealed with the poll's secret, which the contact read
 * from the poll it decrypted, for the voter's and the creator's names, and sent as a
 * `pollUpdateMessage` in a `type="poll"` stanza, 1:1 or with the participant's sender key.
 */
export class PollVoters {
  readonly #directory: Directory
  readonly #contacts: Contacts
  readonly #groups: GroupService

  constructor (directory: Directory, contacts: Contacts, groups: GroupService) {
    this.#directory = directory
    this.#contacts = contacts
    this.#groups = groups
  }

  /** A contact votes on a poll the account `to` sent it. */
  async vote (vote: DirectVote): Promise<{ id: string, devices: number, queued: number }> {
    const poll = pollIn(this.#directory.account(vote.from).received, vote.pollMessageId)
    const sealedAs = vote.sealedAs ?? (vote.byLid ? 'lid' : 'phone')
    const content = this.#voteContent(poll, vote.pollMessageId, vote.options, {
      chat: userJid(vote.to),
      creatorJid: this.#nameOf(vote.to, sealedAs),
      voterJid: this.#nameOf(vote.from, sealedAs)
    })
    const sent = await this.#contacts.deliver({
      from: vote.from, to: vote.to, content, stanzaType: 'poll', ...(vote.byLid ? { byLid: true } : {}), ...(vote.id ? { id: vote.id } : {})
    })
    return { id: sent.id, devices: sent.devices, queued: sent.queued }
  }

  /** A participant votes on a poll a linked device sent to the group. */
  async voteInGroup (vote: GroupVote): Promise<{ id: string, devices: number, queued: number }> {
    const received = this.#groups.received(vote.group, vote.from)
    const poll = pollIn(received, vote.pollMessageId)
    const creator = poll.from.split(':')[0]!
    const sealedAs = vote.sealedAs ?? 'lid'
    const content = this.#voteContent(poll, vote.pollMessageId, vote.options, {
      chat: vote.group,
      participant: this.#nameOf(creator, 'lid'),
      creatorJid: this.#nameOf(creator, sealedAs),
      voterJid: this.#nameOf(vote.from, sealedAs)
    })
    const sent = await this.#groups.send({
      group: vote.group,
      from: vote.from,
      content,
      stanzaType: 'poll',
      ...(vote.withoutPhone ? { withoutPhone: true } : {}),
      ...(vote.id ? { id: vote.id } : {})
    })
    return { id: sent.id, devices: sent.devices, queued: sent.queued }
  }

  #nameOf (phone: string, as: SealedAs): string {
    return as === 'lid' ? `${this.#directory.account(phone).lid}@lid` : userJid(phone)
  }

  #voteContent (
    poll: ReceivedMessage, pollMessageId: string, options: string[],
    names: { chat: string, participant?: string, creatorJid: string, voterJid: string }
  ) {
    const known = poll.poll!
    const unknown = options.filter((option) => !known.options.includes(option))
    if (unknown.length > 0) throw refusals.badRequest(`the poll has no option ${unknown.map((name) => JSON.stringify(name)).join(', ')}`)
    if (known.selectableCount === 1 && options.length > 1) throw refusals.badRequest('the poll takes one option')
    const vote = sealPollVote(options, {
      secret: Buffer.from(known.secret, 'hex'), pollMessageId, creatorJid: names.creatorJid, voterJid: names.voterJid
    })
    return {
      pollUpdateMessage: {
        // As the voter sees the poll: someone else's message in this chat.
        pollCreationMessageKey: {
          remoteJid: names.chat, fromMe: false, id: pollMessageId, ...(names.participant ? { participant: names.participant } : {})
        },
        vote,
        senderTimestampMs: Date.now()
      }
    }
  }
}

function pollIn (received: ReceivedMessage[], pollMessageId: string): ReceivedMessage {
  const poll = received.find((message) => message.id === pollMessageId && message.kind === 'poll')
  if (!poll?.poll?.secret) throw new GroupRefusal(404, 'item-not-found', `no poll ${pollMessageId} was received`)
  return poll
}
