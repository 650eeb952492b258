import { Type, type Static } from 'typebox'
import { CompanyId } from './common.ts'

// The profiles area's requests, replies and event data, shared by HTTP, NATS and the typed client.
export const ProfilesNoFields = Type.Object({})
export type ProfilesNoFields = Static<typeof ProfilesNoFields>

const Contact = Type.String({
  minLength: 1, maxLength: 64, description: 'A phone in any notation (normalised as sends do), a phone JID or a LID JID'
})
const Quality = Type.Union([Type.Literal('image'), Type.Literal('preview')], {
  description: '`image`: the full picture (up to 640 px); `preview`: the small one (96 px)'
})
/** As groups' pictures; a request body past the HTTP limit (1 MiB) is refused with 413 before this. */
const PICTURE_BASE64_LIMIT = 8_000_000

export const ContactParams = Type.Object({ companyId: CompanyId, phone: Contact })
export type ContactParams = Static<typeof ContactParams>
export const ContactPictureParams = Type.Object({ companyId: CompanyId, phone: Contact, quality: Quality })
export type ContactPictureParams = Static<typeof ContactPictureParams>

export const ContactRequest = Type.Object({ phone: Contact }, { additionalProperties: false })
export type ContactRequest = Static<typeof ContactRequest>
export const ContactPictureRequest = Type.Object({ phone: Contact, quality: Quality }, { additionalProperties: false })
export type ContactPictureRequest = Static<typeof ContactPictureRequest>

export const ProfilePicture = Type.Object({
  status: Type.Union([Type.Literal('set'), Type.Literal('none'), Type.Literal('hidden')], {
    description: '`none`: no picture; `hidden`: the contact\'s privacy settings (or a block) keep it from the number'
  }),
  url: Type.Union([Type.String(), Type.Null()], { description: 'On WhatsApp\'s servers; valid until `expiresAt`' }),
  expiresAt: Type.Union([Type.String(), Type.Null()], { description: 'When the URL stops working (its `oe=` parameter), ISO 8601' }),
  cached: Type.Boolean({ description: 'Answered from the gateway\'s cache rather than a query to WhatsApp' })
})
export type ProfilePicture = Static<typeof ProfilePicture>

export const AboutInfo = Type.Object({
  text: Type.Union([Type.String(), Type.Null()], { description: 'null: none set, or hidden by the contact\'s privacy settings' }),
  setAt: Type.Union([Type.String(), Type.Null()], { description: 'When it was set, ISO 8601' })
})
export type AboutInfo = Static<typeof AboutInfo>

export const BusinessProfileInfo = Type.Object({
  description: Type.String(),
  category: Type.Union([Type.String(), Type.Null()]),
  email: Type.Union([Type.String(), Type.Null()]),
  websites: Type.Array(Type.String()),
  address: Type.Union([Type.String(), Type.Null()])
}, { description: 'A WhatsApp Business account\'s profile' })
export type BusinessProfileInfo = Static<typeof BusinessProfileInfo>

const Business = Type.Union([BusinessProfileInfo, Type.Null()], { description: 'null: not a business account' })

export const OwnProfileReply = Type.Object({
  success: Type.Literal(true),
  phone: Type.String({ description: 'The company\'s number, E.164 digits' }),
  name: Type.Union([Type.String(), Type.Null()], { description: 'The name the number shows others (push name), when WhatsApp told it' }),
  about: AboutInfo,
  picture: ProfilePicture,
  business: Business
})
export type OwnProfileReply = Static<typeof OwnProfileReply>

export const ProfileUpdateRequest = Type.Object({
  name: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 25,
    pattern: '\\S',
    description: 'The name the number shows others (push name): WhatsApp allows 25 characters (an emoji is one); not blank'
  })),
  about: Type.Optional(Type.String({
    maxLength: 139, description: 'The number\'s about text (WhatsApp allows 139 characters); "" clears it'
  }))
}, { additionalProperties: false, minProperties: 1, description: 'What to change: `name`, `about` or both' })
export type ProfileUpdateRequest = Static<typeof ProfileUpdateRequest>

export const ProfilePictureRequest = Type.Object({
  data: Type.String({
    minLength: 4, maxLength: PICTURE_BASE64_LIMIT, description: 'A JPEG or PNG, base64; WhatsApp shows it square, up to 640 px'
  })
}, { additionalProperties: false })
export type ProfilePictureRequest = Static<typeof ProfilePictureRequest>

export const ProfileChangedReply = Type.Object({ success: Type.Literal(true) })
export type ProfileChangedReply = Static<typeof ProfileChangedReply>

export const ContactIdentity = Type.Object({
  jid: Type.String({ description: 'How WhatsApp was asked: the phone JID, or the LID JID' }),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'E.164 digits, when known' }),
  lid: Type.Union([Type.String(), Type.Null()])
})
export type ContactIdentity = Static<typeof ContactIdentity>

export const ContactProfileReply = Type.Object({
  success: Type.Literal(true),
  contact: ContactIdentity,
  picture: ProfilePicture,
  about: AboutInfo,
  business: Business
})
export type ContactProfileReply = Static<typeof ContactProfileReply>

export const ContactPictureReply = Type.Object({
  success: Type.Literal(true),
  contact: ContactIdentity,
  quality: Quality,
  picture: ProfilePicture
})
export type ContactPictureReply = Static<typeof ContactPictureReply>

export const BlocklistReply = Type.Object({
  success: Type.Literal(true),
  blocked: Type.Array(ContactIdentity)
})
export type BlocklistReply = Static<typeof BlocklistReply>

export const BlockRequest = Type.Object({
  phone: Contact,
  action: Type.Union([Type.Literal('block'), Type.Literal('unblock')])
}, { additionalProperties: false })
export type BlockRequest = Static<typeof BlockRequest>

export const BlockReply = Type.Object({
  success: Type.Literal(true),
  contact: ContactIdentity,
  blocked: Type.Boolean({ description: 'Whether the contact is blocked now' })
})
export type BlockReply = Static<typeof BlockReply>

export const BlocklistUpdateEventData = Type.Object({
  action: Type.Union([Type.Literal('block'), Type.Literal('unblock')]),
  contacts: Type.Array(ContactIdentity),
  otherDevice: Type.Boolean({ description: 'true: the number\'s phone (or another of its devices) made the change, not the gateway' })
}, { description: 'The number\'s block list changed' })
export type BlocklistUpdateEventData = Static<typeof BlocklistUpdateEventData>
