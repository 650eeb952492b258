import { createRequire } from 'node:module'
import type { CountryCode, PhoneNumber } from 'libphonenumber-js'
import { ErrorCode, userOfJid } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

type LibPhoneNumber = typeof import('libphonenumber-js')
let library: LibPhoneNumber | undefined
/**
 * libphonenumber-js, loaded at the first number read: with its metadata it is about 2 MB of heap
 * (110 modules) that an idle replica, which reads no number, does not hold. Required rather than
 * imported because reading a number is synchronous.
 */
export const libphonenumber = (): LibPhoneNumber => (library ??= createRequire(import.meta.url)('libphonenumber-js') as LibPhoneNumber)

/** The old system's bounds, kept: anything shorter or longer is not a subscriber number. */
export const MIN_PHONE_DIGITS = 10
export const MAX_PHONE_DIGITS = 15
/** Longer input is rejected before parsing, so no input can make normalization expensive. */
const MAX_INPUT_LENGTH = 64

/** Spaces, dashes, dots, slashes and brackets are how people write numbers; anything else is not a number. */
const FORMATTING = /^\+?[\d\s\-()./]+$/

export const PHONE_SERVER = 's.whatsapp.net'
const LEGACY_PHONE_SERVER = 'c.us'
const LID_SERVER = 'lid'
const GROUP_SERVER = 'g.us'
const LID_USER = /^\d{1,24}(:\d{1,4})?$/
const GROUP_USER = /^\d{1,24}(-\d{1,16})?$/

function invalid (reason: string): GatewayError {
  return new GatewayError(ErrorCode.INVALID_PHONE, reason)
}

function phoneFromJid (input: string): string | undefined {
  const at = input.indexOf('@')
  if (at < 0) return undefined
  const server = input.slice(at + 1)
  if (server !== PHONE_SERVER && server !== LEGACY_PHONE_SERVER) return undefined
  // A device JID (`7900…:12@s.whatsapp.net`) names the same user.
  return userOfJid(input)
}

function possible (parsed: PhoneNumber | undefined): parsed is PhoneNumber {
  return parsed !== undefined && parsed.isPossible()
}

/**
 * Normalizes a phone number to E.164 digits without `+`. Numbers written without a country code
 * are read as numbers of `country`; for RU that gives the old system's rules (8XXXXXXXXXX and
 * XXXXXXXXXX become 7XXXXXXXXXX). Throws INVALID_PHONE with the reason.
 */
export function normalizePhone (input: unknown, country: CountryCode): string {
  if (typeof input !== 'string') throw invalid(`phone must be a string, got ${input === null ? 'null' : typeof input}`)
  const trimmed = input.trim()
  if (trimmed === '') throw invalid('phone is empty')
  if (trimmed.length > MAX_INPUT_LENGTH) throw invalid(`phone is longer than ${MAX_INPUT_LENGTH} characters`)
  const fromJid = phoneFromJid(trimmed)
  const text = fromJid ?? trimmed
  if (trimmed.includes('@') && fromJid === undefined) throw invalid(`"${trimmed}" is not a phone JID (@${PHONE_SERVER})`)
  if (!FORMATTING.test(text)) throw invalid(`"${text}" contains letters or symbols that are not part of a phone number`)
  const digits = text.replace(/\D/g, '')
  if (digits.length < MIN_PHONE_DIGITS || digits.length > MAX_PHONE_DIGITS) {
    throw invalid(`phone has ${digits.length} digits; expected ${MIN_PHONE_DIGITS} to ${MAX_PHONE_DIGITS}`)
  }
  const international = text.startsWith('+') || fromJid !== undefined
  // Without `+`, a number is national first; if that is impossible it may be international without the `+`.
  const { parsePhoneNumberFromString } = libphonenumber()
  const candidates = international
    ? [parsePhoneNumberFromString(`+${digits}`)]
    : [parsePhoneNumberFromString(digits, country), parsePhoneNumberFromString(`+${digits}`)]
  const parsed = candidates.find(possible)
  if (!parsed) {
    const where = candidates[0]?.country ?? (international ? 'its country code' : country)
    throw invalid(`${digits} is not a possible phone number for ${where}`)
  }
  return parsed.number.slice(1)
}

/**
 * The WhatsApp JID for a phone number or JID. Phone JIDs are normalized; LID (`@lid`) and group
 * (`@g.us`) JIDs pass through once their form is checked.
 */
export function toJid (input: unknown, country: CountryCode, normalize: typeof normalizePhone = normalizePhone): string {
  if (typeof input === 'string') {
    const trimmed = input.trim()
    const at = trimmed.indexOf('@')
    if (at >= 0) {
      const user = trimmed.slice(0, at)
      const server = trimmed.slice(at + 1)
      if (server === LID_SERVER) {
        if (!LID_USER.test(user)) throw invalid(`"${trimmed}" is not a valid LID JID`)
        return trimmed
      }
      if (server === GROUP_SERVER) {
        if (!GROUP_USER.test(user)) throw invalid(`"${trimmed}" is not a valid group JID`)
        return trimmed
      }
      if (server !== PHONE_SERVER && server !== LEGACY_PHONE_SERVER) {
        throw invalid(`"${trimmed}" has an unknown JID server "${server}" (expected ${PHONE_SERVER}, ${LID_SERVER} or ${GROUP_SERVER})`)
      }
    }
  }
  return `${normalize(input, country)}@${PHONE_SERVER}`
}

/** Validates an optional country argument, falling back to the configured default. */
export function countryOrDefault (country: string | undefined, fallback: CountryCode): CountryCode {
  if (country === undefined) return fallback
  const code = country.toUpperCase()
  if (!libphonenumber().isSupportedCountry(code)) {
    throw invalid(`country "${country}" is not an ISO 3166-1 alpha-2 code libphonenumber-js knows`)
  }
  return code
}
