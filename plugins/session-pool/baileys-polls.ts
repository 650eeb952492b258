import { decryptPollVote, jidNormalizedUser, normalizeMessageContent, type WAMessage, type WAMessageKey } from '@whiskeysockets/baileys'
import { randomBytes } from 'node:crypto'
import type { BaileysArea } from './baileys-area.ts'
import type { InboundPollVote, PollPort } from './polls-port.ts'

const POLL_SECRET_BYTES = 32

/**
 * Polls on Baileys: a poll goes out with a secret chosen here (returned, to be kept: rc14 keeps
 * nothing), and votes are taken out of the upserted messages (rc14 no longer opens them) and out of
 * `messages.update` (builds that do open them), to be opened with the poll's secret.
 */
export function pollPortOf (area: BaileysArea): PollPort {
  const { sock } = area
  area.claim((message) => normalizeMessageContent(message.message)?.pollUpdateMessage != null)
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    if (type !== 'notify' && type !== 'append') return
    const votes = messages.flatMap((message) => sealedVoteOf(message, type === 'append'))
    if (votes.length > 0) area.emit('pollVotes', votes)
  })
  sock.ev.on('messages.update', (updates) => {
    const votes = updates.flatMap(({ key, update }) => (update.pollUpdates ?? []).flatMap((pollUpdate): InboundPollVote[] => {
      const voteKey = pollUpdate.pollUpdateMessageKey
      if (!key.id || !key.remoteJid || !voteKey?.id || voteKey.fromMe) return []
      return [{
        id: voteKey.id,
        pollMessageId: key.id,
        chat: key.remoteJid,
        ...voterOf(voteKey),
        timestampMs: Number(pollUpdate.senderTimestampMs ?? Date.now()),
        selectedHashes: (pollUpdate.vote?.selectedOptions ?? []).map((hash) => Buffer.from(hash))
      }]
    }))
    if (votes.length > 0) area.emit('pollVotes', votes)
  })

  /** Every name the number goes by (its phone JID and its LID), as a vote may name the poll's creator by either. */
  const ownJids = () => [sock.user?.id, sock.user?.lid].filter((jid): jid is string => !!jid).map(jidNormalizedUser)
  /** Every name the voter goes by, including the other one the connection learned (a LID's phone, a phone's LID). */
  const voterJids = async (vote: InboundPollVote) => {
    const known = [vote.voter, vote.voterAlt].filter((jid): jid is string => !!jid).map(jidNormalizedUser)
    const { lidMapping } = sock.signalRepository
    const other = vote.voter.endsWith('@lid')
      ? await lidMapping.getPNForLID(vote.voter).catch(() => null)
      : await lidMapping.getLIDForPN(vote.voter).catch(() => null)
    return [...new Set([...known, ...(other ? [jidNormalizedUser(other)] : [])])]
  }

  return {
    send: async (jid, poll, options = {}) => {
      const secret = randomBytes(POLL_SECRET_BYTES)
      const sent = await area.send(jid, {
        poll: { name: poll.question, values: poll.options, selectableCount: poll.selectableCount, messageSecret: secret }
      }, options.messageId ? { messageId: options.messageId } : {})
      return { ...sent, secret }
    },
    openVote: async (vote, secret) => {
      if (vote.selectedHashes) return vote.selectedHashes
      if (!vote.sealed) return undefined
      for (const creatorJid of ownJids()) {
        for (const voterJid of await voterJids(vote)) {
          try {
            const parties = { pollEncKey: secret, pollCreatorJid: creatorJid, pollMsgId: vote.pollMessageId, voterJid }
            const opened = decryptPollVote(vote.sealed, parties)
            return (opened.selectedOptions ?? []).map((hash) => Buffer.from(hash))
          } catch {
            // Sealed under other names: try the next pair.
          }
        }
      }
      return undefined
    }
  }
}

/** A contact's vote in an upserted message, still sealed. */
function sealedVoteOf (message: WAMessage, offline: boolean): InboundPollVote[] {
  const update = normalizeMessageContent(message.message)?.pollUpdateMessage
  const pollKey = update?.pollCreationMessageKey
  const { key } = message
  if (!update || !pollKey?.id || !key.id || !key.remoteJid || key.fromMe || !update.vote?.encPayload || !update.vote.encIv) return []
  const stampedAt = update.senderTimestampMs ?? Number(message.messageTimestamp ?? 0) * 1000
  return [{
    id: key.id,
    pollMessageId: pollKey.id,
    chat: key.remoteJid,
    ...voterOf(key),
    timestampMs: Number(stampedAt) || Date.now(),
    sealed: { encPayload: Buffer.from(update.vote.encPayload), encIv: Buffer.from(update.vote.encIv) },
    ...(offline ? { offline: true } : {})
  }]
}

/** Who voted: in a group the participant, else the chat; with the other address WhatsApp gave. */
function voterOf (key: WAMessageKey) {
  const voter = key.participant || key.remoteJid || ''
  const voterAlt = key.participant ? key.participantAlt : key.remoteJidAlt
  return { voter, ...(voterAlt ? { voterAlt } : {}) }
}
