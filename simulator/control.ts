import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'
import { MEDIA_KINDS } from './media.ts'
import { groupControl } from './control-groups.ts'
import { pollControl } from './control-polls.ts'
import { profileControl } from './control-profiles.ts'
import { callControl } from './control-calls.ts'
import { chatControl } from './control-chats.ts'
import { statusControl } from './control-status.ts'
import { historyControl } from './control-history.ts'
import { peerControl } from './control-peers.ts'

const Device = Type.Object({ device: Type.String({ pattern: '^\\d{5,20}:\\d{1,4}$', description: '<phone>:<device>' }) })
const Phone = Type.String({ pattern: '^\\d{10,15}$', description: 'E.164 digits without +' })
const Contact = Type.Object({ phone: Phone })
const notFound = (what: string) => ({ success: false, error: { code: 'NOT_FOUND', message: what } })

/**
 * The simulator's control API (its own port), for tests and for people: see and act on the
 * simulated phones and their linked devices.
 */
export function controlApi (simulator: WhatsAppSimulator): FastifyInstance {
  const app = Fastify({ logger: false }).setValidatorCompiler(TypeBoxValidatorCompiler).withTypeProvider<TypeBoxTypeProvider>()

  // What a gateway needs to connect to this simulator from elsewhere (WA_SANDBOX_URL): its
  // certificate's root key and the port its WebSocket listens on, on the same host as this API.
  app.get('/identity', async () => ({ success: true, publicKey: simulator.identity.publicKeyHex, wsPort: simulator.port }))

  app.get('/devices', async () => ({ success: true, devices: simulator.liveDevices(), waitingForScan: simulator.waitingForScan() }))

  app.post('/scan', {
    schema: { body: Type.Object({ qr: Type.String({ minLength: 10 }), phone: Phone }) }
  }, async (request, reply) => {
    if (!simulator.scan(request.body.qr, request.body.phone)) return reply.code(404).send(notFound('no connection is showing that QR'))
    return { success: true, phone: request.body.phone }
  })

  app.post('/devices/:device/logout', { schema: { params: Device } }, async (request, reply) => {
    if (!simulator.logout(request.params.device)) return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    return { success: true }
  })

  app.post('/devices/:device/replace', { schema: { params: Device } }, async (request, reply) => {
    if (!simulator.replace(request.params.device)) return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    return { success: true }
  })

  app.post('/devices/:device/drop', {
    schema: { params: Device, body: Type.Optional(Type.Object({ code: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })) })) },
    preValidation: async (request) => { request.body ??= {} }
  }, async (request, reply) => {
    if (!simulator.drop(request.params.device, request.body?.code)) {
      return reply.code(404).send(notFound(`device ${request.params.device} is not connected`))
    }
    return { success: true }
  })

  app.post('/pairing-code', {
    schema: {
      body: Type.Object({
        phone: Phone,
        code: Type.String({ pattern: '^[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}$', description: 'the 8 characters the companion shows' })
      })
    }
  }, async (request, reply) => {
    const outcome = await simulator.enterPairingCode(request.body.phone, request.body.code.replace('-', ''))
    if (outcome.linked) return { success: true, device: outcome.device }
    const failures = {
      'no-request': [404, `no companion is waiting for a code for ${request.body.phone}`],
      'wrong-code': [400, 'the code does not match the one the companion shows'],
      timeout: [504, 'the companion did not finish linking in time']
    } as const
    const [status, message] = failures[outcome.reason]
    return reply.code(status).send({ success: false, error: { code: outcome.reason.toUpperCase().replace('-', '_'), message } })
  })

  app.post('/contacts/:phone/messages', {
    schema: {
      params: Contact,
      body: Type.Object({
        to: Phone,
        /** The text, or a media message's caption. */
        text: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
        media: Type.Optional(Type.Object({
          kind: Type.Union(MEDIA_KINDS.map((kind) => Type.Literal(kind))),
          data: Type.String({ description: 'the file, base64', minLength: 1 }),
          mimetype: Type.String({ minLength: 3, maxLength: 255 }),
          fileName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          ptt: Type.Optional(Type.Boolean()),
          seconds: Type.Optional(Type.Integer({ minimum: 0 })),
          expired: Type.Optional(Type.Boolean({ description: 'already dropped by the media server: the device must ask for a re-upload' }))
        })),
        pushName: Type.Optional(Type.String({ maxLength: 64 })),
        id: Type.Optional(Type.String({ pattern: '^[0-9A-Za-z]{4,64}$' })),
        byLid: Type.Optional(Type.Boolean({ description: 'write from the contact\'s LID, its phone not given (a LID-addressed chat)' }))
      })
    },
    bodyLimit: 128 * 1024 * 1024
  }, async (request, reply) => {
    const { media, ...rest } = request.body
    if (!rest.text && !media) return reply.code(400).send({ success: false, error: { code: 'BAD_REQUEST', message: 'text or media' } })
    const sent = await simulator.deliver({
      from: request.params.phone,
      ...rest,
      ...(media ? { media: { ...media, data: Buffer.from(media.data, 'base64') } } : {})
    })
    const noDevice = sent.devices === 0 && sent.queued === 0 && !sent.blocked
    if (noDevice) return reply.code(404).send(notFound(`${request.body.to} has no linked device`))
    return { success: true, ...sent }
  })

  // WhatsApp's servers drop old media: the message's file answers 410 until a phone uploads it again.
  app.post('/media/:messageId/expire', {
    schema: { params: Type.Object({ messageId: Type.String({ pattern: '^[0-9A-Za-z]{4,64}$' }) }) }
  }, async (request, reply) => {
    if (!simulator.expireMedia(request.params.messageId)) {
      return reply.code(404).send(notFound(`no media message ${request.params.messageId}`))
    }
    return { success: true }
  })

  // Whether the phone answers its linked devices' requests to upload old media again (an offline phone never does).
  app.post('/accounts/:phone/media-reuploads', {
    schema: { params: Contact, body: Type.Object({ enabled: Type.Boolean() }) }
  }, async (request) => {
    simulator.account(request.params.phone).reuploadsMedia = request.body.enabled
    return { success: true }
  })

  // WhatsApp refuses messages to this contact with the code (463: no privacy token, a restricted sender); null stops it.
  app.post('/contacts/:phone/refusal', {
    schema: { params: Contact, body: Type.Object({ code: Type.Union([Type.String({ pattern: '^\\d{3}$' }), Type.Null()]) }) }
  }, async (request) => {
    simulator.account(request.params.phone).refusal = request.body.code ?? undefined
    return { success: true }
  })

  app.get('/contacts/:phone/presences', { schema: { params: Contact } }, async (request) => ({
    success: true,
    presences: simulator.account(request.params.phone).presences
  }))

  app.get('/accounts/:phone', { schema: { params: Contact } }, async (request) => {
    const account = simulator.account(request.params.phone)
    return {
      success: true,
      phone: account.phone,
      lid: `${account.lid}@lid`,
      registered: account.registered,
      availability: account.availability ?? null
    }
  })

  app.get('/contacts/:phone/messages', { schema: { params: Contact } }, async (request) => ({
    success: true,
    messages: simulator.received(request.params.phone)
  }))

  app.get('/contacts/:phone/receipts', { schema: { params: Contact } }, async (request) => ({
    success: true,
    receipts: [...simulator.account(request.params.phone).receipts]
  }))

  app.post('/contacts/:phone/read', {
    schema: {
      params: Contact,
      body: Type.Object({
        to: Phone,
        messageIds: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 100 })
      })
    }
  }, async (request, reply) => {
    const devices = simulator.read(request.params.phone, request.body.to, request.body.messageIds)
    if (devices === 0) return reply.code(404).send(notFound(`no linked device of ${request.body.to} is connected`))
    return { success: true, devices }
  })

  app.get('/log', async () => ({ success: true, log: simulator.log.slice(-200) }))
  void app.register(groupControl(simulator))
  void app.register(pollControl(simulator))
  void app.register(profileControl(simulator))
  void app.register(callControl(simulator))
  void app.register(chatControl(simulator))
  void app.register(statusControl(simulator))
  void app.register(historyControl(simulator))
  void app.register(peerControl(simulator))
  return app
}
