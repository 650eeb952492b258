import type { FastifyRequest } from 'fastify'
import type { Multipart } from '@fastify/multipart'
import { ErrorCode, MAX_CAMPAIGN_CSV_BYTES } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/** Form fields of a campaign upload, besides the CSV file, and where each goes in the JSON body. */
const FIELDS = new Set(['name', 'text', 'startAt', 'messagesPerMinute', 'jitter', 'typingMs', 'quietHours'])
const NUMBERS = new Set(['messagesPerMinute', 'jitter', 'typingMs'])

const refused = (message: string) => new GatewayError(ErrorCode.VALIDATION_ERROR, `campaign upload: ${message}`, {
  details: [{ field: 'body', message }]
})

/**
 * A campaign as `multipart/form-data`: its fields, then the recipients' CSV in a part named `file`.
 * It becomes the JSON body (validated like one): a field that should be a number and is not stays a
 * string, and the schema names it.
 */
export async function campaignBodyFromMultipart (request: FastifyRequest): Promise<Record<string, unknown>> {
  const fields: Record<string, string> = {}
  let csv: string | undefined
  for await (const part of request.parts() as AsyncIterable<Multipart>) {
    if (part.type === 'field') {
      if (!FIELDS.has(part.fieldname)) throw refused(`unknown form field \`${part.fieldname}\``)
      fields[part.fieldname] = String(part.value)
      continue
    }
    if (part.fieldname !== 'file' || csv !== undefined) throw refused('one CSV file, in a part named `file`')
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of part.file) {
      size += (chunk as Buffer).length
      if (size > MAX_CAMPAIGN_CSV_BYTES) {
        part.file.resume()
        throw refused(`the CSV is over ${MAX_CAMPAIGN_CSV_BYTES} bytes`)
      }
      chunks.push(chunk as Buffer)
    }
    csv = Buffer.concat(chunks).toString('utf8')
  }
  if (csv === undefined) throw refused('no CSV file (a part named `file`)')
  const number = (name: string) => {
    const raw = fields[name]
    if (raw === undefined) return undefined
    const value = Number(raw)
    return raw.trim() !== '' && Number.isFinite(value) ? value : raw
  }
  const pacing = Object.fromEntries([...NUMBERS].flatMap((name) => (fields[name] === undefined ? [] : [[name, number(name)]])))
  return {
    ...(fields.name !== undefined ? { name: fields.name } : {}),
    template: fields.text !== undefined ? { text: fields.text } : {},
    csv,
    ...(fields.startAt !== undefined ? { startAt: fields.startAt } : {}),
    ...(Object.keys(pacing).length > 0 ? { pacing } : {}),
    ...(fields.quietHours !== undefined ? { quietHours: fields.quietHours } : {})
  }
}
