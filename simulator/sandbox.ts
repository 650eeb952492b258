import type { Logger } from 'pino'
import type { Config } from '../core/config.ts'
import { WhatsAppSimulator } from './server.ts'
import { controlApi } from './control.ts'

/** A WhatsApp Web version for Baileys to announce; the simulator accepts any. */
const SANDBOX_WA_VERSION: [number, number, number] = [2, 3000, 1023223821]

/**
 * WA_SANDBOX=1: an embedded simulator the gateway's Baileys sockets connect to, and its control API,
 * so client developers can link a fake phone and send without a WhatsApp account.
 */
export async function startSandbox (config: Config, log: Logger): Promise<{ config: Config, stop: () => Promise<void> }> {
  const simulator = new WhatsAppSimulator()
  const { url } = await simulator.start()
  const control = controlApi(simulator)
  const controlUrl = await control.listen({ host: '127.0.0.1', port: config.sandboxControlPort })
  log.warn({ simulator: url, control: controlUrl },
    'WA_SANDBOX: connecting to a WhatsApp simulator, not to WhatsApp; scan QR codes with POST /scan on the control API')
  // The session-pool plugin's settings, pointed at the simulator.
  const sessionPoolSettings = {
    waTransport: 'baileys',
    waWsUrl: url,
    waCertPublicKey: simulator.identity.publicKeyHex,
    waVersion: (config as { waVersion?: unknown }).waVersion ?? SANDBOX_WA_VERSION
  }
  return {
    config: { ...config, ...sessionPoolSettings },
    stop: async () => {
      await control.close()
      await simulator.stop()
    }
  }
}
