import { Type, type Static } from 'typebox'

export const NormalizePhoneRequest = Type.Object({
  phone: Type.String({ maxLength: 64, description: 'A phone number in any common notation, or a WhatsApp JID' }),
  country: Type.Optional(Type.String({
    pattern: '^[A-Za-z]{2}$',
    description: 'ISO 3166-1 alpha-2 country for numbers without a country code'
  }))
})
export type NormalizePhoneRequest = Static<typeof NormalizePhoneRequest>

export const NormalizePhoneReply = Type.Object({
  success: Type.Literal(true),
  e164: Type.String({ description: 'E.164 digits without `+`; for a group or LID JID, its user part' }),
  jid: Type.String({ description: 'The WhatsApp JID' })
})
export type NormalizePhoneReply = Static<typeof NormalizePhoneReply>

/** The user part of a JID without its device: `79001234567:12@s.whatsapp.net` → `79001234567`. */
export function userOfJid (jid: string): string {
  return jid.split('@')[0].split(':')[0]
}
