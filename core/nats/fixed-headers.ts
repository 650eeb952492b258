import type { Match, MsgHdrs } from '@nats-io/nats-core'

const encoder = new TextEncoder()

/**
 * Headers the gateway sets on a publish of its own (an event's id, epoch and replica; a KV write's
 * expected sequence), kept as they go on the wire. nats.js's header set canonicalizes and validates
 * each key through arrays and strings, and finds keys by filtering arrays, at every set: for the two
 * events of a send that was 5 KB of the holder's 50 KB of garbage per send in bench:send. Keys are
 * compared exactly (`Match` is ignored): they are the gateway's own constants. Values must already
 * be header-safe (`headerSafe`); nats.js writes them as they are.
 */
export class FixedHeaders implements MsgHdrs {
  readonly #entries: [string, string][]
  hasError = false
  status = ''
  code = 0
  description = ''

  constructor (values: Record<string, string>) {
    this.#entries = []
    for (const key in values) this.#entries.push([key, values[key]!])
  }

  get (key: string, _match?: Match): string {
    return this.#entries.find(([name]) => name === key)?.[1] ?? ''
  }

  last (key: string, _match?: Match): string {
    return this.#entries.findLast(([name]) => name === key)?.[1] ?? ''
  }

  values (key: string, _match?: Match): string[] {
    return this.#entries.filter(([name]) => name === key).map(([, value]) => value)
  }

  has (key: string, _match?: Match): boolean {
    return this.#entries.some(([name]) => name === key)
  }

  keys (): string[] {
    return [...new Set(this.#entries.map(([name]) => name))]
  }

  set (key: string, value: string, _match?: Match): void {
    this.delete(key)
    this.#entries.push([key, value])
  }

  append (key: string, value: string, _match?: Match): void {
    this.#entries.push([key, value])
  }

  delete (key: string, _match?: Match): void {
    for (let index = this.#entries.length - 1; index >= 0; index--) if (this.#entries[index]![0] === key) this.#entries.splice(index, 1)
  }

  * [Symbol.iterator] (): Iterator<[string, string[]]> {
    for (const key of this.keys()) yield [key, this.values(key)]
  }

  /** What nats.js's publish writes: the header block, as its own set encodes it. */
  encode (): Uint8Array {
    // As nats.js encodes a set with nothing in it.
    if (this.#entries.length === 0) return new Uint8Array(0)
    let block = 'NATS/1.0'
    for (const [name, value] of this.#entries) block += `\r\n${name}: ${value}`
    return encoder.encode(`${block}\r\n\r\n`)
  }
}
