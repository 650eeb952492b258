// A company's events over the gateway's WebSocket, as a browser opens it: a single-use ticket per
// connection (keys never go into URLs), and after any drop a new connection with `since` set to the
// last sequence seen, so no event is missed and none is shown twice.

const RETRY_FIRST_MS = 500
const RETRY_MAX_MS = 10_000

/**
 * Follows `companyId`'s events. `onEvent(event)` gets each one once, in order; `onState(state, detail)`
 * hears `connecting`, `live`, `reconnecting` or `refused` (with the gateway's message).
 * Returns `{ stop }`.
 */
export function followEvents (api, companyId, { onEvent, onState }) {
  let socket
  let stopped = false
  let since
  let attempt = 0
  let timer

  const retry = () => {
    if (stopped) return
    onState('reconnecting')
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt++)
    timer = setTimeout(open, delay)
  }

  async function open () {
    if (stopped) return
    onState(since === undefined ? 'connecting' : 'reconnecting')
    let ticket
    try {
      ticket = (await api.post('/api/whatsapp/events/ticket', { companyId })).ticket
    } catch (err) {
      // Refusals are final (a wrong or revoked key, a missing scope, a company not ours); the rest passes.
      if ([401, 403, 404].includes(err.status)) onState('refused', err.message)
      else retry()
      return
    }
    if (stopped) return
    const url = new URL('/api/whatsapp/events', window.location.href)
    url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
    url.searchParams.set('companyId', companyId)
    url.searchParams.set('ticket', ticket)
    if (since !== undefined) url.searchParams.set('since', String(since))
    const current = new WebSocket(url)
    socket = current
    current.onmessage = (message) => {
      let event
      try {
        event = JSON.parse(message.data)
      } catch {
        return
      }
      if (event.type === 'subscribed') {
        since = Math.max(since ?? 0, event.seq)
        attempt = 0
        onState('live')
        return
      }
      if (event.type === 'error') return
      if (typeof event.seq === 'number') {
        if (since !== undefined && event.seq <= since) return
        since = event.seq
      }
      onEvent(event)
    }
    current.onclose = () => {
      if (socket === current) socket = undefined
      retry()
    }
  }

  open()
  return {
    stop () {
      stopped = true
      clearTimeout(timer)
      socket?.close()
    }
  }
}
