import fp from 'fastify-plugin'
import type { CountryCode } from 'libphonenumber-js'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  ANY_REPLICA_QUEUE, ErrorReply, NormalizePhoneReply, NormalizePhoneRequest, Subjects
} from '../../contracts/index.ts'
import { countryOrDefault, normalizePhone, toJid } from './phone.ts'

export interface PhoneService {
  /** E.164 digits without `+`; throws INVALID_PHONE. */
  normalize: (input: unknown, country?: string) => string
  /** `<digits>@s.whatsapp.net`, or a LID/group JID passed through; throws INVALID_PHONE. */
  toJid: (input: unknown, country?: string) => string
}

declare module 'fastify' {
  interface FastifyInstance {
    phone: PhoneService
  }
}

export default fp(async (app) => {
  const defaultCountry: CountryCode = app.config.defaultCountry
  const phone: PhoneService = {
    normalize: (input, country) => normalizePhone(input, countryOrDefault(country, defaultCountry)),
    toJid: (input, country) => toJid(input, countryOrDefault(country, defaultCountry))
  }
  app.decorate('phone', phone)

  const answer = (request: NormalizePhoneRequest): NormalizePhoneReply => {
    const e164 = phone.normalize(request.phone, request.country)
    return { success: true, e164, jid: phone.toJid(e164) }
  }

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/phone/normalize', {
    schema: {
      tags: ['phone'],
      summary: 'Normalize a phone number to E.164 digits and its WhatsApp JID',
      querystring: NormalizePhoneRequest,
      response: { 200: NormalizePhoneReply, 400: ErrorReply }
    }
  }, async (request) => answer(request.query))

  const subscription = app.bus.handle(Subjects.phoneNormalize, { request: NormalizePhoneRequest, queue: ANY_REPLICA_QUEUE },
    async (request) => answer(request))
  app.addHook('onClose', () => subscription.close())
}, { name: 'phone', dependencies: ['config', 'bus'] })
