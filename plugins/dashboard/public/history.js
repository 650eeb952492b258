// The import of the phone's history after a link (GET …/history, scope read): a progress bar while
// chunks arrive, then what was imported. Each history_sync event moves the bar at once (its totals
// and progress) and asks for the state again, which also tells when the sync is over.
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { html, ErrorNote } from './html.js'

const STATES = { idle: 'Nothing imported yet', running: 'Importing', done: 'Imported' }

export function History ({ companyId, api, refresh, lastSync }) {
  const ask = () => api.get(companyPath(companyId, '/history'))
  const { answer, error, busy, askAgain } = useAnswer(ask, [companyId, refresh])
  const sync = answer?.sync
  // An event newer than the last answer shows before the answer to it comes.
  const progress = lastSync?.progress ?? sync?.progress ?? null
  const messages = Math.max(lastSync?.totals?.messages ?? 0, sync?.messages ?? 0)
  const chats = Math.max(lastSync?.totals?.chats ?? 0, sync?.chats ?? 0)
  const state = lastSync && !lastSync.done && sync?.state !== 'running' ? 'running' : sync?.state

  return html`
    <article aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <${ErrorNote} error=${error} />
      ${sync === undefined && !error ? html`<p aria-busy="true">Loading history…</p>` : null}
      ${sync
        ? html`<p data-state=${state}>
            ${STATES[state] ?? state}${sync.mode === 'off' ? ' (this company takes no history)' : ''}
            ${state !== 'idle' ? html` · ${messages.toLocaleString()} messages in ${chats.toLocaleString()} chats` : null}
            ${sync.pending > 0 ? html` · ${sync.pending} chunks waiting` : null}
          </p>
          ${state === 'running'
            ? html`<progress class="history" value=${progress ?? 0} max="100"
                aria-label=${`History import: ${progress ?? 0}% of what the phone sends`}></progress>`
            : null}`
        : null}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh history<//>
    </article>`
}
