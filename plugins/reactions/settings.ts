import { defineSettings, token, type ValuesOf } from '../../core/settings.ts'

/** The reactions plugin's settings; it receives their values as its options. */
export const settings = defineSettings({
  defaultCompanyId: {
    env: 'DEFAULT_COMPANY_ID',
    describe: 'Company the old POST /api/whatsapp/reaction uses when its body has no companyId (unset: companyId is required)',
    expected: '1-64 characters of [A-Za-z0-9_-]',
    fallback: () => undefined,
    parse: token
  }
})

export type ReactionsOptions = ValuesOf<typeof settings>
