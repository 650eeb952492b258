import type { NatsConnection } from '@nats-io/nats-core'
import { Kvm, type KV } from '@nats-io/kv'
import { jetstream, type JetStreamClient } from '@nats-io/jetstream'

export interface KvOptions {
  /** How long a key's last value lives after its last write (the bucket's max age). */
  ttlMs: number
  history?: number
  /** Its operations time out after this, so a lease renewal cannot hang past its usefulness. */
  timeoutMs: number
  /** Ask for a delete marker when a key expires (only where the server has them). */
  expiryMarkers?: boolean
}

/**
 * The connection's reply-subject prefix (NATS_INBOX_PREFIX). JetStream's watchers and our publisher
 * must use it too: NATS permissions may let this user receive on its own inbox prefix only.
 */
export function inboxPrefixOf (nc: NatsConnection): string | undefined {
  return (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix
}

/** A JetStream client whose watchers and ordered consumers reply on the connection's inbox prefix. */
export function jetstreamOf (nc: NatsConnection, timeoutMs: number): JetStreamClient {
  const prefix = inboxPrefixOf(nc)
  return jetstream(nc, { timeout: timeoutMs, ...(prefix ? { watcherPrefix: prefix } : {}) })
}

/** Opens (creating if needed) a JetStream KV bucket. */
export async function openKv (nc: NatsConnection, bucket: string, options: KvOptions): Promise<KV> {
  const kvm = new Kvm(jetstreamOf(nc, options.timeoutMs))
  const markers = options.expiryMarkers === true && supportsExpiryMarkers(nc.info?.version)
  return kvm.create(bucket, { history: options.history ?? 1, ttl: options.ttlMs, ...(markers ? { markerTTL: options.ttlMs } : {}) })
}

/**
 * Limit markers (a delete marker when a key expires by max age) arrived in nats-server 2.11.2.
 * Older servers silently ignore the option, so it is only asked for when the server reports it.
 */
export function supportsExpiryMarkers (version: string | undefined): boolean {
  const [major = 0, minor = 0, patch = 0] = (version ?? '').split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0)
  return major > 2 || (major === 2 && (minor > 11 || (minor === 11 && patch >= 2)))
}
