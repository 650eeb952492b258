import { createDecipheriv, createHash } from 'node:crypto'
import { getBinaryNodeChild, getBinaryNodeChildren, proto, unpadRandomMax16, type BinaryNode } from '@whiskeysockets/baileys'
import { deviceName, PHONE_DEVICE, userJid, type Directory, type ReceivedMedia, type ReceivedMessage } from './accounts.ts'
import type { Connection, LinkedDevices } from './connections.ts'
import type { Recorder } from './log.ts'
import { receiptIds, type ContactMedia, type InboundMessage, type InboundOptions, type Mailbox } from './mailbox.ts'
import {
  decryptMedia, encryptMedia, MEDIA_KINDS, MESSAGE_FIELD, mediaRetryKey, mediaRetryNotification, type MediaKind, type MediaServer
} from './media.ts'
import type { CiphertextType } from './signal.ts'
import { stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/**
 * A contact's phone reports delivery this long after the server took the message, as a real one
 * does: a receipt in the same instant as the send would be folded by Baileys into the sent message.
 */
export const DELIVERY_RECEIPT_DELAY_MS = 50

/** A media message's file as the phones on both ends know it: what a re-upload needs. */
interface KnownMedia {
  kind: MediaKind
  mediaKey: Uint8Array
  body: Buffer
  directPath: string
}

/**
 * The contacts' phones: they decrypt and record what linked devices send them and report delivery,
 * write to accounts, and read what they got. Their messages and receipts go through the mailbox.
 */
export class Contacts {
  readonly #directory: Directory
  readonly #devices: LinkedDevices
  readonly #mailbox: Mailbox
  readonly #media: MediaServer
  readonly #record: Recorder
  /** By message id: media sent or received by the simulated phones. */
  readonly #knownMedia = new Map<string, KnownMedia>()

  constructor (directory: Directory, devices: LinkedDevices, mailbox: Mailbox, media: MediaServer, record: Recorder) {
    this.#directory = directory
    this.#devices = devices
    this.#mailbox = mailbox
    this.#media = media
    this.#record = record
  }

  /**
   * A message from a linked device: each `<to>` addressed to a phone is decrypted with that phone's
   * Signal identity and recorded. The server acknowledges it, and each contact reports delivery.
   */
  async relay (connection: Connection, node: BinaryNode): Promise<void> {
    const sender = connection.device
    if (!sender) return
    const id = node.attrs.id
    const delivered = new Set<string>()
    // WhatsApp refuses what a contact may not be sent (error 463 and the like): acked with the error, delivered to nobody.
    const refusal = getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')
      .map((to) => this.#directory.resolve(to.attrs.jid ?? '')?.account)
      .find((account) => account && account.phone !== sender.user && account.refusal)?.refusal
    if (refusal) {
      this.#record('refused', `${id} from ${deviceName(sender)}: error ${refusal}`)
      connection.send({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: unixNow(), error: refusal } })
      return
    }
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      const resolved = this.#directory.resolve(to.attrs.jid ?? '')
      const device = resolved?.account.simulatedDevice(resolved.device)
      if (!enc || !resolved || !device || !(enc.content instanceof Uint8Array)) continue
      try {
        const padded = await device.decrypt(sender, enc.attrs.type as CiphertextType, Buffer.from(enc.content))
        const message = proto.Message.decode(unpadRandomMax16(padded))
        // A contact's companion keeps its session; the contact's phone records the message once.
        if (resolved.device !== PHONE_DEVICE) continue
        // The sender's own phone gets a copy of what it sent (a device-sent message); only contacts record it.
        if (resolved.account.phone === sender.user) continue
        // An edit or a deletion for everyone changes a message the contact already has.
        if (applyProtocolMessage(resolved.account.received, message)) {
          delivered.add(resolved.account.phone)
          continue
        }
        resolved.account.received.push(this.describe(id, deviceName(sender), message))
        delivered.add(resolved.account.phone)
        this.#record('message', `${deviceName(sender)} → ${resolved.account.phone} ${id}`)
      } catch (err) {
        this.#record('error', `cannot decrypt ${id} for ${to.attrs.jid}: ${(err as Error).message}`)
      }
    }
    connection.send({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: unixNow() } })
    if (delivered.size === 0) return
    setTimeout(() => {
      for (const phone of delivered) {
        const receipt: BinaryNode = { tag: 'receipt', attrs: { id, from: userJid(phone), t: unixNow() } }
        // The sending device went offline meanwhile (a handoff): it gets the receipt when it is back.
        const live = this.#devices.get(deviceName(sender))
        if (live) this.#mailbox.sendReceipt(live, receipt)
        else this.#mailbox.keep(deviceName(sender), { node: receipt })
      }
    }, DELIVERY_RECEIPT_DELAY_MS).unref()
  }

  /** What a contact's phone records of a message it decrypted; a media message's file is fetched and checked. */
  describe (id: string, from: string, message: proto.IMessage): ReceivedMessage {
    return describe(id, from, message, (kind, content) => this.#openMedia(id, kind, content))
  }

  /** A linked device shows a contact that its user is typing, recording or paused (`<chatstate>`). */
  chatState (connection: Connection, node: BinaryNode): void {
    const resolved = this.#directory.resolve(node.attrs.to ?? '')
    const state = Array.isArray(node.content) ? node.content[0] : undefined
    if (!resolved || !connection.device || !state) return
    const kind = state.tag === 'composing' && state.attrs.media === 'audio' ? 'recording' : state.tag
    resolved.account.presences.push({ from: deviceName(connection.device), state: kind, at: Date.now() })
  }

  /** A linked device announces its account available or unavailable (`<presence type>`). */
  presence (connection: Connection, node: BinaryNode): void {
    if (!connection.device || (node.attrs.type !== 'available' && node.attrs.type !== 'unavailable')) return
    this.#directory.account(connection.device.user).availability = node.attrs.type
  }

  /** A linked device reports that it got (or read) a contact's message. */
  receiptFromDevice (connection: Connection, node: BinaryNode): void {
    const resolved = this.#directory.resolve(node.attrs.to ?? '')
    if (!resolved || !connection.device) return
    const ids = receiptIds(node)
    // A client that is not marked online acknowledges delivery as 'inactive'.
    const type = node.attrs.type === undefined || node.attrs.type === 'inactive'
      ? 'delivered'
      : node.attrs.type === 'read' ? 'read' : 'other'
    for (const messageId of ids) {
      resolved.account.receipts.push({ messageId, from: deviceName(connection.device), type, at: Date.now() })
    }
  }

  /**
   * The contact `from` writes to the account `to`: every live linked device of `to` gets the
   * message, encrypted when the device has opened a Signal session with the contact, otherwise as
   * plaintext. Returns the message id and how many devices it reached.
   */
  async deliver (options: InboundOptions): Promise<{ id: string, devices: number, encrypted: number, queued: number }> {
    const id = options.id ?? stanzaId().toUpperCase()
    const { media, ...rest } = options
    const message: InboundMessage = {
      ...rest,
      id,
      at: unixSeconds(),
      content: options.content ?? (media ? this.uploadAsPhone(id, media, options.text) : { conversation: options.text ?? '' }),
      ...(media ? { mediaKind: media.kind } : {})
    }
    let devices = 0
    let encrypted = 0
    let queued = 0
    const account = this.#directory.account(options.to)
    for (const device of account.knownDevices) {
      const connection = this.#devices.get(deviceName({ user: options.to, device }))
      if (connection?.device) {
        if (await this.#mailbox.sendMessage(connection, message)) encrypted++
        devices++
      } else {
        // WhatsApp keeps messages for a linked device that is offline and hands them over when it logs in.
        this.#mailbox.keep(deviceName({ user: options.to, device }), { message })
        queued++
      }
    }
    this.#record('inbound', `${options.from} → ${options.to} ${id} (${devices} devices, ${queued} queued)`)
    return { id, devices, encrypted, queued }
  }

  /**
   * A linked device could not download a media message (404/410) and asks the account's phone to
   * upload it again (`<receipt type="server-error">` with `<rmr>`). The phone uploads the same
   * encrypted file under a new direct path and answers with a sealed `mediaretry` notification; a
   * phone that has no copy answers NOT_FOUND; one that does not re-upload (offline) never answers.
   */
  mediaRetry (connection: Connection, node: BinaryNode): void {
    const device = connection.device
    const messageId = node.attrs.id ?? ''
    const rmr = getBinaryNodeChild(node, 'rmr')
    if (!device || !rmr) return
    const account = this.#directory.account(device.user)
    if (!account.reuploadsMedia) {
      this.#record('media', `re-upload of ${messageId} asked by ${deviceName(device)}: the phone does not answer`)
      return
    }
    const known = this.#knownMedia.get(messageId)
    if (!known || !requestOpens(node, messageId, known.mediaKey)) {
      this.#record('media', `re-upload of ${messageId} asked by ${deviceName(device)}: not found`)
      connection.send(mediaRetryNotification({ messageId, from: userJid(account.phone), rmr, mediaKey: new Uint8Array(32) }))
      return
    }
    known.directPath = this.#media.host(known.body).directPath
    this.#record('media', `re-upload of ${messageId} for ${deviceName(device)} → ${known.directPath.split('?')[0]}`)
    connection.send(mediaRetryNotification({
      messageId, from: userJid(account.phone), rmr, mediaKey: known.mediaKey, directPath: known.directPath
    }))
  }

  /** The media server drops the file of a media message (410 Gone) until a phone uploads it again. */
  expireMedia (messageId: string): boolean {
    const known = this.#knownMedia.get(messageId)
    return known !== undefined && this.#media.expire(known.directPath)
  }

  /** The contact's phone encrypts and uploads a file, and builds the message that points to it (a status's too). */
  uploadAsPhone (id: string, media: ContactMedia, caption: string | undefined): proto.IMessage {
    const encrypted = encryptMedia(media.data, media.kind)
    const { directPath, url } = this.#media.host(encrypted.body)
    this.#knownMedia.set(id, { kind: media.kind, mediaKey: encrypted.mediaKey, body: encrypted.body, directPath })
    if (media.expired) this.#media.expire(directPath)
    const common = {
      url,
      directPath,
      mediaKey: encrypted.mediaKey,
      fileEncSha256: encrypted.fileEncSha256,
      fileSha256: encrypted.fileSha256,
      fileLength: encrypted.fileLength,
      mimetype: media.mimetype,
      mediaKeyTimestamp: unixSeconds()
    }
    switch (media.kind) {
      case 'image': return { imageMessage: { ...common, caption } }
      case 'video': return { videoMessage: { ...common, caption, seconds: media.seconds } }
      case 'audio': return { audioMessage: { ...common, ptt: media.ptt ?? false, seconds: media.seconds } }
      case 'document': return { documentMessage: { ...common, caption, fileName: media.fileName ?? 'file' } }
      case 'sticker': return { stickerMessage: common }
    }
  }

  /** A contact's phone fetches a media message's file from the media server and opens it as WhatsApp would. */
  #openMedia (id: string, kind: MediaKind, content: MediaContent): ReceivedMedia {
    const described: ReceivedMedia = {
      kind,
      ...(content.mimetype ? { mimetype: content.mimetype } : {}),
      ...(content.fileName ? { fileName: content.fileName } : {}),
      ...(content.caption ? { caption: content.caption } : {}),
      ...(content.ptt ? { ptt: true } : {}),
      ...(content.seconds ? { seconds: content.seconds } : {})
    }
    const location = content.directPath ?? content.url
    const body = location ? this.#media.file(location) : undefined
    if (!body || !content.mediaKey || !location) return { ...described, error: 'the file is not on the media server' }
    try {
      const plain = decryptMedia(body, kind, {
        mediaKey: content.mediaKey,
        fileEncSha256: content.fileEncSha256,
        fileSha256: content.fileSha256,
        fileLength: content.fileLength == null ? null : Number(content.fileLength)
      })
      this.#knownMedia.set(id, { kind, mediaKey: content.mediaKey, body, directPath: location })
      return { ...described, size: plain.length, sha256: createHash('sha256').update(plain).digest('hex') }
    } catch (err) {
      return { ...described, error: (err as Error).message }
    }
  }

  /** The contact `phone` reads messages it received from `to`'s devices: they get a read receipt. */
  read (phone: string, to: string, messageIds: string[]): number {
    let devices = 0
    for (const connection of this.#devices.of(to)) {
      for (const id of messageIds) {
        this.#mailbox.sendReceipt(connection, { tag: 'receipt', attrs: { id, from: userJid(phone), type: 'read', t: unixNow() } })
      }
      devices++
    }
    return devices
  }
}

/** The fields every media message has (imageMessage, audioMessage, …), as far as a recipient reads them. */
type MediaContent = {
  url?: string | null
  directPath?: string | null
  mediaKey?: Uint8Array | null
  fileEncSha256?: Uint8Array | null
  fileSha256?: Uint8Array | null
  fileLength?: number | Long | null
  mimetype?: string | null
  caption?: string | null
  fileName?: string | null
  ptt?: boolean | null
  seconds?: number | null
}
type Long = { toNumber: () => number }

/**
 * Whether a re-upload request is sealed with the message's media key: the device proves it has the
 * message (`<encrypt>`: AES-256-GCM of ServerErrorReceipt{stanzaId}, the message id as additional data).
 */
function requestOpens (node: BinaryNode, messageId: string, mediaKey: Uint8Array): boolean {
  const encrypt = getBinaryNodeChild(node, 'encrypt')
  const sealed = getBinaryNodeChild(encrypt, 'enc_p')?.content
  const iv = getBinaryNodeChild(encrypt, 'enc_iv')?.content
  if (!(sealed instanceof Uint8Array) || !(iv instanceof Uint8Array) || sealed.length < 16) return false
  try {
    const decipher = createDecipheriv('aes-256-gcm', mediaRetryKey(mediaKey), iv)
    decipher.setAAD(Buffer.from(messageId))
    decipher.setAuthTag(Buffer.from(sealed.subarray(sealed.length - 16)))
    const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()])
    return proto.ServerErrorReceipt.decode(plain).stanzaId === messageId
  } catch {
    return false
  }
}

/**
 * An edit (MESSAGE_EDIT) or a deletion for everyone (REVOKE) of a message the contact has: applied
 * to it; true when the message was one of those.
 */
export function applyProtocolMessage (received: ReceivedMessage[], message: proto.IMessage): boolean {
  const protocol = message.protocolMessage
  if (!protocol?.key?.id) return false
  const target = received.find((entry) => entry.id === protocol.key!.id)
  if (protocol.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
    const text = protocol.editedMessage?.conversation ?? protocol.editedMessage?.extendedTextMessage?.text
    if (target && typeof text === 'string') Object.assign(target, { text, edited: true })
    return true
  }
  if (protocol.type === proto.Message.ProtocolMessage.Type.REVOKE) {
    if (target) Object.assign(target, { deleted: true, text: undefined })
    return true
  }
  return false
}

/** What a contact's phone records of a message it decrypted. */
function describe (
  id: string, from: string, message: proto.IMessage, openMedia: (kind: MediaKind, content: MediaContent) => ReceivedMedia
): ReceivedMessage {
  const at = Date.now()
  const context = message.extendedTextMessage?.contextInfo ?? message.imageMessage?.contextInfo ?? message.locationMessage?.contextInfo ??
    message.contactMessage?.contextInfo ?? message.documentMessage?.contextInfo ?? message.videoMessage?.contextInfo
  // The message it replies to, and whom it mentions.
  const references = {
    ...(context?.stanzaId ? { quotedMessageId: context.stanzaId } : {}),
    ...(context?.mentionedJid?.length ? { mentions: [...context.mentionedJid] } : {})
  }
  for (const kind of MEDIA_KINDS) {
    const content = message[MESSAGE_FIELD[kind]] as MediaContent | null | undefined
    if (content) return { id, from, at, kind: 'media', media: openMedia(kind, content), ...references }
  }
  const text = message.conversation ?? message.extendedTextMessage?.text
  if (typeof text === 'string') return { id, from, at, kind: 'text', text, ...references }
  const location = message.locationMessage
  if (location) {
    return {
      id,
      from,
      at,
      kind: 'location',
      ...references,
      location: {
        latitude: location.degreesLatitude ?? 0,
        longitude: location.degreesLongitude ?? 0,
        ...(location.name ? { name: location.name } : {}),
        ...(location.address ? { address: location.address } : {})
      }
    }
  }
  const contact = message.contactMessage ?? message.contactsArrayMessage?.contacts?.[0]
  if (contact) {
    return { id, from, at, kind: 'contact', contact: { name: contact.displayName ?? '', vcard: contact.vcard ?? '' }, ...references }
  }
  // A poll is V3 for a single choice, the first form otherwise, V2 in announcement groups (Baileys' generateWAMessageContent).
  const poll = message.pollCreationMessageV3 ?? message.pollCreationMessage ?? message.pollCreationMessageV2
  if (poll) {
    const secret = message.messageContextInfo?.messageSecret
    return {
      id,
      from,
      at,
      kind: 'poll',
      poll: {
        question: poll.name ?? '',
        options: (poll.options ?? []).map((option) => option.optionName ?? ''),
        selectableCount: poll.selectableOptionsCount ?? 0,
        secret: secret ? Buffer.from(secret).toString('hex') : ''
      }
    }
  }
  const reaction = message.reactionMessage
  if (reaction) {
    const reacted = { messageId: reaction.key?.id ?? '', emoji: reaction.text ?? '', fromMe: Boolean(reaction.key?.fromMe) }
    return { id, from, at, kind: 'reaction', reaction: reacted }
  }
  return { id, from, at, kind: 'other' }
}
