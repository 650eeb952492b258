import { randomUUID } from 'node:crypto'
import type { Connector } from './connector.ts'

export interface LedgerEntry {
  at: number
  companyId: string
  replica: string
  /** The socket (one linked device's login) the entry is about. */
  connection: string
  kind: 'open' | 'close' | 'refused'
  reason?: string
}

export interface Overlap {
  at: number
  companyId: string
  holder: string
  intruder: string
}

/**
 * Stands in for WhatsApp's own rule: one live connection per linked device. Connections are
 * counted per socket, not per replica: a second socket for a company that already has one open is
 * refused and recorded as an overlap (WhatsApp would answer 440 to one of them), whether it comes
 * from another replica, the same replica, or another process under the same REPLICA_ID.
 */
export class ConnectionLedger {
  readonly #open = new Map<string, { replica: string, connection: string }>()
  readonly entries: LedgerEntry[] = []
  readonly overlaps: Overlap[] = []

  open (companyId: string, replica: string, connection: string): boolean {
    const holder = this.#open.get(companyId)
    const at = Date.now()
    if (holder !== undefined && holder.connection !== connection) {
      this.overlaps.push({ at, companyId, holder: holder.replica, intruder: replica })
      this.entries.push({ at, companyId, replica, connection, kind: 'refused', reason: `open on ${holder.replica}` })
      return false
    }
    this.#open.set(companyId, { replica, connection })
    this.entries.push({ at, companyId, replica, connection, kind: 'open' })
    return true
  }

  close (companyId: string, connection: string, reason: string): void {
    const holder = this.#open.get(companyId)
    if (holder?.connection !== connection) return
    this.#open.delete(companyId)
    this.entries.push({ at: Date.now(), companyId, replica: holder.replica, connection, kind: 'close', reason })
  }

  /** What WhatsApp sees when a replica's process dies: all its sockets drop. */
  dropReplica (replica: string, reason = 'process died'): void {
    for (const [companyId, holder] of this.#open) if (holder.replica === replica) this.close(companyId, holder.connection, reason)
  }

  holderOf (companyId: string): string | undefined {
    return this.#open.get(companyId)?.replica
  }

  openBy (replica?: string): string[] {
    return [...this.#open].filter(([, holder]) => replica === undefined || holder.replica === replica).map(([companyId]) => companyId)
  }
}

/** The ledger every in-process replica shares. */
export const inProcessLedger = new ConnectionLedger()

export interface LedgerPort {
  open: (companyId: string, replica: string, connection: string) => Promise<boolean>
  close: (companyId: string, connection: string, reason: string) => Promise<void>
}

export function localLedgerPort (ledger: ConnectionLedger): LedgerPort {
  return {
    open: async (companyId, replica, connection) => ledger.open(companyId, replica, connection),
    close: async (companyId, connection, reason) => ledger.close(companyId, connection, reason)
  }
}

/**
 * The connection double: it holds nothing but the ledger's record of an open connection, one per
 * connect, so a disconnect closes only the connection of the lease it names.
 */
export function testTransport (replica: string, ledger: LedgerPort): Connector {
  const connections = new Map<string, { epoch: number, connection: string }>()
  return {
    closeTimeoutMs: 0,
    async connect (companyId, lease) {
      const pending = connections.get(companyId)
      if (!lease.isHeld() || (pending && pending.epoch > lease.epoch)) return false
      const connection = randomUUID()
      connections.set(companyId, { epoch: lease.epoch, connection })
      const opened = await ledger.open(companyId, replica, connection)
      const current = connections.get(companyId)?.connection === connection
      if (opened && !current) {
        // Disconnected while the ledger was answering: closed now, never left open.
        await ledger.close(companyId, connection, 'disconnected while opening')
        return false
      }
      if (!opened) {
        if (current) connections.delete(companyId)
        throw new Error(`connection for ${companyId} refused: already open elsewhere (440)`)
      }
      return true
    },
    async disconnect (companyId, epoch, reason) {
      const open = connections.get(companyId)
      if (!open || open.epoch > epoch) return
      connections.delete(companyId)
      await ledger.close(companyId, open.connection, reason).catch(() => {})
    }
  }
}
