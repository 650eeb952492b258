import { normalizeMessageContent, type proto } from '@whiskeysockets/baileys'
import { MEDIA_KINDS, type MediaKind } from '../../contracts/index.ts'
import type { InboundMediaRef } from './socket-port.ts'

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
