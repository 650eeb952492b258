import {
  aesDecryptGCM, aesEncryptGCM, Curve, hkdf, NOISE_MODE, NOISE_WA_HEADER, proto, sha256
} from '@whiskeysockets/baileys'

type KeyPair = { private: Buffer, public: Buffer }

const IV_LENGTH = 12
const EMPTY = Buffer.alloc(0)
/** The issuer serial Baileys requires of the intermediate certificate (WA_CERT_DETAILS.SERIAL). */
const ROOT_SERIAL = 0
const INTERMEDIATE_SERIAL = 1
const LEAF_SERIAL = 2

function iv (counter: number): Uint8Array {
  const buffer = new Uint8Array(IV_LENGTH)
  new DataView(buffer.buffer).setUint32(8, counter)
  return buffer
}

/**
 * The simulator's trust anchor: a root key (what a process running Baileys against the simulator
 * puts into WA_CERT_DETAILS.PUBLIC_KEY), an intermediate signed by it, and a leaf for the server's
 * static Noise key signed by the intermediate, as Baileys verifies them.
 */
export class SimulatorIdentity {
  readonly root: KeyPair
  readonly serverStatic: KeyPair
  readonly certChain: Uint8Array

  constructor (root: KeyPair = Curve.generateKeyPair() as KeyPair) {
    this.root = root
    this.serverStatic = Curve.generateKeyPair() as KeyPair
    const intermediate = Curve.generateKeyPair() as KeyPair
    const Details = proto.CertChain.NoiseCertificate.Details
    const intermediateDetails = Details.encode({
      serial: INTERMEDIATE_SERIAL,
      issuerSerial: ROOT_SERIAL,
      key: intermediate.public
    }).finish()
    const leafDetails = Details.encode({ serial: LEAF_SERIAL, issuerSerial: INTERMEDIATE_SERIAL, key: this.serverStatic.public }).finish()
    this.certChain = proto.CertChain.encode({
      intermediate: { details: intermediateDetails, signature: Buffer.from(Curve.sign(root.private, intermediateDetails)) },
      leaf: { details: leafDetails, signature: Buffer.from(Curve.sign(intermediate.private, leafDetails)) }
    }).finish()
  }

  /** Hex of the root public key, for `WA_CERT_PUBLIC_KEY`. */
  get publicKeyHex (): string {
    return Buffer.from(this.root.public).toString('hex')
  }
}

/**
 * The server half of WhatsApp's Noise XX handshake, mirroring Baileys' `makeNoiseHandler`
 * operation by operation (same hash, salt, counters), then the AES-GCM transport with the two
 * keys swapped.
 */
export class NoiseServer {
  #hash: Buffer
  #salt: Buffer
  #key: Buffer
  #counter = 0
  #transport: { encKey: Buffer, decKey: Buffer, read: number, write: number } | undefined
  #ephemeral: KeyPair | undefined
  readonly #identity: SimulatorIdentity

  constructor (identity: SimulatorIdentity) {
    this.#identity = identity
    const mode = Buffer.from(NOISE_MODE)
    this.#hash = mode.byteLength === 32 ? mode : Buffer.from(sha256(mode))
    this.#salt = this.#hash
    this.#key = this.#hash
    this.#authenticate(NOISE_WA_HEADER)
  }

  get established (): boolean {
    return this.#transport !== undefined
  }

  #authenticate (data: Uint8Array): void {
    if (!this.#transport) this.#hash = Buffer.from(sha256(Buffer.concat([this.#hash, data])))
  }

  #encrypt (plaintext: Uint8Array): Buffer {
    const result = Buffer.from(aesEncryptGCM(plaintext, this.#key, iv(this.#counter++), this.#hash))
    this.#authenticate(result)
    return result
  }

  #decrypt (ciphertext: Uint8Array): Buffer {
    const result = Buffer.from(aesDecryptGCM(ciphertext, this.#key, iv(this.#counter++), this.#hash))
    this.#authenticate(ciphertext)
    return result
  }

  #mixIntoKey (data: Uint8Array): void {
    const key = Buffer.from(hkdf(Buffer.from(data), 64, { salt: this.#salt, info: '' }))
    this.#salt = key.subarray(0, 32)
    this.#key = key.subarray(32)
    this.#counter = 0
  }

  /** ClientHello in, ServerHello out (ephemeral, encrypted static key, encrypted certificate chain). */
  serverHello (clientEphemeral: Uint8Array): Uint8Array {
    this.#authenticate(clientEphemeral)
    const ephemeral = Curve.generateKeyPair() as KeyPair
    this.#ephemeral = ephemeral
    this.#authenticate(ephemeral.public)
    this.#mixIntoKey(Curve.sharedKey(ephemeral.private, clientEphemeral))
    const encryptedStatic = this.#encrypt(this.#identity.serverStatic.public)
    this.#mixIntoKey(Curve.sharedKey(this.#identity.serverStatic.private, clientEphemeral))
    const payload = this.#encrypt(this.#identity.certChain)
    return proto.HandshakeMessage.encode({ serverHello: { ephemeral: ephemeral.public, static: encryptedStatic, payload } }).finish()
  }

  /** ClientFinish in: the client's static (noise) key and its ClientPayload; the transport starts. */
  clientFinish (finish: proto.HandshakeMessage.IClientFinish): { clientStaticKey: Buffer, payload: proto.ClientPayload } {
    if (!this.#ephemeral || !finish.static || !finish.payload) throw new Error('ClientFinish before ServerHello, or incomplete')
    const clientStaticKey = this.#decrypt(finish.static)
    this.#mixIntoKey(Curve.sharedKey(this.#ephemeral.private, clientStaticKey))
    const payload = proto.ClientPayload.decode(this.#decrypt(finish.payload))
    const key = Buffer.from(hkdf(EMPTY, 64, { salt: this.#salt, info: '' }))
    // The client encrypts with the first half and decrypts with the second: the server mirrors it.
    this.#transport = { decKey: key.subarray(0, 32), encKey: key.subarray(32), read: 0, write: 0 }
    return { clientStaticKey, payload }
  }

  encryptFrame (plaintext: Uint8Array): Buffer {
    const transport = this.#transport!
    return Buffer.from(aesEncryptGCM(plaintext, transport.encKey, iv(transport.write++), EMPTY))
  }

  decryptFrame (ciphertext: Uint8Array): Buffer {
    const transport = this.#transport!
    return Buffer.from(aesDecryptGCM(ciphertext, transport.decKey, iv(transport.read++), EMPTY))
  }
}

/** Splits the byte stream into frames: 3-byte big-endian length, then the frame. */
export class FrameReader {
  #buffer = Buffer.alloc(0)

  push (data: Uint8Array): Buffer[] {
    this.#buffer = Buffer.concat([this.#buffer, data])
    const frames: Buffer[] = []
    while (this.#buffer.length >= 3) {
      const size = (this.#buffer[0] << 16) | (this.#buffer[1] << 8) | this.#buffer[2]
      if (this.#buffer.length < size + 3) break
      frames.push(this.#buffer.subarray(3, size + 3))
      this.#buffer = this.#buffer.subarray(size + 3)
    }
    return frames
  }

  /** The client's first bytes: an optional `ED` routing header, then NOISE_WA_HEADER. */
  stripIntro (data: Buffer): Buffer {
    let offset = 0
    if (data[0] === 0x45 && data[1] === 0x44) offset = 7 + ((data[4] << 16) | data.readUInt16BE(5))
    if (!data.subarray(offset, offset + NOISE_WA_HEADER.length).equals(NOISE_WA_HEADER)) throw new Error('not a WhatsApp Noise client')
    return data.subarray(offset + NOISE_WA_HEADER.length)
  }
}

export function frame (data: Uint8Array): Buffer {
  const out = Buffer.alloc(3 + data.byteLength)
  out[0] = (data.byteLength >>> 16) & 0xff
  out[1] = (data.byteLength >>> 8) & 0xff
  out[2] = data.byteLength & 0xff
  out.set(data, 3)
  return out
}
