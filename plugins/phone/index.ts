import fp from 'fastify-plugin'
import type { CountryCode } from 'libphonenumber-js'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, PHONE_NORMALIZE_SCOPE, NormalizePhoneReply, NormalizePhoneRequest
} from '../../contracts/index.ts'
import { errorAnswer } from '../../core/plugins/docs.ts'
import { BoundedMap } from '../../core/bounded-map.ts'
import { countryOrDefault, normalizePhone, toJid } from './phone.ts'
import type { PhoneOptions } from './settings.ts'

export { settings, type PhoneOptions } from './settings.ts'

export interface PhoneService {
  /** E.164 digits without `+`; throws INVALID_PHONE. */
  normalize: (input: unknown, country?: string) => string
  /** `<digits>@s.whatsapp.net`, or a LID/group JID passed through; throws INVALID_PHONE. */
  toJid: (input: unknown, country?: string) => string
}

/** Distinct numbers whose normalized form is remembered. */
const NORMALIZED_CACHE_ENTRIES = 10_000

declare module 'fastify' {
  interface FastifyInstance {
    phone: PhoneService
  }
}

export default fp<PhoneOptions>(async (app, options) => {
  const defaultCountry: CountryCode = options.defaultCountry
  // Parsing with libphonenumber was ~9 % of a holder's CPU per send; the same numbers come back
  // (reminders, replies), so answers are kept in a small LRU.
  const normalized = new BoundedMap<string, string>(NORMALIZED_CACHE_ENTRIES)
  const normalizeCached = (input: unknown, country: CountryCode): string => {
    if (typeof input !== 'string') return normalizePhone(input, country)
    const key = `${country}\u0000${input}`
    const known = normalized.get(key)
    if (known !== undefined) return known
    const e164 = normalizePhone(input, country)
    normalized.set(key, e164)
    return e164
  }
  const phone: PhoneService = {
    normalize: (input, country) => normalizeCached(input, countryOrDefault(country, defaultCountry)),
    toJid: (input, country) => toJid(input, countryOrDefault(country, defaultCountry), normalizeCached)
  }
  app.decorate('phone', phone)

  const answer = (request: NormalizePhoneRequest): NormalizePhoneReply => {
    const e164 = phone.normalize(request.phone, request.country)
    return { success: true, e164, jid: phone.toJid(e164) }
  }

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/phone/normalize', {
    config: { access: { scope: PHONE_NORMALIZE_SCOPE } },
    schema: {
      operationId: 'normalizePhone',
      tags: ['phone'],
      summary: 'Normalize a phone number to E.164 digits and its WhatsApp JID',
      querystring: NormalizePhoneRequest,
      response: {
        200: NormalizePhoneReply, 400: errorAnswer('Not a phone number (`INVALID_PHONE`), or the input does not match the schema')
      }
    }
  }, async (request) => answer(request.query))

  const subscription = app.bus.handle(app.subjects.phoneNormalize,
    { request: NormalizePhoneRequest, reply: NormalizePhoneReply, queue: ANY_REPLICA_QUEUE }, async (request) => answer(request))
  app.addHook('onClose', () => subscription.close())
}, { name: 'phone', dependencies: ['config', 'bus'] })
