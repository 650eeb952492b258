// The groups the company's number is in (GET …/groups, scope read): each one's subject, size, whether
// the number is an admin, and its JID. Asked again when the company connects, when a group event
// arrives (the company page changes `refresh` then) and on the Refresh button.
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { ErrorNote, html } from './html.js'

const bySubject = (a, b) => a.subject.localeCompare(b.subject) || a.id.localeCompare(b.id)

export function Groups ({ companyId, api, connected, refresh }) {
  const { answer, error, busy, askAgain } = useAnswer(() => api.get(companyPath(companyId, '/groups')), [companyId, connected, refresh])
  const groups = answer && [...answer.groups].sort(bySubject)

  const notConnected = error?.code === 'NOT_CONNECTED'
  return html`
    <article aria-labelledby="groups-title">
      <h2 id="groups-title">Groups${groups ? html` <span class="count">(${groups.length})</span>` : null}</h2>
      ${notConnected
        ? html`<p class="error" role="status" data-state="not-connected">
            Not connected: the number's groups are listed once WhatsApp is connected.
          </p>`
        : html`<${ErrorNote} error=${error} />`}
      ${groups === undefined && !error ? html`<p aria-busy="true">Loading groups…</p>` : null}
      ${groups?.length === 0 ? html`<p data-state="empty">The number is in no groups.</p>` : null}
      ${groups?.length
        ? html`<div class="table-scroll" tabindex="0" role="region" aria-label="Groups">
            <table class="striped groups">
              <thead><tr>
                <th scope="col">Subject</th><th scope="col">Members</th><th scope="col">Number is admin</th><th scope="col">Group JID</th>
              </tr></thead>
              <tbody>
                ${groups.map((group) => html`<tr key=${group.id} data-group=${group.id}>
                  <th scope="row" class="subject">${group.subject || '(no subject)'}</th>
                  <td data-label="Members">${group.size}</td>
                  <td data-label="Number is admin">${group.isAdmin ? 'Yes' : 'No'}</td>
                  <td data-label="Group JID" class="mono jid">${group.id}</td>
                </tr>`)}
              </tbody>
            </table>
          </div>`
        : null}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh groups<//>
    </article>`
}
