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

t.test('npm start and the image run Node with the gateway\'s flags (core/node-flags.ts)', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const { GATEWAY_NODE_FLAGS } = await import('../core/node-flags.ts')
  const start = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).scripts.start as string
  const dockerfile = await readFile(join(ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8')
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
  t.ok(GATEWAY_NODE_FLAGS.length > 0)
  for (const flag of GATEWAY_NODE_FLAGS) {
    t.match(start, ` ${flag} `, `npm start passes ${flag}`)
    t.ok(cmd.includes(flag), `the image's CMD passes ${flag}`)
  }
  t.equal(cmd.at(-1), 'plugins/server.ts', 'and runs the server')
})

t.test('npm start and the image run Node with the gateway\'s environment (core/node-flags.ts)', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const { GATEWAY_ENV } = await import('../core/node-flags.ts')
  const start = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).scripts.start as string
  const dockerfile = await readFile(join(ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8')
  // The runtime stage's ENV instruction, with its continuation lines.
  const env = /^ENV ((?:.*\\\n)*.*)$/m.exec(dockerfile)?.[1] ?? ''
  t.ok(Object.keys(GATEWAY_ENV).length > 0)
  for (const [name, value] of Object.entries(GATEWAY_ENV)) {
    t.match(start, new RegExp(`(^| )${name}=\\$\\{${name}:-${value}\\} `), `npm start sets ${name}=${value} unless set`)
    t.match(env, new RegExp(`(^|\\s)${name}=${value}(\\s|$)`), `the image's ENV sets ${name}=${value}`)
  }
})
