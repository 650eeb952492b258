// One company: its status, linking by QR or pairing code (the page follows the linking live and
// turns to "connected" by itself), its groups, its live events, a test send and reaction, and logout.
import { useEffect, useRef, useState } from 'preact/hooks'
import { companyPath } from './api.js'
import { followEvents } from './live.js'
import { ago, describeEvent, maskPhone, problemText, secondsUntil } from './format.js'
import { NewestEpochs } from './epochs.js'
import { ErrorNote, StateBadge, html, may } from './html.js'
import { Groups } from './groups.js'
import { Polls } from './polls.js'
import { History } from './history.js'
import { Chats } from './chats.js'
import { Calls } from './calls.js'
import { Scheduled } from './scheduled.js'
import { Campaigns } from './campaigns.js'

const EVENTS_SHOWN = 100
/** Events after which the status is asked again. */
/** Events after which the chat list is asked again: a history chunk, a message either way, a chat changed elsewhere. */
const CHAT_EVENTS = new Set(['history_sync', 'message', 'message_sent', 'chat_update'])
const STATUS_EVENTS = new Set(['connected', 'disconnected', 'logout', 'owner_changed', 'connection_replaced', 'error', 'reconnect_failed'])
/** Events after which the groups are asked again. */
const GROUP_EVENTS = new Set(['group_joined', 'group_left', 'group_update', 'group_participants'])
/** After a vote or a sent poll, the polls are asked again. */
const isPollEvent = (event) => event.type === 'poll_vote' || (event.type === 'message_sent' && event.data?.kind === 'poll')
/** Events after which the calls are asked again. */
const CALL_EVENTS = new Set(['call'])
/** Events after which the scheduled messages are asked again (message_sent at most once a second). */
const SCHEDULED_EVENTS = new Set(['message_scheduled', 'message_sent', 'message_expired', 'message_failed'])

/** An idempotency key for one press of a button (crypto.randomUUID needs a secure context; this does not). */
function newKey () {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((byte) => byte.toString(16).padStart(2, '0')).join('')
}

/** A clock that ticks every second while `running`. */
function useNow (running) {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    if (!running) return
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [running])
  return now
}

function StatusCard ({ status, budget }) {
  const now = useNow(true)
  return html`
    <article aria-labelledby="status-title">
      <h2 id="status-title">Status</h2>
      <dl class="facts">
        <dt>State</dt><dd><${StateBadge} session=${status} /></dd>
        <dt>Holder · epoch</dt><dd>${status.holder ? `${status.holder} · ${status.epoch ?? '?'}` : 'nobody holds it'}</dd>
        <dt>Phone</dt><dd class="mono">${maskPhone(status.health?.phoneNumber)}</dd>
        <dt>Last activity</dt><dd>${ago(status.health?.lastActivity, now)}</dd>
        <dt>Budget left</dt><dd>${budget ? `${budget.left} of ${budget.perMinute} messages per minute` : '—'}</dd>
        <dt>Last error</dt><dd>${problemText(status.lastError, now)}</dd>
      </dl>
    </article>`
}

function LinkPanel ({ companyId, api, linking, setLinking, onConnected }) {
  const [phone, setPhone] = useState('')
  const [error, setError] = useState()
  const [busy, setBusy] = useState(false)
  const now = useNow(linking?.status === 'pairing_code')
  const start = async (body) => {
    setBusy(true)
    setError(undefined)
    try {
      const answer = await api.post(companyPath(companyId, '/initialize'), body)
      if (answer.status === 'connected') onConnected()
      else setLinking(answer)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  const left = linking?.status === 'pairing_code' && linking.expiresAt ? secondsUntil(linking.expiresAt, now) : undefined
  return html`
    <article aria-labelledby="link-title">
      <h2 id="link-title">Link WhatsApp</h2>
      <p>Open WhatsApp on the salon's phone › Settings › Linked devices › Link a device.</p>
      <div class="grid">
        <div>
          <button onClick=${() => start({})} disabled=${busy} aria-busy=${busy ? 'true' : undefined}>Show QR code</button>
        </div>
        <form onSubmit=${(event) => { event.preventDefault(); start({ phoneNumber: phone }) }}>
          <label for="pairing-phone">Or link with the phone number</label>
          <fieldset role="group">
            <input id="pairing-phone" type="tel" autocomplete="off" placeholder="+7 900 123-45-67" required
              value=${phone} onInput=${(event) => setPhone(event.currentTarget.value)} />
            <button type="submit" disabled=${busy}>Get code</button>
          </fieldset>
        </form>
      </div>
      <${ErrorNote} error=${error} />
      ${linking?.status === 'qr'
        ? html`<figure class="qr">
            <img src=${linking.qrDataUrl} data-qr=${linking.qr} width="264" height="264"
              alt=${`QR code to link ${companyId}: scan it in WhatsApp, Linked devices`} />
            <figcaption>Scan this code with WhatsApp. It changes by itself as WhatsApp rotates codes.</figcaption>
          </figure>`
        : null}
      ${linking?.status === 'pairing_code'
        ? html`<div class="pairing">
            <p>In WhatsApp choose "Link with phone number instead" and enter</p>
            <p class="code mono" aria-label=${`pairing code ${linking.pairingCode.split('').join(' ')}`}>${linking.pairingCode}</p>
            <p aria-live="polite">${left > 0 ? `Valid for ${left} s` : 'This code has expired: get a new one.'}</p>
          </div>`
        : null}
    </article>`
}

function TryIt ({ companyId, api, reactTo }) {
  const [send, setSend] = useState({ phone: '', message: '' })
  const [reaction, setReaction] = useState({ phone: '', messageId: '', emoji: '❤️', fromMe: false })
  const [result, setResult] = useState()
  const [error, setError] = useState()
  useEffect(() => { if (reactTo) setReaction((current) => ({ ...current, ...reactTo })) }, [reactTo])
  const call = async (path, body) => {
    setError(undefined)
    setResult(undefined)
    try {
      const answer = await api.post(companyPath(companyId, path), body, { 'idempotency-key': newKey() })
      setResult(answer)
      return answer
    } catch (err) {
      setError(err)
    }
  }
  const submitSend = async (event) => {
    event.preventDefault()
    const answer = await call('/send', send)
    if (answer) setReaction((current) => ({ ...current, phone: send.phone, messageId: answer.messageId, fromMe: true }))
  }
  const submitReaction = (event) => {
    event.preventDefault()
    call('/reaction', reaction)
  }
  return html`
    <article aria-labelledby="try-title">
      <h2 id="try-title">Try it</h2>
      <form onSubmit=${submitSend} aria-label="Send a test message">
        <label for="send-phone">Phone</label>
        <input id="send-phone" type="tel" required autocomplete="off" value=${send.phone}
          onInput=${(event) => setSend({ ...send, phone: event.currentTarget.value })} />
        <label for="send-message">Message</label>
        <textarea id="send-message" required maxlength="4096" rows="2" value=${send.message}
          onInput=${(event) => setSend({ ...send, message: event.currentTarget.value })}></textarea>
        <button type="submit">Send</button>
      </form>
      <form onSubmit=${submitReaction} aria-label="React to a message">
        <fieldset class="grid">
          <div>
            <label for="reaction-phone">Chat phone</label>
            <input id="reaction-phone" type="tel" required autocomplete="off" value=${reaction.phone}
              onInput=${(event) => setReaction({ ...reaction, phone: event.currentTarget.value })} />
          </div>
          <div>
            <label for="reaction-message">Message id</label>
            <input id="reaction-message" required autocomplete="off" value=${reaction.messageId}
              onInput=${(event) => setReaction({ ...reaction, messageId: event.currentTarget.value })} />
          </div>
          <div>
            <label for="reaction-emoji">Emoji</label>
            <input id="reaction-emoji" maxlength="16" value=${reaction.emoji}
              onInput=${(event) => setReaction({ ...reaction, emoji: event.currentTarget.value })} />
          </div>
        </fieldset>
        <label><input type="checkbox" checked=${reaction.fromMe}
          onChange=${(event) => setReaction({ ...reaction, fromMe: event.currentTarget.checked })} /> The message is one we sent</label>
        <button type="submit" class="secondary">React</button>
      </form>
      <${ErrorNote} error=${error} />
      ${result
        ? html`<p role="status" class="ok-note">
            ${result.duplicate ? 'Already sent' : 'Accepted by WhatsApp'}: message <span class="mono">${result.messageId}</span>
          </p>`
        : null}
    </article>`
}

function LiveEvents ({ events, state, onReact, canSend }) {
  return html`
    <article aria-labelledby="events-title">
      <h2 id="events-title">Live events
        <span class="live" data-state=${state.state}>${state.state}${state.detail ? `: ${state.detail}` : ''}</span>
      </h2>
      ${events.length === 0 ? html`<p>No events since this page opened.</p>` : null}
      <ol class="events" aria-live="polite" aria-relevant="additions">
        ${events.map((event) => html`<li key=${event.id} data-type=${event.type}>
          <time datetime=${event.timestamp}>${event.timestamp.slice(11, 19)}</time>
          <span class="type">${event.type}</span>
          <span class="what">${describeEvent(event)}</span>
          ${event.type === 'message' && canSend && event.data.messageId
            ? html`<button class="outline small"
                onClick=${() => onReact({ phone: event.data.phone ?? event.data.lid, messageId: event.data.messageId, fromMe: false })}>
                React
              </button>`
            : null}
        </li>`)}
      </ol>
    </article>`
}

function Logout ({ companyId, api, onDone }) {
  const dialog = useRef()
  const [error, setError] = useState()
  const confirm = async () => {
    try {
      await api.delete(companyPath(companyId))
      dialog.current.close()
      onDone()
    } catch (err) {
      setError(err)
    }
  }
  return html`
    <article aria-labelledby="logout-title">
      <h2 id="logout-title">Log out</h2>
      <p>Unlinks this WhatsApp number from the gateway and wipes its keys; linking again needs a new scan.</p>
      <button class="contrast" onClick=${() => dialog.current.showModal()}>Log out ${companyId}…</button>
      <dialog ref=${dialog} aria-labelledby="logout-confirm-title">
        <article>
          <h3 id="logout-confirm-title">Log out ${companyId}?</h3>
          <p>The salon will stop receiving and sending WhatsApp messages through the gateway until someone links the phone again.</p>
          <${ErrorNote} error=${error} />
          <footer>
            <button class="secondary" onClick=${() => dialog.current.close()}>Cancel</button>
            <button class="contrast" onClick=${confirm}>Log out</button>
          </footer>
        </article>
      </dialog>
    </article>`
}

export function Company ({ companyId, session }) {
  const { api, principal } = session
  const [status, setStatus] = useState()
  const [budget, setBudget] = useState()
  const [error, setError] = useState()
  const [linking, setLinking] = useState()
  const [events, setEvents] = useState([])
  const [live, setLive] = useState({ state: 'connecting' })
  const [reactTo, setReactTo] = useState()
  const [statusAsked, askStatus] = useState(0)
  const [groupsAsked, askGroups] = useState(0)
  const [pollsAsked, askPolls] = useState(0)
  const [callsAsked, askCalls] = useState(0)
  const [historyAsked, askHistory] = useState(0)
  const [lastSync, setLastSync] = useState()
  const [chatsAsked, askChats] = useState(0)
  const [scheduledAsked, askScheduled] = useState(0)
  const [campaignProgress, setCampaignProgress] = useState()
  // The newest lease epoch seen of the company, in its events and status answers: after a takeover the
  // old holder's late events (its "held by nobody", a disconnect) and answers must not undo the new holder's.
  const epochs = useRef(new NewestEpochs())

  useEffect(() => {
    let stopped = false
    api.get(companyPath(companyId, '/status'))
      .then((answer) => {
        if (stopped || !epochs.current.observe(companyId, answer.epoch)) return
        setStatus(answer)
        setError(undefined)
        if (answer.connected) setLinking(undefined)
        return api.get(companyPath(companyId, '/budget')).then((found) => { if (!stopped) setBudget(found.messages) }, () => {})
      })
      .catch((err) => { if (!stopped) setError(err) })
    return () => { stopped = true }
  }, [companyId, statusAsked])

  useEffect(() => {
    if (!may(principal, 'events')) {
      setLive({ state: 'off', detail: 'this key lacks the events scope' })
      return
    }
    const follower = followEvents(api, companyId, {
      onState: (state, detail) => setLive({ state, detail }),
      onEvent: (event) => {
        if (!epochs.current.admits(event)) return
        setEvents((current) => [event, ...current].slice(0, EVENTS_SHOWN))
        if (event.type === 'qr') setLinking({ status: 'qr', qr: event.data.qr, qrDataUrl: event.data.qrDataUrl })
        if (event.type === 'pairing_code') {
          setLinking({ status: 'pairing_code', pairingCode: event.data.code, expiresAt: event.data.expiresAt })
        }
        if (event.type === 'connected') setLinking(undefined)
        if (STATUS_EVENTS.has(event.type)) askStatus((count) => count + 1)
        if (GROUP_EVENTS.has(event.type)) askGroups((count) => count + 1)
        if (isPollEvent(event)) askPolls((count) => count + 1)
        if (CALL_EVENTS.has(event.type)) askCalls((count) => count + 1)
        if (event.type === 'history_sync') {
          setLastSync(event.data)
          askHistory((count) => count + 1)
        }
        if (CHAT_EVENTS.has(event.type)) askChats((count) => count + 1)
        if (SCHEDULED_EVENTS.has(event.type)) askScheduled((count) => count + 1)
        if (event.type === 'campaign_progress') setCampaignProgress({ ...event.data })
      }
    })
    return () => follower.stop()
  }, [companyId])

  // A company the key does not cover answers 404 like one that does not exist: nothing else is shown.
  if (error?.status === 404 || error?.status === 403) {
    return html`<h1 tabindex="-1">${companyId}</h1><p class="error" role="alert">${error.status === 404
      ? `No company ${companyId} here, or this key does not cover it.`
      : error.message}</p><p><a href="#/">Back to companies</a></p>`
  }
  return html`
    <p><a href="#/">← Companies</a></p>
    <h1 tabindex="-1">${companyId} ${status ? html`<${StateBadge} session=${status} />` : null}</h1>
    <${ErrorNote} error=${error} />
    ${status ? html`<${StatusCard} status=${status} budget=${budget} />` : html`<p aria-busy="true">Loading status…</p>`}
    ${status && !status.connected && may(principal, 'link')
      ? html`<${LinkPanel} companyId=${companyId} api=${api} linking=${linking} setLinking=${setLinking}
          onConnected=${() => askStatus((count) => count + 1)} />`
      : null}
    ${status?.connected && linking === undefined && events.some((event) => event.type === 'connected')
      ? html`<p class="ok-note" role="status">Connected: WhatsApp is linked.</p>`
      : null}
    ${status?.connected && may(principal, 'send') ? html`<${TryIt} companyId=${companyId} api=${api} reactTo=${reactTo} />` : null}
    ${status && may(principal, 'read')
      ? html`<${Groups} companyId=${companyId} api=${api} connected=${status.connected} refresh=${groupsAsked} />`
      : null}
    ${status && may(principal, 'events') ? html`<${Polls} companyId=${companyId} api=${api} refresh=${pollsAsked} />` : null}
    ${status && may(principal, 'read') ? html`<${Calls} companyId=${companyId} api=${api} refresh=${callsAsked} />` : null}
    ${status && may(principal, 'read')
      ? html`<${History} companyId=${companyId} api=${api} refresh=${historyAsked} lastSync=${lastSync} />`
      : null}
    ${status && may(principal, 'events') ? html`<${Chats} companyId=${companyId} api=${api} refresh=${chatsAsked} />` : null}
    ${status && may(principal, 'events')
      ? html`<${Scheduled} companyId=${companyId} api=${api} refresh=${scheduledAsked} canCancel=${may(principal, 'send')} />`
      : null}
    ${status && may(principal, 'read')
      ? html`<${Campaigns} companyId=${companyId} api=${api} progress=${campaignProgress}
          canAct=${may(principal, 'send')} canReport=${may(principal, 'events')} />`
      : null}
    <${LiveEvents} events=${events} state=${live} onReact=${setReactTo} canSend=${may(principal, 'send')} />
    ${may(principal, 'link') && status?.health?.phoneNumber
      ? html`<${Logout} companyId=${companyId} api=${api} onDone=${() => askStatus((count) => count + 1)} />`
      : null}`
}
