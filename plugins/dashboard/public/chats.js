// The company's latest chats (GET …/chats, scope events): imported from the phone's history or come
// live, each with its name, last message and unread count. Asked again after each history chunk and
// each message (the company page changes `refresh` then) and on the Refresh button.
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { maskPhone } from './format.js'
import { ErrorNote, html } from './html.js'

const CHATS_SHOWN = 10

/** What a last message shows in a line: its text, else what kind it is. */
const summaryOf = (message) => message.text ?? (message.media ? `[${message.media.kind}]` : `[${message.kind}]`)

export function Chats ({ companyId, api, refresh }) {
  const ask = () => api.get(companyPath(companyId, `/chats?limit=${CHATS_SHOWN}`))
  const { answer, error, busy, askAgain } = useAnswer(ask, [companyId, refresh])
  const chats = answer?.chats

  return html`
    <article aria-labelledby="chats-title">
      <h2 id="chats-title">Chats</h2>
      <${ErrorNote} error=${error} />
      ${chats === undefined && !error ? html`<p aria-busy="true">Loading chats…</p>` : null}
      ${chats?.length === 0 ? html`<p data-state="empty">No chats yet.</p>` : null}
      ${chats?.length
        ? html`<ul class="chats">
            ${chats.map((chat) => html`<li key=${chat.chat} data-chat=${chat.chat}>
              <span class="name">${chat.name ?? (chat.chat.endsWith('@g.us') ? chat.chat : maskPhone(chat.chat))}</span>
              ${chat.unreadCount > 0 ? html` <span class="unread">${chat.unreadCount} unread</span>` : null}
              <span class="last">${chat.lastMessage.direction === 'out' ? '→ ' : ''}${summaryOf(chat.lastMessage)}</span>
            </li>`)}
          </ul>`
        : null}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh chats<//>
    </article>`
}
