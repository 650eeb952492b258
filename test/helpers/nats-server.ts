import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startNatsServer, type RunningNats } from '../../core/embedded/nats.ts'

const START_TIMEOUT_MS = 15_000

/** A nats-server with JetStream of this test's own, on a free port; it can be stopped and started again. */
export async function ownNatsServer (t: Test) {
  const storeDir = await mkdtemp(join(tmpdir(), 'wa-nats-'))
  let running: RunningNats = await startNatsServer({ storeDir, startTimeoutMs: START_TIMEOUT_MS })
  const port = running.port
  t.teardown(async () => {
    await running.stop()
    await rm(storeDir, { recursive: true, force: true })
  })
  return {
    url: running.url,
    port,
    stop: () => running.stop(),
    start: async () => {
      running = await startNatsServer({ storeDir, port, startTimeoutMs: START_TIMEOUT_MS })
    }
  }
}
