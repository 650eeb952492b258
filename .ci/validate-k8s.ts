// Offline schema check of Kubernetes manifests (run by .ci/check-deploy):
//
//   node .ci/validate-k8s.ts rendered-production.yaml deploy/k8s/postgres/cluster.yaml …
//
// Every object whose apiVersion/kind kubernetes-models knows (the built-in kinds) is validated
// against the bundled OpenAPI schema: wrong types, missing required fields, bad enum values.
// The schemas do not reject unknown fields, so a misspelt field would pass; the checks after
// them catch the misspellings that matter (a missing probe, a selector that matches nothing).
// Custom resources (ServiceMonitor, CloudNativePG's Cluster) get apiVersion, kind and
// metadata.name checked only. Prints one line per object; exits 1 on the first failing file.
import { readFileSync } from 'node:fs'
import { parseAllDocuments } from 'yaml'

interface Manifest {
  apiVersion?: unknown
  kind?: unknown
  metadata?: { name?: unknown, namespace?: unknown, labels?: Record<string, string> }
  spec?: any
  data?: Record<string, string>
}

interface ModelClass {
  new (data: unknown): { validate: () => void }
}

/** Custom resources kubernetes-models has no schema for, and the apiVersions they may have. */
const CUSTOM_KINDS: Record<string, string[]> = {
  ServiceMonitor: ['monitoring.coreos.com/v1'],
  Cluster: ['postgresql.cnpg.io/v1']
}

/** The kubernetes-models class for an apiVersion and kind, or undefined when it has none. */
async function modelFor (apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  // "apps/v1" → kubernetes-models/apps/v1; the core group "v1" → kubernetes-models/v1.
  if (!/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) return undefined
  let module: Record<string, unknown>
  try {
    module = await import(`kubernetes-models/${apiVersion}`)
  } catch {
    return undefined
  }
  const model = module[kind] as (ModelClass & { kind?: string, apiVersion?: string }) | undefined
  return typeof model === 'function' && model.kind === kind && model.apiVersion === apiVersion ? model : undefined
}

function describe (m: Manifest): string {
  const name = typeof m.metadata?.name === 'string' ? m.metadata.name : '?'
  return `${String(m.kind)}/${name} (${String(m.apiVersion)})`
}

function matches (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v)
}

/** Checks across the objects of one file: what a schema cannot see. Returns the problems. */
function crossChecks (objects: Manifest[]): string[] {
  const problems: string[] = []
  const byKind = (kind: string): Manifest[] => objects.filter((o) => o.kind === kind)
  const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata?.name, c]))
  const services = byKind('Service')

  for (const d of byKind('Deployment')) {
    const where = describe(d)
    const pod = d.spec?.template
    const podLabels: Record<string, string> | undefined = pod?.metadata?.labels
    if (!matches(d.spec?.selector?.matchLabels, podLabels)) problems.push(`${where}: spec.selector does not match the pod labels`)
    const grace: number = pod?.spec?.terminationGracePeriodSeconds ?? 30
    for (const c of pod?.spec?.containers ?? []) {
      const at = `${where} container ${c.name}`
      if (c.readinessProbe === undefined) problems.push(`${at}: no readinessProbe`)
      if (c.livenessProbe === undefined) problems.push(`${at}: no livenessProbe`)
      if (c.resources?.requests === undefined) problems.push(`${at}: no resource requests`)
      // Names of ports the probes use must exist.
      const portNames = new Set((c.ports ?? []).map((p: { name?: string }) => p.name))
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port
        if (typeof port === 'string' && !portNames.has(port)) problems.push(`${at}: ${probe} uses unknown port ${port}`)
      }
      // The graceful handoff must fit in the grace period after the preStop sleep.
      const settings: Record<string, string> = {}
      for (const from of c.envFrom ?? []) {
        const name = from.configMapRef?.name
        if (name === undefined) continue
        const cm = configMaps.get(name)
        if (cm === undefined) problems.push(`${at}: envFrom names ConfigMap ${name}, which is not rendered`)
        else Object.assign(settings, cm.data)
      }
      const shutdownS = Number(settings.SHUTDOWN_TIMEOUT_MS ?? 10_000) / 1000
      const preStop: string[] = c.lifecycle?.preStop?.exec?.command ?? []
      const sleepS = preStop[0] === 'sleep' ? Number(preStop[1]) : 0
      if (!(grace > sleepS + shutdownS)) {
        problems.push(`${at}: terminationGracePeriodSeconds ${grace} must exceed preStop ${sleepS} s + SHUTDOWN_TIMEOUT_MS ${shutdownS} s`)
      }
    }
    if (!services.some((s) => matches(s.spec?.selector, podLabels))) problems.push(`${where}: no Service selects its pods`)
  }
  for (const pdb of byKind('PodDisruptionBudget')) {
    const selected = byKind('Deployment').some((d) => matches(pdb.spec?.selector?.matchLabels, d.spec?.template?.metadata?.labels))
    if (!selected) problems.push(`${describe(pdb)}: selects no Deployment's pods`)
  }
  for (const sm of byKind('ServiceMonitor')) {
    const service = services.find((s) => matches(sm.spec?.selector?.matchLabels, s.metadata?.labels))
    if (service === undefined) {
      problems.push(`${describe(sm)}: selects no Service`)
      continue
    }
    const ports = new Set((service.spec?.ports ?? []).map((p: { name?: string }) => p.name))
    for (const e of sm.spec?.endpoints ?? []) {
      if (!ports.has(e.port)) problems.push(`${describe(sm)}: endpoint port ${e.port} is not a port of ${describe(service)}`)
    }
  }
  return problems
}

async function checkFile (file: string): Promise<boolean> {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'))
  if (!Array.isArray(docs)) {
    console.error(`${file}: not YAML documents`)
    return false
  }
  let ok = true
  const objects: Manifest[] = []
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      console.error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`)
      return false
    }
    const object = doc.toJS() as Manifest | null
    if (object === null) continue // an empty document (a trailing ---)
    objects.push(object)
    const where = `${file}: ${describe(object)}`
    if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' ||
        typeof object.metadata?.name !== 'string' || object.metadata.name === '') {
      console.error(`${where}: apiVersion, kind and metadata.name are required`)
      ok = false
      continue
    }
    const model = await modelFor(object.apiVersion, object.kind)
    if (model !== undefined) {
      try {
        new model(object).validate() // eslint-disable-line new-cap
        console.log(`  ok      ${describe(object)}: schema`)
      } catch (err) {
        console.error(`${where}: ${(err as Error).message}`)
        ok = false
      }
    } else if (CUSTOM_KINDS[object.kind]?.includes(object.apiVersion) === true) {
      console.log(`  ok      ${describe(object)}: custom resource, apiVersion/kind/metadata.name only`)
    } else {
      console.error(`${where}: kind unknown to kubernetes-models and not an expected custom resource`)
      ok = false
    }
  }
  if (objects.length === 0) {
    console.error(`${file}: no objects`)
    return false
  }
  for (const problem of crossChecks(objects)) {
    console.error(`${file}: ${problem}`)
    ok = false
  }
  return ok
}

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: node .ci/validate-k8s.ts FILE.yaml…')
  process.exit(2)
}
for (const file of files) {
  console.log(`${file}`)
  if (!await checkFile(file)) process.exit(1)
}
