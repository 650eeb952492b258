import { defineSettings, integerIn, type ValuesOf } from '../../core/settings.ts'

/** The conversations plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  messageRetentionDays: {
    env: 'MESSAGE_RETENTION_DAYS',
    describe: 'How long the message history (texts, states, what replies, edits and re-uploads need) is kept in PostgreSQL',
    expected: 'days, an integer from 1 to 3650',
    fallback: () => 30,
    parse: integerIn(1, 3650)
  },
  numberChecksPerMinute: {
    env: 'NUMBER_CHECKS_PER_MINUTE',
    describe: 'Phones a company may check for WhatsApp per minute (bulk checks get accounts restricted); cached answers are free',
    expected: 'an integer from 1 to 100000',
    fallback: () => 60,
    parse: integerIn(1, 100_000)
  },
  numberCheckCacheMs: {
    env: 'NUMBER_CHECK_CACHE_MS',
    describe: 'How long a number check\'s answer is reused',
    expected: 'milliseconds, an integer from 0 to 604800000',
    fallback: () => 24 * 3_600_000,
    parse: integerIn(0, 7 * 24 * 3_600_000)
  }
})

export type ConversationsOptions = ValuesOf<typeof settings>
