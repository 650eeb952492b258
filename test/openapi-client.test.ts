import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import openapiTS, { astToString } from 'wa-gateway-openapi-types'
import { build } from './helpers/build.ts'
import { servedDocument } from './helpers/openapi.ts'
import { uniqueName } from './helpers/services.ts'

const ADMIN = `admin-${'g'.repeat(40)}`

/** A flow as a user of a generated client writes it: types from openapi-typescript, calls through openapi-fetch. */
const FLOW = `import createClient from 'openapi-fetch'
import type { paths } from './schema.ts'

export async function linkSendRead (baseUrl: string, adminKey: string, companyId: string, scan: () => void) {
  const admin = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${adminKey}\` } })
  const created = await admin.POST('/api/admin/keys', {
    body: { companyIds: [companyId], scopes: ['send', 'read', 'events', 'link'], name: 'generated client' }
  })
  if (!created.data) throw new Error(\`no key: \${JSON.stringify(created.error)}\`)
  const client = createClient<paths>({ baseUrl, headers: { 'x-api-key': created.data.key } })
  const path = { companyId }
  // initialize's body is optional: the QR is the default.
  const linking = await client.POST('/api/whatsapp/sessions/{companyId}/initialize', { params: { path } })
  if (linking.data?.status !== 'qr') throw new Error(\`no QR: \${JSON.stringify(linking.error)}\`)
  scan()
  let connected = false
  for (let attempt = 0; attempt < 100 && !connected; attempt++) {
    const status = await client.GET('/api/whatsapp/sessions/{companyId}/status', { params: { path } })
    connected = status.data?.connected === true
    if (!connected) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const sent = await client.POST('/api/whatsapp/sessions/{companyId}/send', {
    params: { path }, body: { phone: '79001234567', message: 'Ваша запись подтверждена' }
  })
  if (!sent.data) throw new Error(\`not sent: \${JSON.stringify(sent.error)}\`)
  // A send answers 200 (sent) or, with sendAt, 202 (scheduled): the types say so, and the flow tells them apart.
  if (!('messageId' in sent.data)) throw new Error(\`scheduled instead of sent: \${sent.data.id}\`)
  const history = await client.GET('/api/whatsapp/sessions/{companyId}/messages', { params: { path, query: { limit: 10 } } })
  const foreign = await client.GET('/api/whatsapp/sessions/{companyId}/status', { params: { path: { companyId: 'not-mine' } } })
  return {
    connected,
    messageId: sent.data.messageId,
    history: (history.data?.messages ?? []).map((message) => message.messageId),
    refusal: { status: foreign.response.status, code: foreign.error?.error.code }
  }
}
`

/** What the generated types must refuse: a send without its phone, a status of no company. */
const MISUSE = `import createClient from 'openapi-fetch'
import type { paths } from './schema.ts'

const client = createClient<paths>({ baseUrl: 'http://localhost:3000' })
await client.POST('/api/whatsapp/sessions/{companyId}/send', { params: { path: { companyId: 'acme' } }, body: { message: 'no phone' } })
await client.GET('/api/whatsapp/sessions/{companyId}/status', {})
`

function typeCheck (dir: string, file: string) {
  // The files are given on the command line, so tsc takes its options from here, not from tsconfig.json.
  // Through `env -i`: tap adds its module hooks to every child's environment, and tsc 7 (ESM) fails under their CommonJS loader.
  return spawnSync('env', ['-i', `PATH=${process.env.PATH}`, process.execPath, join(process.cwd(), 'node_modules/typescript/bin/tsc'),
    '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023',
    '--allowImportingTsExtensions', '--ignoreConfig', file], { cwd: dir, encoding: 'utf8' })
}

t.test('a client generated from the document (openapi-typescript + openapi-fetch) type-checks and drives a flow', async (t) => {
  const app = await build(t, { config: { authMode: 'keys', adminApiKey: ADMIN } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  // Inside the project (tap's ignored .tap folder), so that the generated code finds openapi-fetch; removed afterwards.
  await mkdir('.tap', { recursive: true })
  const dir = await mkdtemp(join(process.cwd(), '.tap', 'openapi-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const schema = astToString(await openapiTS(await servedDocument(app) as never))
  await writeFile(join(dir, 'schema.ts'), schema)
  await writeFile(join(dir, 'flow.ts'), FLOW)
  await writeFile(join(dir, 'misuse.ts'), MISUSE)

  const checked = typeCheck(dir, 'flow.ts')
  t.equal(checked.status, 0, `tsc: the flow type-checks against the generated types\n${checked.stdout}${checked.stderr}`)
  const misuse = typeCheck(dir, 'misuse.ts')
  t.not(misuse.status, 0, 'tsc refuses a send without a phone and a status without a company')
  t.match(misuse.stdout, /phone/, 'naming the missing phone')

  const companyId = uniqueName('salon')
  const { linkSendRead } = await import(join(dir, 'flow.ts')) as {
    linkSendRead: (baseUrl: string, adminKey: string, companyId: string, scan: () => void) => Promise<{
      connected: boolean, messageId: string, history: string[], refusal: { status: number, code: string | undefined }
    }>
  }
  const result = await linkSendRead(baseUrl, ADMIN, companyId, () => { app.testWhatsApp!.scan(companyId) })
  t.equal(result.connected, true, 'linked in the test transport')
  t.ok(result.history.includes(result.messageId), 'the sent message is in the history')
  t.same(result.refusal, { status: 404, code: 'NOT_FOUND' }, 'a refusal arrives typed, with the error shape')
})
