import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { EventsQuery } from '../../contracts/index.ts'
import { Events } from '../events.ts'
import { toErrorReply } from '../errors.ts'

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

  await app.register(websocket)
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/events', {
    websocket: true,
    schema: {
      tags: ['events'],
      summary: 'WebSocket: the company\'s events as JSON `{ id, type, companyId, seq, … }`;' +
        ' reconnect with `?since=<seq>` to receive what you missed',
      querystring: EventsQuery
    }
  }, async (socket, request) => {
    const { companyId, since } = request.query
    let follower
    try {
      follower = await events.follow(app.subjects.event(companyId, '>'), since, (event) => socket.send(JSON.stringify(event)))
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
}, { name: 'events', dependencies: ['config', 'nats', 'bus'] })
