import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyReply } from 'fastify'

/** The page and its own modules. */
const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'public')

/**
 * The libraries the page loads, by the name it asks for: served from node_modules, so the dashboard
 * needs no build step and no CDN (it works offline). Preact and htm render; Pico styles plain HTML.
 */
const VENDOR: Record<string, string> = {
  'preact.mjs': 'preact',
  'hooks.mjs': 'preact/hooks',
  'htm.mjs': 'htm',
  'pico.min.css': '@picocss/pico/css/pico.min.css'
}
/** What the page's modules import by bare name, mapped to the files above (an import map in index.html). */
const IMPORT_MAP = JSON.stringify({
  imports: { preact: '/ui/vendor/preact.mjs', 'preact/hooks': '/ui/vendor/hooks.mjs', htm: '/ui/vendor/htm.mjs' }
})

const vendorFiles = new Map(Object.entries(VENDOR).map(([name, specifier]) => {
  const path = fileURLToPath(import.meta.resolve(specifier))
  return [name, { root: dirname(path), file: basename(path) }]
}))

/**
 * The dashboard's own files are listed, not globbed: a request names one of these or gets 404, so
 * nothing else under the folder (or outside it) can be asked for.
 */
const APP_FILES = [
  'app.js', 'api.js', 'live.js', 'format.js', 'html.js', 'epochs.js', 'companies.js', 'company.js', 'asking.js', 'groups.js', 'polls.js',
  'calls.js', 'cluster.js', 'history.js', 'chats.js', 'scheduled.js', 'campaigns.js', 'style.css'
]

/**
 * A web dashboard at /ui, served by the gateway itself: sign in with an API key, the companies the
 * key covers, linking by QR or pairing code, live events, a test send and a reaction, logout, and
 * (for the admin) the cluster. It is a client of the public HTTP API and WebSocket like any other:
 * the pages are public, every piece of data needs the key, which stays in the browser's session.
 */
export default fp(async (app) => {
  await app.register(fastifyStatic, { root: PUBLIC_DIR, serve: false })
  const template = await readFile(join(PUBLIC_DIR, 'index.html'), 'utf8')
  const page = template.replace('%IMPORT_MAP%', IMPORT_MAP)
  // The import map is the page's one inline script: allowed by its hash, and nothing else inline.
  const importMapHash = createHash('sha256').update(IMPORT_MAP).digest('base64')
  const policy = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${importMapHash}'`,
    "style-src 'self'",
    // QR codes arrive as data: URLs; received media are shown from blob: URLs.
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
  const secure = (reply: FastifyReply) => reply
    .header('content-security-policy', policy)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')

  const publicRoute = { config: { access: 'public' as const }, schema: { hide: true } }
  app.get('/ui', publicRoute, (_request, reply) => reply.redirect('/ui/'))
  app.get('/ui/', publicRoute, (_request, reply) => secure(reply)
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(page))
  app.get<{ Params: { file: string } }>('/ui/app/:file', publicRoute, (request, reply) => {
    if (!APP_FILES.includes(request.params.file)) return reply.callNotFound()
    return secure(reply).header('cache-control', 'no-cache').sendFile(request.params.file)
  })
  app.get<{ Params: { file: string } }>('/ui/vendor/:file', publicRoute, (request, reply) => {
    const found = vendorFiles.get(request.params.file)
    if (!found) return reply.callNotFound()
    return secure(reply).header('cache-control', 'public, max-age=3600').sendFile(found.file, found.root)
  })
}, { name: 'dashboard', dependencies: ['config'] })
