import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'

const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const Account = Type.Object({ phone: Phone })
const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff])

/**
 * The control API's profile routes (PROTOCOL.md, Profiles): set what a simulated account shows
 * others (name, about, picture, privacy, business profile), read an account's profile and block list, and
 * have an account's phone block or unblock someone, as the number's other device would.
 */
export const profileControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  const profiles = simulator.profiles

  app.put('/accounts/:phone/profile', {
    schema: {
      params: Account,
      body: Type.Object({
        name: Type.Optional(Type.String({
          minLength: 1, maxLength: 25, description: 'the push name its messages carry, changed on its phone: its linked devices sync it'
        })),
        about: Type.Optional(Type.Union([Type.String({ maxLength: 139 }), Type.Null()], { description: 'null removes it' })),
        picture: Type.Optional(Type.Union([Type.String({ minLength: 4, description: 'a JPEG, base64' }), Type.Null()])),
        pictureTtlSeconds: Type.Optional(Type.Integer({
          minimum: 1, maximum: 30 * 24 * 3600, description: 'how long its URLs stay valid'
        })),
        hidesPicture: Type.Optional(Type.Boolean({ description: 'privacy: nobody sees the picture (401)' })),
        hidesAbout: Type.Optional(Type.Boolean({ description: 'privacy: nobody sees the about' })),
        business: Type.Optional(Type.Union([Type.Object({
          description: Type.String({ maxLength: 512 }),
          category: Type.Optional(Type.String({ maxLength: 100 })),
          email: Type.Optional(Type.String({ maxLength: 128 })),
          website: Type.Optional(Type.String({ maxLength: 256 })),
          address: Type.Optional(Type.String({ maxLength: 256 }))
        }), Type.Null()], { description: 'a business account\'s profile; null: not a business' }))
      })
    }
  }, async (request, reply) => {
    const { phone } = request.params
    const body = request.body
    const picture = typeof body.picture === 'string' ? Buffer.from(body.picture, 'base64') : undefined
    // WhatsApp serves profile pictures as JPEGs (clients convert before uploading).
    if (picture && !picture.subarray(0, 3).equals(JPEG_MAGIC)) {
      return reply.code(415).send({ success: false, error: { code: 'NOT_A_JPEG', message: 'a profile picture is a JPEG' } })
    }
    const profile = profiles.profile(phone)
    if (body.name !== undefined) await simulator.appState.phoneRenames(phone, body.name)
    if (body.about !== undefined) {
      profile.about = body.about === null ? undefined : { text: body.about, setAt: Math.floor(Date.now() / 1000) }
    }
    if (body.picture !== undefined) profiles.setPicture(phone, picture, body.pictureTtlSeconds)
    else if (body.pictureTtlSeconds !== undefined && profile.picture) profile.picture.ttlSeconds = body.pictureTtlSeconds
    if (body.hidesPicture !== undefined) profile.hidesPicture = body.hidesPicture
    if (body.hidesAbout !== undefined) profile.hidesAbout = body.hidesAbout
    if (body.business !== undefined) profile.business = body.business ?? undefined
    return describe(phone)
  })

  app.get('/accounts/:phone/profile', { schema: { params: Account } }, async (request) => describe(request.params.phone))

  app.get('/accounts/:phone/blocklist', { schema: { params: Account } }, async (request) => ({
    success: true, blocked: profiles.blocked(request.params.phone)
  }))

  // The account's phone (another device of a linked number) blocks or unblocks a contact: its linked devices are told.
  app.post('/accounts/:phone/blocklist', {
    schema: {
      params: Account,
      body: Type.Object({ contact: Phone, action: Type.Union([Type.Literal('block'), Type.Literal('unblock')]) })
    }
  }, async (request) => {
    profiles.block(request.params.phone, request.body.contact, request.body.action === 'block')
    return { success: true, blocked: profiles.blocked(request.params.phone) }
  })

  function describe (phone: string) {
    const profile = profiles.profile(phone)
    return {
      success: true,
      phone,
      name: simulator.account(phone).pushName ?? null,
      about: profile.about ? { text: profile.about.text, setAt: profile.about.setAt } : null,
      picture: profile.picture
        ? { id: profile.picture.id, bytes: profile.picture.jpeg.length, ttlSeconds: profile.picture.ttlSeconds }
        : null,
      hidesPicture: profile.hidesPicture,
      hidesAbout: profile.hidesAbout,
      business: profile.business ?? null
    }
  }
}
