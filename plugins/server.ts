import { serve } from '../core/server.ts'
import { plugins } from './index.ts'

// `npm start`. The simulator (and libsignal with it) is imported only when WA_SANDBOX asks for it.
await serve({
  plugins,
  sandbox: async () => (await import('../simulator/sandbox.ts')).startSandbox
})
