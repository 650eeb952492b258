import type { Logger } from 'pino'
import type { Config } from '../core/config.ts'
import { WhatsAppSimulator } from './server.ts'
import { controlApi } from './control.ts'
import { trustSimulatorCa } from './media.ts'

/** A WhatsApp Web version for Baileys to announce; the simulator accepts any. */
const SANDBOX_WA_VERSION: [number, number, number] = [2, 3000, 1023223821]

/**
 * WA_SANDBOX=1: an embedded simulator the gateway's Baileys sockets connect to, and its control API,
 * so client developers can link a fake phone and send without a WhatsApp account.
 */
export async function startSandbox (config: Config, log: Logger): Promise<{ config: Config, stop: () => Promise<void> }> {
  trustSimulatorCa()
  if (config.waSandboxUrl) return { config: await joinSharedSimulator(config, config.waSandboxUrl, log), stop: async () => {} }
  const simulator = new WhatsAppSimulator()
  const { url } = await simulator.start()
  const control = controlApi(simulator)
  const controlUrl = await control.listen({ host: '127.0.0.1', port: config.sandboxControlPort })
  log.warn({ simulator: url, control: controlUrl },
    'WA_SANDBOX: connecting to a WhatsApp simulator, not to WhatsApp; scan QR codes with POST /scan on the control API')
  return {
    config: pointedAt(config, url, simulator.identity.publicKeyHex),
    stop: async () => {
      await control.close()
      await simulator.stop()
    }
  }
}

/** The session-pool plugin's settings, pointed at a simulator. */
function pointedAt (config: Config, wsUrl: string, publicKey: string): Config {
  const sessionPoolSettings = {
    waTransport: 'baileys',
    waWsUrl: wsUrl,
    waCertPublicKey: publicKey,
    waVersion: (config as { waVersion?: unknown }).waVersion ?? SANDBOX_WA_VERSION
  }
  return { ...config, ...sessionPoolSettings }
}

/** How long a replica waits for a shared simulator that is still starting (Compose starts them together). */
const SHARED_SIMULATOR_PATIENCE_MS = 60_000

/**
 * WA_SANDBOX_URL: one simulator (`npm run simulator`) shared by every replica, so a company linked
 * through one replica stays linked when another takes it over, as with WhatsApp itself.
 */
async function joinSharedSimulator (config: Config, controlUrl: string, log: Logger): Promise<Config> {
  const deadline = performance.now() + SHARED_SIMULATOR_PATIENCE_MS
  for (;;) {
    try {
      const response = await fetch(new URL('/identity', controlUrl), { signal: AbortSignal.timeout(2_000) })
      const identity = await response.json() as { publicKey?: string, wsPort?: number }
      if (!identity.publicKey || !identity.wsPort) throw new Error(`unexpected answer ${response.status}`)
      const wsUrl = `ws://${new URL(controlUrl).hostname}:${identity.wsPort}/ws/chat`
      log.warn({ simulator: wsUrl, control: controlUrl }, 'WA_SANDBOX: connecting to a shared WhatsApp simulator, not to WhatsApp')
      return pointedAt(config, wsUrl, identity.publicKey)
    } catch (err) {
      if (performance.now() > deadline) {
        throw new Error(`WA_SANDBOX_URL: no simulator answered at ${controlUrl}: ${(err as Error).message}`, { cause: err })
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }
}
