import { defineSettings, integerIn, type ValuesOf } from '../../core/settings.ts'

/** The profiles plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  profilePictureCacheMs: {
    env: 'PROFILE_PICTURE_CACHE_MS',
    describe: 'How long the holder keeps a contact\'s picture URL at most (never past the URL\'s own expiry, its `oe=`);' +
      ' "no picture" and "hidden" answers are kept a sixth of it. A contact\'s new picture shows after this much at most',
    expected: 'milliseconds, an integer from 0 (no cache) to 86400000 (a day)',
    fallback: () => 60 * 60 * 1000,
    parse: integerIn(0, 24 * 60 * 60 * 1000)
  }
})

export type ProfilesOptions = ValuesOf<typeof settings>
