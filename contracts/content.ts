import { Type, type Static } from 'typebox'

/** Message kinds beside texts and media: a place, a contact card. */
export const Location = Type.Object({
  latitude: Type.Number({ minimum: -90, maximum: 90 }),
  longitude: Type.Number({ minimum: -180, maximum: 180 }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  address: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 }))
})
export type Location = Static<typeof Location>

export const ContactCard = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  phones: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 10 })),
  vcard: Type.Optional(Type.String({
    minLength: 10,
    maxLength: 16_384,
    description: 'A whole vCard; otherwise one is made from name and phones'
  }))
})
export type ContactCard = Static<typeof ContactCard>
