import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/** API keys and tickets are 256-bit random values; this prefix makes a leaked one easy to recognise. */
const KEY_PREFIX = 'wak_'
const TICKET_PREFIX = 'wat_'
const SECRET_BYTES = 32

export function newApiKey (): string {
  return `${KEY_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`
}

export function newTicket (): string {
  return `${TICKET_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`
}

/** What is stored instead of a secret: its SHA-256, hex. Keys are random, so no salt or slow hash is needed. */
export function hashSecret (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

/** Compares two hex digests in constant time. */
export function sameDigest (a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex')
  const right = Buffer.from(b, 'hex')
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right)
}

/** `ADMIN_API_KEY` given plain or as `sha256:<hex>`: the digest to compare against. */
export function adminKeyDigest (configured: string): string {
  return configured.startsWith('sha256:') ? configured.slice('sha256:'.length).toLowerCase() : hashSecret(configured)
}

/** Whether a bearer value has the shape of a JWT (three base64url parts). */
export function looksLikeJwt (value: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value)
}
