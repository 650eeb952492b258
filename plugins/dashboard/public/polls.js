// The company's latest polls and their tallies (GET …/polls, scope events): each option's votes as a
// bar with its count and share, and how many people voted. Asked again on every poll_vote and sent
// poll (the company page changes `refresh` then) and on the Refresh button.
import { companyPath } from './api.js'
import { RefreshButton, useAnswer } from './asking.js'
import { maskPhone } from './format.js'
import { ErrorNote, html } from './html.js'

const POLLS_SHOWN = 5

export function Polls ({ companyId, api, refresh }) {
  const ask = () => api.get(companyPath(companyId, `/polls?limit=${POLLS_SHOWN}`))
  const { answer, error, busy, askAgain } = useAnswer(ask, [companyId, refresh])
  const polls = answer?.polls

  return html`
    <article aria-labelledby="polls-title">
      <h2 id="polls-title">Polls${polls ? html` <span class="count">(${polls.length})</span>` : null}</h2>
      <${ErrorNote} error=${error} />
      ${polls === undefined && !error ? html`<p aria-busy="true">Loading polls…</p>` : null}
      ${polls?.length === 0 ? html`<p data-state="empty">No polls sent yet.</p>` : null}
      ${polls?.map((poll) => html`<${Tally} key=${poll.messageId} poll=${poll} />`)}
      <${RefreshButton} busy=${busy} onClick=${askAgain}>Refresh polls<//>
    </article>`
}

/** One poll: its question, where it went, and a bar per option (the words say the numbers; the bar repeats them). */
function Tally ({ poll }) {
  const ballots = poll.options.reduce((sum, option) => sum + option.votes, 0)
  const titleId = `poll-${poll.messageId}`
  return html`
    <section class="poll" data-poll=${poll.messageId} aria-labelledby=${titleId}>
      <h3 id=${titleId}>${poll.question}</h3>
      <p class="who-voted">
        ${poll.groupId ? html`to the group <span class="mono">${poll.groupId}</span>` : `to ${maskPhone(poll.phone)}`}
        ${' · '}${poll.voters === 1 ? '1 person voted' : `${poll.voters} people voted`}${poll.multipleAnswers ? ' · several answers' : ''}
      </p>
      <ul class="options">
        ${poll.options.map((option) => {
          const share = ballots === 0 ? 0 : Math.round((option.votes / ballots) * 100)
          return html`<li key=${option.name} data-option=${option.name}>
            <span class="name">${option.name}</span>
            <span class="votes">${option.votes === 1 ? '1 vote' : `${option.votes} votes`} (${share}%)</span>
            <progress value=${option.votes} max=${Math.max(ballots, 1)}
              aria-label=${`${option.name}: ${option.votes} of ${ballots}`}></progress>
          </li>`
        })}
      </ul>
    </section>`
}
