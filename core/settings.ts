import { DEFAULT_NAMESPACE } from '../contracts/index.ts'

/** Thrown when the environment cannot be turned into a valid configuration; names the variable and the form expected. */
export class ConfigError extends Error {
  readonly variable: string

  constructor (variable: string, expected: string, got: string) {
    super(`${variable}: expected ${expected}, got ${JSON.stringify(got)}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

export type Env = Record<string, string | undefined>

/** One environment variable: how it is documented, parsed and defaulted. docs/configuration.md (npm run docs:config) lists every one. */
export interface Setting<T> {
  env: string
  describe: string
  expected: string
  fallback: (env: Env) => T
  parse: (raw: string) => T | undefined
  /** Set when the setting must stay unset in production: why. */
  notInProduction?: string
  /** Set when production must not start without the setting: what it is. */
  requiredInProduction?: string
  /**
   * Set when a value is for development and tests only (it trusts a server that is not WhatsApp,
   * or skips WhatsApp): why, and which values. Many deployments leave NODE_ENV unset, so such a value
   * is refused unless NODE_ENV is `development` or `test`.
   */
  developmentOnly?: { reason: string, applies?: (value: T) => boolean }
  /** Set when a value may hold credentials (a proxy URL): an error names the variable and not the value. */
  secret?: true
}

const DEVELOPMENT_ENVIRONMENTS = ['development', 'test']

export type SettingsTable = Record<string, Setting<any>>

/** The values a table of settings yields: the type of a plugin's options, or of the core's config. */
export type ValuesOf<Table extends SettingsTable> = { [Key in keyof Table]: Table[Key] extends Setting<infer T> ? T : never }

/** Checks a table's shape while keeping each setting's own value type. */
export function defineSettings<Table extends SettingsTable> (table: Table): Table {
  return table
}

/** Reads one table of settings from the environment; throws ConfigError for the first bad value. */
export function readSettings<Table extends SettingsTable> (table: Table, env: Env): ValuesOf<Table> {
  const values: Record<string, unknown> = {}
  for (const [key, setting] of Object.entries(table)) {
    const raw = env[setting.env]
    if (raw === undefined || raw.trim() === '') {
      if (setting.requiredInProduction !== undefined && env.NODE_ENV === 'production') {
        throw new ConfigError(setting.env, `set when NODE_ENV=production (${setting.requiredInProduction})`, raw ?? '')
      }
      values[key] = setting.fallback(env)
      continue
    }
    const value = setting.parse(raw.trim())
    if (value === undefined) {
      throw new ConfigError(setting.env, setting.expected, setting.secret ? '(hidden: it may hold credentials)' : raw)
    }
    if (setting.notInProduction !== undefined && env.NODE_ENV === 'production') {
      throw new ConfigError(setting.env, `unset when NODE_ENV=production (${setting.notInProduction})`, raw)
    }
    const developmentOnly = setting.developmentOnly
    if (developmentOnly && (developmentOnly.applies?.(value) ?? true) && !DEVELOPMENT_ENVIRONMENTS.includes(env.NODE_ENV ?? '')) {
      throw new ConfigError(setting.env, `unset unless NODE_ENV is development or test (${developmentOnly.reason})`, raw)
    }
    values[key] = value
  }
  return values as ValuesOf<Table>
}

/** The part of `values` that `table` describes: what one plugin receives as its options. */
export function pickSettings<Table extends SettingsTable> (table: Table, values: Record<string, unknown>): ValuesOf<Table> {
  return Object.fromEntries(Object.keys(table).map((key) => [key, values[key]])) as ValuesOf<Table>
}

/**
 * The default name of something a deployment keeps in NATS (a KV bucket): prefixed with its
 * namespace, so two deployments on one NATS account never share leases, members, budgets or records.
 */
export function inNamespace (env: Env, name: string): string {
  return `${env.NATS_NAMESPACE?.trim() || DEFAULT_NAMESPACE}_${name}`
}

// Parsers shared by every table.

export function integerIn (min: number, max: number) {
  return (raw: string) => {
    if (!/^\d+$/.test(raw)) return undefined
    const value = Number(raw)
    return value >= min && value <= max ? value : undefined
  }
}

export const milliseconds = integerIn(1, 24 * 60 * 60 * 1000)

export const flag = (raw: string) => (['1', 'true'].includes(raw) ? true : ['0', 'false'].includes(raw) ? false : undefined)

/** A replica id, a namespace or a bucket name ends up in NATS subjects and KV keys, so it keeps to a token's alphabet. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
export const token = (raw: string) => (TOKEN_PATTERN.test(raw) ? raw : undefined)

export function urlWithScheme (schemes: string[]) {
  return (raw: string) => {
    // NATS accepts a comma-separated server list; each entry must parse on its own.
    const entries = raw.split(',').map((entry) => entry.trim())
    const ok = entries.every((entry) => {
      try {
        return schemes.includes(new URL(entry).protocol.replace(/:$/, ''))
      } catch {
        return false
      }
    })
    return ok ? raw : undefined
  }
}

export function oneOf<const Choice extends string> (choices: readonly Choice[]) {
  return (raw: string) => choices.find((choice) => choice === raw)
}
