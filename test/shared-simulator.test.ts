import t from 'tap'
import { spawn } from 'node:child_process'
import { createTestDatabase, serviceEnv, TEST_NATS_URL, uniqueName } from './helpers/services.ts'
import { dropNamespaceAfter } from './helpers/namespace-cleanup.ts'
import {
  SANDBOX_ADMIN_HEADERS as auth, linkSandboxCompany, startSandboxReplica, stopSandboxReplica
} from './helpers/sandbox-process.ts'
import { waitFor } from './helpers/wait.ts'

// `npm run simulator` and WA_SANDBOX_URL: replicas share one simulator, as they share WhatsApp, so a
// company linked through one is connected again by another after a handoff, without a new QR.
t.test('two replicas on one shared simulator: a company moves between them without a new QR', { timeout: 180_000 }, async (t) => {
  const simulator = spawn(process.execPath, ['simulator/main.ts'], {
    env: serviceEnv({ SIMULATOR_WS_PORT: '0', SIMULATOR_MEDIA_PORT: '0', SANDBOX_CONTROL_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { simulator.kill('SIGTERM') })
  let printed = ''
  simulator.stdout.on('data', (chunk: Buffer) => { printed += chunk.toString() })
  t.ok(await waitFor(() => /WA_SANDBOX_URL=(\S+)/.test(printed), 30_000), printed)
  const controlUrl = /WA_SANDBOX_URL=(\S+)/.exec(printed)![1]
  const identity = await (await fetch(`${controlUrl}/identity`)).json() as { publicKey: string, wsPort: number }
  t.match(identity, { publicKey: /^[0-9a-f]{64}$/, wsPort: Number })

  const databaseUrl = await createTestDatabase(t)
  const namespace = uniqueName('shared')
  dropNamespaceAfter(t, TEST_NATS_URL, namespace)
  const start = () => startSandboxReplica({ natsUrl: TEST_NATS_URL, databaseUrl, namespace, env: { WA_SANDBOX_URL: controlUrl } })
  const [first, second] = await Promise.all([start(), start()])
  t.teardown(() => Promise.all([stopSandboxReplica(first), stopSandboxReplica(second)]))
  t.equal(first.controlUrl, controlUrl, 'the replica uses the shared simulator, not one of its own')

  const companyId = uniqueName('salon')
  await linkSandboxCompany(first, companyId)
  const devices = async () => (await (await fetch(`${controlUrl}/devices`)).json() as { devices: unknown[] }).devices.length
  t.equal(await devices(), 1)

  // Stop whichever replica holds it: the other connects the same linked device again.
  const holderOf = async (replica: typeof first) => {
    const status = await fetch(`${replica.url}/api/whatsapp/sessions/${companyId}/status`, { headers: auth })
    return (await status.json() as { holder?: string }).holder
  }
  const holder = await holderOf(first)
  const [leaving, staying] = holder === await replicaId(first) ? [first, second] : [second, first]
  await stopSandboxReplica(leaving)
  const connected = async () => {
    const status = await (await fetch(`${staying.url}/api/whatsapp/sessions/${companyId}/status`, { headers: auth })).json() as
      { connected?: boolean, state?: string }
    return status.connected === true
  }
  t.ok(await waitFor(connected, 30_000), 'connected again on the other replica')
  t.equal(await devices(), 1, 'still one linked device, and no QR was shown again')
})

async function replicaId (replica: { url: string }): Promise<string | undefined> {
  const cluster = await (await fetch(`${replica.url}/api/whatsapp/cluster`, { headers: auth })).json() as { replica?: string }
  return cluster.replica
}
