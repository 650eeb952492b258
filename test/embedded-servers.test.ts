import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'tap'
import { freePorts, isPortTaken } from '../core/embedded/free-port.ts'
import { startNatsServer } from '../core/embedded/nats.ts'

test('ports asked for together are distinct', async (t) => {
  const ports = await freePorts(40)
  t.equal(new Set(ports).size, 40, 'no port handed out twice')
  t.ok(ports.every((port) => port > 0 && port < 65_536))
})

test('a nats-server whose port another process holds fails as a taken port, and leaves nothing running', async (t) => {
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())))
  const address = holder.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const storeDir = await mkdtemp(join(tmpdir(), 'wa-nats-taken-'))
  t.teardown(() => rm(storeDir, { recursive: true, force: true }))

  const failure = await startNatsServer({ storeDir, port, startTimeoutMs: 15_000 }).then(() => undefined, (err: unknown) => err)
  t.ok(failure instanceof Error, 'the start is refused')
  t.ok(isPortTaken(failure), 'and recognised as a taken port, which a start on ports of its own choosing retries')
  t.notOk(isPortTaken(new Error('nats-server exited with code 1: bad config')), 'other failures are not')

  const running = await startNatsServer({ storeDir, startTimeoutMs: 15_000 })
  t.teardown(() => running.stop())
  t.not(running.port, port, 'without a port of the caller it finds one of its own')
})
