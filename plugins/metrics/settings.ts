import { defineSettings, integerIn, milliseconds, type ValuesOf } from '../../core/settings.ts'

/** The metrics plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  metricsCompanyLabels: {
    env: 'METRICS_COMPANY_LABELS',
    describe: 'Put a company label on per-company Prometheus metrics for at most this many companies' +
      ' (later ones are counted as "other"); 0 turns the label off',
    expected: 'an integer from 0 to 100000',
    fallback: () => 0,
    parse: integerIn(0, 100_000)
  },
  metricsGatherTimeoutMs: {
    env: 'METRICS_GATHER_TIMEOUT_MS',
    describe: 'How long GET /api/whatsapp/metrics waits for the other replicas; the reply names those that did not answer',
    expected: 'milliseconds, a positive integer',
    fallback: () => 1_000,
    parse: milliseconds
  },
  metricsPort: {
    env: 'METRICS_PORT',
    describe: 'Serve /metrics on this port of its own (for a network only Prometheus reaches) instead of the API port',
    expected: 'an integer from 1 to 65535',
    fallback: () => undefined,
    parse: integerIn(1, 65535)
  },
  metricsToken: {
    env: 'METRICS_TOKEN',
    describe: 'Bearer token Prometheus sends for /metrics on the API port (unset and no METRICS_PORT: the admin key)',
    expected: 'at least 16 characters',
    fallback: () => undefined,
    parse: (raw: string) => (raw.length >= 16 ? raw : undefined)
  }
})

export type MetricsOptions = ValuesOf<typeof settings>
