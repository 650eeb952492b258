import { randomBytes } from 'node:crypto'
import {
  Curve, getBinaryNodeChildBuffer, hmacSign, jidDecode, proto, S_WHATSAPP_NET, WA_ADV_ACCOUNT_SIG_PREFIX, type BinaryNode
} from '@whiskeysockets/baileys'
import type { Directory, RegisteredKeys } from './accounts.ts'
import type { Connection } from './connections.ts'
import type { Recorder } from './log.ts'
import { PrimaryPairing } from './pairing-code.ts'
import { iqBadRequest, iqResult, stanzaId, unixNow, unixSeconds } from './stanzas.ts'

/** WhatsApp offers this many QR references before the client gives up with 408. */
const DEFAULT_QR_REFS = 6
/** Time for the client to answer pair-success before the server asks it to restart. */
const RESTART_AFTER_PAIRING_MS = 200
/** How long entering a pairing code waits for the companion to finish the exchange. */
const PAIRING_CODE_EXCHANGE_MS = 10_000

export type PairingCodeOutcome =
  | { linked: true, device: string }
  | { linked: false, reason: 'no-request' | 'wrong-code' | 'timeout' }

/** A companion that asked to be linked by code (`companion_hello`), until the phone's user enters it. */
interface CodeRequest {
  connection: Connection
  phone: string
  wrappedCompanionEphemeral: Buffer
  pairing?: PrimaryPairing
  settle?: (outcome: PairingCodeOutcome) => void
}

/**
 * Linking new devices to accounts: unlinked connections are offered QR references and wait for a
 * phone to scan one, or ask for a pairing code that the phone's user enters; either way the phone
 * then signs the new device (pair-success) and the client reconnects to log in.
 */
export class Linking {
  /** Unlinked connections waiting for a scan, by the QR references they were offered. */
  readonly #waitingForScan = new Map<string, Connection>()
  /** Pairing-code requests by the reference the server gave them. */
  readonly #codeRequests = new Map<string, CodeRequest>()
  readonly #directory: Directory
  readonly #record: Recorder
  readonly #options: { qrRefs?: number }
  /** The keys each unlinked connection registers with (its handshake's pairing data), until it is linked. */
  readonly #registrations = new WeakMap<Connection, RegisteredKeys>()
  /** Whether each unlinked connection's companion asked for the full history (its companion props' `requireFullSync`). */
  readonly #fullSync = new WeakMap<Connection, boolean>()

  constructor (directory: Directory, record: Recorder, options: { qrRefs?: number }) {
    this.#directory = directory
    this.#record = record
    this.#options = options
  }

  /** An unlinked client connected: it gets QR references to show, one after the other. */
  offerQr (connection: Connection, registration?: proto.ClientPayload.IDevicePairingRegistrationData | null): void {
    const keys = registration ? registeredKeys(registration) : undefined
    if (keys) this.#registrations.set(connection, keys)
    this.#fullSync.set(connection, requiresFullSync(registration))
    const refs = Array.from({ length: this.#options.qrRefs ?? DEFAULT_QR_REFS }, () => `2@${randomBytes(32).toString('base64')}`)
    for (const ref of refs) this.#waitingForScan.set(ref, connection)
    connection.send({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: stanzaId(), xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref) })) }]
    })
    this.#record('pair-device', refs[0])
  }

  /** Connections showing a QR that was not scanned yet. */
  waitingForScan (): number {
    return new Set(this.#waitingForScan.values()).size
  }

  /**
   * The phone `phoneNumber` scans `qr`: it signs a device identity for the client's identity key
   * with its account key, authenticated with the QR's ADV secret, then asks the client to restart (515).
   */
  scan (qr: string, phoneNumber: string): boolean {
    const [ref, , identityKeyB64, advSecretB64] = qr.replace(/^https:\/\/wa\.me\/settings\/linked_devices#/, '').split(',')
    const waiting = this.#waitingForScan.get(ref)
    if (!waiting || !identityKeyB64 || !advSecretB64) return false
    this.#pairSuccess(waiting, phoneNumber, Buffer.from(identityKeyB64, 'base64'), Buffer.from(advSecretB64, 'base64'))
    return true
  }

  /** The companion's side of linking by code: `companion_hello` (it shows a code) and `companion_finish`. */
  codeExchange (connection: Connection, iq: BinaryNode, registration: BinaryNode): void {
    const bytes = (tag: string) => {
      const content = getBinaryNodeChildBuffer(registration, tag)
      return content ? Buffer.from(content) : undefined
    }
    const result = iqResult(iq)
    if (registration.attrs.stage === 'companion_hello') {
      const wrapped = bytes('link_code_pairing_wrapped_companion_ephemeral_pub')
      const phone = jidDecode(registration.attrs.jid ?? '')?.user
      if (!wrapped || !phone) return connection.send(iqBadRequest(iq))
      const ref = randomBytes(16).toString('hex')
      this.#codeRequests.set(ref, { connection, phone, wrappedCompanionEphemeral: wrapped })
      this.#record('pair-device', `code requested for ${phone}`)
      const pairingRef = { tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }
      return connection.send({ ...result, content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [pairingRef] }] })
    }
    if (registration.attrs.stage !== 'companion_finish') return connection.send(result)
    const ref = bytes('link_code_pairing_ref')?.toString() ?? ''
    const request = this.#codeRequests.get(ref)
    const bundle = bytes('link_code_pairing_wrapped_key_bundle')
    const identity = bytes('companion_identity_public')
    let advSecret: Buffer | undefined
    try {
      if (request?.pairing && bundle && identity) advSecret = request.pairing.finish(bundle, identity)
    } catch (err) {
      this.#record('error', `pairing code for ${request?.phone}: ${(err as Error).message}`)
    }
    if (!request || !advSecret || !identity) {
      request?.settle?.({ linked: false, reason: 'wrong-code' })
      return connection.send(iqBadRequest(iq))
    }
    // The client marks itself registered on this reply, which must come before the restart.
    connection.send(result)
    this.#codeRequests.delete(ref)
    request.settle?.({ linked: true, device: this.#pairSuccess(connection, request.phone, identity, advSecret) })
  }

  /**
   * The phone's user enters the code a companion shows for linking to `phoneNumber`. Resolves once
   * the companion finished the exchange: linked, or a wrong code (the companion may be given another try).
   */
  async enterPairingCode (phoneNumber: string, code: string): Promise<PairingCodeOutcome> {
    const entry = [...this.#codeRequests.entries()].find(([, request]) => request.phone === phoneNumber)
    if (!entry) return { linked: false, reason: 'no-request' }
    const [ref, request] = entry
    request.pairing = new PrimaryPairing(this.#directory.account(phoneNumber).accountKey)
    const wrappedPrimaryEphemeral = await request.pairing.enterCode(code.toUpperCase(), request.wrappedCompanionEphemeral)
    const outcome = new Promise<PairingCodeOutcome>((resolve) => {
      const timer = setTimeout(() => resolve({ linked: false, reason: 'timeout' }), PAIRING_CODE_EXCHANGE_MS)
      request.settle = (result) => { clearTimeout(timer); resolve(result) }
    })
    request.connection.send({
      tag: 'notification',
      attrs: { from: S_WHATSAPP_NET, type: 'link_code_companion_reg', id: stanzaId(), t: unixNow() },
      content: [{
        tag: 'link_code_companion_reg',
        attrs: { stage: 'primary_hello' },
        content: [
          { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: wrappedPrimaryEphemeral },
          { tag: 'primary_identity_pub', attrs: {}, content: request.pairing.identityPublic },
          { tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }
        ]
      }]
    })
    return outcome
  }

  /** The connection closed: its QR references and pairing-code requests are void. */
  forget (connection: Connection): void {
    this.#stopWaiting(connection)
    for (const [ref, request] of this.#codeRequests) if (request.connection === connection) this.#codeRequests.delete(ref)
  }

  #stopWaiting (connection: Connection): void {
    for (const [ref, waiting] of this.#waitingForScan) if (waiting === connection) this.#waitingForScan.delete(ref)
  }

  /**
   * The phone links the waiting connection: it signs a device identity for the client's identity
   * key with its account key, authenticated with the ADV secret (from the QR, or derived in the
   * code exchange), then asks the client to restart (515). Returns the new device (`<phone>:<n>`).
   */
  #pairSuccess (waiting: Connection, phoneNumber: string, identityKey: Buffer, advSecret: Buffer): string {
    this.#stopWaiting(waiting)
    const account = this.#directory.account(phoneNumber)
    account.linkedDevices++
    const keyIndex = account.linkedDevices
    const rawId = randomBytes(4).readUInt32BE(0)
    const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId, timestamp: unixSeconds(), keyIndex }).finish()
    const accountSignature = Curve.sign(account.accountKey.private, Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, deviceDetails, identityKey]))
    const details = proto.ADVSignedDeviceIdentity.encode({
      details: deviceDetails, accountSignatureKey: account.accountKey.public, accountSignature
    }).finish()
    const hmac = hmacSign(details, advSecret)
    const device = keyIndex + 1
    account.knownDevices.add(device)
    const keys = this.#registrations.get(waiting)
    if (keys) account.registeredKeys.set(device, keys)
    account.awaitingHistory.set(device, { fullSync: this.#fullSync.get(waiting) ?? false })
    waiting.send({
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: stanzaId() },
      content: [{
        tag: 'pair-success',
        attrs: {},
        content: [
          { tag: 'device-identity', attrs: {}, content: proto.ADVSignedDeviceIdentityHMAC.encode({ details, hmac }).finish() },
          { tag: 'platform', attrs: { name: 'smba' } },
          { tag: 'device', attrs: { jid: `${phoneNumber}:${device}@s.whatsapp.net`, lid: `${account.lid}:${device}@lid` } }
        ]
      }]
    })
    this.#record('pair-success', `${phoneNumber}:${device}`)
    // Linked: the server asks for a new connection, on which the device logs in.
    setTimeout(() => {
      waiting.send({ tag: 'stream:error', attrs: { code: '515' } })
      waiting.socket.close()
    }, RESTART_AFTER_PAIRING_MS)
    return `${phoneNumber}:${device}`
  }
}

/** The companion asked for the whole history, not only the recent window (Baileys' `syncFullHistory`). */
function requiresFullSync (registration: proto.ClientPayload.IDevicePairingRegistrationData | null | undefined): boolean {
  if (!registration?.deviceProps?.length) return false
  try {
    return Boolean(proto.DeviceProps.decode(registration.deviceProps).requireFullSync)
  } catch {
    return false
  }
}

/** Signal keys travel without the 0x05 type prefix that libsignal expects. */
const withKeyType = (key: Uint8Array) => Buffer.concat([Buffer.from([5]), key])

/** The keys in a registering client's pairing data (Baileys' `generateRegistrationNode`), if complete. */
function registeredKeys (data: proto.ClientPayload.IDevicePairingRegistrationData): RegisteredKeys | undefined {
  const { eRegid, eIdent, eSkeyId, eSkeyVal, eSkeySig } = data
  if (eRegid?.length !== 4 || eIdent?.length !== 32 || eSkeyId?.length !== 3 || eSkeyVal?.length !== 32 || eSkeySig?.length !== 64) {
    return undefined
  }
  return {
    registrationId: Buffer.from(eRegid).readUInt32BE(0),
    identityKey: withKeyType(eIdent),
    signedPreKey: { keyId: Buffer.from(eSkeyId).readUIntBE(0, 3), publicKey: withKeyType(eSkeyVal), signature: Buffer.from(eSkeySig) }
  }
}
