/**
 * The gateway under bench:sessions: the whole app in a process of its own (so its memory is only
 * the gateway's), answering `measure` over IPC with its memory after two full collections.
 */
import fp from 'fastify-plugin'
import app, { createServer } from '../core/app.ts'
import { loadGatewayConfig, plugins } from '../plugins/index.ts'

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
    process.send!({ type: 'memory', rss, heapUsed, heapTotal, external, arrayBuffers, sessions: fastify.sessionPool.size })
  }
  if (message.type === 'stop') {
    await fastify.close()
    process.exit(0)
  }
})
process.send({ type: 'ready' })
