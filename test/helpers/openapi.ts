/**
 * The served OpenAPI document as a judge: which documented operation an answer belongs to, and
 * whether the answer (its status and its body) is what the document says that operation answers.
 */
import type { FastifyInstance } from 'fastify'
import SwaggerParser from '@apidevtools/swagger-parser'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'

type Schema = Record<string, unknown>
interface Operation {
  operationId: string
  responses: Record<string, { content?: Record<string, { schema?: Schema }> }>
}
export type OpenApiDocument = { paths: Record<string, Record<string, Operation>> } & Record<string, unknown>

export interface Answer {
  method: string
  url: string
  statusCode: number
  contentType: string | undefined
  body: string
}

/** The document as /docs/json serves it. */
export async function servedDocument (app: FastifyInstance): Promise<OpenApiDocument> {
  const response = await app.inject({ method: 'GET', url: '/docs/json' })
  if (response.statusCode !== 200) throw new Error(`/docs/json answered ${response.statusCode}: ${response.body}`)
  return response.json()
}

/** A schema without `$id`s: the dereferenced document repeats shared schemas, which Ajv would refuse to add twice. */
function withoutIds (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutIds)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== '$id').map(([key, inner]) => [key, withoutIds(inner)]))
}

export async function openApiJudge (document: OpenApiDocument) {
  const resolved = await SwaggerParser.dereference(structuredClone(document) as never) as unknown as OpenApiDocument
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats.default(ajv)
  const validators = new Map<object, ValidateFunction>()
  const validatorOf = (schema: Schema) => {
    let validator = validators.get(schema)
    if (!validator) validators.set(schema, validator = ajv.compile(withoutIds(schema) as Schema))
    return validator
  }
  // Literal segments before parameters: `/sessions/{companyId}/status` is not `/sessions/{companyId}`.
  const templates = Object.keys(resolved.paths).map((template) => ({
    template,
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    literals: template.split('/').filter((segment) => !segment.startsWith('{')).length
  })).sort((a, b) => b.literals - a.literals)

  /** The documented operation an answer belongs to, or undefined for an undocumented route. */
  const operationOf = (method: string, url: string): Operation | undefined => {
    const path = url.split('?')[0]
    const template = templates.find((candidate) => candidate.pattern.test(path))?.template
    return template ? resolved.paths[template][method.toLowerCase()] : undefined
  }

  /** What is wrong with an answer by the document (empty: nothing). */
  const violationsOf = (answer: Answer): string[] => {
    const operation = operationOf(answer.method, answer.url)
    const where = `${answer.method} ${answer.url} → ${answer.statusCode}`
    if (!operation) return [`${where}: no documented operation`]
    const documented = operation.responses[String(answer.statusCode)] ?? operation.responses.default
    if (!documented) return [`${where}: status not documented for ${operation.operationId}`]
    if (!answer.contentType?.startsWith('application/json')) return []
    const schema = documented.content?.['application/json']?.schema
    if (!schema) return [`${where}: a JSON body, but ${operation.operationId} documents none for this status`]
    const validate = validatorOf(schema)
    if (validate(JSON.parse(answer.body))) return []
    return [`${where}: body does not match ${operation.operationId}'s schema: ${ajv.errorsText(validate.errors)}`]
  }

  const operationIds = () => Object.values(resolved.paths).flatMap((operations) => Object.values(operations).map((op) => op.operationId))
  return { operationOf, violationsOf, operationIds }
}
