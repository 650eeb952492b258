// The calls the company's number received (GET …/calls, scope read; any replica answers, connected or
// not): when, who, voice or video, how each ended and what the gateway did. Asked again when a call
// event arrives (the company page changes `refresh` then) and on the Refresh button.
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { ago, maskPhone } from './format.js'
import { ErrorNote, html } from './html.js'

const CALLS_SHOWN = 20
const OUTCOMES = {
  offer: 'Ringing', ringing: 'Ringing', accept: 'Answered', reject: 'Declined', timeout: 'Missed', terminate: 'Ended'
}

/** How the call ended, and who declined it when the gateway did. */
function outcomeOf (call) {
  const outcome = OUTCOMES[call.status] ?? call.status
  if (call.rejectedBy === 'auto') return 'Declined automatically'
  if (call.rejectedBy === 'api') return 'Declined through the API'
  return call.offline ? `${outcome} (while offline)` : outcome
}

export function Calls ({ companyId, api, refresh }) {
  const ask = () => api.get(companyPath(companyId, `/calls?limit=${CALLS_SHOWN}`))
  const { answer, error, busy, askAgain } = useAnswer(ask, [companyId, refresh])
  const calls = answer?.calls

  const count = calls ? `${calls.length}${calls.length === CALLS_SHOWN ? '+' : ''}` : undefined
  return html`
    <article aria-labelledby="calls-title">
      <h2 id="calls-title">Calls${count ? html` <span class="count">(${count})</span>` : null}</h2>
      <${ErrorNote} error=${error} />
      ${calls === undefined && !error ? html`<p aria-busy="true">Loading calls…</p>` : null}
      ${calls?.length === 0 ? html`<p data-state="empty">No calls yet.</p>` : null}
      ${calls?.length
        ? html`<div class="table-scroll" tabindex="0" role="region" aria-label="Calls">
            <table class="striped calls">
              <thead><tr>
                <th scope="col">Caller</th><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Outcome</th>
                <th scope="col">Texted</th>
              </tr></thead>
              <tbody>
                ${calls.map((call) => html`<tr key=${call.callId} data-call=${call.callId}>
                  <th scope="row" class="mono">${maskPhone(call.phone ?? call.lid ?? call.from)}</th>
                  <td data-label="When"><time datetime=${call.offeredAt}>${ago(call.offeredAt)}</time></td>
                  <td data-label="Kind">${call.video ? 'Video' : 'Voice'}${call.groupId ? ', group' : ''}</td>
                  <td data-label="Outcome">${outcomeOf(call)}</td>
                  <td data-label="Texted">${call.replyMessageId ? 'Yes' : 'No'}</td>
                </tr>`)}
              </tbody>
            </table>
          </div>`
        : null}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh calls<//>
    </article>`
}
