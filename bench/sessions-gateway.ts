/**
 * The gateway under bench:sessions: the whole app in a process of its own (so its memory is only
 * the gateway's), answering `measure` over IPC with its memory after two full collections, and
 * `load-whatsapp` by loading the WhatsApp stack as a first session would.
 */
import { getHeapSpaceStatistics } from 'node:v8'
import fp from 'fastify-plugin'
import app, { createServer } from '../core/app.ts'
import { loadGatewayConfig, plugins } from '../plugins/index.ts'
import { loadBaileys } from '../plugins/session-pool/baileys.ts'

const gc = (globalThis as { gc?: () => void }).gc
if (!gc || !process.send) throw new Error('run through bench/sessions.ts (needs --expose-gc and an IPC channel)')

const config = loadGatewayConfig()
const fastify = createServer(config)
await fastify.register(fp(app, { name: 'wa-gateway' }), { config, plugins })
await fastify.listen({ host: '127.0.0.1', port: 0 })

process.on('message', async (message: { type: string }) => {
  if (message.type === 'measure') {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    gc()
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage()
    // Each V8 heap space's size and use (MB): where heapTotal grows that heapUsed does not explain.
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((space) =>
      [space.space_name.replace(/_space$/, ''), [space.space_size, space.space_used_size].map((bytes) => Math.round(bytes / 2 ** 20))]))
    process.send!({ type: 'memory', rss, heapUsed, heapTotal, external, arrayBuffers, spaces, sessions: fastify.sessionPool.size })
  }
  // What the first session pays for every later one: Baileys, libsignal and WhatsApp's protobufs.
  if (message.type === 'load-whatsapp') {
    await loadBaileys()
    process.send!({ type: 'whatsapp-loaded' })
  }
  if (message.type === 'stop') {
    await fastify.close()
    process.exit(0)
  }
})
process.send({ type: 'ready' })
