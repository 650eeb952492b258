import type { NatsConnection } from '@nats-io/nats-core'
import { Kvm, type KV } from '@nats-io/kv'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'

export interface KvOptions {
  /** How long a key's last value lives after its last write (the bucket's max age); without it, values stay until deleted. */
  ttlMs?: number
  history?: number
  /** Its operations time out after this, so a lease renewal cannot hang past its usefulness. */
  timeoutMs: number
  /** Copies of the bucket on a NATS cluster; an existing bucket with fewer is raised to it. */
  replicas?: number
  /**
   * `ttlMs` is only for a bucket made now: an existing one keeps its max age, which its users manage
   * (setKvMaxAge). The members bucket needs this: a replica starting with a shorter TTL must not
   * shorten the keys of replicas that run a longer one.
   */
  keepExistingTtl?: boolean
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

/** Creating a replicated bucket or stream takes about a second on a cluster; more under load. */
const SETUP_TIMEOUT_MS = 10_000
/** How long start-up waits for JetStream on a cluster still electing its leaders. */
export const SETUP_PATIENCE_MS = 60_000

/**
 * Runs a JetStream set-up step (make a bucket, a stream) again while the cluster is electing a
 * leader: timeouts, "no responders" and "jetstream is not enabled" are weather, not failures.
 */
export async function duringElections<T> (step: () => Promise<T>, patienceMs = SETUP_PATIENCE_MS): Promise<T> {
  const deadline = performance.now() + patienceMs
  for (let attempt = 0; ; attempt++) {
    try {
      return await step()
    } catch (err) {
      const text = `${(err as Error).name} ${(err as Error).message}`
      const weather = /timeout|no responders|not enabled|leader|unavailable/i.test(text)
      if (!weather || performance.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)))
    }
  }
}

/** Opens (creating if needed) a JetStream KV bucket; its operations then time out after `timeoutMs`. */
export async function openKv (nc: NatsConnection, bucket: string, options: KvOptions): Promise<KV> {
  const ttlMs = options.ttlMs ?? 0
  const replicas = options.replicas ?? 1
  await duringElections(async () => {
    await new Kvm(jetstreamOf(nc, Math.max(options.timeoutMs, SETUP_TIMEOUT_MS))).create(bucket, {
      history: options.history ?? 1, ttl: ttlMs, replicas
    })
    await ensureStreamConfig(nc, `KV_${bucket}`, { replicas, maxAgeMs: options.keepExistingTtl ? undefined : ttlMs })
  })
  return new Kvm(jetstreamOf(nc, options.timeoutMs)).open(bucket)
}

const NS_PER_MS = 1_000_000

/**
 * An existing stream follows what this deployment asks for. Its replicas: a bucket made before
 * NATS_REPLICAS was set lives on one node; when the cluster cannot satisfy the change (fewer nodes),
 * start-up stops with a message saying so. Its max age, when given (0: none): a retention setting
 * changed, or a bucket whose values no longer expire (the lease bucket of an earlier version).
 */
export async function ensureStreamConfig (
  nc: NatsConnection, stream: string, wanted: { replicas: number, maxAgeMs?: number }
): Promise<void> {
  const jsm = await jetstreamManager(nc, { timeout: SETUP_TIMEOUT_MS })
  const { config } = await jsm.streams.info(stream)
  const maxAge = wanted.maxAgeMs === undefined ? config.max_age : wanted.maxAgeMs * NS_PER_MS
  if (config.max_age !== maxAge) await jsm.streams.update(stream, maxAgeChange(config.duplicate_window, maxAge))
  if (config.num_replicas === wanted.replicas) return
  try {
    await jsm.streams.update(stream, { num_replicas: wanted.replicas })
  } catch (err) {
    throw new Error(`${stream} has ${config.num_replicas} replica(s) and NATS_REPLICAS asks for ${wanted.replicas}; ` +
      `the server refused the change: ${(err as Error).message}`, { cause: err })
  }
}

/** A stream update to `maxAge` (ns). */
function maxAgeChange (duplicateWindow: number, maxAge: number) {
  // The server refuses a duplicate window longer than the max age (it made the window the old
  // max age when that was under two minutes): a shorter TTL shortens it too.
  return { max_age: maxAge, ...(maxAge > 0 && duplicateWindow > maxAge ? { duplicate_window: maxAge } : {}) }
}

/** Sets a bucket's max age: how long a key's last value lives after its last write. */
export async function setKvMaxAge (kv: KV, maxAgeMs: number): Promise<void> {
  const { jsm, stream } = kv as unknown as { jsm: JetStreamManager, stream: string }
  const { config } = await jsm.streams.info(stream)
  const maxAge = maxAgeMs * NS_PER_MS
  if (config.max_age !== maxAge) await jsm.streams.update(stream, maxAgeChange(config.duplicate_window, maxAge))
}

/**
 * Limit markers (a delete marker when a key expires by max age) arrived in nats-server 2.11.2.
 * Older servers silently ignore the option, so it is only asked for when the server reports it.
 */
export function supportsExpiryMarkers (version: string | undefined): boolean {
  const [major = 0, minor = 0, patch = 0] = (version ?? '').split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0)
  return major > 2 || (major === 2 && (minor > 11 || (minor === 11 && patch >= 2)))
}
