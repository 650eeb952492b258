// The company's scheduled messages (GET …/scheduled, scope events): the pending ones by due time, each
// with a Cancel button (DELETE …/scheduled/:id, scope send), and the latest that went, failed, expired
// or were cancelled. Asked again on message_scheduled, message_sent, message_expired and message_failed
// (at most once a second: a campaign sends many), every 2 s while one is sending, and on the Refresh button.
import { useEffect, useState } from 'preact/hooks'
import { companyPath } from './api.js'
import { RefreshButton, useAnswer, useThrottled } from './asking.js'
import { chatName, clockTime, fromNow } from './format.js'
import { ErrorNote, html } from './html.js'

const PENDING_SHOWN = 20
const RECENT_SHOWN = 10
/** The latest changes asked for: pending ones among them (a reschedule) are left out of Recent. */
const RECENT_ASKED = 50
/** A message seen sending is asked again after this long: its message_sent may come before it is recorded sent. */
const SENDING_RECHECK_MS = 2000

const STATES = {
  scheduled: 'Pending',
  sending: 'Sending',
  sent: 'Sent',
  failed: 'Failed',
  expired: 'Expired',
  cancelled: 'Cancelled',
  replaced: 'Replaced'
}

/** What a scheduled send will say: its text, else what it carries. */
export function previewOf (scheduled) {
  const request = scheduled.request ?? {}
  if (scheduled.command === 'poll-send') return `Poll: ${request.question ?? ''}`
  if (typeof request.message === 'string') return request.media ? `[${request.media.kind ?? 'file'}] ${request.message}` : request.message
  if (request.media) return `[${request.media.kind ?? 'file'}]`
  if (request.location) return `[location${request.location.name ? `: ${request.location.name}` : ''}]`
  if (request.contact) return `[contact${request.contact.name ? `: ${request.contact.name}` : ''}]`
  return `[${scheduled.command}]`
}

async function askScheduled (api, companyId) {
  const path = (query) => companyPath(companyId, `/scheduled?${new URLSearchParams(query)}`)
  // Both asked at once, and both awaited: a failure of either is the card's error, never an unhandled one.
  const [{ scheduled, next }, latest] = await Promise.all([
    api.get(path({ status: 'scheduled', limit: String(PENDING_SHOWN) })),
    api.get(path({ order: 'recent', limit: String(RECENT_ASKED) }))
  ])
  const recent = latest.scheduled.filter((one) => one.status !== 'scheduled').slice(0, RECENT_SHOWN)
  return { pending: scheduled, morePending: next !== null, recent }
}

export function Scheduled ({ companyId, api, refresh, canCancel }) {
  const asked = useThrottled(refresh, 1000)
  const { answer, error, busy, askAgain } = useAnswer(() => askScheduled(api, companyId), [companyId, asked])
  const [cancelError, setCancelError] = useState()
  const [cancelling, setCancelling] = useState()
  const now = Date.now()
  const sending = answer?.recent.some((scheduled) => scheduled.status === 'sending')
  useEffect(() => {
    if (!sending) return
    const timer = setTimeout(askAgain, SENDING_RECHECK_MS)
    return () => clearTimeout(timer)
  }, [answer])

  const cancel = async (scheduled) => {
    setCancelError(undefined)
    setCancelling(scheduled.id)
    try {
      await api.delete(companyPath(companyId, `/scheduled/${encodeURIComponent(scheduled.id)}`))
      askAgain()
    } catch (err) {
      setCancelError(err)
    } finally {
      setCancelling(undefined)
    }
  }

  const row = (scheduled, pending) => html`<li key=${scheduled.id} data-scheduled=${scheduled.id} data-state=${scheduled.status}>
    <span class="when"><time datetime=${pending ? scheduled.dueAt : (scheduled.sentAt ?? scheduled.dueAt)}>
      ${clockTime(pending ? scheduled.dueAt : (scheduled.sentAt ?? scheduled.dueAt))}</time>
      ${pending ? html` <span class="count">(${fromNow(scheduled.dueAt, now)})</span>` : null}</span>
    <span class="to mono">${chatName(scheduled.phone)}</span>
    <span class=${`badge ${TONES[scheduled.status] ?? 'off'}`}>${STATES[scheduled.status] ?? scheduled.status}</span>
    <span class="preview">${previewOf(scheduled)}</span>
    ${scheduled.scheduleKey ? html`<span class="key mono">${scheduled.scheduleKey}</span>` : null}
    ${scheduled.error && !pending ? html`<span class="why">${scheduled.error.message}</span>` : null}
    ${pending && canCancel
      ? html`<button class="outline small" onClick=${() => cancel(scheduled)} disabled=${cancelling === scheduled.id}
          aria-label=${`Cancel the message to ${chatName(scheduled.phone)} due ${clockTime(scheduled.dueAt)}`}>Cancel</button>`
      : null}
  </li>`

  return html`
    <article aria-labelledby="scheduled-title">
      <h2 id="scheduled-title">Scheduled${answer
        ? html` <span class="count">(${answer.pending.length}${answer.morePending ? '+' : ''} pending)</span>`
        : null}</h2>
      <${ErrorNote} error=${error} />
      <${ErrorNote} error=${cancelError} />
      ${answer === undefined && !error ? html`<p aria-busy="true">Loading scheduled messages…</p>` : null}
      ${answer
        ? html`
          <h3>Pending</h3>
          ${answer.pending.length === 0 ? html`<p data-state="empty">Nothing scheduled.</p>` : null}
          <ul class="scheduled pending">${answer.pending.map((scheduled) => row(scheduled, true))}</ul>
          ${answer.morePending ? html`<p class="count">The first ${answer.pending.length} by due time.</p>` : null}
          <h3>Recent</h3>
          ${answer.recent.length === 0 ? html`<p data-state="empty">No scheduled message has come due yet.</p>` : null}
          <ul class="scheduled recent">${answer.recent.map((scheduled) => row(scheduled, false))}</ul>`
        : null}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh scheduled<//>
    </article>`
}

const TONES = { scheduled: 'wait', sending: 'wait', sent: 'ok', failed: 'bad', expired: 'bad', cancelled: 'off', replaced: 'off' }
