// The dashboard: sign in with an API key, then companies, one company, and (admin) the cluster.
// The key lives in sessionStorage only: it is gone when the tab closes and never leaves this origin.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { createApi } from './api.js'
import { html, isAdmin } from './html.js'
import { Companies } from './companies.js'
import { Company } from './company.js'
import { Cluster } from './cluster.js'

const KEY_STORAGE = 'wa-gateway.key'

/** Words for a refused sign-in, by the gateway's status. */
function signInError (err) {
  if (err.status === 401) return `This key was not accepted: ${err.message}.`
  if (err.status === 403) return `This key is valid but may not read companies (${err.message}).`
  if (err.status === 429) return `Too many attempts: ${err.message}.`
  return err.message
}

function SignIn ({ onSignedIn, notice }) {
  const [key, setKey] = useState('')
  const [error, setError] = useState(notice)
  const [busy, setBusy] = useState(false)
  const submit = async (event) => {
    event.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      const api = createApi(key.trim())
      const { principal } = await api.get('/api/whoami')
      sessionStorage.setItem(KEY_STORAGE, key.trim())
      onSignedIn({ api, principal })
    } catch (err) {
      setError(signInError(err))
    } finally {
      setBusy(false)
    }
  }
  return html`
    <main class="container narrow">
      <h1>wa-gateway</h1>
      <form onSubmit=${submit} aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">Sign in</h2>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" required
          aria-describedby="api-key-help" aria-invalid=${error ? 'true' : undefined}
          value=${key} onInput=${(event) => setKey(event.currentTarget.value)} />
        <small id="api-key-help">The admin key or a company's key. It stays in this browser tab only.</small>
        ${error ? html`<p class="error" role="alert" id="sign-in-error">${error}</p>` : null}
        <button type="submit" aria-busy=${busy ? 'true' : undefined} disabled=${busy}>Sign in</button>
      </form>
    </main>`
}

/** The route in the address's hash: `#/`, `#/company/<id>`, `#/cluster`. */
function useRoute () {
  const read = () => window.location.hash.replace(/^#/, '') || '/'
  const [route, setRoute] = useState(read)
  useEffect(() => {
    const changed = () => setRoute(read())
    window.addEventListener('hashchange', changed)
    return () => window.removeEventListener('hashchange', changed)
  }, [])
  return route
}

function Shell ({ session, onSignOut }) {
  const route = useRoute()
  const { principal } = session
  const admin = isAdmin(principal)
  const company = route.match(/^\/company\/([^/]+)$/)
  // Moves focus to the new view's heading, so keyboard and screen-reader users land where the page changed.
  useEffect(() => { document.querySelector('main h1')?.focus() }, [route])
  let view
  if (company) view = html`<${Company} key=${company[1]} companyId=${decodeURIComponent(company[1])} session=${session} />`
  else if (route === '/cluster' && admin) view = html`<${Cluster} session=${session} />`
  else view = html`<${Companies} session=${session} />`
  return html`
    <header class="container">
      <nav aria-label="Main">
        <ul><li><strong>wa-gateway</strong></li></ul>
        <ul>
          <li><a href="#/" aria-current=${!company && route !== '/cluster' ? 'page' : undefined}>Companies</a></li>
          ${admin ? html`<li><a href="#/cluster" aria-current=${route === '/cluster' ? 'page' : undefined}>Cluster</a></li>` : null}
          <li><span class="who" title=${principal.id}>${admin ? 'Admin' : principal.kind === 'key' ? 'Company key' : principal.id}</span>
          </li>
          <li><button class="secondary outline small" onClick=${onSignOut}>Sign out</button></li>
        </ul>
      </nav>
    </header>
    <main class="container">${view}</main>`
}

function App () {
  const [session, setSession] = useState()
  const [checking, setChecking] = useState(true)
  const [notice, setNotice] = useState()
  // A key kept from earlier in this tab is checked again: it may have been revoked since.
  useEffect(() => {
    const kept = sessionStorage.getItem(KEY_STORAGE)
    if (!kept) {
      setChecking(false)
      return
    }
    const api = createApi(kept)
    api.get('/api/whoami')
      .then(({ principal }) => setSession({ api, principal }))
      .catch((err) => {
        sessionStorage.removeItem(KEY_STORAGE)
        setNotice(signInError(err))
      })
      .finally(() => setChecking(false))
  }, [])
  const signOut = () => {
    sessionStorage.removeItem(KEY_STORAGE)
    setSession(undefined)
    window.location.hash = '#/'
  }
  if (checking) return html`<main class="container"><p aria-busy="true">Checking the key…</p></main>`
  if (!session) return html`<${SignIn} onSignedIn=${setSession} notice=${notice} />`
  return html`<${Shell} session=${session} onSignOut=${signOut} />`
}

render(html`<${App} />`, document.getElementById('app'))
