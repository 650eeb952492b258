/**
 * A Map that keeps at most `capacity` entries, dropping the least recently used one when full.
 * A Map iterates in insertion order, so re-inserting on use keeps the oldest first.
 */
export class BoundedMap<K, V> {
  readonly #capacity: number
  readonly #entries = new Map<K, V>()

  constructor (capacity: number) {
    this.#capacity = capacity
  }

  get size (): number {
    return this.#entries.size
  }

  /** The value, now the most recently used. */
  get (key: K): V | undefined {
    const value = this.#entries.get(key)
    if (value !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, value)
    }
    return value
  }

  has (key: K): boolean {
    return this.#entries.has(key)
  }

  set (key: K, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, value)
    if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!)
  }

  delete (key: K): void {
    this.#entries.delete(key)
  }

  clear (): void {
    this.#entries.clear()
  }

  /** The values kept, least recently used first. */
  values (): IterableIterator<V> {
    return this.#entries.values()
  }
}
