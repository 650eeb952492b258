/** What every bench prints with: lines as they come, rounded figures, percentiles of its samples. */

export const log = (line: string) => process.stdout.write(`${line}\n`)

export const round = (value: number, digits = 2) => Number(value.toFixed(digits))

/** The nearest-rank percentile (`p` in 0-100); NaN for no samples. */
export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN
}

/**
 * libsignal prints whole session records when a simulated device replaces a session: not a bench's
 * output. A bench that runs the simulator in its own process calls this once.
 */
export function quietLibsignal (): void {
  for (const level of ['info', 'warn'] as const) {
    const print = console[level]
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('Closing ')) return
      print(...args)
    }
  }
}
