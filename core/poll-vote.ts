import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto'

/*
 * A poll vote's encryption as WhatsApp clients do it (whatsmeow's EncryptPollVote; Baileys decrypts
 * with decryptPollVote): the vote's selected options, hashed, sealed with AES-256-GCM under a key
 * derived from the poll's 32-byte secret, the poll's id and both parties' JIDs. The voter side lives
 * here because Baileys has none: the simulator's contacts and the test double vote with it. The
 * gateway opens votes with Baileys' own decryptPollVote (baileys-polls.ts); a test holds the two
 * to each other.
 */

const GCM_TAG_BYTES = 16
const IV_BYTES = 12

export interface SealedPollVote {
  encPayload: Buffer
  encIv: Buffer
}

export interface PollVoteParties {
  /** The poll's `messageContextInfo.messageSecret`. */
  secret: Uint8Array
  pollMessageId: string
  /** The poll's creator and the voter, as device-less JIDs (`…@s.whatsapp.net` or `…@lid`). */
  creatorJid: string
  voterJid: string
}

/** How WhatsApp names an option in a vote: the SHA-256 of its text. */
export function pollOptionHash (option: string): Buffer {
  return createHash('sha256').update(option).digest()
}

function voteKey ({ secret, pollMessageId, creatorJid, voterJid }: PollVoteParties): Buffer {
  const key0 = createHmac('sha256', Buffer.alloc(32)).update(secret).digest()
  const info = Buffer.concat([
    Buffer.from(pollMessageId), Buffer.from(creatorJid), Buffer.from(voterJid), Buffer.from('Poll Vote'), Buffer.of(1)
  ])
  return createHmac('sha256', key0).update(info).digest()
}

const additionalData = ({ pollMessageId, voterJid }: PollVoteParties) => Buffer.from(`${pollMessageId}\u0000${voterJid}`)

/** A vote for `options` (their texts; none withdraws the vote), sealed as the voter's phone does. */
export function sealPollVote (options: string[], parties: PollVoteParties): SealedPollVote {
  const encIv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', voteKey(parties), encIv)
  cipher.setAAD(additionalData(parties))
  const plain = encodePollVoteMessage(options.map(pollOptionHash))
  const encPayload = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  return { encPayload, encIv }
}

/** The option hashes a sealed vote selects; throws when it was not sealed for these parties. */
export function openPollVote (vote: SealedPollVote, parties: PollVoteParties): Buffer[] {
  const decipher = createDecipheriv('aes-256-gcm', voteKey(parties), vote.encIv)
  decipher.setAAD(additionalData(parties))
  decipher.setAuthTag(vote.encPayload.subarray(vote.encPayload.length - GCM_TAG_BYTES))
  const plain = Buffer.concat([decipher.update(vote.encPayload.subarray(0, vote.encPayload.length - GCM_TAG_BYTES)), decipher.final()])
  return decodePollVoteMessage(plain)
}

/** `PollVoteMessage { repeated bytes selectedOptions = 1; }` in protobuf's wire format. */
function encodePollVoteMessage (hashes: Buffer[]): Buffer {
  return Buffer.concat(hashes.map((hash) => Buffer.concat([Buffer.of(0x0a, hash.length), hash])))
}

function decodePollVoteMessage (bytes: Buffer): Buffer[] {
  const hashes: Buffer[] = []
  for (let at = 0; at < bytes.length;) {
    const tag = bytes[at]
    const length = bytes[at + 1]
    if (tag !== 0x0a || length === undefined || length > 127 || at + 2 + length > bytes.length) throw new Error('not a poll vote')
    hashes.push(bytes.subarray(at + 2, at + 2 + length))
    at += 2 + length
  }
  return hashes
}
