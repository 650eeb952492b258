/**
 * `npm run fuzz`: FUZZ_INPUTS inputs (default 10,000) from seed FUZZ_SEED (default: random, printed
 * first, so a run can be replayed) against a replica on the test services (TEST_NATS_URL,
 * TEST_DATABASE_URL). The last line is one JSON object: inputs, crashes, server_errors,
 * unhandled_rejections, still_sends.
 */
import pg from 'pg'
import { databaseUrlFor, TEST_ADMIN_DATABASE_URL, TEST_NATS_URL, uniqueName } from '../helpers/services.ts'
import { fuzz } from './fuzzer.ts'

const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const inputs = Number(process.env.FUZZ_INPUTS ?? 10_000)
process.stdout.write(`fuzz: seed ${seed} (replay with FUZZ_SEED=${seed}), ${inputs} inputs\n`)

const database = uniqueName('wa_fuzz')
const admin = new pg.Client({ connectionString: TEST_ADMIN_DATABASE_URL })
await admin.connect()
await admin.query(`create database ${database}`)
const started = performance.now()
try {
  const result = await fuzz({
    inputs, seed, natsUrl: TEST_NATS_URL, databaseUrl: databaseUrlFor(database), log: (line) => process.stdout.write(`${line}\n`)
  })
  for (const example of result.examples) process.stdout.write(`server error: ${example}\n`)
  process.stdout.write(`fuzz: ${result.inputs} inputs in ${Math.round((performance.now() - started) / 1000)} s\n`)
  const { examples: _examples, ...summary } = result
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  const clean = summary.crashes === 0 && summary.server_errors === 0 && summary.unhandled_rejections === 0 && summary.still_sends
  process.exitCode = clean ? 0 : 1
} finally {
  await admin.query(`drop database if exists ${database} with (force)`)
  await admin.end()
}
