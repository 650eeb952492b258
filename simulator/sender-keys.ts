import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, randomInt } from 'node:crypto'
import { curve } from 'libsignal'
import { proto } from '@whiskeysockets/baileys'
import { generateSigningKeyPair } from './xeddsa.ts'

/**
 * Signal's sender keys, as WhatsApp groups use them (Baileys: src/Signal/Group/*): a sender
 * distributes {key id, iteration, chain key, signing key} once per device (the SKDM, inside a
 * 1:1-encrypted message), then encrypts each group message once (`skmsg`). Written from the
 * protocol, not from Baileys' classes, so that the simulator checks what Baileys produces.
 */

/** Both nibbles of the first byte carry the protocol version, 3. */
const VERSION_BYTE = 0x33
const SIGNATURE_BYTES = 64
/** A receiver steps its chain at most this far ahead of what it has seen (libsignal's limit). */
const MAX_FUTURE_ITERATIONS = 2000
const MESSAGE_KEY_SEED = Buffer.from([0x01])
const CHAIN_KEY_SEED = Buffer.from([0x02])
const WHISPER_GROUP_INFO = 'WhisperGroup'

export interface SenderKeyDistribution {
  keyId: number
  iteration: number
  chainKey: Buffer
  /** The sender's signing public key, 33 bytes with the 0x05 type prefix. */
  signingKey: Buffer
}

export interface SenderKeyMessage {
  keyId: number
  iteration: number
  ciphertext: Buffer
  /** The bytes the signature covers (version byte and protobuf), and the signature. */
  signed: Buffer
  signature: Buffer
}

const hmac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest()

/** The AES-256-CBC IV and key of one iteration: HKDF-SHA256 of HMAC(chainKey, 0x01). */
function messageKeysOf (chainKey: Buffer): { iv: Buffer, cipherKey: Buffer } {
  const okm = Buffer.from(hkdfSync('sha256', hmac(chainKey, MESSAGE_KEY_SEED), Buffer.alloc(32), WHISPER_GROUP_INFO, 48))
  return { iv: okm.subarray(0, 16), cipherKey: okm.subarray(16, 48) }
}

const nextChainKey = (chainKey: Buffer) => hmac(chainKey, CHAIN_KEY_SEED)

export function parseDistribution (bytes: Uint8Array): SenderKeyDistribution {
  if (bytes[0] !== VERSION_BYTE) throw new Error(`sender key distribution of version ${bytes[0]}`)
  const decoded = proto.SenderKeyDistributionMessage.decode(bytes.subarray(1))
  if (!decoded.chainKey || decoded.chainKey.length !== 32 || !decoded.signingKey || decoded.signingKey.length !== 33) {
    throw new Error('sender key distribution without a 32-byte chain key and a 33-byte signing key')
  }
  return {
    keyId: decoded.id ?? 0,
    iteration: decoded.iteration ?? 0,
    chainKey: Buffer.from(decoded.chainKey),
    signingKey: Buffer.from(decoded.signingKey)
  }
}

export function serializeDistribution (distribution: SenderKeyDistribution): Buffer {
  const { keyId: id, iteration, chainKey, signingKey } = distribution
  const body = proto.SenderKeyDistributionMessage.encode({ id, iteration, chainKey, signingKey }).finish()
  return Buffer.concat([Buffer.from([VERSION_BYTE]), body])
}

export function parseSenderKeyMessage (bytes: Uint8Array): SenderKeyMessage {
  if (bytes[0] !== VERSION_BYTE) throw new Error(`sender key message of version ${bytes[0]}`)
  if (bytes.length <= SIGNATURE_BYTES + 1) throw new Error('sender key message too short')
  const signed = Buffer.from(bytes.subarray(0, bytes.length - SIGNATURE_BYTES))
  const decoded = proto.SenderKeyMessage.decode(signed.subarray(1))
  if (!decoded.ciphertext) throw new Error('sender key message without ciphertext')
  return {
    keyId: decoded.id ?? 0,
    iteration: decoded.iteration ?? 0,
    ciphertext: Buffer.from(decoded.ciphertext),
    signed,
    signature: Buffer.from(bytes.subarray(bytes.length - SIGNATURE_BYTES))
  }
}

/**
 * Whether the message is signed by the signing key. XEdDSA in pure JavaScript costs milliseconds,
 * and every member device of a group checks the same message against the same key: the answer is
 * kept per (message, key), so a fan-out to hundreds of devices verifies once.
 */
export class SignatureChecks {
  readonly #answers = new Map<string, boolean>()

  verified (message: SenderKeyMessage, signingKey: Buffer): boolean {
    const key = createHash('sha256').update(message.signed).update(message.signature).update(signingKey).digest('hex')
    let answer = this.#answers.get(key)
    if (answer === undefined) {
      answer = curve.verifySignature(signingKey, message.signed, message.signature)
      this.#answers.set(key, answer)
    }
    return answer
  }
}

/** A sender key as a receiving device holds it since it processed the sender's distribution message. */
export class HeldSenderKey {
  readonly keyId: number
  readonly signingKey: Buffer
  #iteration: number
  #chainKey: Buffer
  /** Chain keys of iterations skipped on the way to a later one: messages that may still arrive. */
  readonly #skipped = new Map<number, Buffer>()

  constructor (distribution: SenderKeyDistribution) {
    this.keyId = distribution.keyId
    this.signingKey = distribution.signingKey
    this.#iteration = distribution.iteration
    this.#chainKey = distribution.chainKey
  }

  /** Whether a distribution message carries this same key (a sender sending it again). */
  matches (distribution: SenderKeyDistribution): boolean {
    return distribution.keyId === this.keyId && distribution.signingKey.equals(this.signingKey)
  }

  /** Opens a message: its signature checked, the chain stepped to its iteration, AES-256-CBC. */
  decrypt (message: SenderKeyMessage, checks: SignatureChecks): Buffer {
    if (message.keyId !== this.keyId) throw new Error(`no sender key ${message.keyId} (held: ${this.keyId})`)
    if (!checks.verified(message, this.signingKey)) throw new Error('invalid sender key signature')
    const { iv, cipherKey } = messageKeysOf(this.#chainKeyFor(message.iteration))
    const decipher = createDecipheriv('aes-256-cbc', cipherKey, iv)
    return Buffer.concat([decipher.update(message.ciphertext), decipher.final()])
  }

  #chainKeyFor (iteration: number): Buffer {
    if (iteration < this.#iteration) {
      const skipped = this.#skipped.get(iteration)
      if (!skipped) throw new Error(`old counter: at ${this.#iteration}, got ${iteration}`)
      this.#skipped.delete(iteration)
      return skipped
    }
    if (iteration - this.#iteration > MAX_FUTURE_ITERATIONS) throw new Error(`over ${MAX_FUTURE_ITERATIONS} messages into the future`)
    while (this.#iteration < iteration) {
      this.#skipped.set(this.#iteration, this.#chainKey)
      this.#chainKey = nextChainKey(this.#chainKey)
      this.#iteration++
    }
    const current = this.#chainKey
    this.#chainKey = nextChainKey(current)
    this.#iteration++
    return current
  }
}

/** The sender keys one device holds: by group and sending device. */
export class SenderKeyRing {
  readonly #held = new Map<string, HeldSenderKey>()

  get (group: string, sender: string): HeldSenderKey | undefined {
    return this.#held.get(`${group}::${sender}`)
  }

  /** Processes a distribution message; false when the device already held that same key. */
  store (group: string, sender: string, distribution: SenderKeyDistribution): boolean {
    const held = this.get(group, sender)
    if (held?.matches(distribution)) return false
    this.#held.set(`${group}::${sender}`, new HeldSenderKey(distribution))
    return true
  }

  /** Every (group, sender) pair this device holds a key for. */
  list (): { group: string, sender: string, keyId: number }[] {
    return [...this.#held.entries()].map(([name, held]) => {
      const [group, sender] = name.split('::')
      return { group, sender, keyId: held.keyId }
    })
  }
}

/** A sender key a simulated device sends group messages with. */
export class OwnSenderKey {
  readonly keyId = randomInt(1, 2 ** 31)
  readonly #signing = generateSigningKeyPair()
  #iteration = 0
  #chainKey = randomBytes(32)

  /** The distribution message for a device that does not hold the key yet: the chain from where it is now. */
  distribution (): Buffer {
    const { keyId } = this
    return serializeDistribution({ keyId, iteration: this.#iteration, chainKey: this.#chainKey, signingKey: this.#signing.pubKey })
  }

  /** One group message: encrypted with the current iteration's keys and signed; the chain moves on. */
  encrypt (plaintext: Buffer): Buffer {
    const { iv, cipherKey } = messageKeysOf(this.#chainKey)
    const cipher = createCipheriv('aes-256-cbc', cipherKey, iv)
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
    const body = proto.SenderKeyMessage.encode({ id: this.keyId, iteration: this.#iteration, ciphertext }).finish()
    const signed = Buffer.concat([Buffer.from([VERSION_BYTE]), body])
    this.#chainKey = nextChainKey(this.#chainKey)
    this.#iteration++
    return Buffer.concat([signed, this.#signing.sign(signed)])
  }
}
