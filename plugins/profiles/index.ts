import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import {
  BlocklistReply, BlockReply, BlockRequest, ContactParams, ContactPictureParams, ContactPictureReply, ContactPictureRequest,
  ContactProfileReply, ContactRequest, ErrorCode, OwnProfileReply, ProfileChangedReply, ProfilePictureRequest, ProfilesNoFields,
  ProfileUpdateRequest, userOfJid, type ContactIdentity, type ProfilePicture
} from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'
import { pictureOf } from '../../core/pictures.ts'
import { isoFromSeconds } from '../../core/time.ts'
import { chatOf, declareHolderCommand, WhatsAppRefusal, type PictureQuality, type WaSocket } from '../session-pool/index.ts'
import { PictureCache, urlExpiry } from './picture-cache.ts'
import type { ProfilesOptions } from './settings.ts'

export { settings, type ProfilesOptions } from './settings.ts'

const TAGS = ['profiles']
const BASE = '/api/whatsapp/sessions/:companyId'

/**
 * Profiles, contacts and blocking through the company's connection (session-pool's public face:
 * its sockets' profile port, its holder commands and its socket listeners): the number's own about,
 * picture and business profile; a contact's picture (cached until its URL expires), about and
 * business profile; block, unblock and the block list, whose changes are `blocklist_update` events.
 */
export default fp<ProfilesOptions>(async (app, options) => {
  const pictures = new PictureCache(options.profilePictureCacheMs)

  const connection = (companyId: string) => {
    const session = app.sessionPool.get(companyId)
    const socket = session?.socket
    const phone = session?.status().phoneNumber
    if (!socket || !phone) throw new GatewayError(ErrorCode.NOT_CONNECTED, `company ${companyId} is not connected`)
    return { socket, phone: userOfJid(phone) }
  }

  /** A picture as WhatsApp answers it: its URL and expiry, or why there is none (404: none set, 401: hidden). */
  const pictureAnswer = async (socket: WaSocket, jid: string, quality: PictureQuality): Promise<Omit<ProfilePicture, 'cached'>> => {
    try {
      const url = await socket.profiles.pictureUrl(jid, quality)
      return { status: 'set', url, expiresAt: urlExpiry(url) }
    } catch (err) {
      if (err instanceof WhatsAppRefusal && (err.code === 404 || err.code === 401)) {
        return { status: err.code === 404 ? 'none' : 'hidden', url: null, expiresAt: null }
      }
      throw refusalOf(err)
    }
  }
  const contactPicture = async (companyId: string, socket: WaSocket, jid: string, quality: PictureQuality): Promise<ProfilePicture> => {
    const cached = pictures.get(companyId, jid, quality)
    if (cached) return { ...cached, cached: true }
    const answer = await pictureAnswer(socket, jid, quality)
    pictures.set(companyId, jid, quality, answer)
    return { ...answer, cached: false }
  }
  const about = async (socket: WaSocket, jid: string) => {
    const answer = await asked(() => socket.profiles.about(jid))
    return { text: answer.text, setAt: answer.setAt === null ? null : isoFromSeconds(answer.setAt) }
  }
  const business = async (socket: WaSocket, jid: string) => (await asked(() => socket.profiles.businessProfile(jid))) ?? null

  declareHolderCommand(app, {
    name: 'profile-get',
    request: ProfilesNoFields,
    reply: OwnProfileReply,
    http: {
      method: 'GET',
      url: `${BASE}/profile`,
      operationId: 'getProfile',
      tags: TAGS,
      summary: 'The number\'s own profile: its name, about, picture and, for a business account, its business profile',
      errors: [422]
    },
    handle: async ({ companyId }) => {
      const { socket, phone } = connection(companyId)
      const jid = `${phone}@s.whatsapp.net`
      const [picture, aboutText, businessProfile] = await Promise.all([
        pictureAnswer(socket, jid, 'image'), about(socket, jid), business(socket, jid)
      ])
      return {
        success: true as const,
        phone,
        name: socket.profiles.ownName(),
        about: aboutText,
        picture: { ...picture, cached: false },
        business: businessProfile
      }
    }
  })

  declareHolderCommand(app, {
    name: 'profile-update',
    request: ProfileUpdateRequest,
    reply: ProfileChangedReply,
    http: {
      method: 'PATCH',
      url: `${BASE}/profile`,
      operationId: 'updateProfile',
      tags: TAGS,
      summary: 'Change the number\'s name, about text or both',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const { name, about } = request
      if (about !== undefined) await asked(() => socket.profiles.setAbout(about))
      if (name !== undefined) await asked(() => socket.profiles.setName(name))
      return { success: true as const }
    }
  })

  declareHolderCommand(app, {
    name: 'profile-picture',
    request: ProfilePictureRequest,
    reply: ProfileChangedReply,
    http: {
      method: 'PUT',
      url: `${BASE}/profile/picture`,
      operationId: 'setProfilePicture',
      tags: TAGS,
      summary: 'Set the number\'s picture (a JPEG or PNG, base64; WhatsApp shows it square, up to 640 px)',
      errors: [413, 415, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const image = await pictureOf(request.data, 'a profile picture')
      try {
        await socket.profiles.setPicture(image)
      } catch (err) {
        // The connection scales the picture itself: what it cannot read is the picture's fault, not a fault here.
        if (err instanceof WhatsAppRefusal || (err as { isBoom?: boolean }).isBoom) throw refusalOf(err)
        throw new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `the picture could not be read: ${(err as Error).message}`)
      }
      return { success: true as const }
    }
  })

  declareHolderCommand(app, {
    name: 'profile-picture-remove',
    request: ProfilesNoFields,
    reply: ProfileChangedReply,
    http: {
      method: 'DELETE',
      url: `${BASE}/profile/picture`,
      operationId: 'removeProfilePicture',
      tags: TAGS,
      summary: 'Remove the number\'s picture',
      errors: [422]
    },
    handle: async ({ companyId }) => {
      const { socket } = connection(companyId)
      await asked(() => socket.profiles.removePicture())
      return { success: true as const }
    }
  })

  declareHolderCommand(app, {
    name: 'contact-profile',
    request: ContactRequest,
    reply: ContactProfileReply,
    http: {
      method: 'GET',
      url: `${BASE}/contacts/:phone/profile`,
      params: ContactParams,
      operationId: 'getContactProfile',
      tags: TAGS,
      summary: 'A contact\'s picture (cached until its URL expires), about and business profile; `phone` in any notation or a LID JID',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const contact = await contactOf(app, companyId, request.phone)
      const [picture, aboutText, businessProfile] = await Promise.all([
        contactPicture(companyId, socket, contact.jid, 'image'), about(socket, contact.jid), business(socket, contact.jid)
      ])
      return { success: true as const, contact, picture, about: aboutText, business: businessProfile }
    }
  })

  declareHolderCommand(app, {
    name: 'contact-picture',
    request: ContactPictureRequest,
    reply: ContactPictureReply,
    http: {
      method: 'GET',
      url: `${BASE}/contacts/:phone/picture/:quality`,
      params: ContactPictureParams,
      operationId: 'getContactPicture',
      tags: TAGS,
      summary: 'A contact\'s picture URL, full (`image`) or small (`preview`), cached until it expires',
      errors: [422]
    },
    handle: async ({ companyId, request }) => {
      const { socket } = connection(companyId)
      const contact = await contactOf(app, companyId, request.phone)
      const picture = await contactPicture(companyId, socket, contact.jid, request.quality)
      return { success: true as const, contact, quality: request.quality, picture }
    }
  })

  declareHolderCommand(app, {
    name: 'blocklist-get',
    request: ProfilesNoFields,
    reply: BlocklistReply,
    http: {
      method: 'GET',
      url: `${BASE}/blocklist`,
      operationId: 'getBlocklist',
      tags: TAGS,
      summary: 'The contacts the number has blocked',
      errors: [422]
    },
    handle: async ({ companyId }) => {
      const { socket } = connection(companyId)
      const jids = await asked(() => socket.profiles.blocklist())
      return { success: true as const, blocked: await Promise.all(jids.map((jid) => contactOf(app, companyId, jid))) }
    }
  })

  declareHolderCommand(app, {
    name: 'blocklist-update',
    request: BlockRequest,
    reply: BlockReply,
    http: {
      method: 'POST',
      url: `${BASE}/blocklist`,
      operationId: 'updateBlocklist',
      tags: TAGS,
      summary: 'Block or unblock a contact (`phone` in any notation or a LID JID); a `blocklist_update` event follows',
      errors: [404, 422]
    },
    handle: async ({ companyId, request }) => {
      const { socket, phone } = connection(companyId)
      const contact = await contactOf(app, companyId, request.phone)
      if (contact.phone === phone) throw new GatewayError(ErrorCode.BAD_REQUEST, 'the company\'s number cannot block itself')
      const blocked = request.action === 'block'
      try {
        await socket.profiles.setBlocked(contact.jid, blocked)
      } catch (err) {
        // Baileys blocks by LID: a number it finds no LID for is not on WhatsApp.
        if ((err as { isBoom?: boolean, output?: { statusCode?: number } }).output?.statusCode === 400) {
          throw new GatewayError(ErrorCode.NOT_FOUND, `${request.phone} is not on WhatsApp`)
        }
        throw refusalOf(err)
      }
      pictures.forget(companyId, [contact.jid, contact.lid])
      return { success: true as const, contact, blocked }
    }
  })

  // A contact's new (or removed) picture makes its cached URLs stale (WhatsApp's `picture` notification);
  // the bound (PROFILE_PICTURE_CACHE_MS) covers changes it does not tell.
  app.sessionPool.onSocket((socket, { companyId }) => {
    socket.on('pictures', (changes) => {
      for (const change of changes) {
        void contactOf(app, companyId, change.jid)
          .then((contact) => pictures.forget(companyId, [contact.jid, contact.lid]))
          .catch((err: unknown) => app.log.warn({ err, companyId }, 'a picture change could not be applied to the cache'))
      }
    })
  })

  // Every change to the block list (the gateway's own, and the phone's or another device's) becomes a blocklist_update event.
  app.sessionPool.onSocket((socket, { companyId, emit }) => {
    socket.on('blocklist', (events) => {
      for (const event of events) {
        void Promise.all(event.jids.map((jid) => contactOf(app, companyId, jid)))
          .then((contacts) => {
            for (const contact of contacts) pictures.forget(companyId, [contact.jid, contact.lid])
            emit('blocklist_update', { action: event.action, contacts, otherDevice: event.otherDevice })
          })
          .catch((err: unknown) => app.log.warn({ err, companyId }, 'a block list change could not be published'))
      }
    })
  })
}, { name: 'profiles', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })

/** A contact as a command or WhatsApp names it (a phone in any notation, a phone JID, a LID JID), with what is known of the other. */
async function contactOf (app: FastifyInstance, companyId: string, input: string): Promise<ContactIdentity> {
  const named = input.endsWith('@s.whatsapp.net') ? userOfJid(input) : input
  const chat = await chatOf(app, companyId, named)
  if (chat.group) throw new GatewayError(ErrorCode.INVALID_PHONE, `${input} is a group, not a contact`)
  return { jid: chat.jid, phone: chat.phone, lid: chat.lid }
}

/** A query to WhatsApp, its refusal as the gateway's error. */
async function asked<T> (query: () => Promise<T>): Promise<T> {
  try {
    return await query()
  } catch (err) {
    throw refusalOf(err)
  }
}

function refusalOf (err: unknown): unknown {
  if (!(err instanceof WhatsAppRefusal)) return err
  if (err.code === 400) return new GatewayError(ErrorCode.BAD_REQUEST, `WhatsApp found the request malformed: ${err.message}`)
  return new GatewayError(ErrorCode.WHATSAPP_REFUSED, `WhatsApp refused (${err.code}): ${err.message}`)
}
