import t from 'tap'
import { fuzz } from './fuzz/fuzzer.ts'
import { createTestDatabase, TEST_NATS_URL } from './helpers/services.ts'

// A 1,000-input slice of `npm run fuzz` (which runs 10,000); a failure prints its seed for replay.
t.test('1,000 fuzzed inputs on HTTP, NATS and the WebSocket: no crash, no server error, a send still succeeds', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
  const result = await fuzz({
    inputs: 1_000, seed, natsUrl: TEST_NATS_URL, databaseUrl: await createTestDatabase(t), log: (line) => t.comment(line)
  })
  t.equal(result.inputs, 1_000, `every input was sent (seed ${seed})`)
  t.equal(result.crashes, 0, `no crash (seed ${seed})`)
  t.same(result.examples, [], `no server error (seed ${seed})`)
  t.equal(result.server_errors, 0)
  t.equal(result.unhandled_rejections, 0, 'no unhandled rejection')
  t.ok(result.still_sends, 'a normal send succeeds afterwards')
})
