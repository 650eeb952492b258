/**
 * Baileys, with libsignal and WhatsApp's protobufs, is about 60 MB of a process. It is loaded when
 * the first session needs it (a lease won, an auth state opened), not at start: a replica that holds
 * no company, or runs the test transport, never pays for it.
 */
export type Baileys = typeof import('@whiskeysockets/baileys')

let loading: Promise<Baileys> | undefined

export function loadBaileys (): Promise<Baileys> {
  loading ??= import('@whiskeysockets/baileys')
  return loading
}
