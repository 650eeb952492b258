import {
  generateMessageIDV2, generateWAMessage, normalizeMessageContent, type AnyMessageContent, type WAMessage
} from '@whiskeysockets/baileys'
import type { BaileysArea } from './baileys-area.ts'
import { mediaOf, textOf } from './baileys-content.ts'
import { KeysNotStored } from './baileys-keys.ts'
import { STATUS_BROADCAST, type InboundStatus, type OutboundStatus, type StatusPort } from './status-port.ts'

/** Baileys takes a background as a hex string (rc14's number path returns no colour): `#AARRGGBB`. */
const argbHex = (argb: number) => `#${argb.toString(16).padStart(8, '0')}`

function contentOf (status: OutboundStatus): AnyMessageContent {
  if ('text' in status) return { text: status.text }
  const { kind, stream, mimetype, caption } = status.file
  const source = { stream }
  return kind === 'image'
    ? { image: source, mimetype, ...(caption ? { caption } : {}) }
    : { video: source, mimetype, ...(caption ? { caption } : {}) }
}

/** A contact's post as the port describes it; a post without text or media (a deletion, a key alone) is none. */
function inboundStatusOf (message: WAMessage, offline: boolean): InboundStatus | undefined {
  const content = normalizeMessageContent(message.message)
  const media = mediaOf(message.message)
  const text = textOf(content) ?? media?.caption
  if (!media && text === undefined) return undefined
  const extended = content?.extendedTextMessage
  // rc14 puts the poster's other address (participant_pn) in remoteJidAlt for broadcasts, participantAlt only in groups.
  const posterAlt = message.key.remoteJidAlt ?? message.key.participantAlt
  return {
    id: message.key.id!,
    poster: message.key.participant ?? '',
    ...(posterAlt ? { posterAlt } : {}),
    ...(message.pushName ? { pushName: message.pushName } : {}),
    ...(text !== undefined ? { text } : {}),
    ...(extended?.backgroundArgb != null ? { backgroundArgb: extended.backgroundArgb } : {}),
    ...(extended?.font != null ? { font: extended.font } : {}),
    ...(media ? { media } : {}),
    timestamp: Number(message.messageTimestamp ?? Math.floor(Date.now() / 1000)),
    ...(offline ? { offline: true } : {})
  }
}

/**
 * Status posts on Baileys: contacts' posts (upserted from `status@broadcast`) are claimed from the
 * inbound messages and become `statuses` events; a post is built once (a file uploaded once) and
 * relayed to each batch of recipients under the same id (rc14's `relayMessage` takes the id).
 */
export function statusPortOf (area: BaileysArea): StatusPort {
  const { sock, log, emit } = area
  const isStatus = (message: WAMessage) => message.key.remoteJid === STATUS_BROADCAST
  area.claim(isStatus)
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    // Posts kept while the device was offline come as 'append', like other offline messages.
    if (type !== 'notify' && type !== 'append') return
    const statuses = messages
      .filter((message) => isStatus(message) && !message.key.fromMe && message.key.id && message.key.participant &&
        !message.messageStubType)
      .flatMap((message) => {
        const status = inboundStatusOf(message, type === 'append')
        if (status?.media) area.rememberMedia(message)
        return status ? [status] : []
      })
    if (statuses.length > 0) emit('statuses', statuses)
  })
  return {
    post: async (status, batches) => {
      const messageId = generateMessageIDV2(sock.user?.id)
      const generated = await generateWAMessage(STATUS_BROADCAST, contentOf(status), {
        userJid: sock.authState.creds.me!.id,
        upload: sock.waUploadToServer,
        messageId,
        ...('text' in status && status.backgroundArgb !== undefined ? { backgroundColor: argbHex(status.backgroundArgb) } : {}),
        ...('text' in status && status.font !== undefined ? { font: status.font } : {})
      })
      let sent = 0
      for (const statusJidList of batches) {
        try {
          await sock.relayMessage(STATUS_BROADCAST, generated.message!, { messageId, statusJidList })
        } catch (err) {
          // The batch went out; only its keys were not stored (see baileys-keys.ts): the next batches go too.
          if (!(err instanceof KeysNotStored)) throw err
          log.error({ err, messageId }, 'a status batch went out but its Signal keys were not stored')
        }
        sent++
      }
      return { messageId, timestamp: Number(generated.messageTimestamp), batches: sent }
    }
  }
}
