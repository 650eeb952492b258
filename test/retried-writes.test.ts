import t from 'tap'
import pino from 'pino'
import { ErrorCode } from '../contracts/index.ts'
import { GatewayError } from '../core/errors.ts'
import { RetriedWrites } from '../core/retried-writes.ts'

const quiet = pino({ level: 'silent' })

t.test('a record of work done is written at once when it can, kept when it cannot, and dropped when fenced', async (t) => {
  const writes = new RetriedWrites(quiet)
  let calls = 0
  await writes.write('a', async () => { if (++calls < 3) throw new Error('database gone') })
  t.equal(calls, 3, 'tried again at once')
  t.equal(writes.size, 0, 'written: nothing kept')

  let down = true
  let stored = 0
  await writes.write('b', async () => {
    if (down) throw new Error('database gone')
    stored++
  })
  t.equal(writes.size, 1, 'kept after three failures')
  await writes.flush()
  t.equal(writes.size, 1, 'still kept while the database is gone')
  down = false
  await writes.flush()
  t.same([writes.size, stored], [0, 1], 'written once it is back, once')

  await writes.write('c', async () => { throw new GatewayError(ErrorCode.FENCED, 'a newer epoch holds the company') })
  t.equal(writes.size, 0, 'a fenced write is dropped: the successor redoes the work')
  await writes.write('d', async () => { throw new Error('gone') })
  await writes.write('d', async () => { stored++ })
  t.same([writes.size, stored], [0, 2], 'a later write under the same key replaces the kept one')
})
