import type { KV, KvEntry } from '@nats-io/kv'
import type { FastifyBaseLogger } from 'fastify'
import { settlesWithin } from '../../core/deadline.ts'

/**
 * Follows every key under `prefix` (initial values, then changes) and resolves once the initial
 * values have been seen, or after `initialWaitMs` (a bucket whose only values are tombstones yields
 * nothing initially). An entry `onEntry` throws on is logged and skipped: a throw must never end the watch.
 */
export async function watchKv (kv: KV, prefix: string, options: { initialWaitMs: number, log: FastifyBaseLogger },
  onEntry: (key: string, entry: KvEntry) => void): Promise<{ stop: () => void }> {
  const pending = (await kv.status()).values
  const iterator = await kv.watch({ key: `${prefix}>` })
  let synced: () => void = () => {}
  const initialSync = new Promise<void>((resolve) => { synced = resolve })
  if (pending === 0) synced()
  void (async () => {
    for await (const entry of iterator) {
      try {
        onEntry(entry.key.slice(prefix.length), entry)
      } catch (err) {
        options.log.warn({ err, key: entry.key }, 'a KV entry could not be read; skipped')
      }
      if (entry.isUpdate || (entry.delta ?? 0) === 0) synced()
    }
  })().catch((err: unknown) => options.log.error({ err }, 'KV watch ended'))
  await settlesWithin(initialSync, options.initialWaitMs)
  return { stop: () => iterator.stop() }
}
