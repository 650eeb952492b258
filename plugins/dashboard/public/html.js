// The one way the dashboard writes markup (htm over Preact), and the small pieces every view uses.
import { h } from 'preact'
import htm from 'htm'
import { stateOf } from './format.js'

export const html = htm.bind(h)

/** A session's state as a badge; the words carry the meaning, the colour only repeats it. */
export function StateBadge ({ session }) {
  const { label, tone } = stateOf(session)
  return html`<span class=${`badge ${tone}`}>${label}</span>`
}

/** An error from the gateway, read out by screen readers when it appears. */
export function ErrorNote ({ error }) {
  if (!error) return null
  return html`<p class="error" role="alert">${error.message ?? String(error)}</p>`
}

/** Whether the principal may do `scope`: admin (every company) may do everything. */
export function may (principal, scope) {
  return isAdmin(principal) || principal.scopes.includes(scope)
}

export function isAdmin (principal) {
  return principal.scopes.includes('admin') && principal.companies === '*'
}
