// libsignal 6 ships no types for its entry point; these cover what the simulator uses.
declare module 'libsignal' {
  export interface KeyPair { pubKey: Buffer, privKey: Buffer }
  export interface SignalStorage {
    loadSession: (address: string) => Promise<SessionRecord | undefined>
    storeSession: (address: string, record: SessionRecord) => Promise<void>
    isTrustedIdentity: (address: string, identityKey: Buffer) => boolean | Promise<boolean>
    loadPreKey: (id: number) => Promise<KeyPair | undefined>
    removePreKey: (id: number) => Promise<void>
    loadSignedPreKey: (id: number) => Promise<KeyPair | undefined>
    getOurRegistrationId: () => Promise<number> | number
    getOurIdentity: () => Promise<KeyPair> | KeyPair
  }
  export class ProtocolAddress {
    constructor (id: string, deviceId: number)
    toString (): string
  }
  export class SessionRecord {
    static deserialize (data: unknown): SessionRecord
    serialize (): unknown
    haveOpenSession (): boolean
  }
  export class SessionCipher {
    constructor (storage: SignalStorage, address: ProtocolAddress)
    encrypt (data: Buffer): Promise<{ type: number, body: string, registrationId: number }>
    decryptPreKeyWhisperMessage (data: Buffer): Promise<Buffer>
    decryptWhisperMessage (data: Buffer): Promise<Buffer>
    hasOpenSession (): Promise<boolean>
  }
  /** What a pre-key bundle gives a session builder (libsignal's `device` argument to initOutgoing). */
  export interface PreKeyBundle {
    registrationId: number
    identityKey: Buffer
    signedPreKey: { keyId: number, publicKey: Buffer, signature: Buffer }
    preKey?: { keyId: number, publicKey: Buffer }
  }
  export class SessionBuilder {
    constructor (storage: SignalStorage, address: ProtocolAddress)
    initOutgoing (bundle: PreKeyBundle): Promise<void>
  }
  /** Curve25519: key pairs with the 0x05-prefixed public key, XEdDSA signatures. */
  export const curve: {
    generateKeyPair: () => KeyPair
    calculateSignature: (privateKey: Buffer, message: Buffer) => Buffer
    verifySignature: (publicKey: Buffer, message: Buffer, signature: Buffer) => boolean
  }
  export const keyhelper: {
    generateIdentityKeyPair: () => KeyPair
    generateRegistrationId: () => number
    generateSignedPreKey: (identity: KeyPair, keyId: number) => { keyId: number, keyPair: KeyPair, signature: Buffer }
    generatePreKey: (keyId: number) => { keyId: number, keyPair: KeyPair }
  }
}
