import type { Test } from 'tap'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'

/**
 * Deletes every JetStream stream, KV bucket (KV_…) and object store (OBJ_…) whose name holds `namespace`: what
 * a gateway of that NATS_NAMESPACE made. Its defaults are all named after it, core's and plugins' alike
 * (`<namespace>_leases`, `<namespace>_tickets`, `<NAMESPACE>_EVENTS` …), so one that appears later goes too.
 * Namespaces come from uniqueName, so the match takes nothing of another test's.
 */
export async function dropNamespace (natsUrl: string, namespace: string): Promise<void> {
  const nc = await connect({ servers: natsUrl })
  try {
    const jsm = await jetstreamManager(nc)
    const mark = namespace.toLowerCase()
    const names: string[] = []
    for await (const stream of jsm.streams.list()) {
      if (stream.config.name.toLowerCase().includes(mark)) names.push(stream.config.name)
    }
    for (const name of names) await jsm.streams.delete(name).catch(() => {})
  } finally {
    await nc.close()
  }
}

/**
 * Drops the namespace's streams, buckets and object stores when the test ends. Call it before starting the
 * gateways of that namespace: teardowns run last first, so theirs stop before this runs.
 */
export function dropNamespaceAfter (t: Test, natsUrl: string, namespace: string): void {
  t.teardown(() => dropNamespace(natsUrl, namespace))
}
