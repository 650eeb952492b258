import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { WebSocket } from 'ws'
import { ErrorCode, EventsQuery } from '../../contracts/index.ts'
import { Events } from '../events.ts'
import { GatewayError, toErrorReply } from '../errors.ts'
import { hasScope } from '../access/principal.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The one event path: publish, follow, consume durably. */
    events: Events
  }
}

/** Stream events are kept this long for `?since=` replays. */
const EVENTS_MAX_AGE_MS = 24 * 60 * 60 * 1000
/** RFC 6455 close code for a server-side failure. */
const WS_INTERNAL_ERROR = 1011
/** RFC 6455 close code for a policy violation: the key behind the socket was revoked. */
const WS_POLICY_VIOLATION = 1008
/** Events that let whoever sees them link the company's WhatsApp: only for principals with `link`. */
const LINKING_EVENTS = new Set(['qr', 'pairing_code'])

/** The events stream, and the WebSocket that serves every plugin's events of a company. */
export default fp(async (app) => {
  const { config } = app
  const events = new Events({
    nc: app.nats,
    subjects: app.subjects,
    replica: config.replicaId,
    stream: config.eventsStream,
    duplicateWindowMs: config.eventsDuplicateWindowMs,
    maxAgeMs: EVENTS_MAX_AGE_MS,
    requestTimeoutMs: config.natsRequestTimeoutMs,
    log: app.log
  })
  await events.open()
  app.decorate('events', events)
  app.addHook('onClose', async () => { events.close() })

  // Open sockets by the API key behind them, so a revocation closes them on every replica.
  const socketsByKey = new Map<string, Set<WebSocket>>()
  app.access.onRevoked((keyId) => {
    for (const socket of socketsByKey.get(keyId) ?? []) socket.close(WS_POLICY_VIOLATION, 'key revoked')
    socketsByKey.delete(keyId)
  })

  await app.register(websocket)
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/events', {
    websocket: true,
    config: { access: { scope: 'events', company: 'query' } },
    // Browsers always send Origin; services usually do not. WS_ALLOWED_ORIGINS restricts the browsers.
    onRequest: async (request) => {
      const origin = request.headers.origin
      if (config.wsAllowedOrigins.length > 0 && origin !== undefined && !config.wsAllowedOrigins.includes(origin)) {
        throw new GatewayError(ErrorCode.FORBIDDEN, `origin ${origin} may not open the events WebSocket`)
      }
    },
    schema: {
      tags: ['events'],
      summary: 'WebSocket: the company\'s events as JSON `{ id, type, companyId, seq, … }`;' +
        ' reconnect with `?since=<seq>` to receive what you missed',
      querystring: EventsQuery
    }
  }, async (socket, request) => {
    const { companyId, since } = request.query
    const principal = request.principal
    const mayLink = principal === undefined || hasScope(principal, 'link')
    const keyId = principal?.keyId
    if (keyId !== undefined) {
      const open = socketsByKey.get(keyId) ?? new Set()
      socketsByKey.set(keyId, open.add(socket))
      socket.on('close', () => { open.delete(socket) })
    }
    let follower
    try {
      follower = await events.follow(app.subjects.event(companyId, '>'), since, (event) => {
        if (LINKING_EVENTS.has(event.type) && !mayLink) return
        socket.send(JSON.stringify(event))
      })
    } catch (err) {
      request.log.error({ err, companyId }, 'could not follow events')
      socket.send(JSON.stringify({ type: 'error', companyId, error: toErrorReply(err).error }))
      socket.close(WS_INTERNAL_ERROR)
      return
    }
    socket.on('close', () => follower.stop())
    // Tells the client it is live and from which point: everything after `seq` follows.
    socket.send(JSON.stringify({ type: 'subscribed', companyId, seq: follower.after }))
  })
}, { name: 'events', dependencies: ['config', 'nats', 'bus', 'access'] })
