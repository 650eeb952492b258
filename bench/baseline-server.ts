/**
 * The baselines of bench:send, in a process of their own like a gateway replica: a NATS responder
 * that answers at once, and a bare Fastify route that does the same over HTTP.
 */
import Fastify from 'fastify'
import { connect } from '@nats-io/transport-node'

const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
const subject = process.env.ECHO_SUBJECT ?? 'bench.echo'
const nc = await connect({ servers: natsUrl })
const reply = JSON.stringify({ success: true, messageId: '3EB0BASELINE', timestamp: new Date(0).toISOString() })
nc.subscribe(subject, { callback: (_err, msg) => { msg.respond(reply) } })
await nc.flush()
const app = Fastify({ logger: false })
app.post('/echo', async () => reply)
const url = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`baseline ready ${url}\n`)
process.on('SIGTERM', async () => {
  await app.close()
  await nc.drain()
  process.exit(0)
})
