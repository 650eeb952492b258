import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { WebSocket } from 'ws'
import { ErrorCode, EventsQuery, type EventsSocketError, type EventsSubscribed } from '../../contracts/index.ts'
import { Events } from '../events.ts'
import { GatewayError, toErrorReply } from '../errors.ts'
import { BoundedMap } from '../bounded-map.ts'
import { hasScope, mayReceive } from '../access/principal.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The one event path: publish, follow, consume durably. */
    events: Events
  }
}

/** RFC 6455 close code for a server-side failure. */
const WS_INTERNAL_ERROR = 1011
/** RFC 6455 close code for a policy violation: the key behind the socket was revoked. */
const WS_POLICY_VIOLATION = 1008
/** Revoked key ids remembered, to close a socket whose credential was checked just before its revocation arrived. */
const REVOKED_KEYS_REMEMBERED = 10_000
/** RFC 6455 close code "try again later": the client does not read fast enough (it may resume with `since`). */
const WS_TRY_AGAIN_LATER = 1013
/** Clients send nothing the server reads: a frame larger than this closes the socket. */
const WS_MAX_PAYLOAD_BYTES = 4_096
/** Every socket is pinged this often; one that did not answer the previous ping is dropped (half-open). */
const WS_PING_INTERVAL_MS = 30_000
/** QR codes and pairing codes are worthless, and dangerous, after this: they are purged from the stream. */
const LINKING_VALIDITY_MS = 60_000

/** The events stream, and the WebSocket that serves every plugin's events of a company. */
export default fp(async (app) => {
  const { config } = app
  const events = new Events({
    nc: app.nats,
    subjects: app.subjects,
    replica: config.replicaId,
    stream: config.eventsStream,
    duplicateWindowMs: config.eventsDuplicateWindowMs,
    maxAgeMs: config.eventsMaxAgeMs,
    replicas: config.natsReplicas,
    requestTimeoutMs: config.natsRequestTimeoutMs,
    log: app.log
  })
  await events.open()
  app.decorate('events', events)
  app.addHook('onClose', () => events.close())

  // Open sockets by the API key behind them (taken with the key itself or with one of its tickets),
  // so a revocation closes them on every replica. Keys revoked while this replica runs are remembered:
  // a socket whose credential was checked just before the revocation reached this replica, and that
  // opens just after, is closed as it opens instead of staying open for good.
  const socketsByKey = new Map<string, Set<WebSocket>>()
  const revokedKeys = new BoundedMap<string, true>(REVOKED_KEYS_REMEMBERED)
  app.access.onRevoked((keyId) => {
    revokedKeys.set(keyId, true)
    for (const socket of socketsByKey.get(keyId) ?? []) socket.close(WS_POLICY_VIOLATION, 'key revoked')
    socketsByKey.delete(keyId)
  })

  // Linking events leave the stream once they are no longer valid (NATS 2.9 has no per-message TTL):
  // every sweep purges those older than a sequence noted at least LINKING_VALIDITY_MS ago.
  const marks: { at: number, seq: number }[] = []
  const sweep = setInterval(() => {
    void (async () => {
      marks.push({ at: Date.now(), seq: await events.lastSequence() })
      const due = marks.filter((mark) => mark.at <= Date.now() - LINKING_VALIDITY_MS).at(-1)
      if (!due) return
      marks.splice(0, marks.indexOf(due) + 1)
      await events.purgeLinking(due.seq + 1)
    })().catch((err: unknown) => app.log.warn({ err }, 'linking events could not be purged'))
  }, LINKING_VALIDITY_MS / 4)
  sweep.unref()
  app.addHook('onClose', async () => { clearInterval(sweep) })

  // Open sockets, for the connection limits, the pings and the revocation of their keys.
  const open = new Map<WebSocket, { companyId: string, alive: boolean }>()
  const openFor = (companyId: string) => [...open.values()].filter((socket) => socket.companyId === companyId).length
  const ping = setInterval(() => {
    for (const [socket, state] of open) {
      if (!state.alive) {
        socket.terminate()
        continue
      }
      state.alive = false
      // ws throws when pinging a socket that is closing.
      if (socket.readyState === socket.OPEN) socket.ping()
    }
  }, WS_PING_INTERVAL_MS)
  ping.unref()
  app.addHook('onClose', async () => { clearInterval(ping) })

  await app.register(websocket, { options: { maxPayload: WS_MAX_PAYLOAD_BYTES } })
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/whatsapp/events', {
    websocket: true,
    config: { access: { scope: 'events', company: 'query', tickets: true } },
    // Browsers always send Origin; services usually do not. WS_ALLOWED_ORIGINS restricts the browsers.
    onRequest: async (request) => {
      const origin = request.headers.origin
      if (config.wsAllowedOrigins.length > 0 && origin !== undefined && !config.wsAllowedOrigins.includes(origin)) {
        throw new GatewayError(ErrorCode.FORBIDDEN, `origin ${origin} may not open the events WebSocket`)
      }
    },
    // Refused before the upgrade: a flood of sockets must not take the replica's memory.
    preHandler: async (request) => {
      const { companyId } = request.query as { companyId: string }
      if (open.size >= config.wsMaxConnections) {
        throw new GatewayError(ErrorCode.UNAVAILABLE, 'this replica serves its maximum of WebSocket connections', { retryAfter: 5 })
      }
      if (openFor(companyId) >= config.wsMaxConnectionsPerCompany) {
        const message = `company ${companyId} has its maximum of WebSocket connections here`
        throw new GatewayError(ErrorCode.UNAVAILABLE, message, { retryAfter: 5 })
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
    const mayLink = principal !== undefined && hasScope(principal, 'link')
    const keyId = principal?.keyId
    if (keyId !== undefined) {
      if (revokedKeys.has(keyId)) {
        socket.close(WS_POLICY_VIOLATION, 'key revoked')
        return
      }
      const ofKey = socketsByKey.get(keyId) ?? new Set()
      socketsByKey.set(keyId, ofKey.add(socket))
      socket.on('close', () => { ofKey.delete(socket) })
    }
    const state = { companyId, alive: true }
    open.set(socket, state)
    socket.on('pong', () => { state.alive = true })
    socket.on('close', () => { open.delete(socket) })
    let follower
    try {
      follower = await events.follow(app.subjects.event(companyId, '>'), since, (event) => {
        if (!mayReceive(event.type, mayLink)) return
        // A client that does not read would make the replica hold everything for it.
        if (socket.bufferedAmount > config.wsMaxBufferedBytes) {
          socket.close(WS_TRY_AGAIN_LATER, 'too slow: reconnect with since')
          return
        }
        socket.send(JSON.stringify(event))
      })
    } catch (err) {
      request.log.error({ err, companyId }, 'could not follow events')
      socket.send(JSON.stringify({ type: 'error', companyId, error: toErrorReply(err).error } satisfies EventsSocketError))
      socket.close(WS_INTERNAL_ERROR)
      return
    }
    // Closed while the follower started: nothing will close it later.
    if (socket.readyState !== socket.OPEN) {
      follower.stop()
      return
    }
    socket.on('close', () => follower.stop())
    // Tells the client it is live and from which point: everything after `seq` follows.
    socket.send(JSON.stringify({ type: 'subscribed', companyId, seq: follower.after } satisfies EventsSubscribed))
  })
}, { name: 'events', dependencies: ['config', 'nats', 'bus', 'access'] })
