import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ESLint } from 'eslint'

// The import-boundary rule, run through the repository's own eslint.config.js on
// snippets that exist only in memory: the file paths are virtual, and only the
// importing file's path and the specifiers matter to the rule.
const ROOT = join(import.meta.dirname, '..')
const RULE = 'local/import-boundaries'
const eslint = new ESLint({ cwd: ROOT })

interface Finding { messageId: string | undefined, line: number }

/** The boundary findings for `code` linted as if it were the file at `file`. */
async function boundaries (file: string, code: string): Promise<Finding[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) })
  // A snippet that does not parse would pass for want of imports: fail it instead.
  const fatal = result.messages.filter((m) => m.fatal)
  if (fatal.length > 0) throw new Error(`${file} did not parse: ${fatal.map((m) => m.message).join('; ')}`)
  return result.messages
    .filter((m) => m.ruleId === RULE)
    .map((m) => ({ messageId: m.messageId, line: m.line }))
}

t.test('a plugin reaches another plugin only through its index.ts', async (t) => {
  t.same(await boundaries('plugins/reactions/x.ts', "export { deliveryFields } from '../session-pool/outbound.ts'\n"), [
    { messageId: 'pluginInternals', line: 1 }
  ])
  t.same(await boundaries('plugins/reactions/x.ts', "export { validated } from '../session-pool/index.ts'\n"), [])
  // Its own files, core and contracts are its to import.
  t.same(await boundaries('plugins/reactions/x.ts', [
    "export { saveRules } from './rules.ts'",
    "export { isSingleEmoji } from './sub/emoji.ts'",
    "export { GatewayError } from '../../core/errors.ts'",
    "export { ErrorCode } from '../../contracts/index.ts'",
    "export { Type } from 'typebox'",
    ''
  ].join('\n')), [])
})

t.test('every form of module reference is checked', async (t) => {
  const findings = await boundaries('plugins/rate-limit/x.ts', [
    "import { a } from '../session-pool/outbound.ts'",
    "import type { WaSocket } from '../session-pool/socket-port.ts'",
    "export * from '../session-pool/pool.ts'",
    "export { b } from '../session-pool/pool.ts'",
    "export const c = await import('../ownership/connector.ts')",
    "export type D = import('../ownership/connector.ts').Connector",
    'export const e = await import(`../ownership/sessions.ts`)',
    "import g = require('../ownership/assignment.ts')",
    'export type F = WaSocket',
    'export { a, g }',
    ''
  ].join('\n'))
  t.equal(findings.length, 8)
  t.same(findings.map((f) => f.line), [1, 2, 3, 4, 5, 6, 7, 8])
  t.ok(findings.every((f) => f.messageId === 'pluginInternals'))
})

t.test('specifiers are resolved against the importing file', async (t) => {
  // A detour through its own folder still ends inside session-pool.
  t.same(await boundaries('plugins/reactions/deep/x.ts', "export * from '../../reactions/../session-pool/pool.ts'\n"), [
    { messageId: 'pluginInternals', line: 1 }
  ])
  t.same(await boundaries('plugins/reactions/deep/x.ts', "export * from '../../../plugins/session-pool/index.ts'\n"), [])
  // A plugin's folder is not its face either: Node's ESM does not look for index.ts in it.
  t.same(await boundaries('plugins/reactions/x.ts', "export * from '../session-pool'\n"), [
    { messageId: 'pluginInternals', line: 1 }
  ])
  // Only a nested index.ts: plugins/<b>/index.ts is the face, plugins/<b>/x/index.ts is not.
  t.same(await boundaries('plugins/reactions/x.ts', "export * from '../session-pool/x/index.ts'\n"), [
    { messageId: 'pluginInternals', line: 1 }
  ])
  // A specifier that cannot be known before run time is left alone.
  // eslint-disable-next-line no-template-curly-in-string -- the ${} belongs to the snippet's template literal
  const computed = "const name = 'outbound'\nexport const m = await import(`../session-pool/${name}.ts`)\n"
  t.same(await boundaries('plugins/reactions/x.ts', computed), [])
})

t.test('a plugin does not import the composition root', async (t) => {
  t.same(await boundaries('plugins/session-pool/x.ts', "export { plugins } from '../index.ts'\n"), [
    { messageId: 'pluginImportsRoot', line: 1 }
  ])
})

t.test('the composition root imports plugins by their index.ts only', async (t) => {
  for (const file of ['plugins/index.ts', 'plugins/entry.ts']) {
    t.same(await boundaries(file, [
      "export * as phone from './phone/index.ts'",
      "export type { PluginSet } from '../core/plugin-set.ts'",
      "export * from './other-entry.ts'",
      ''
    ].join('\n')), [], `${file} composes`)
    t.same(await boundaries(file, "export { normalizePhone } from './phone/phone.ts'\n"), [
      { messageId: 'rootInternals', line: 1 }
    ], `${file} reaches in`)
  }
})

t.test('core depends on neither plugins nor the simulator', async (t) => {
  t.same(await boundaries('core/app.ts', "export { features } from '../plugins/index.ts'\n"), [
    { messageId: 'coreImportsPlugin', line: 1 }
  ])
  t.same(await boundaries('core/app.ts', "export { startSandbox } from '../simulator/sandbox.ts'\n"), [
    { messageId: 'coreImportsPlugin', line: 1 }
  ])
  t.same(await boundaries('core/app.ts', "export const p = await import('../plugins/phone/index.ts')\n"), [
    { messageId: 'coreImportsPlugin', line: 1 }
  ])
  // core/plugins/ is core's own folder of Fastify plugins, not plugins/.
  t.same(await boundaries('core/app.ts', [
    "export { default as dbPlugin } from './plugins/db.ts'",
    "export { ErrorCode } from '../contracts/index.ts'",
    ''
  ].join('\n')), [])
  t.same(await boundaries('core/plugins/db.ts', "export { settlesWithin } from '../deadline.ts'\n"), [])
  t.same(await boundaries('core/plugins/db.ts', "export * from '../../plugins/phone/index.ts'\n"), [
    { messageId: 'coreImportsPlugin', line: 1 }
  ])
})

t.test('contracts import nothing outside contracts/', async (t) => {
  t.same(await boundaries('contracts/x.ts', "export { GatewayError } from '../core/errors.ts'\n"), [
    { messageId: 'contractsOutside', line: 1 }
  ])
  t.same(await boundaries('contracts/x.ts', "export * from '../plugins/phone/index.ts'\n"), [
    { messageId: 'contractsOutside', line: 1 }
  ])
  // Outside the repository altogether is outside contracts/ as well.
  t.same(await boundaries('contracts/x.ts', "export * from '../../elsewhere.ts'\n"), [
    { messageId: 'contractsOutside', line: 1 }
  ])
  // Its own files and its declared dependencies ship with it.
  t.same(await boundaries('contracts/x.ts', [
    "export { CompanyId } from './common.ts'",
    "export { Type } from 'typebox'",
    "export type { NatsConnection } from '@nats-io/nats-core'",
    ''
  ].join('\n')), [])
})

t.test('tests, benchmarks and the simulator may import anything', async (t) => {
  const code = [
    "export { Outbound } from '../plugins/session-pool/outbound.ts'",
    "export { features } from '../plugins/index.ts'",
    "export { Bus } from '../core/bus.ts'",
    ''
  ].join('\n')
  for (const file of ['test/x.test.ts', 'test/helpers/x.ts', 'bench/x.ts', 'simulator/x.ts']) {
    t.same(await boundaries(file, code.replaceAll("'../", file.split('/').length > 2 ? "'../../" : "'../")), [], file)
  }
})

t.test('no plugin reaches back to itself through the plugins it imports, not even through types', async (t) => {
  const pluginsDir = join(ROOT, 'plugins')
  const names = readdirSync(pluginsDir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name)
  const imports = new Map(names.map((name) => {
    const files = readdirSync(join(pluginsDir, name), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'))
    const reached = new Set<string>()
    for (const file of files) {
      const source = readFileSync(join(pluginsDir, name, file), 'utf8')
      // Any reference to a sibling folder: import, export, import type, import().
      for (const match of source.matchAll(/['"`]\.\.\/([a-z-]+)\//g)) {
        const other = match[1]!
        if (other !== name && names.includes(other)) reached.add(other)
      }
    }
    return [name, reached]
  }))
  const circles: string[] = []
  const visit = (name: string, path: string[]) => {
    if (path.includes(name)) {
      circles.push([...path.slice(path.indexOf(name)), name].join(' -> '))
      return
    }
    for (const next of imports.get(name) ?? []) visit(next, [...path, name])
  }
  for (const name of names) visit(name, [])
  t.same([...new Set(circles)], [], 'plugin imports form no circle')
  t.ok(imports.get('history')?.has('conversations'), 'the scan sees the imports between plugins')
})
