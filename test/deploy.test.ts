import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'

// The deploy files (Dockerfile, Compose, Kubernetes, NATS, Prometheus, Grafana) are checked offline
// by .ci/check-deploy; this runs it so `npm test` proves them valid. It needs docker-compose,
// yamllint, shellcheck, promtool, nats-server and kubectl on the machine (.ci/run installs them).
const ROOT = join(import.meta.dirname, '..')

t.test('.ci/check-deploy passes', { timeout: 180_000 }, async (t) => {
  const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
    execFile(join(ROOT, '.ci', 'check-deploy'), [], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024, timeout: 170_000 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr })
      })
  })
  // On failure, what it printed is the diagnosis.
  t.equal(code, 0, 'exit code', { stdout: stdout.slice(-8000), stderr: stderr.slice(-8000) })
  t.match(stdout, /all deploy checks passed/)
})
