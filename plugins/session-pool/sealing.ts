import type { EntityManager } from '@mikro-orm/postgresql'
import type { Sealer } from '../../core/sealing.ts'

/** Rows re-sealed per transaction by the start-up migration and by rotate-keys. */
const BATCH = 500

export const credsRow = (companyId: string) => `${companyId}/creds`
export const keyRow = (companyId: string, type: string, keyId: string) => `${companyId}/${type}/${keyId}`

/**
 * Seals every stored value that is plain or under an older key (the start-up migration of rows
 * stored before sealing, and `npm run rotate-keys`), in batches. Returns how many it sealed.
 */
export async function resealAll (em: () => EntityManager, sealer: Sealer): Promise<number> {
  let sealed = 0
  for (;;) {
    const rows = await em().execute<{ company_id: string, type: string, key_id: string, value: unknown }[]>(
      `select company_id, type, key_id, value from whatsapp_keys
       where not jsonb_exists(value, 'sealed') or value->>'k' <> ? limit ${BATCH}`, [sealer.currentKeyId], 'all')
    if (rows.length === 0) break
    let updated = 0
    await em().transactional(async (tx) => {
      for (const row of rows) {
        const plain = sealer.open(row.value, keyRow(row.company_id, row.type, row.key_id))
        const value = JSON.stringify(sealer.seal(plain, keyRow(row.company_id, row.type, row.key_id)))
        // Only if unchanged meanwhile: a holder writing this key now has the newer (sealed) value.
        const result = await tx.execute(
          'update whatsapp_keys set value = ?::jsonb where company_id = ? and type = ? and key_id = ? and value = ?::jsonb',
          [value, row.company_id, row.type, row.key_id, JSON.stringify(row.value)], 'run')
        updated += (result as { affectedRows?: number }).affectedRows ?? 0
      }
    })
    sealed += updated
    // Every row of the batch changed under us (a holder still sealing under an older first key): no
    // progress to be made now; the next start or rotate-keys tries again.
    if (updated === 0) break
  }
  const creds = await em().execute<{ company_id: string, creds: unknown }[]>(
    'select company_id, creds from whatsapp_auth where not jsonb_exists(creds, \'sealed\') or creds->>\'k\' <> ?',
    [sealer.currentKeyId], 'all')
  for (const row of creds) {
    const value = JSON.stringify(sealer.seal(sealer.open(row.creds, credsRow(row.company_id)), credsRow(row.company_id)))
    await em().execute('update whatsapp_auth set creds = ?::jsonb where company_id = ? and creds = ?::jsonb',
      [value, row.company_id, JSON.stringify(row.creds)], 'run')
  }
  return sealed + creds.length
}
