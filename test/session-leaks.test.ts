import t from 'tap'
import v8 from 'node:v8'
import vm from 'node:vm'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import { PostgresAuthStore } from '../plugins/session-pool/auth-store.ts'
import { Session } from '../plugins/session-pool/session.ts'
import type { TestSocket } from '../plugins/session-pool/test-socket.ts'
import type { SocketOptions } from '../plugins/session-pool/socket-port.ts'
import { build, configWith, testSealer } from './helpers/build.ts'
import { uniqueName } from './helpers/services.ts'

const ROUNDS = 10_000
const WARM_UP_ROUNDS = 200
const SAMPLE_EVERY = 500
/**
 * Measured (settled): 0.09 MB over 10,000 rounds alone, 0.35-0.49 MB under heavy parallel load;
 * a leak of 200 bytes a round would exceed it.
 */
const MAX_HEAP_GROWTH_MB = 2

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

/** Heap after the loop has gone quiet: pending closes finished, two full collections, lowest of two readings. */
async function settledHeap (): Promise<number> {
  const readings: number[] = []
  for (let reading = 0; reading < 2; reading++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    gc()
    readings.push(process.memoryUsage().heapUsed)
  }
  return Math.min(...readings)
}

function timers (): number {
  return process.getActiveResourcesInfo().filter((type) => type === 'Timeout' || type === 'Immediate').length
}

t.test(`${ROUNDS} create/remove rounds leave no listeners, timers, connections or heap behind`, async (t) => {
  const app = await build(t)
  const log = pino({ level: 'silent' })
  const companyId = uniqueName('leak')
  const auth = await PostgresAuthStore.open({
    companyId, epoch: 1, em: () => app.orm.em.fork(), log, attempts: 1, backoffMs: 1, sealer: testSealer()
  })
  auth.creds.me = { id: '79001234567:1@s.whatsapp.net' }
  auth.creds.account = {
    details: randomBytes(32), accountSignatureKey: randomBytes(32), accountSignature: randomBytes(64), deviceSignature: randomBytes(64)
  }
  // A ledger port that keeps no history (the shared ledger logs every open and close by design,
  // which would be counted as heap growth here) but still refuses a second open connection.
  const open = new Set<string>()
  let refused = 0
  const quietLedger = {
    open: async (id: string) => {
      if (open.has(id)) { refused++; return false }
      open.add(id)
      return true
    },
    close: async (id: string) => { open.delete(id) }
  }
  const testFactory = app.testWhatsApp!.factory('leak-replica', quietLedger)
  let lastSocket: TestSocket | undefined
  const factory = (options: SocketOptions) => {
    lastSocket = testFactory(options) as TestSocket
    return lastSocket
  }
  const sampled: TestSocket[] = []

  async function round (index: number) {
    const session = new Session({
      companyId,
      epoch: 1,
      auth,
      factory,
      settings: configWith({}),
      log,
      emit: () => {},
      onOutcome: () => {},
      saveMedia: async () => { throw new Error('this test receives no media') },
      contacts: { phoneOfLid: async () => undefined, learnLid: async () => {} }
    })
    session.start()
    while (session.state !== 'open') await new Promise((resolve) => setImmediate(resolve))
    await session.stop()
    if (index % SAMPLE_EVERY === 0) sampled.push(lastSocket!)
  }

  for (let index = 0; index < WARM_UP_ROUNDS; index++) await round(index)
  const heapBefore = await settledHeap()
  const timersBefore = timers()
  const started = Date.now()
  for (let index = 0; index < ROUNDS; index++) await round(index)
  const elapsed = Date.now() - started
  const growthMb = (await settledHeap() - heapBefore) / 1024 / 1024

  t.ok(sampled.length >= ROUNDS / SAMPLE_EVERY)
  t.ok(sampled.every((socket) => socket.listenerCount() === 0), 'no listener left on any sampled socket')
  t.ok(sampled.every((socket) => socket.timerCount() === 0), 'no timer left on any sampled socket')
  t.equal(app.testWhatsApp!.socketOf(companyId), undefined, 'no live socket')
  t.equal(open.size, 0, 'no open connection in the ledger')
  t.equal(refused, 0, 'never two at once')
  t.ok(timers() <= timersBefore, `active timers ${timers()} (before ${timersBefore})`)
  t.ok(growthMb < MAX_HEAP_GROWTH_MB,
    `heap grew ${growthMb.toFixed(2)} MB over ${ROUNDS} rounds (${elapsed} ms, ${(elapsed / ROUNDS * 1000).toFixed(0)} µs a round)`)
})
