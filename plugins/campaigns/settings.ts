import { defineSettings, integerIn, type ValuesOf } from '../../core/settings.ts'

/** The campaigns plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  campaignsMaxOpen: {
    env: 'CAMPAIGNS_MAX_OPEN',
    describe: 'Campaigns one company may have scheduled, running or paused at once; beyond it creating one is refused' +
      ' (LIMIT_REACHED, 409). They send one after another, oldest first',
    expected: 'an integer from 1 to 1000',
    fallback: () => 10,
    parse: integerIn(1, 1000)
  }
})

export type CampaignsOptions = ValuesOf<typeof settings>
