import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'

/**
 * Curve25519 key pairs that sign fast. libsignal signs with XEdDSA in pure JavaScript
 * (curve25519-js, about 10 ms a signature), which made a 512-device group take seconds to build.
 * Here the pair comes from an Ed25519 key: its clamped secret scalar is the X25519 private key,
 * so Diffie-Hellman works as usual, and Node's native Ed25519 signature, with the Edwards public
 * key's sign bit carried in the signature's top bit (the convention curve25519-js verifies), is
 * a valid XEdDSA signature for the X25519 public key.
 */

const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const PKCS8_SEED_OFFSET = 16
const SPKI_KEY_OFFSET = 12
/** Signal's type byte before a Curve25519 public key. */
const KEY_TYPE = Buffer.from([5])

export interface SigningKeyPair {
  /** The X25519 public key, 0x05-prefixed as libsignal keeps it. */
  pubKey: Buffer
  /** The X25519 private key (the clamped Ed25519 secret scalar). */
  privKey: Buffer
  /** An XEdDSA signature of the message. */
  sign: (message: Buffer) => Buffer
}

export function generateSigningKeyPair (): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_SEED_OFFSET)
  const edwardsPublic = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_KEY_OFFSET)
  // Ed25519's secret scalar: the first half of SHA-512(seed), clamped exactly as X25519 clamps.
  const scalar = Buffer.from(createHash('sha512').update(seed).digest().subarray(0, 32))
  scalar[0] &= 248
  scalar[31] &= 127
  scalar[31] |= 64
  const x25519 = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, scalar]), format: 'der', type: 'pkcs8' })
  const montgomeryPublic = createPublicKey(x25519).export({ format: 'der', type: 'spki' }).subarray(SPKI_KEY_OFFSET)
  const signBit = edwardsPublic[31] & 0x80
  return {
    pubKey: Buffer.concat([KEY_TYPE, montgomeryPublic]),
    privKey: scalar,
    sign: (message) => {
      const signature = sign(null, message, privateKey)
      signature[63] |= signBit
      return signature
    }
  }
}
