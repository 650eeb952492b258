import type { LoggerOptions } from 'pino'

/**
 * Logs carry no personal data: phone numbers (and the digits of JIDs and LIDs) are masked to their
 * first and last four digits, and values under keys that hold message texts, QR and pairing codes,
 * keys and secrets are replaced. This runs on every line, the gateway's own and Baileys' alike
 * (the adapter logs through the same logger), whatever the level.
 */

/** Keys whose values are never logged. */
const SECRET_KEYS = new Set([
  'text', 'body', 'caption', 'qr', 'qrdataurl', 'qrterminal', 'pairingcode', 'key', 'apikey', 'adminapikey', 'authorization',
  'x-api-key', 'password', 'pass', 'token', 'ticket', 'secret', 'seed', 'creds', 'noisekey', 'signedidentitykey', 'signedprekey',
  'advsecretkey', 'identitykey', 'privkey', 'private', 'mediakey'
])
/** `code` is a close code (a number, kept) or a pairing code (a string, hidden). */
const SECRET_WHEN_STRING = new Set(['code'])
const REDACTED = '[redacted]'
/** A run of digits long enough to be a phone number, a LID or a JID's user part. */
const PHONE_DIGITS = /\+?\d{10,}/g
/** Objects nest only so deep in a log line; beyond this nothing is walked (or logged). */
const MAX_DEPTH = 6

export function maskPhones (text: string): string {
  return text.replace(PHONE_DIGITS, (digits) => {
    const bare = digits.replace('+', '')
    return `${bare.slice(0, 4)}***${bare.slice(-4)}`
  })
}

/** A copy of a log line's fields with secrets replaced and phone numbers masked. */
export function scrub (value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return maskPhones(value)
  if (value === null || typeof value !== 'object') return value
  if (depth >= MAX_DEPTH) return '[deep]'
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return REDACTED
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1))
  const source = value instanceof Error ? { ...value, type: value.name, message: value.message, stack: value.stack } : value
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(source)) {
    const name = key.toLowerCase()
    if (SECRET_KEYS.has(name) || (SECRET_WHEN_STRING.has(name) && typeof item === 'string')) copy[maskPhones(key)] = REDACTED
    else copy[maskPhones(key)] = scrub(item, depth + 1)
  }
  return copy
}

/** The pino options that apply it: fields through `formatters.log`, the message string through `hooks.logMethod`. */
export const privateLogOptions: Pick<LoggerOptions, 'formatters' | 'hooks'> = {
  formatters: {
    log: (object) => scrub(object) as Record<string, unknown>,
    bindings: (bindings) => scrub(bindings) as Record<string, unknown>
  },
  hooks: {
    logMethod (args, method) {
      method.apply(this, args.map((arg) => (typeof arg === 'string' ? maskPhones(arg) : arg)) as Parameters<typeof method>)
    }
  }
}
