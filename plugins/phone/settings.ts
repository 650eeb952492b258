import type { CountryCode } from 'libphonenumber-js'
import { defineSettings, type ValuesOf } from '../../core/settings.ts'
import { libphonenumber } from './phone.ts'

/** The phone plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  defaultCountry: {
    env: 'DEFAULT_COUNTRY',
    describe: 'Country assumed for phone numbers written without a country code',
    expected: 'an ISO 3166-1 alpha-2 code that libphonenumber-js supports, e.g. RU',
    fallback: () => 'RU' as CountryCode,
    parse: (raw: string) => {
      const code = raw.toUpperCase()
      return libphonenumber().isSupportedCountry(code) ? code : undefined
    }
  }
})

export type PhoneOptions = ValuesOf<typeof settings>
