import {
  curve, keyhelper, ProtocolAddress, SessionBuilder, SessionCipher, type KeyPair, type PreKeyBundle, type SessionRecord, type SignalStorage
} from 'libsignal'
import type { BinaryNode } from '@whiskeysockets/baileys'
import { SenderKeyRing } from './sender-keys.ts'
import { generateSigningKeyPair } from './xeddsa.ts'

/** Signal's key type byte, as WhatsApp sends it in a pre-key bundle. */
const KEY_TYPE_DJB = Buffer.from([5])
const SIGNED_PRE_KEY_ID = 1
/** WhatsApp encodes key ids in 3 bytes and registration ids in 4. */
const KEY_ID_BYTES = 3
const REGISTRATION_ID_BYTES = 4

function uintBytes (value: number, length: number): Buffer {
  const bytes = Buffer.alloc(length)
  bytes.writeUIntBE(value, 0, length)
  return bytes
}

/** Public keys travel without the 0x05 type prefix that libsignal keeps. */
function wireKey (publicKey: Buffer): Buffer {
  return publicKey.length === 33 ? publicKey.subarray(1) : publicKey
}

export type CiphertextType = 'pkmsg' | 'msg'

/** What libsignal's keyhelper makes, signed with the fast identity key: the key pair and its signature by the identity. */
function signedPreKey (identity: ReturnType<typeof generateSigningKeyPair>): { keyId: number, keyPair: KeyPair, signature: Buffer } {
  const keyPair = curve.generateKeyPair()
  return { keyId: SIGNED_PRE_KEY_ID, keyPair, signature: identity.sign(keyPair.pubKey) }
}

/**
 * The Signal identity of one simulated device (a contact's phone): the keys WhatsApp's server
 * hands out in pre-key bundles, and the sessions that clients open with it. Everything is in memory.
 */
export class SignalDevice {
  // Signed natively (xeddsa.ts): a group of hundreds of simulated devices is made in milliseconds.
  readonly #identity = generateSigningKeyPair()
  readonly #registrationId = keyhelper.generateRegistrationId()
  readonly #signedPreKey = signedPreKey(this.#identity)
  readonly #preKeys = new Map<number, KeyPair>()
  readonly #sessions = new Map<string, SessionRecord>()
  #nextPreKeyId = 1
  /** The group sender keys this device received (SKDMs), by group and sending device. */
  readonly senderKeys = new SenderKeyRing()

  readonly #storage: SignalStorage = {
    loadSession: async (address) => this.#sessions.get(address),
    storeSession: async (address, record) => { this.#sessions.set(address, record) },
    // Trust on first use, as WhatsApp clients do.
    isTrustedIdentity: () => true,
    loadPreKey: async (id) => this.#preKeys.get(id),
    removePreKey: async (id) => { this.#preKeys.delete(id) },
    loadSignedPreKey: async (id) => id === this.#signedPreKey.keyId ? this.#signedPreKey.keyPair : undefined,
    getOurRegistrationId: () => this.#registrationId,
    getOurIdentity: (): KeyPair => ({ pubKey: this.#identity.pubKey, privKey: this.#identity.privKey })
  }

  /** A pre-key bundle for `jid`, as the server answers `iq xmlns=encrypt`; each bundle uses up a one-time pre-key. */
  bundle (jid: string): BinaryNode {
    const preKey = keyhelper.generatePreKey(this.#nextPreKeyId++)
    this.#preKeys.set(preKey.keyId, preKey.keyPair)
    const signed = this.#signedPreKey
    return {
      tag: 'user',
      attrs: { jid },
      content: [
        { tag: 'registration', attrs: {}, content: uintBytes(this.#registrationId, REGISTRATION_ID_BYTES) },
        { tag: 'type', attrs: {}, content: KEY_TYPE_DJB },
        { tag: 'identity', attrs: {}, content: wireKey(this.#identity.pubKey) },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: uintBytes(signed.keyId, KEY_ID_BYTES) },
            { tag: 'value', attrs: {}, content: wireKey(signed.keyPair.pubKey) },
            { tag: 'signature', attrs: {}, content: signed.signature }
          ]
        },
        {
          tag: 'key',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: uintBytes(preKey.keyId, KEY_ID_BYTES) },
            { tag: 'value', attrs: {}, content: wireKey(preKey.keyPair.pubKey) }
          ]
        }
      ]
    }
  }

  /** Decrypts what the device at `peer` (`user.device`) sent us. */
  async decrypt (peer: { user: string, device: number }, type: CiphertextType, ciphertext: Buffer): Promise<Buffer> {
    const cipher = new SessionCipher(this.#storage, new ProtocolAddress(peer.user, peer.device))
    return type === 'pkmsg' ? cipher.decryptPreKeyWhisperMessage(ciphertext) : cipher.decryptWhisperMessage(ciphertext)
  }

  /** Whether `peer` has opened a session with us (only then can we write to it encrypted). */
  hasSession (peer: { user: string, device: number }): boolean {
    return this.#sessions.get(new ProtocolAddress(peer.user, peer.device).toString())?.haveOpenSession() ?? false
  }

  /** Opens a session to `peer` from its keys (a bundle without a one-time pre-key): what the device then writes goes as pkmsg. */
  async openSession (peer: { user: string, device: number }, bundle: PreKeyBundle): Promise<void> {
    await new SessionBuilder(this.#storage, new ProtocolAddress(peer.user, peer.device)).initOutgoing(bundle)
  }

  async encrypt (peer: { user: string, device: number }, plaintext: Buffer): Promise<{ type: CiphertextType, ciphertext: Buffer }> {
    const cipher = new SessionCipher(this.#storage, new ProtocolAddress(peer.user, peer.device))
    const { type, body } = await cipher.encrypt(plaintext)
    return { type: type === 3 ? 'pkmsg' : 'msg', ciphertext: Buffer.from(body, 'binary') }
  }
}
