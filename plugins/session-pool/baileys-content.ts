import { normalizeMessageContent, type proto } from '@whiskeysockets/baileys'
import { MEDIA_KINDS, type MediaKind } from '../../contracts/index.ts'
import type { InboundMediaRef, InboundMessage } from './socket-port.ts'

/** How the gateway reads a received message's content (a contact's message, a status post). */

export function textOf (message: proto.IMessage | null | undefined): string | undefined {
  return message?.conversation ?? message?.extendedTextMessage?.text ?? undefined
}

const MEDIA_FIELD: Record<MediaKind, 'imageMessage' | 'videoMessage' | 'audioMessage' | 'documentMessage' | 'stickerMessage'> = {
  image: 'imageMessage', video: 'videoMessage', audio: 'audioMessage', document: 'documentMessage', sticker: 'stickerMessage'
}

/** What a media message says of its file (the message itself may be wrapped: ephemeral, view-once). */
export function mediaOf (message: proto.IMessage | null | undefined): InboundMediaRef | undefined {
  const content = normalizeMessageContent(message)
  for (const kind of MEDIA_KINDS) {
    const media = content?.[MEDIA_FIELD[kind]] as (proto.Message.IAudioMessage & proto.Message.IDocumentMessage) | null | undefined
    if (!media) continue
    return {
      kind,
      ...(media.mimetype ? { mimetype: media.mimetype } : {}),
      ...(media.fileName ? { fileName: media.fileName } : {}),
      ...(media.caption ? { caption: media.caption } : {}),
      ...(media.seconds ? { seconds: media.seconds } : {}),
      ...(media.ptt ? { ptt: true } : {}),
      ...(media.fileSha256?.length ? { sha256: Buffer.from(media.fileSha256).toString('hex') } : {})
    }
  }
  return undefined
}

/** The non-media content of an inbound message the gateway describes: a location, a contact card, what it replies to. */
export function detailsOf (message: proto.IMessage | null | undefined): Pick<InboundMessage, 'location' | 'contact' | 'quotedMessageId'> {
  const content = normalizeMessageContent(message)
  const location = content?.locationMessage
  const contact = content?.contactMessage ?? content?.contactsArrayMessage?.contacts?.[0]
  const context = content?.extendedTextMessage?.contextInfo ?? content?.imageMessage?.contextInfo ?? content?.locationMessage?.contextInfo
  return {
    ...(location && typeof location.degreesLatitude === 'number' && typeof location.degreesLongitude === 'number'
      ? {
          location: {
            latitude: location.degreesLatitude,
            longitude: location.degreesLongitude,
            ...(location.name ? { name: location.name } : {}),
            ...(location.address ? { address: location.address } : {})
          }
        }
      : {}),
    ...(contact?.vcard ? { contact: { name: contact.displayName ?? '', vcard: contact.vcard } } : {}),
    ...(context?.stanzaId ? { quotedMessageId: context.stanzaId } : {})
  }
}
