/**
 * Baileys, with libsignal and WhatsApp's protobufs, is about 60 MB of a process. It is loaded when
 * the first session needs it (a lease won, an auth state opened), not at start: a replica that holds
 * no company, or runs the test transport, never pays for it.
 */
export type Baileys = typeof import('@whiskeysockets/baileys')

/**
 * Small Buffers are cut from shared slabs of Buffer.poolSize bytes, and a slab lives as long as any
 * Buffer cut from it. Node 24 makes them 64 KB (Node 20: 8 KB). A session keeps small Buffers for its
 * whole life (its keys, the noise state, tokens), made at different moments, so about one 64 KB slab
 * per linked session stayed pinned: 408 slabs at 400 sessions, 63 KB of the 172 KB each session added
 * (heap snapshots at 100 and 400 sessions). Slabs of 8 KB pin an eighth of that; what is larger than
 * half a slab was never pooled.
 */
export const BUFFER_POOL_BYTES = 8 * 1024

let loading: Promise<Baileys> | undefined

export function loadBaileys (): Promise<Baileys> {
  if (!loading) {
    // Once sessions are held: a replica without any keeps Node's default.
    Buffer.poolSize = BUFFER_POOL_BYTES
    loading = import('@whiskeysockets/baileys')
  }
  return loading
}
