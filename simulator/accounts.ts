import type { MediaKind } from './media.ts'
import { createHash } from 'node:crypto'
import { Curve, jidDecode } from '@whiskeysockets/baileys'
import { SignalDevice } from './signal.ts'

/** LIDs are 15-digit numbers unrelated to the phone number; the simulator derives them so they survive a restart. */
const LID_DIGITS = 15n
const LID_SPACE = 10n ** (LID_DIGITS - 1n)

export function lidOf (phone: string): string {
  const hash = BigInt('0x' + createHash('sha256').update(`lid:${phone}`).digest('hex').slice(0, 16))
  return String(LID_SPACE + (hash % (9n * LID_SPACE)))
}

/** The phone (primary device) of every account. */
export const PHONE_DEVICE = 0

/** One device of an account: its phone (PHONE_DEVICE) or a linked device. */
export interface DeviceAddress {
  user: string
  device: number
}

/** How the simulator names a device in its log, its maps and its control API. */
export const deviceName = (device: DeviceAddress) => `${device.user}:${device.device}`
/** The JID of the account with this phone number. */
export const userJid = (user: string) => `${user}@s.whatsapp.net`

/** What a contact's phone received and decrypted. */
export interface ReceivedMessage {
  id: string
  /** The sending device (`<user>:<device>`). */
  from: string
  at: number
  kind: 'text' | 'reaction' | 'media' | 'location' | 'contact' | 'poll' | 'other'
  text?: string
  /** The message it replies to. */
  quotedMessageId?: string
  location?: { latitude: number, longitude: number, name?: string, address?: string }
  contact?: { name: string, vcard: string }
  /** The sender edited it later (its text is the new one) or deleted it for everyone. */
  edited?: boolean
  deleted?: boolean
  /** For media: what the contact's phone decrypted and checked (MAC, hashes, length), or why it could not. */
  media?: ReceivedMedia
  /** For a reaction: the message reacted to and the emoji ('' removes a reaction). */
  reaction?: { messageId: string, emoji: string, fromMe: boolean }
  /** For a poll: its question, options, how many a voter may pick (0: any number) and the secret votes are sealed with (hex). */
  poll?: { question: string, options: string[], selectableCount: number, secret: string }
  /** The JIDs the message mentions (`contextInfo.mentionedJid`), when it mentions anyone. */
  mentions?: string[]
}

export interface ReceivedMedia {
  kind: MediaKind
  mimetype?: string
  /** Bytes of the decrypted file. */
  size?: number
  /** Hex SHA-256 of the decrypted file. */
  sha256?: string
  fileName?: string
  caption?: string
  ptt?: boolean
  seconds?: number
  /** Why the file could not be fetched or did not match the message (absent when it did). */
  error?: string
}

/** A receipt a linked device sent for a message it got from this contact. */
export interface DeviceReceipt {
  messageId: string
  from: string
  type: 'delivered' | 'read' | 'other'
  at: number
}

/**
 * The keys a linked device registered with when it was linked (the `devicePairingData` of its
 * first handshake): with them a contact opens a Signal session to it, as with a pre-key bundle
 * whose one-time pre-keys have run out.
 */
export interface RegisteredKeys {
  registrationId: number
  identityKey: Buffer
  signedPreKey: { keyId: number, publicKey: Buffer, signature: Buffer }
}

/**
 * A WhatsApp account: its phone (device 0, which has a Signal identity and receives messages), the
 * account key it signs linked devices with, and what it received.
 */
export class Account {
  readonly lid: string
  readonly accountKey = Curve.generateKeyPair() as { private: Buffer, public: Buffer }
  readonly phoneDevice = new SignalDevice()
  readonly received: ReceivedMessage[] = []
  readonly receipts: DeviceReceipt[] = []
  /** Linked devices (numbers) the account has: messages to it go to them, or wait while they are offline. */
  readonly knownDevices = new Set<number>()
  readonly phone: string
  /** Whether the number is on WhatsApp. */
  readonly registered: boolean
  linkedDevices = 0
  /** Whether the phone answers its linked devices' requests to upload old media again. */
  reuploadsMedia = true
  /** Set: WhatsApp refuses messages to this contact with this code (463: no privacy token, a restricted sender). */
  refusal: string | undefined
  /** What linked devices showed this contact: typing, recording, paused (chat states). */
  readonly presences: { from: string, state: string, at: number }[] = []
  /** The account's own availability, as its linked devices last announced it. */
  availability: 'available' | 'unavailable' | undefined
  /** Simulated devices besides the phone (the contact's WhatsApp Web or desktop), by device number. */
  readonly companions = new Map<number, SignalDevice>()
  /** The keys each linked device registered with, by device number. */
  readonly registeredKeys = new Map<number, RegisteredKeys>()
  /** The privacy setting "who can add me to groups": `nobody` makes adds fail with 403 (an invitation instead). */
  groupAdd: 'all' | 'nobody' = 'all'
  /** Devices just linked, until their first login, and whether each asked for the full history (`requireFullSync`). */
  readonly awaitingHistory = new Map<number, { fullSync: boolean }>()
  /** The name the account shows others (`notify` on its messages), if set. */
  pushName: string | undefined

  constructor (phone: string, registered: boolean) {
    this.phone = phone
    this.registered = registered
    this.lid = lidOf(phone)
  }

  /** The simulated device with this number: the phone, or a companion. */
  simulatedDevice (device: number): SignalDevice | undefined {
    return device === PHONE_DEVICE ? this.phoneDevice : this.companions.get(device)
  }

  /** Every simulated device of the account, the phone first. */
  simulatedDevices (): { device: number, signal: SignalDevice }[] {
    return [{ device: PHONE_DEVICE, signal: this.phoneDevice }, ...[...this.companions].map(([device, signal]) => ({ device, signal }))]
  }

  /** Adds a simulated companion device; it counts among the linked devices, as WhatsApp numbers them. */
  addCompanion (): number {
    this.linkedDevices++
    const device = this.linkedDevices + 1
    this.companions.set(device, new SignalDevice())
    return device
  }
}

/** Every account the simulator knows, by phone number and by LID. Unknown numbers are on WhatsApp unless listed as not. */
export class Directory {
  readonly #byPhone = new Map<string, Account>()
  readonly #byLid = new Map<string, Account>()
  readonly #notOnWhatsApp: Set<string>

  constructor (notOnWhatsApp: Iterable<string> = []) {
    this.#notOnWhatsApp = new Set(notOnWhatsApp)
  }

  account (phone: string): Account {
    let account = this.#byPhone.get(phone)
    if (!account) {
      account = new Account(phone, !this.#notOnWhatsApp.has(phone))
      this.#byPhone.set(phone, account)
      this.#byLid.set(account.lid, account)
    }
    return account
  }

  /** The account a JID names, by phone (`…@s.whatsapp.net`) or LID (`…@lid`), and the device. */
  resolve (jid: string): { account: Account, device: number } | undefined {
    const decoded = jidDecode(jid)
    if (!decoded?.user) return undefined
    const device = decoded.device ?? 0
    if (decoded.server === 'lid') {
      const account = this.#byLid.get(decoded.user)
      return account ? { account, device } : undefined
    }
    if (decoded.server !== 's.whatsapp.net') return undefined
    return { account: this.account(decoded.user), device }
  }

  accounts (): Account[] {
    return [...this.#byPhone.values()]
  }
}
