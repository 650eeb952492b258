import { join } from 'node:path'
import { freePorts, isPortTaken } from './free-port.ts'
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
  for (let attempt = 1; ; attempt++) {
    const nodes = planNodes(options, await freePorts(2 * (options.size ?? 3)))
    const started = await Promise.allSettled(nodes.map((node) => node.start()))
    const failure = started.find((result) => result.status === 'rejected')
    if (!failure) {
      return {
        nodes,
        url: nodes.map((node) => node.url).join(','),
        stop: async () => { await Promise.all(nodes.map((node) => node.stop())) }
      }
    }
    // A half-started cluster is stopped whole: nodes left running would outlive the caller's failure.
    await Promise.all(nodes.map((node) => node.stop()))
    if (!isPortTaken(failure.reason) || attempt === START_ATTEMPTS) throw failure.reason
  }
}

/** Tries with new ports when another process took one of ours between asking and binding. */
const START_ATTEMPTS = 3

function planNodes (options: { dir: string, name?: string, startTimeoutMs?: number }, ports: number[]): ClusterNode[] {
  const size = ports.length / 2
  const clientPort = (index: number) => ports[index] as number
  const clusterPort = (index: number) => ports[size + index] as number
  const routes = Array.from({ length: size }, (_, index) => `nats://127.0.0.1:${clusterPort(index)}`).join(',')
  return Array.from({ length: size }, (_, index): ClusterNode => {
    const name = `n${index + 1}`
    let running: RunningNats | undefined
    const start = async () => {
      running = await startNatsServer({
        storeDir: join(options.dir, name),
        port: clientPort(index),
        startTimeoutMs: options.startTimeoutMs ?? 15_000,
        extraArgs: ['--server_name', name, '--cluster_name', options.name ?? 'wa-local', '--cluster', `nats://127.0.0.1:${clusterPort(index)}`, '--routes', routes]
      })
    }
    return {
      name,
      url: `nats://127.0.0.1:${clientPort(index)}`,
      start,
      stop: async (kill = false) => {
        const current = running
        running = undefined
        await (kill ? current?.kill() : current?.stop())
      },
      running: () => running !== undefined
    }
  })
}
