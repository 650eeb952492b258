import { createHash, createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import { getCACertificates, setDefaultCACertificates } from 'node:tls'
import { proto, type BinaryNode } from '@whiskeysockets/baileys'
import type { Recorder } from './log.ts'
import { Peers, type GatedListener } from './peers.ts'

/** What a WhatsApp media message carries. */
export type MediaKind = 'image' | 'video' | 'audio' | 'document' | 'sticker'
export const MEDIA_KINDS: readonly MediaKind[] = ['image', 'video', 'audio', 'document', 'sticker']

/** The proto field of each kind (`imageMessage`, …). */
export const MESSAGE_FIELD = {
  image: 'imageMessage', video: 'videoMessage', audio: 'audioMessage', document: 'documentMessage', sticker: 'stickerMessage'
} as const satisfies Record<MediaKind, keyof proto.IMessage>

/** WhatsApp's HKDF info per kind: stickers use the image keys, voice notes the audio keys. */
const KEY_INFO: Record<MediaKind, string> = {
  image: 'WhatsApp Image Keys',
  sticker: 'WhatsApp Image Keys',
  video: 'WhatsApp Video Keys',
  audio: 'WhatsApp Audio Keys',
  document: 'WhatsApp Document Keys'
}
/** The upload path per kind (Baileys' MEDIA_PATH_MAP); a sticker goes up as an image. */
const UPLOAD_KIND: Record<string, MediaKind> = { image: 'image', video: 'video', audio: 'audio', document: 'document' }
const MAC_BYTES = 10

const TLS_DIR = new URL('./tls/', import.meta.url)
/** The simulator's own CA (simulator/tls/README.md): what a process running against it must trust. */
export const SIMULATOR_CA_PEM = readFileSync(new URL('ca.pem', TLS_DIR), 'utf8')

/**
 * Makes this process trust the simulator's media server (Baileys uploads with https.request and
 * downloads with fetch; both use the default CA list): only a process that runs against the
 * simulator (the sandbox, the tests) ever calls this.
 */
export function trustSimulatorCa (): void {
  const current = getCACertificates('default')
  if (!current.includes(SIMULATOR_CA_PEM)) setDefaultCACertificates([...current, SIMULATOR_CA_PEM])
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()

/** The media key expanded with HKDF-SHA256 (no salt) into the IV, the AES-256-CBC key and the HMAC key. */
export function mediaKeys (mediaKey: Uint8Array, kind: MediaKind | 'history'): { iv: Buffer, cipherKey: Buffer, macKey: Buffer } {
  // A history sync blob is encrypted as media is, with keys of its own ('md-msg-hist' in Baileys).
  const info = kind === 'history' ? 'WhatsApp History Keys' : KEY_INFO[kind]
  const expanded = Buffer.from(hkdfSync('sha256', mediaKey, Buffer.alloc(0), info, 112))
  return { iv: expanded.subarray(0, 16), cipherKey: expanded.subarray(16, 48), macKey: expanded.subarray(48, 80) }
}

export interface EncryptedMedia {
  /** What the media server stores: the ciphertext and the first 10 bytes of its HMAC. */
  body: Buffer
  mediaKey: Buffer
  fileSha256: Buffer
  fileEncSha256: Buffer
  fileLength: number
}

/** Encrypts a file as a WhatsApp client does before uploading it. */
export function encryptMedia (plain: Uint8Array, kind: MediaKind | 'history'): EncryptedMedia {
  const mediaKey = randomBytes(32)
  const { iv, cipherKey, macKey } = mediaKeys(mediaKey, kind)
  const cipher = createCipheriv('aes-256-cbc', cipherKey, iv)
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()])
  const mac = createHmac('sha256', macKey).update(iv).update(encrypted).digest().subarray(0, MAC_BYTES)
  const body = Buffer.concat([encrypted, mac])
  return { body, mediaKey, fileSha256: sha256(plain), fileEncSha256: sha256(body), fileLength: plain.length }
}

/**
 * Decrypts what a client uploaded and checks everything WhatsApp's recipients check: the MAC, the
 * encrypted and plain SHA-256 and the length the message declares. Throws naming the first mismatch.
 */
export function decryptMedia (body: Buffer, kind: MediaKind, declared: {
  mediaKey: Uint8Array, fileEncSha256?: Uint8Array | null, fileSha256?: Uint8Array | null, fileLength?: number | null
}): Buffer {
  const { iv, cipherKey, macKey } = mediaKeys(declared.mediaKey, kind)
  if (declared.fileEncSha256 && !sha256(body).equals(Buffer.from(declared.fileEncSha256))) throw new Error('fileEncSha256 does not match')
  const encrypted = body.subarray(0, body.length - MAC_BYTES)
  const mac = createHmac('sha256', macKey).update(iv).update(encrypted).digest().subarray(0, MAC_BYTES)
  if (!timingSafeEqual(mac, body.subarray(body.length - MAC_BYTES))) throw new Error('the MAC does not match')
  const decipher = createDecipheriv('aes-256-cbc', cipherKey, iv)
  const plain = Buffer.concat([decipher.update(encrypted), decipher.final()])
  if (declared.fileSha256 && !sha256(plain).equals(Buffer.from(declared.fileSha256))) throw new Error('fileSha256 does not match')
  if (declared.fileLength != null && Number(declared.fileLength) !== plain.length) throw new Error('fileLength does not match')
  return plain
}

interface Stored {
  body: Buffer
  /** Expired files answer 410 Gone, as WhatsApp's media servers do for old media. */
  expired: boolean
  /** A profile picture: served as itself (a JPEG), until its URL's `oe=` expiry (Unix ms), then 403 as WhatsApp's CDN does. */
  picture?: { expiresAt: number }
}

/**
 * WhatsApp's media servers: clients ask the chat server for a media connection (`media_conn`: hosts
 * and an upload token), upload encrypted files with HTTPS POST and download them with GET by their
 * direct path. HTTPS only, with a certificate from the simulator's own CA.
 */
export class MediaServer {
  readonly #files = new Map<string, Stored>()
  readonly #auth = randomBytes(24).toString('base64url')
  readonly #record: Recorder
  readonly #publicHost: string
  /** Who may connect (the simulator's allow list), and the record of who did. */
  readonly #peers: Peers
  #listener?: GatedListener
  #port = 0

  constructor (record: Recorder, options: { publicHost?: string, peers?: Peers } = {}) {
    this.#record = record
    this.#publicHost = options.publicHost ?? '127.0.0.1'
    this.#peers = options.peers ?? new Peers()
  }

  async start (host: string, port = 0): Promise<number> {
    const server = createServer({
      key: readFileSync(new URL('media.key', TLS_DIR)),
      cert: readFileSync(new URL('media.pem', TLS_DIR))
    }, (request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const { status, type, body } = this.#answer(request.method ?? 'GET', request.url ?? '/', Buffer.concat(chunks))
        response.writeHead(status, { 'content-type': type, 'content-length': body.length })
        response.end(body)
      })
      request.on('error', () => response.destroy())
    })
    // The HTTPS server never listens itself: the peers' gate hands it the connections it accepts.
    this.#listener = await this.#peers.listen('media', server, host, port)
    this.#port = this.#listener.port
    return this.#port
  }

  async stop (): Promise<void> {
    const listener = this.#listener
    this.#listener = undefined
    await listener?.close()
  }

  /** `host:port` as clients reach it (the media_conn `hostname`, and every URL's host). */
  get hostname (): string {
    return `${this.#publicHost}:${this.#port}`
  }

  /** The answer to `<iq xmlns="w:m"><media_conn/></iq>`, as WhatsApp shapes it. */
  mediaConn (): BinaryNode {
    return {
      tag: 'media_conn',
      attrs: { auth: this.#auth, ttl: '300', auth_ttl: '21600', max_buckets: '12' },
      content: [{ tag: 'host', attrs: { hostname: this.hostname } }]
    }
  }

  /** Stores an encrypted file under a new direct path (an upload, or a phone's re-upload). */
  host (body: Buffer): { directPath: string, url: string } {
    const name = randomBytes(16).toString('base64url')
    const directPath = `/v/t62.7118-24/${name}.enc?ccb=11-4&oh=${randomBytes(8).toString('hex')}&oe=${Date.now().toString(16)}`
    this.#files.set(pathOf(directPath), { body, expired: false })
    return { directPath, url: `https://${this.hostname}${directPath}&mms3=true` }
  }

  /**
   * Hosts a profile picture (plain JPEG, as WhatsApp's `pps.whatsapp.net` serves them) under a URL
   * that expires: its `oe=` is the expiry in hex Unix seconds, as in WhatsApp's picture URLs.
   */
  hostPicture (jpeg: Buffer, ttlSeconds: number): { directPath: string, url: string, expiresAt: number } {
    const name = randomBytes(16).toString('base64url')
    const expiresAt = (Math.floor(Date.now() / 1000) + ttlSeconds) * 1000
    const expiryHex = (expiresAt / 1000).toString(16).toUpperCase()
    const directPath = `/v/t61.24694-24/${name}.jpg?ccb=11-4&oh=${randomBytes(8).toString('hex')}&oe=${expiryHex}`
    this.#files.set(pathOf(directPath), { body: jpeg, expired: false, picture: { expiresAt } })
    return { directPath, url: `https://${this.hostname}${directPath}&_nc_cat=1`, expiresAt }
  }

  /** The encrypted file at a direct path or URL, unless unknown or expired. */
  file (directPathOrUrl: string): Buffer | undefined {
    const stored = this.#files.get(pathOf(directPathOrUrl))
    return stored && !stored.expired ? stored.body : undefined
  }

  /** WhatsApp's servers drop old media: downloads answer 410 until a phone uploads it again. */
  expire (directPathOrUrl: string): boolean {
    const stored = this.#files.get(pathOf(directPathOrUrl))
    if (stored) stored.expired = true
    return stored !== undefined
  }

  #answer (method: string, url: string, body: Buffer): { status: number, type: string, body: Buffer } {
    const json = (status: number, value: unknown) => ({ status, type: 'application/json', body: Buffer.from(JSON.stringify(value)) })
    const parsed = new URL(url, 'https://media.invalid')
    const upload = /^\/mms\/([a-z]+)\/([A-Za-z0-9_-]+)$/.exec(parsed.pathname)
    if (method === 'POST' && upload) {
      const [, kind, token] = upload
      if (!UPLOAD_KIND[kind]) return json(404, { error: 'unknown media type' })
      if (parsed.searchParams.get('auth') !== this.#auth) return json(401, { error: 'bad auth' })
      // The token is the encrypted file's SHA-256, as the client computed it.
      if (token !== parsed.searchParams.get('token') || token !== sha256(body).toString('base64url')) {
        return json(400, { error: 'token does not match the body' })
      }
      if (body.length <= MAC_BYTES || (body.length - MAC_BYTES) % 16 !== 0) return json(400, { error: 'not an encrypted file' })
      const hosted = this.host(body)
      this.#record('media', `upload ${kind} ${body.length} bytes → ${pathOf(hosted.directPath)}`)
      return json(200, { url: hosted.url, direct_path: hosted.directPath })
    }
    if (method === 'GET' && parsed.pathname.startsWith('/v/')) {
      const stored = this.#files.get(parsed.pathname)
      if (!stored) return json(404, { error: 'not found' })
      if (stored.expired) return json(410, { error: 'gone' })
      if (stored.picture && Date.now() >= stored.picture.expiresAt) return json(403, { error: 'URL signature expired' })
      if (stored.picture) return { status: 200, type: 'image/jpeg', body: stored.body }
      return { status: 200, type: 'application/octet-stream', body: stored.body }
    }
    return json(404, { error: 'not found' })
  }
}

/** A direct path or URL, without its query: the key a file is stored under. */
function pathOf (directPathOrUrl: string): string {
  return new URL(directPathOrUrl, 'https://media.invalid').pathname
}

/** Encrypted re-upload notifications: the key is the media key expanded for this purpose. */
export function mediaRetryKey (mediaKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', mediaKey, Buffer.alloc(0), 'WhatsApp Media Retry Notification', 32))
}

/** The phone's answer to a re-upload request: the new direct path, sealed for the requesting device. */
export function mediaRetryNotification (options: {
  messageId: string, from: string, rmr: BinaryNode, mediaKey: Uint8Array, directPath?: string
}): BinaryNode {
  const { messageId, from, rmr } = options
  const attrs = { id: messageId, type: 'mediaretry', from, t: String(Math.floor(Date.now() / 1000)) }
  if (!options.directPath) {
    // 2 = NOT_FOUND: the phone no longer has the file.
    return { tag: 'notification', attrs, content: [{ tag: 'error', attrs: { code: '2' } }, rmr] }
  }
  const plain = proto.MediaRetryNotification.encode({
    stanzaId: messageId, directPath: options.directPath, result: proto.MediaRetryNotification.ResultType.SUCCESS
  }).finish()
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', mediaRetryKey(options.mediaKey), iv)
  cipher.setAAD(Buffer.from(messageId))
  const sealed = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  return {
    tag: 'notification',
    attrs,
    content: [
      { tag: 'encrypt', attrs: {}, content: [{ tag: 'enc_p', attrs: {}, content: sealed }, { tag: 'enc_iv', attrs: {}, content: iv }] },
      rmr
    ]
  }
}
