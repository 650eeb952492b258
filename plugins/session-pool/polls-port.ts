import type { SendOptions, SentMessage } from './socket-port.ts'

/** A poll as it goes out: WhatsApp allows 2 to 12 options; `selectableCount` 1 is single choice, 0 any number. */
export interface OutboundPoll {
  question: string
  options: string[]
  selectableCount: number
}

/** A sent poll with the secret its votes are encrypted under (kept with it: no vote can be read without it). */
export interface SentPoll extends SentMessage {
  secret: Buffer
}

/** A vote as it arrives: encrypted for the poll's creator; the polls plugin opens it with the poll's secret. */
export interface EncryptedPollVote {
  /** The vote message's own id. */
  id: string
  pollMessageId: string
  /** The chat of the poll (a person's JID or a group's). */
  chat: string
  /** Who voted, as the message names them, and their other address (LID or phone JID) when WhatsApp told it. */
  voter: string
  voterAlt?: string
  encPayload: Buffer
  encIv: Buffer
  /** Unix milliseconds, as the voter's device stamped the vote. */
  timestampMs: number
}

/** Polls through the connection. */
export interface PollPort {
  send: (jid: string, poll: OutboundPoll, options?: SendOptions) => Promise<SentPoll>
  /**
   * The SHA-256 hashes of the options a vote selects, or undefined when it does not open under these
   * names (WhatsApp may have encrypted it for the other address of the creator or the voter).
   */
  openVote: (vote: EncryptedPollVote, opening: { secret: Buffer, creatorJid: string, voterJid: string }) => Buffer[] | undefined
}
