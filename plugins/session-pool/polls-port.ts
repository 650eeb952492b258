import type { SendOptions, SentMessage } from './socket-port.ts'

/** A poll as it goes out: WhatsApp allows 2 to 12 options; `selectableCount` 1 is single choice, 0 any number. */
export interface OutboundPoll {
  question: string
  options: string[]
  selectableCount: number
}

/** A sent poll with the secret its votes are sealed under (kept with it: no vote can be read without it). */
export interface SentPoll extends SentMessage {
  secret: Buffer
}

/**
 * A vote as it arrives. WhatsApp seals it for the poll's creator (`sealed`: Baileys rc14 hands it
 * over so, in `messages.upsert`); a connection that opened it itself (Baileys builds that emit
 * `messages.update` with `pollUpdates`) gives the selected options' hashes instead.
 */
export interface InboundPollVote {
  /** The vote message's own id. */
  id: string
  pollMessageId: string
  /** The chat of the poll (a person's JID or a group's). */
  chat: string
  /** Who voted, as the message names them, and their other address (LID or phone JID) when WhatsApp told it. */
  voter: string
  voterAlt?: string
  /** Unix milliseconds, as the voter's device stamped the vote: a later vote replaces an earlier one. */
  timestampMs: number
  sealed?: { encPayload: Buffer, encIv: Buffer }
  /** SHA-256 of each selected option's text; empty withdraws the vote. */
  selectedHashes?: Buffer[]
  /** WhatsApp kept it while the device was offline. */
  offline?: boolean
}

/** Polls through the connection. */
export interface PollPort {
  send: (jid: string, poll: OutboundPoll, options?: SendOptions) => Promise<SentPoll>
  /**
   * The hashes of the options a sealed vote selects, or undefined when it does not open under any
   * name the voter or the number go by (voters seal with their LID or their phone JID, and name the
   * creator likewise: Baileys #2158), nor at all.
   */
  openVote: (vote: InboundPollVote, secret: Buffer) => Promise<Buffer[] | undefined>
}
