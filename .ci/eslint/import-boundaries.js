// Local ESLint rule that keeps the layers apart. It only looks at relative
// specifiers, resolved against the importing file: package imports (typebox,
// fastify, node:*) are the package.json's business, not a layer boundary.
//
//   plugins/<a>/**   may import another plugin only through plugins/<b>/index.ts
//                    (its public face; an api.ts re-exported from index.ts is
//                    reached through index.ts too), and never the composition
//                    root, which would be a cycle through every plugin
//   plugins/*.ts     the composition root: of the plugins it may import each
//                    plugin's index.ts and nothing deeper
//   core/**          nothing under plugins/ or simulator/: core must run
//                    without them
//   contracts/**     nothing outside contracts/: it is shipped as a package
//                    and everything it reaches must ship with it
//   anything else    (test/, bench/, simulator/, root files) is unrestricted
//
// Type-only imports count too: `import type` still ties one plugin to another's
// internals, and the contracts package would ship with a dangling reference.
import path from 'node:path'

// The repository root, two levels up from .ci/eslint/. Anchored here rather
// than at ESLint's cwd so that running eslint from a sub-folder judges the same.
const ROOT = path.resolve(import.meta.dirname, '..', '..')

/** Repository-relative, '/'-separated path, or null when outside the repo. */
function repoPath (absolute) {
  const rel = path.relative(ROOT, absolute)
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return null
  return rel.split(path.sep).join('/')
}

/** Which layer a repository path belongs to. */
function zoneOf (rel) {
  const parts = rel.split('/')
  switch (parts[0]) {
    case 'contracts':
    case 'core':
    case 'simulator':
      return { kind: parts[0] }
    case 'plugins':
      // plugins/index.ts and other files directly in plugins/ compose the
      // plugins; a file one folder deeper belongs to that plugin. A name
      // without an extension is a plugin's folder ('../session-pool'), which is
      // not its face either (Node's ESM does not resolve folders to index.ts).
      if (parts.length === 1 || (parts.length === 2 && path.extname(parts[1]) !== '')) return { kind: 'root' }
      return { kind: 'plugin', plugin: parts[1], face: parts.length === 3 && parts[2] === 'index.ts' }
    default:
      return { kind: 'other' }
  }
}

/** The string a module reference names, when it is a plain string. */
function specifierOf (node) {
  if (!node) return null
  if (node.type === 'Literal' && typeof node.value === 'string') return node.value
  // import(`../x.ts`) with no ${} in it is as static as a string literal.
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked
  return null
}

function isRelative (specifier) {
  return specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../')
}

/** @type {import('eslint').Rule.RuleModule} */
const importBoundaries = {
  meta: {
    type: 'problem',
    docs: {
      description: 'Keep plugins, core and contracts inside their import boundaries'
    },
    schema: [],
    messages: {
      pluginInternals: "Plugin '{{from}}' reaches into plugin '{{to}}' ('{{target}}'): " +
        'import plugins/{{to}}/index.ts, its public face, instead.',
      pluginImportsRoot: "Plugin '{{from}}' imports the composition root ('{{target}}'): " +
        'plugins are composed by it, not the other way round.',
      rootInternals: "The composition root imports '{{target}}': it may import only a plugin's index.ts.",
      coreImportsPlugin: "core/ imports '{{target}}': core must not depend on plugins/ or simulator/ " +
        '(let the composition root or the entry point hand them in).',
      contractsOutside: "contracts/ imports '{{target}}', which is outside contracts/: the contracts package ships on its own."
    }
  },

  create (context) {
    const filename = context.physicalFilename ?? context.filename
    const importer = repoPath(filename)
    if (importer === null) return {}
    const from = zoneOf(importer)
    if (from.kind !== 'plugin' && from.kind !== 'root' && from.kind !== 'core' && from.kind !== 'contracts') return {}

    function check (sourceNode) {
      const specifier = specifierOf(sourceNode)
      if (specifier === null || !isRelative(specifier)) return
      const absolute = path.resolve(path.dirname(filename), specifier)
      const rel = repoPath(absolute)
      const target = rel ?? absolute
      const to = rel === null ? { kind: 'outside' } : zoneOf(rel)

      switch (from.kind) {
        case 'contracts':
          if (to.kind !== 'contracts') context.report({ node: sourceNode, messageId: 'contractsOutside', data: { target } })
          return
        case 'core':
          if (to.kind === 'plugin' || to.kind === 'root' || to.kind === 'simulator') {
            context.report({ node: sourceNode, messageId: 'coreImportsPlugin', data: { target } })
          }
          return
        case 'root':
          if (to.kind === 'plugin' && !to.face) context.report({ node: sourceNode, messageId: 'rootInternals', data: { target } })
          return
        case 'plugin':
          if (to.kind === 'root') {
            context.report({ node: sourceNode, messageId: 'pluginImportsRoot', data: { from: from.plugin, target } })
          } else if (to.kind === 'plugin' && to.plugin !== from.plugin && !to.face) {
            context.report({ node: sourceNode, messageId: 'pluginInternals', data: { from: from.plugin, to: to.plugin, target } })
          }
      }
    }

    return {
      ImportDeclaration: node => check(node.source),
      ExportNamedDeclaration: node => check(node.source),
      ExportAllDeclaration: node => check(node.source),
      ImportExpression: node => check(node.source),
      // type X = import('../plugins/a/b.ts').Y
      TSImportType: node => check(node.source ?? node.argument?.literal),
      // import x = require('../y.ts'): not valid under verbatimModuleSyntax in
      // ESM, but cheap to cover should it ever appear
      TSExternalModuleReference: node => check(node.expression)
    }
  }
}

export default {
  meta: { name: 'wa-gateway-local' },
  rules: { 'import-boundaries': importBoundaries }
}
