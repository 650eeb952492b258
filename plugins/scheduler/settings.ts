import { defineSettings, integerIn, type ValuesOf } from '../../core/settings.ts'

/** The scheduler plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  schedulerPollMs: {
    env: 'SCHEDULER_POLL_MS',
    describe: 'How often a holder looks for its companies\' scheduled messages that are due (a message goes at most this late,' +
      ' plus the send itself)',
    expected: 'milliseconds, from 50 to 10000',
    fallback: () => 250,
    parse: integerIn(50, 10_000)
  },
  scheduledMaxPending: {
    env: 'SCHEDULED_MAX_PENDING',
    describe: 'Messages one company may have scheduled and not yet sent; beyond it scheduling is refused (LIMIT_REACHED, 409)',
    expected: 'an integer from 1 to 10000000',
    fallback: () => 100_000,
    parse: integerIn(1, 10_000_000)
  },
  scheduledMaxAttempts: {
    env: 'SCHEDULED_MAX_ATTEMPTS',
    describe: 'Attempts a scheduled message gets when sending fails for a passing reason (not connected, over budget, a timeout)' +
      ' before it is `failed`; each waits longer, up to a minute (an expiresAt ends them sooner)',
    expected: 'an integer from 1 to 1000',
    fallback: () => 20,
    parse: integerIn(1, 1000)
  }
})

export type SchedulerOptions = ValuesOf<typeof settings>
