/**
 * `npm run simulator`: the WhatsApp simulator on its own, for several gateway replicas to share
 * (WA_SANDBOX=1 WA_SANDBOX_URL=http://<host>:<SANDBOX_CONTROL_PORT>). Everything is in memory: a
 * restart forgets every linked phone. SIMULATOR_HOST 0.0.0.0 serves other hosts (a container); the
 * control API has no authentication, so it must never face a network anyone else reaches.
 */
import { WhatsAppSimulator } from './server.ts'
import { controlApi } from './control.ts'

const host = process.env.SIMULATOR_HOST ?? '127.0.0.1'
const wsPort = Number(process.env.SIMULATOR_WS_PORT ?? 3200)
const controlPort = Number(process.env.SANDBOX_CONTROL_PORT ?? 3100)
const mediaPort = Number(process.env.SIMULATOR_MEDIA_PORT ?? 3201)
// The name gateways reach it by, in media URLs (its certificate is valid for 127.0.0.1, localhost and simulator).
const publicHost = process.env.SIMULATOR_PUBLIC_HOST ?? '127.0.0.1'

const simulator = new WhatsAppSimulator({ host, port: wsPort, mediaPort, mediaPublicHost: publicHost })
const { port } = await simulator.start()
const control = controlApi(simulator)
const controlUrl = await control.listen({ host, port: controlPort })
process.stdout.write(`WhatsApp simulator: WebSocket on ${host}:${port}, media (HTTPS) on ${simulator.media.hostname}, ` +
  `control API on ${controlUrl}\n` +
  `gateways: WA_SANDBOX=1 WA_SANDBOX_URL=${controlUrl}\n`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await control.close()
  await simulator.stop()
  process.exit(0)
}
process.once('SIGINT', () => { void stop() })
process.once('SIGTERM', () => { void stop() })
