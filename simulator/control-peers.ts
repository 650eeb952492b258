import { isIP } from 'node:net'
import { Type } from 'typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WhatsAppSimulator } from './server.ts'

const Address = Type.String({ minLength: 2, maxLength: 64, description: 'an IP address, e.g. 127.0.0.2' })

/**
 * The control API's routes for where connections come from (PROTOCOL.md § 21): every connection to
 * the WebSocket and media servers with its client's address, and which addresses may connect.
 */
export const peerControl = (simulator: WhatsAppSimulator): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/peers', async () => ({ success: true, allowed: simulator.allowedPeers() ?? null, connections: simulator.peers() }))

  app.put('/peers/allowed', {
    schema: { body: Type.Object({ addresses: Type.Union([Type.Array(Address, { maxItems: 64 }), Type.Null()]) }) }
  }, async (request, reply) => {
    const { addresses } = request.body
    const invalid = addresses?.find((address) => isIP(address) === 0)
    if (invalid !== undefined) {
      return reply.code(400).send({ success: false, error: { code: 'BAD_REQUEST', message: `${invalid} is not an IP address` } })
    }
    simulator.allowPeers(addresses ?? undefined)
    return { success: true, allowed: simulator.allowedPeers() ?? null }
  })
}
