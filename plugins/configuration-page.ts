import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { CORE_SETTINGS } from '../core/config.ts'
import type { PluginModule } from '../core/plugin-set.ts'
import type { Env, Setting, SettingsTable } from '../core/settings.ts'
import { plugins } from './index.ts'

// `npm run docs:config`: writes docs/configuration.md from the settings tables (the core's
// CORE_SETTINGS and each plugin's `settings`), so the page cannot drift from what start-up reads.
// `npm run docs:config -- --check` only says whether the page is up to date (exit 1 when not);
// test/config.test.ts checks the same.

export const CONFIGURATION_PAGE = new URL('../docs/configuration.md', import.meta.url)

/**
 * Defaults shown in words rather than computed: their fallback depends on the machine, the
 * environment or a service, so its value here (this host, this folder, undefined) would mislead.
 * A fallback that depends on NODE_ENV, or yields this process's folder or pid, must have an entry
 * here (the generator refuses otherwise); one that depends on NATS_NAMESPACE is shown with `<namespace>`.
 */
const DEFAULT_OVERRIDES: Record<string, string> = {
  // Unset: start-up spawns its own server under DATA_DIR.
  NATS_URL: '(embedded)',
  DATABASE_URL: '(embedded)',
  // Computed per process: the host name and the pid.
  REPLICA_ID: 'host name + pid',
  // Resolved against the working folder.
  DATA_DIR: './.data',
  // Unset outside production: generated under DATA_DIR (and required in production).
  ADMIN_API_KEY: '(generated)',
  AUTH_STATE_KEYS: '(generated)',
  // Follows NODE_ENV.
  DOCS_ENABLED: 'on; off in production',
  // Follows NATS_NAMESPACE, upper-cased, keeping the historical name for the default namespace.
  EVENTS_STREAM: 'WA_EVENTS (or `<NAMESPACE>_EVENTS`)',
  // Unset: Baileys' own rotation.
  QR_ROTATE_MS: 'unset (60 s, then 20 s)',
  // Unset: the NATS client's own prefix.
  NATS_INBOX_PREFIX: '_INBOX',
  // An empty list here means no restriction, not "none allowed".
  WS_ALLOWED_ORIGINS: '(any)',
  // The variable is written as a duration; the value is kept in milliseconds.
  MEDIA_RETENTION: '7d'
}

/** The page's fixed introduction: what README's configuration section said before the tables. */
const INTRODUCTION = `All settings are environment variables, read and validated in one place at start-up (\`loadConfig\` in
[\`core/config.ts\`](../core/config.ts)) from the core's table and each plugin's own (\`plugins/<name>/settings.ts\`, which the
plugin receives as its options); a bad value stops start-up with exit code 2 and a message naming the
variable and the expected form. A setting of a plugin that \`DISABLED_PLUGINS\` switches off is not used.

Migrations run at start-up; \`npm run migrate\` applies them alone.`

/** The plugin's name, as fastify-plugin records it (the name DISABLED_PLUGINS takes). */
function pluginName (module: PluginModule): string {
  const meta = (module.default as unknown as Record<symbol, { name?: string }>)[Symbol.for('plugin-meta')]
  if (!meta?.name) throw new Error('a plugin has no name: wrap it with fastify-plugin and give it { name }')
  return meta.name
}

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** 604800000 → "7 d", 86400000 → "24 h", 1500 → "1.5 s": the unit a reader thinks in. */
function humanMs (ms: number): string {
  const [size, unit] = ms >= 2 * DAY && ms % DAY === 0
    ? [ms / DAY, 'd']
    : ms >= HOUR && ms % HOUR === 0 ? [ms / HOUR, 'h'] : ms >= MINUTE && ms % MINUTE === 0 ? [ms / MINUTE, 'min'] : [ms / 1000, 's']
  return `${size} ${unit}`
}

function humanBytes (bytes: number): string {
  for (const [size, unit] of [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`
  }
  return `${bytes} bytes`
}

function show (value: unknown): string {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return '(none)'
  return Array.isArray(value) ? value.join(',') : String(value)
}

/** The default as the page shows it: an override, or the fallback's value (with its unit spelled out). */
export function describeDefault (setting: Setting<unknown>): string {
  const override = DEFAULT_OVERRIDES[setting.env]
  if (override !== undefined) return override
  const plain = setting.fallback({})
  const production = setting.fallback({ NODE_ENV: 'production' } satisfies Env)
  // This process's folder or pid in a value: a default computed here, which another machine would not share.
  const local = (value: string) => (process.cwd() !== '/' && value.startsWith(process.cwd())) || value.endsWith(`-${process.pid}`)
  if (show(plain) !== show(production) || local(show(plain))) {
    throw new Error(`${setting.env}: its default depends on the machine or NODE_ENV; give it a form in DEFAULT_OVERRIDES`)
  }
  const namespaced = setting.fallback({ NATS_NAMESPACE: '<namespace>' })
  if (show(namespaced) !== show(plain)) return `\`${show(namespaced)}\``
  if (typeof plain === 'number' && plain > 0) {
    if (/^milliseconds/.test(setting.expected) && plain >= 1000) return `${plain} (${humanMs(plain)})`
    if (/^bytes/.test(setting.expected) && plain >= 1024) return `${plain} (${humanBytes(plain)})`
  }
  return show(plain)
}

/** Text for a table cell: no raw `<` (an HTML tag to GitHub) outside code, no cell-ending `|`, variables as code. */
function cell (text: string, envNames: Set<string>): string {
  // A known variable is code, with the value or the path written after it (`AUTH_MODE=off`, `DATA_DIR/nats`), not a sentence's full stop.
  const variable = /\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?:=[\w-]+(?:\.[\w-]+)*|(?:\/[\w-]+(?:\.[\w-]+)*)+)?/g
  return text.split(/(`[^`]*`)/).map((part, index) => index % 2 === 1
    ? part
    : part.replaceAll('<', '&lt;').replace(variable, (found) => envNames.has(found.split(/[=/]/)[0]) ? `\`${found}\`` : found))
    .join('').replaceAll('|', '\\|')
}

/** The values of a setting written as a list of choices (`baileys | test`) for which `applies` holds. */
function choicesWhere (setting: Setting<unknown>, applies: (value: unknown) => boolean): string[] {
  const choices = setting.expected.split(' | ').map((choice) => choice.trim())
  if (choices.length < 2) return []
  return choices.filter((choice) => {
    const value = setting.parse(choice)
    return value !== undefined && applies(value)
  })
}

/** What the page adds to a setting's own description: where it is refused or required. */
function restrictions (setting: Setting<unknown>): string[] {
  const notes = []
  if (setting.requiredInProduction !== undefined) {
    notes.push('Required with NODE_ENV=production (start-up fails with exit code 2 without it).')
  }
  if (setting.notInProduction !== undefined) notes.push(`Refused with NODE_ENV=production: ${setting.notInProduction}.`)
  const developmentOnly = setting.developmentOnly
  if (developmentOnly !== undefined) {
    const values = developmentOnly.applies ? choicesWhere(setting, developmentOnly.applies) : []
    const which = developmentOnly.applies
      ? values.length > 0 ? values.map((value) => `\`${value}\``).join(', ') + ' is refused' : 'Some values are refused'
      : 'Refused'
    notes.push(`${which} unless NODE_ENV is \`development\` or \`test\`: ${developmentOnly.reason}.`)
  }
  return notes
}

function table (settings: SettingsTable, envNames: Set<string>): string {
  const rows = Object.values(settings).map((setting) => {
    const meaning = [setting.describe.replace(/\.?$/, '.'), ...restrictions(setting)].join(' ')
    const cells = [`\`${setting.env}\``, ...[describeDefault(setting), meaning, setting.expected].map((text) => cell(text, envNames))]
    return `| ${cells.join(' | ')} |`
  })
  return ['| Variable | Default | Meaning | Accepted |', '|---|---|---|---|', ...rows].join('\n')
}

/** docs/configuration.md as the settings tables make it today. */
export function configurationPage (): string {
  const sections = [
    {
      title: 'Core',
      anchor: 'core',
      source: 'Read by the core ([`core/config.ts`](../core/config.ts), `CORE_SETTINGS`); every plugin sees them as `app.config`.',
      settings: CORE_SETTINGS as SettingsTable
    },
    ...plugins.filter((module) => module.settings && Object.keys(module.settings).length > 0).map((module) => {
      const name = pluginName(module)
      const file = existsSync(new URL(`./${name}/settings.ts`, import.meta.url)) ? 'settings.ts' : 'index.ts'
      return {
        title: `Plugin \`${name}\``,
        anchor: `plugin-${name}`,
        source: `Read by the \`${name}\` plugin ([\`plugins/${name}/${file}\`](../plugins/${name}/${file})), ` +
          `which receives them as its options; \`DISABLED_PLUGINS=${name}\` leaves them unused.`,
        settings: module.settings as SettingsTable
      }
    })
  ]
  const envNames = new Set(sections.flatMap((section) => Object.values(section.settings).map((setting) => setting.env)))
  const codeNames = new Set([...envNames, 'NODE_ENV'])
  const stale = Object.keys(DEFAULT_OVERRIDES).filter((env) => !envNames.has(env))
  if (stale.length > 0) throw new Error(`DEFAULT_OVERRIDES names settings no table has: ${stale.join(', ')}`)
  const without = plugins.filter((module) => !module.settings || Object.keys(module.settings).length === 0).map(pluginName)
  return [
    '<!-- Generated by plugins/configuration-page.ts from the settings tables: do not edit; run `npm run docs:config`. -->',
    '# Configuration',
    '',
    '[← README](../README.md) · generated from the settings tables by `npm run docs:config`',
    '',
    INTRODUCTION,
    '',
    `${envNames.size} settings, one table per place that reads them: ` +
      sections.map((section) => `[${section.title}](#${section.anchor})`).join(', ') + '.' +
      (without.length > 0 ? ` ${without.map((name) => `\`${name}\``).join(', ')} ${without.length === 1 ? 'has' : 'have'} none.` : ''),
    ...sections.flatMap((section) => ['', `## ${section.title}`, '', section.source, '', table(section.settings, codeNames)]),
    ''
  ].join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const page = configurationPage()
  if (process.argv.includes('--check')) {
    const written = await readFile(CONFIGURATION_PAGE, 'utf8').catch(() => '')
    if (written !== page) {
      console.error('docs/configuration.md is out of date: run `npm run docs:config`')
      process.exit(1)
    }
    console.log('docs/configuration.md is up to date')
  } else {
    await writeFile(CONFIGURATION_PAGE, page)
    console.log(`wrote ${fileURLToPath(CONFIGURATION_PAGE)}`)
  }
}
