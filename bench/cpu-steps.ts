/**
 * Where a gateway process's CPU goes, step by step: a sampling CPU profile taken through the
 * process's inspector (it runs with `--inspect=127.0.0.1:0`; nothing is sampled until asked, so the
 * bench's other figures are measured without it) while some work runs, each sample charged to the step
 * of the innermost frame that names one. Work a library does for one of our files (a MikroORM insert
 * the history asked for, a JSON parse in the bus) is that file's step; work with no file of ours on
 * its stack (nats.js reading its socket, pg parsing a reply) is its library's.
 */

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** A step and the files or packages whose frames are its work, checked innermost frame first. */
const STEPS: [step: string, pattern: RegExp][] = [
  ['validation', /core\/lazy-schemas\.ts|core\/validation|node_modules\/(ajv|@sinclair\/typebox|typebox)\//],
  ['idempotency', /session-pool\/idempotency\.ts/],
  ['budget', /plugins\/rate-limit\//],
  ['whatsapp socket', /session-pool\/(test-socket|test-[a-z-]+|baileys[a-z-]*)\.ts|node_modules\/(@whiskeysockets|libsignal|ws)\//],
  ['events', /core\/events\.ts|core\/nats\/stream-publisher\.ts/],
  ['history', /plugins\/conversations\/|node_modules\/(@mikro-orm|kysely|pg|pg-[a-z-]+|postgres-[a-z-]+)\//],
  ['metrics', /plugins\/metrics\/|node_modules\/prom-client\//],
  ['tracing and headers', /core\/(tracing|nats\/trace-context)\.ts|node_modules\/@opentelemetry\//],
  ['command', /plugins\/session-pool\/|plugins\/phone\/|core\/(errors|deadline|time|bounded-map)\.ts/],
  ['nats transport', /core\/bus\.ts|core\/nats\/|node_modules\/@nats-io\//],
  ['logging', /node_modules\/(pino|pino-[a-z-]+|sonic-boom|thread-stream)\//]
]
const GC = '(garbage collector)'
const IDLE = '(idle)'
/** V8's name for time in native code no JavaScript frame called (the event loop's own work, compilation). */
const NATIVE = '(program)'
/**
 * Native calls that are system calls on sockets. Their samples are mostly time the kernel spent
 * elsewhere (a loopback write wakes its reader, which may take the core): the process's kernel CPU
 * is read from /proc instead, and these samples are left out of the shares.
 */
const SOCKET_CALLS = new Set(['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeUcs2String'])

interface CallFrame { functionName: string, url: string }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

/** The step a sample's stack (innermost first) is charged to. */
function stepOf (stack: CallFrame[]): string {
  if (stack[0]?.functionName === GC) return 'garbage collector'
  if (stack[0]?.functionName === NATIVE) return 'native (no JavaScript frame)'
  for (const frame of stack) {
    if (!frame.url) continue
    for (const [step, pattern] of STEPS) if (pattern.test(frame.url)) return step
  }
  // Native writes and reads with none of the above on their stack: the event loop's I/O.
  return 'other (event loop, Node.js)'
}

/** Busy time (µs) per step in user space: idle time and socket system calls left out. */
export function busyByStep (profile: Profile): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  const selfUs = new Map<number, number>()
  profile.samples.forEach((id, index) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)))
  const steps = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!
    if (leaf.callFrame.functionName === IDLE || (!leaf.callFrame.url && SOCKET_CALLS.has(leaf.callFrame.functionName))) continue
    const stack: CallFrame[] = []
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) stack.push(byId.get(at)!.callFrame)
    const step = stepOf(stack)
    steps.set(step, (steps.get(step) ?? 0) + us)
  }
  return steps
}

interface SamplingHeapNode { callFrame: CallFrame, selfSize: number, children: SamplingHeapNode[] }

/** Bytes allocated per step, from a sampling heap profile that kept what the collector took too. */
export function allocatedByStep (head: SamplingHeapNode): Map<string, number> {
  const steps = new Map<string, number>()
  const walk = (node: SamplingHeapNode, stack: CallFrame[]) => {
    const here = [node.callFrame, ...stack]
    if (node.selfSize > 0) {
      const step = stepOf(here)
      steps.set(step, (steps.get(step) ?? 0) + node.selfSize)
    }
    for (const child of node.children) walk(child, here)
  }
  walk(head, [])
  return steps
}

/** A connection to a process's inspector (the DevTools protocol over its WebSocket). */
async function inspectorAt (url: string) {
  const socket = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true })
    socket.addEventListener('error', () => reject(new Error(`no inspector at ${url}`)), { once: true })
  })
  let next = 1
  const waiting = new Map<number, { resolve: (result: unknown) => void, reject: (err: Error) => void }>()
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number, result?: unknown, error?: { message: string } }
    const call = message.id === undefined ? undefined : waiting.get(message.id)
    if (!call) return
    waiting.delete(message.id!)
    if (message.error) call.reject(new Error(message.error.message))
    else call.resolve(message.result)
  })
  return {
    call: <T>(method: string, params: Record<string, unknown> = {}) => new Promise<T>((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve: resolve as (result: unknown) => void, reject })
      socket.send(JSON.stringify({ id, method, params }))
    }),
    close: () => socket.close()
  }
}

/** BENCH_STEPS_PROFILE=<dir>: the profiles are kept there too, to open in DevTools and look inside a step. */
function keep (profile: unknown, extension: string): void {
  const dir = process.env.BENCH_STEPS_PROFILE
  if (dir) writeFileSync(join(dir, `steps-${Date.now()}.${extension}`), JSON.stringify(profile))
}

/**
 * Profiles the CPU of the process at `inspectorUrl` while `work` runs, and returns each step's share
 * of its busy samples in user space, largest first: a caller reads them against the process's user
 * CPU time over the same window (its kernel time is its socket I/O, read apart).
 */
export async function cpuBySteps (inspectorUrl: string, work: () => Promise<void>): Promise<Map<string, number>> {
  const inspector = await inspectorAt(inspectorUrl)
  try {
    await inspector.call('Profiler.enable')
    await inspector.call('Profiler.setSamplingInterval', { interval: 500 })
    await inspector.call('Profiler.start')
    await work()
    const { profile } = await inspector.call<{ profile: Profile }>('Profiler.stop')
    await inspector.call('Profiler.disable')
    keep(profile, 'cpuprofile')
    const busy = busyByStep(profile)
    const total = [...busy.values()].reduce((sum, us) => sum + us, 0)
    const shares = [...busy].map(([step, us]): [string, number] => [step, us / total])
    return new Map(shares.sort((a, b) => b[1] - a[1]))
  } finally {
    inspector.close()
  }
}

/**
 * The bytes each step of the process at `inspectorUrl` allocates while `work` runs, from a sampling
 * heap profile that counts what the collector took too: what the garbage collector's share is made
 * of. A run of its own: both profilers at once weigh on the CPU shares.
 */
export async function allocationsBySteps (inspectorUrl: string, work: () => Promise<void>): Promise<Map<string, number>> {
  const inspector = await inspectorAt(inspectorUrl)
  try {
    await inspector.call('HeapProfiler.enable')
    await inspector.call('HeapProfiler.startSampling', {
      samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true
    })
    await work()
    const { profile } = await inspector.call<{ profile: { head: SamplingHeapNode } }>('HeapProfiler.stopSampling')
    await inspector.call('HeapProfiler.disable')
    keep(profile, 'heapprofile')
    return allocatedByStep(profile.head)
  } finally {
    inspector.close()
  }
}
