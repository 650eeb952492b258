// A card's answer from the gateway: asked when the card shows, again when its inputs change or on
// `askAgain` (its Refresh button); an answer arriving after the card moved on is dropped.
import { useEffect, useRef, useState } from 'preact/hooks'
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

/**
 * `value` as it changes, but at most once per `ms`: a card asked again on a busy event (every
 * message_sent of a campaign) asks once for a burst, at its end, not once per event.
 */
export function useThrottled (value, ms) {
  const [shown, setShown] = useState(value)
  const last = useRef(0)
  useEffect(() => {
    if (value === shown) return
    const wait = Math.max(0, last.current + ms - Date.now())
    const timer = setTimeout(() => { last.current = Date.now(); setShown(value) }, wait)
    return () => clearTimeout(timer)
  }, [value])
  return shown
}
