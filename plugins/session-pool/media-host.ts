import { Agent, type Dispatcher } from 'undici'

/** The host Baileys fetches history blobs and direct-path media from: WhatsApp's, fixed in its code. */
export const WHATSAPP_MEDIA_HOST = 'mmg.whatsapp.net'

/**
 * A fetch dispatcher that sends what Baileys fetches from WhatsApp's fixed media host to `host`
 * (`host:port`) instead: a server standing in for WhatsApp (the simulator) serves its media there.
 * Baileys builds a history blob's URL from its direct path alone (`getUrlFromDirectPath`), so only a
 * dispatcher can point it elsewhere; other origins go where they name.
 */
export function mediaHostDispatcher (host: string, base: Dispatcher = new Agent()): Dispatcher {
  const origin = `https://${host}`
  return base.compose((dispatch) => (options, handler) => {
    const target = typeof options.origin === 'string' ? options.origin : options.origin?.toString()
    if (target === `https://${WHATSAPP_MEDIA_HOST}`) return dispatch({ ...options, origin }, handler)
    return dispatch(options, handler)
  })
}
