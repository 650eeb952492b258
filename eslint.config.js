import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'
import local from './.ci/eslint/import-boundaries.js'

export default [
  // dist/, .tap/, coverage/ and friends are build output, not source.
  ...neostandard({ ts: true, ignores: resolveIgnoresFromGitignore() }),
  {
    name: 'wa-gateway/line-length',
    rules: {
      // Comments count too (no ignoreComments): a 300-character comment line
      // is as hard to read in a diff as code is. URLs cannot be wrapped.
      '@stylistic/max-len': ['error', { code: 140, ignoreUrls: true }]
    }
  },
  {
    name: 'wa-gateway/typescript',
    files: ['**/*.ts'],
    rules: {
      // neostandard turns the base no-redeclare off for TypeScript (tsc reports
      // real redeclarations, ts(2451)) but then switches on the typescript-eslint
      // copy, which flags TypeBox's `const X = Type.Object(...)` next to
      // `type X = Static<typeof X>`: a value and a type of one name live in
      // separate declaration spaces, which is how contracts/ names every schema.
      '@typescript-eslint/no-redeclare': 'off'
    }
  },
  {
    name: 'wa-gateway/void-statements',
    rules: {
      // `void promise()` as a statement is how this code marks a promise it
      // deliberately does not await (its errors are handled inside); ESLint's
      // allowAsStatement exists for exactly that. `void` inside expressions
      // (`x = void 0`, `() => void p()`) stays an error.
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    name: 'wa-gateway/import-boundaries',
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { local },
    rules: {
      'local/import-boundaries': 'error'
    }
  }
]
