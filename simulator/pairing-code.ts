import { randomBytes } from 'node:crypto'
import { aesDecryptCTR, aesDecryptGCM, aesEncryptCTR, Curve, derivePairingCodeKey, hkdf } from '@whiskeysockets/baileys'

/** Layout of a code-wrapped ephemeral key: salt ‖ CTR iv ‖ encrypted 32-byte key. */
const WRAP_SALT_BYTES = 32
const WRAP_IV_BYTES = 16
/** Layout of the companion's key bundle: HKDF salt ‖ GCM iv ‖ ciphertext with tag. */
const BUNDLE_SALT_BYTES = 32
const BUNDLE_IV_BYTES = 12
const KEY_BYTES = 32
const BUNDLE_KEY_INFO = 'link_code_pairing_key_bundle_encryption_key'
const ADV_SECRET_INFO = 'adv_secret'

type KeyPair = { private: Buffer, public: Buffer }

async function wrap (code: string, key: Buffer): Promise<Buffer> {
  const salt = randomBytes(WRAP_SALT_BYTES)
  const iv = randomBytes(WRAP_IV_BYTES)
  return Buffer.concat([salt, iv, aesEncryptCTR(key, await derivePairingCodeKey(code, salt), iv)])
}

async function unwrap (code: string, wrapped: Buffer): Promise<Buffer> {
  const salt = wrapped.subarray(0, WRAP_SALT_BYTES)
  const iv = wrapped.subarray(WRAP_SALT_BYTES, WRAP_SALT_BYTES + WRAP_IV_BYTES)
  return Buffer.from(aesDecryptCTR(wrapped.subarray(WRAP_SALT_BYTES + WRAP_IV_BYTES), await derivePairingCodeKey(code, salt), iv))
}

/**
 * The phone's side of linking by an 8-character code (Baileys' `requestPairingCode`). The companion
 * sent its ephemeral key wrapped with the code; the phone, once its user typed the code, answers with
 * its own wrapped ephemeral key, and then opens the companion's key bundle to derive the ADV secret
 * that authenticates `pair-success`. A wrong code only shows when the bundle fails to decrypt.
 */
export class PrimaryPairing {
  readonly #ephemeral: KeyPair = Curve.generateKeyPair() as KeyPair
  readonly #identity: KeyPair
  #companionEphemeral: Buffer | undefined

  /** `identity`: the phone's account key, which also signs the linked device. */
  constructor (identity: KeyPair) {
    this.#identity = identity
  }

  /** The user typed `code`: returns the phone's wrapped ephemeral key for the `primary_hello` notification. */
  async enterCode (code: string, wrappedCompanionEphemeral: Buffer): Promise<Buffer> {
    this.#companionEphemeral = await unwrap(code, wrappedCompanionEphemeral)
    return wrap(code, this.#ephemeral.public)
  }

  /**
   * `companion_finish`: opens the key bundle and derives the ADV secret. Throws when the code was
   * wrong (the GCM tag does not match) or the bundle names other identities.
   */
  finish (wrappedKeyBundle: Buffer, companionIdentity: Buffer): Buffer {
    if (!this.#companionEphemeral) throw new Error('no code was entered')
    const ephemeralShared = Buffer.from(Curve.sharedKey(this.#ephemeral.private, this.#companionEphemeral))
    const salt = wrappedKeyBundle.subarray(0, BUNDLE_SALT_BYTES)
    const iv = wrappedKeyBundle.subarray(BUNDLE_SALT_BYTES, BUNDLE_SALT_BYTES + BUNDLE_IV_BYTES)
    const bundleKey = Buffer.from(hkdf(ephemeralShared, KEY_BYTES, { salt, info: BUNDLE_KEY_INFO }))
    const bundle = aesDecryptGCM(wrappedKeyBundle.subarray(BUNDLE_SALT_BYTES + BUNDLE_IV_BYTES), bundleKey, iv, Buffer.alloc(0))
    const named = { companion: bundle.subarray(0, KEY_BYTES), primary: bundle.subarray(KEY_BYTES, 2 * KEY_BYTES) }
    if (bundle.length !== 3 * KEY_BYTES || !named.companion.equals(companionIdentity) || !named.primary.equals(this.#identity.public)) {
      throw new Error('the key bundle names other identities')
    }
    const identityShared = Buffer.from(Curve.sharedKey(this.#identity.private, companionIdentity))
    const random = bundle.subarray(2 * KEY_BYTES)
    return Buffer.from(hkdf(Buffer.concat([ephemeralShared, identityShared, random]), KEY_BYTES, { info: ADV_SECRET_INFO }))
  }

  get identityPublic (): Buffer {
    return this.#identity.public
  }
}
