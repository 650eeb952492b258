// The cluster as the answering replica sees it (admin): replicas, how many companies each holds
// against an even share, companies nobody holds, and recent changes of holder.
import { useEffect, useState } from 'preact/hooks'
import { ago } from './format.js'
import { ErrorNote, html } from './html.js'

const REFRESH_MS = 3_000

/** Companies held per live replica, the even share, and how far the fullest is above it. */
export function balanceOf (cluster) {
  const alive = cluster.members.filter((member) => member.alive).map((member) => member.replica)
  const online = cluster.companies.filter((company) => company.desired === 'online')
  const held = new Map(alive.map((replica) => [replica, 0]))
  for (const company of online) if (company.holder) held.set(company.holder, (held.get(company.holder) ?? 0) + 1)
  const share = alive.length > 0 ? online.length / alive.length : 0
  const most = Math.max(0, ...held.values())
  return { held, share, unheld: online.filter((company) => !company.holder).length, over: share > 0 ? most / share - 1 : 0 }
}

export function Cluster ({ session }) {
  const { api } = session
  const [cluster, setCluster] = useState()
  const [error, setError] = useState()
  useEffect(() => {
    let stopped = false
    const refresh = () => api.get('/api/whatsapp/cluster')
      .then((answer) => { if (!stopped) { setCluster({ ...answer, at: Date.now() }); setError(undefined) } })
      .catch((err) => { if (!stopped) setError(err) })
    refresh()
    const timer = setInterval(refresh, REFRESH_MS)
    return () => { stopped = true; clearInterval(timer) }
  }, [api])
  if (!cluster) {
    return html`<h1 tabindex="-1">Cluster</h1><${ErrorNote} error=${error} />
      ${error ? null : html`<p aria-busy="true">Loading…</p>`}`
  }
  const online = cluster.companies.filter((company) => company.desired === 'online').length
  const { held, share, unheld, over } = balanceOf(cluster)
  return html`
    <h1 tabindex="-1">Cluster</h1>
    <${ErrorNote} error=${error} />
    <p>As replica <strong>${cluster.replica}</strong> sees it. ${online} companies online,
      ${' '}${share.toFixed(1)} per live replica is an even share; the fullest holds ${Math.round(over * 100)} % more.
      ${unheld > 0 ? html` <strong class="error">${unheld} held by nobody.</strong>` : null}</p>
    <div class="table-scroll" tabindex="0" role="region" aria-label="Replicas">
      <table class="striped replicas">
        <thead><tr>
          <th scope="col">Replica</th><th scope="col">Alive</th><th scope="col">Companies</th><th scope="col">Share</th>
          <th scope="col">Started</th><th scope="col">Last seen</th>
        </tr></thead>
        <tbody>
          ${cluster.members.map((member) => html`<tr key=${member.replica} data-replica=${member.replica}>
            <th scope="row">${member.replica}</th>
            <td>${member.alive ? 'yes' : 'no'}</td>
            <td class="held">${held.get(member.replica) ?? 0}</td>
            <td><progress max=${Math.max(1, Math.ceil(share * 2))} value=${held.get(member.replica) ?? 0}
              aria-label=${`${member.replica}: ${held.get(member.replica) ?? 0}, an even share is ${share.toFixed(1)}`}></progress></td>
            <td>${ago(member.startedAt, cluster.at)}</td>
            <td>${Math.round(member.lastSeenMsAgo / 100) / 10} s ago</td>
          </tr>`)}
        </tbody>
      </table>
    </div>
    <h2>Recent ownership changes</h2>
    ${cluster.changes.length === 0
      ? html`<p>None since replica ${cluster.replica} started.</p>`
      : html`<div class="table-scroll" tabindex="0" role="region" aria-label="Ownership changes">
          <table class="striped changes">
            <thead><tr><th scope="col">When</th><th scope="col">Company</th><th scope="col">From</th><th scope="col">To</th></tr></thead>
            <tbody>${cluster.changes.map((change) => html`<tr key=${`${change.at}-${change.companyId}-${change.to}`}>
              <td title=${change.at}>${ago(change.at, cluster.at)}</td>
              <td><a href=${`#/company/${encodeURIComponent(change.companyId)}`}>${change.companyId}</a></td>
              <td>${change.from ?? 'nobody'}</td><td>${change.to ?? 'nobody'}</td>
            </tr>`)}</tbody>
          </table>
        </div>`}`
}
