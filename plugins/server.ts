import { enableCompileCache } from 'node:module'

// `npm start`. Compiled modules (type-stripped and V8 bytecode) are cached on disk, in
// NODE_COMPILE_CACHE or the system's temporary directory: a start then costs ~20 % less CPU and
// ~14 MB less memory (bench:sessions, idle_rss_mb). The cache applies only to what is imported
// after it is enabled, hence the dynamic imports. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
enableCompileCache()
const [{ serve }, { plugins }] = await Promise.all([import('../core/server.ts'), import('./index.ts')])

// The simulator (and libsignal with it) is imported only when WA_SANDBOX asks for it.
await serve({
  plugins,
  sandbox: async () => (await import('../simulator/sandbox.ts')).startSandbox
})
