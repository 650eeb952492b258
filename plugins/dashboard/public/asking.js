// A card's answer from the gateway: asked when the card shows, again when its inputs change or on
// `askAgain` (its Refresh button); an answer arriving after the card moved on is dropped.
import { useEffect, useState } from 'preact/hooks'
import { html } from './html.js'

export function useAnswer (ask, inputs) {
  const [state, setState] = useState({ answer: undefined, error: undefined, busy: true })
  const [asked, setAsked] = useState(0)
  useEffect(() => {
    let stopped = false
    setState((current) => ({ ...current, busy: true }))
    ask().then(
      (answer) => { if (!stopped) setState({ answer, error: undefined, busy: false }) },
      (error) => { if (!stopped) setState({ answer: undefined, error, busy: false }) })
    return () => { stopped = true }
  }, [...inputs, asked])
  return { ...state, askAgain: () => setAsked((count) => count + 1) }
}

/** The button that asks a card's answer again. */
export function RefreshButton ({ busy, onClick, children }) {
  return html`<button class="secondary outline small" onClick=${onClick} disabled=${busy}
    aria-busy=${busy ? 'true' : undefined}>${children}</button>`
}
