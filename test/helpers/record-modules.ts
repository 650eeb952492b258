import { registerHooks } from 'node:module'

// Preloaded with --import: prints every module URL the process loaded when it exits, one per line.
const loaded = new Set<string>()
registerHooks({
  resolve (specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context)
    loaded.add(resolved.url)
    return resolved
  }
})
process.on('exit', () => { process.stderr.write(`\nLOADED ${[...loaded].join(' ')}\n`) })
