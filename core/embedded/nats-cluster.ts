import { join } from 'node:path'
import { freePort } from './free-port.ts'
import { startNatsServer, type RunningNats } from './nats.ts'

export interface ClusterNode {
  name: string
  url: string
  /** Stops the node (SIGTERM, or SIGKILL with `kill`); `start` brings it back on the same ports and store. */
  stop: (kill?: boolean) => Promise<void>
  start: () => Promise<void>
  running: () => boolean
}

export interface RunningCluster {
  nodes: ClusterNode[]
  /** Every node's client URL, comma-separated: what NATS_URL takes. */
  url: string
  stop: () => Promise<void>
}

/**
 * A NATS cluster with JetStream on loopback, one process per node, for `npm run cluster`, the chaos
 * benchmark and tests. Each node has its own name, ports and store under `dir` and routes to all.
 */
export async function startNatsCluster (options: {
  dir: string
  size?: number
  name?: string
  startTimeoutMs?: number
}): Promise<RunningCluster> {
  const size = options.size ?? 3
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort() })))
  const routes = ports.map((port) => `nats://127.0.0.1:${port.cluster}`).join(',')
  const nodes = ports.map((port, index): ClusterNode => {
    const name = `n${index + 1}`
    let running: RunningNats | undefined
    const start = async () => {
      running = await startNatsServer({
        storeDir: join(options.dir, name),
        port: port.client,
        startTimeoutMs: options.startTimeoutMs ?? 15_000,
        extraArgs: ['--server_name', name, '--cluster_name', options.name ?? 'wa-local', '--cluster', `nats://127.0.0.1:${port.cluster}`, '--routes', routes]
      })
    }
    return {
      name,
      url: `nats://127.0.0.1:${port.client}`,
      start,
      stop: async (kill = false) => {
        const current = running
        running = undefined
        await (kill ? current?.kill() : current?.stop())
      },
      running: () => running !== undefined
    }
  })
  await Promise.all(nodes.map((node) => node.start()))
  return {
    nodes,
    url: nodes.map((node) => node.url).join(','),
    stop: async () => { await Promise.all(nodes.map((node) => node.stop())) }
  }
}
