import fp from 'fastify-plugin'
import { connect } from '@nats-io/transport-node'
import type { NatsConnection } from '@nats-io/nats-core'
import { settlesWithin } from '../deadline.ts'
import { natsCredentials } from '../nats/credentials.ts'

declare module 'fastify' {
  interface FastifyInstance {
    nats: NatsConnection
  }
}

/** Between reconnect attempts; the client retries forever so a NATS outage never ends the process. */
export const RECONNECT_WAIT_MS = 500

export default fp(async (app) => {
  const { natsUrl, replicaId } = app.config
  if (!natsUrl) throw new Error('NATS_URL is not resolved: start the embedded services before building the app')
  const { authenticated, ...credentials } = await natsCredentials(app.config)
  // Anyone who reaches an unauthenticated NATS can answer in place of a holder or read every command.
  if (!authenticated && process.env.NODE_ENV === 'production') {
    app.log.warn('NATS: the gateway connects without credentials ' +
      '(NATS_CREDS_FILE, NATS_NKEY_SEED_FILE, NATS_USER, NATS_TOKEN or a client certificate)')
  }
  const nc = await connect({
    ...credentials,
    servers: natsUrl.split(',').map((url) => url.trim()),
    name: replicaId,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    // nats.js otherwise builds two Error objects (for their stack traces) on every request, and the
    // holder makes one per event it stores: measured at ~12 % of its CPU under bench:send.
    noAsyncTraces: true
  })
  app.log.info({ server: nc.getServer() }, 'connected to NATS')

  let connected = true
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') connected = false
      if (status.type === 'reconnect') connected = true
      if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
        app.log.warn({ nats: status }, `NATS ${status.type}`)
      }
    }
  })()

  app.decorate('nats', nc)
  app.addReadinessCheck('nats', async () => {
    if (nc.isClosed()) throw new Error('NATS connection is closed')
    // A ping sent while disconnected would wait for the reconnect; the status is already the answer.
    if (!connected) throw new Error('NATS is disconnected; reconnecting')
    await nc.rtt()
  })
  app.addHook('onClose', async () => {
    if (nc.isClosed()) return
    // Drain waits for the server; without one (an outage at shutdown) it would wait for ever.
    if (!await settlesWithin(nc.drain(), app.config.shutdownTimeoutMs / 2)) {
      app.log.warn('NATS drain did not finish in time; closing the connection')
      await nc.close()
    }
  })
}, { name: 'nats', dependencies: ['config', 'health'] })
