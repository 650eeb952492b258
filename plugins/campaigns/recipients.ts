import { ErrorCode, MAX_CAMPAIGN_RECIPIENTS, type CampaignRecipient } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/** `{{name}}`, with optional spaces inside the braces. */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/
/** Every recipient has this variable: its phone as given. */
const PHONE_VARIABLE = 'phone'
/** Recipients named in a refusal at most (a CSV with a missing column would otherwise list them all). */
const NAMED_IN_REFUSAL = 5
/**
 * Phones normalized between two yields to the event loop: 100,000 take about 0.5 s of CPU, which in
 * one piece would hold up the sessions and leases this replica keeps.
 */
const NORMALIZED_PER_TURN = 2_000

export interface PreparedRecipient {
  phone: string
  variables: Record<string, string>
  /** `skipped` at creation: a phone that is no phone, or one already in the list. */
  status: 'queued' | 'skipped'
  error: { code: string, message: string } | null
}

const refusal = (message: string, details: { field: string, message: string }[]) =>
  new GatewayError(ErrorCode.VALIDATION_ERROR, message, { details })

/** The variables a template uses. */
export function placeholdersOf (text: string | undefined): string[] {
  return text ? [...new Set([...text.matchAll(PLACEHOLDER)].map((match) => match[1]!))] : []
}

/** The template with the recipient's variables in place. */
export function render (text: string, variables: Record<string, string>, phone: string): string {
  return text.replace(PLACEHOLDER, (_whole, name: string) => (name === PHONE_VARIABLE ? variables[name] ?? phone : variables[name]!))
}

/** A CSV with a header row: the `phone` column (any case) is the recipient, every other column a variable. */
export async function recipientsFromCsv (csv: string): Promise<CampaignRecipient[]> {
  // Loaded by the first CSV.
  const { parse } = await import('csv-parse/sync')
  let rows: Record<string, string>[]
  try {
    rows = parse(csv, { columns: true, bom: true, skip_empty_lines: true, trim: true }) as unknown as Record<string, string>[]
  } catch (err) {
    throw refusal(`the CSV could not be read: ${(err as Error).message}`, [{ field: '/csv', message: 'CSV with a header row' }])
  }
  const header = Object.keys(rows[0] ?? {})
  const phoneColumn = header.find((column) => column.toLowerCase() === PHONE_VARIABLE)
  if (!phoneColumn) throw refusal('the CSV has no `phone` column', [{ field: '/csv', message: 'a header row naming a `phone` column' }])
  const badColumn = header.find((column) => column !== phoneColumn && !VARIABLE_NAME.test(column))
  if (badColumn !== undefined) {
    throw refusal(`the CSV column \`${badColumn}\` is not a variable name`,
      [{ field: '/csv', message: 'columns of [A-Za-z_][A-Za-z0-9_]*' }])
  }
  if (rows.length === 0) throw refusal('the CSV has no recipients', [{ field: '/csv', message: 'at least one row after the header' }])
  if (rows.length > MAX_CAMPAIGN_RECIPIENTS) {
    throw refusal(`the CSV has ${rows.length} recipients; a campaign takes ${MAX_CAMPAIGN_RECIPIENTS} at most`,
      [{ field: '/csv', message: `at most ${MAX_CAMPAIGN_RECIPIENTS} rows` }])
  }
  return rows.map((row) => {
    const { [phoneColumn]: phone, ...variables } = row
    return { phone: phone ?? '', variables }
  })
}

/**
 * The campaign's recipients as they will be stored: each phone normalized (one that is no phone, or
 * a repeat of one before it, is `skipped` with the reason); every variable the template uses must be
 * given to every recipient, or nothing is created.
 */
export async function prepareRecipients (
  recipients: CampaignRecipient[], placeholders: string[], normalize: (phone: string) => string
): Promise<PreparedRecipient[]> {
  const needed = placeholders.filter((name) => name !== PHONE_VARIABLE)
  const missing = recipients.flatMap((recipient, index) => {
    const absent = needed.filter((name) => recipient.variables?.[name] === undefined)
    return absent.length > 0 ? [{ field: `/recipients/${index}/variables`, message: `has no ${absent.join(', ')}` }] : []
  })
  if (missing.length > 0) {
    throw refusal(`${missing.length} recipient(s) lack a variable the template uses`, missing.slice(0, NAMED_IN_REFUSAL))
  }
  const seen = new Set<string>()
  const prepared: PreparedRecipient[] = []
  for (const [index, recipient] of recipients.entries()) {
    if (index > 0 && index % NORMALIZED_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve))
    prepared.push(prepareOne(recipient, normalize, seen))
  }
  return prepared
}

/** One recipient: its phone normalized, or skipped as no phone or a repeat of one in `seen`. */
function prepareOne (recipient: CampaignRecipient, normalize: (phone: string) => string, seen: Set<string>): PreparedRecipient {
  const variables = recipient.variables ?? {}
  let phone: string
  try {
    phone = normalize(recipient.phone)
  } catch (err) {
    const message = (err as Error).message
    const error = { code: ErrorCode.INVALID_PHONE, message }
    return { phone: recipient.phone.slice(0, 64), variables, status: 'skipped' as const, error }
  }
  if (seen.has(phone)) {
    const error = { code: 'DUPLICATE', message: 'the phone is already a recipient of this campaign' }
    return { phone, variables, status: 'skipped' as const, error }
  }
  seen.add(phone)
  return { phone, variables, status: 'queued' as const, error: null }
}

/** One CSV field, quoted when it holds a comma, a quote or a line break. */
export function csvField (value: string | number | null): string {
  if (value === null) return ''
  const text = String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}
