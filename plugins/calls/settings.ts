import { defineSettings, integerIn, type ValuesOf } from '../../core/settings.ts'

/** The calls plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  callRetentionDays: {
    env: 'CALL_RETENTION_DAYS',
    describe: 'How long the record of the calls a company received is kept in PostgreSQL',
    expected: 'days, an integer from 1 to 3650',
    fallback: () => 90,
    parse: integerIn(1, 3650)
  },
  callsKeptPerCompany: {
    env: 'CALLS_KEPT_PER_COMPANY',
    describe: 'The most calls kept per company (the oldest beyond go first, whatever their age), so a flood of calls stays bounded',
    expected: 'an integer from 1 to 1000000',
    fallback: () => 1000,
    parse: integerIn(1, 1_000_000)
  }
})

export type CallsOptions = ValuesOf<typeof settings>
