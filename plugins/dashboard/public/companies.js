// Every company the key covers: state, holder and epoch, linked phone (masked), last activity,
// budget left and last error; searched and filtered in place, refreshed every few seconds.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { companyPath } from './api.js'
import { NewestEpochs } from './epochs.js'
import { ago, maskPhone, problemText, stateGroup } from './format.js'
import { ErrorNote, StateBadge, html, isAdmin, may } from './html.js'

const REFRESH_MS = 5_000
/** How a company the key covers but the gateway never saw is listed. */
const NEVER_LINKED = {
  desired: 'offline', connected: false, status: 'new', holder: null, epoch: null, phoneNumber: null, lastActivity: null, lastError: null
}
/** Budgets are one request per connected company: asked less often, so a large fleet stays within the API limit. */
const BUDGETS_EVERY = 6
const PAGE = 100

/** Pages of the session list until `pages` pages are read or it ends. */
async function loadSessions (api, pages) {
  const sessions = []
  let after
  for (let page = 0; page < pages; page++) {
    const query = new URLSearchParams({ limit: String(PAGE), ...(after ? { after } : {}) })
    const answer = await api.get(`/api/whatsapp/sessions?${query}`)
    sessions.push(...answer.sessions)
    after = answer.next
    if (!after) return { sessions, more: false }
  }
  return { sessions, more: true }
}

/** The budget left of each company that can send (connected), by company. */
async function loadBudgets (api, sessions) {
  const connected = sessions.filter((session) => session.connected)
  const answers = await Promise.all(connected.map((session) =>
    api.get(companyPath(session.companyId, '/budget')).catch(() => undefined)))
  return new Map(answers.filter(Boolean).map((answer) => [answer.companyId, answer.messages]))
}

export function Companies ({ session }) {
  const { api, principal } = session
  const [list, setList] = useState()
  const [budgets, setBudgets] = useState(new Map())
  const [error, setError] = useState()
  const [pages, setPages] = useState(1)
  const [search, setSearch] = useState('')
  const [group, setGroup] = useState('all')
  const [now, setNow] = useState(Date.now())
  // The newest lease epoch seen of each company, and the row that showed it: a refresh whose answer
  // came from an older lease's holder (still answering for a moment after a takeover) keeps the newer row.
  const epochs = useRef(new NewestEpochs())
  const rows = useRef(new Map())

  useEffect(() => {
    let stopped = false
    let round = 0
    const refresh = async () => {
      try {
        const loaded = await loadSessions(api, pages)
        if (stopped) return
        loaded.sessions = loaded.sessions.map((entry) => {
          if (!epochs.current.observe(entry.companyId, entry.epoch)) return rows.current.get(entry.companyId) ?? entry
          rows.current.set(entry.companyId, entry)
          return entry
        })
        // A company key may cover companies never initialized: they are listed, to be linked.
        if (principal.companies !== '*') {
          for (const companyId of principal.companies) {
            if (!loaded.sessions.some((known) => known.companyId === companyId)) {
              loaded.sessions.push({ ...NEVER_LINKED, companyId })
            }
          }
        }
        setList(loaded)
        setError(undefined)
        setNow(Date.now())
        if (round++ % BUDGETS_EVERY !== 0) return
        const found = await loadBudgets(api, loaded.sessions)
        if (!stopped) setBudgets(found)
      } catch (err) {
        if (!stopped) setError(err)
      }
    }
    refresh()
    const timer = setInterval(refresh, REFRESH_MS)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [api, pages])

  const shown = useMemo(() => {
    const term = search.trim().toLowerCase()
    const digits = term.replace(/\D/g, '')
    return (list?.sessions ?? []).filter((entry) =>
      (group === 'all' || stateGroup(entry) === group) &&
      (term === '' || entry.companyId.toLowerCase().includes(term) || (digits.length >= 3 && (entry.phoneNumber ?? '').includes(digits))))
  }, [list, search, group])

  const [newCompany, setNewCompany] = useState('')
  const open = (event) => {
    event.preventDefault()
    if (newCompany.trim()) window.location.hash = `#/company/${encodeURIComponent(newCompany.trim())}`
  }

  return html`
    <h1 tabindex="-1">Companies</h1>
    <${ErrorNote} error=${error} />
    <form class="filters" role="search" onSubmit=${(event) => event.preventDefault()}>
      <div>
        <label for="company-search">Search</label>
        <input id="company-search" type="search" placeholder="Company id or phone digits" value=${search}
          onInput=${(event) => setSearch(event.currentTarget.value)} />
      </div>
      <div>
        <label for="company-state">State</label>
        <select id="company-state" value=${group} onChange=${(event) => setGroup(event.currentTarget.value)}>
          <option value="all">All</option>
          <option value="connected">Connected</option>
          <option value="linking">Linking or connecting</option>
          <option value="problem">Needs attention</option>
          <option value="offline">Offline</option>
        </select>
      </div>
    </form>
    ${isAdmin(principal) && may(principal, 'link')
      ? html`<form class="add" onSubmit=${open}>
          <label for="new-company">Link a new company</label>
          <fieldset role="group">
            <input id="new-company" placeholder="company id, e.g. salon-42" pattern="[A-Za-z0-9_\\-]{1,64}" required
              title="1-64 letters, digits, - or _" value=${newCompany} onInput=${(event) => setNewCompany(event.currentTarget.value)} />
            <button type="submit">Open</button>
          </fieldset>
        </form>`
      : null}
    ${list === undefined && !error
      ? html`<p aria-busy="true">Loading companies…</p>`
      : html`
        <p aria-live="polite" class="count">${shown.length} of ${list?.sessions.length ?? 0} companies${list?.more ? ' loaded' : ''}</p>
        <div class="table-scroll" tabindex="0" role="region" aria-label="Companies">
          <table class="striped companies">
            <thead><tr>
              <th scope="col">Company</th><th scope="col">State</th><th scope="col">Holder · epoch</th><th scope="col">Phone</th>
              <th scope="col">Last activity</th><th scope="col">Budget left</th><th scope="col">Last error</th>
            </tr></thead>
            <tbody>
              ${shown.map((entry) => {
                const budget = budgets.get(entry.companyId)
                return html`<tr key=${entry.companyId} data-company=${entry.companyId}>
                  <th scope="row"><a href=${`#/company/${encodeURIComponent(entry.companyId)}`}>${entry.companyId}</a></th>
                  <td data-label="State"><${StateBadge} session=${entry} /></td>
                  <td data-label="Holder · epoch">${entry.holder ? `${entry.holder} · ${entry.epoch ?? '?'}` : '—'}</td>
                  <td data-label="Phone" class="mono">${maskPhone(entry.phoneNumber)}</td>
                  <td data-label="Last activity" title=${entry.lastActivity ?? ''}>${ago(entry.lastActivity, now)}</td>
                  <td data-label="Budget left">${budget ? `${budget.left} / ${budget.perMinute} per min` : '—'}</td>
                  <td data-label="Last error">${problemText(entry.lastError, now)}</td>
                </tr>`
              })}
            </tbody>
          </table>
        </div>
        ${list?.more ? html`<button class="secondary" onClick=${() => setPages(pages + 1)}>Load more</button>` : null}`}`
}
