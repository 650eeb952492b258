import type { Connector } from './connector.ts'

export interface LedgerEntry {
  at: number
  companyId: string
  replica: string
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
 * Stands in for WhatsApp's own rule: one live connection per linked device. A second replica's
 * open for a company that is already open is refused and recorded as an overlap (WhatsApp would
 * answer 440 to one of them).
 */
export class ConnectionLedger {
  readonly #open = new Map<string, string>()
  readonly entries: LedgerEntry[] = []
  readonly overlaps: Overlap[] = []

  open (companyId: string, replica: string): boolean {
    const holder = this.#open.get(companyId)
    const at = Date.now()
    if (holder !== undefined && holder !== replica) {
      this.overlaps.push({ at, companyId, holder, intruder: replica })
      this.entries.push({ at, companyId, replica, kind: 'refused', reason: `open on ${holder}` })
      return false
    }
    this.#open.set(companyId, replica)
    this.entries.push({ at, companyId, replica, kind: 'open' })
    return true
  }

  close (companyId: string, replica: string, reason: string): void {
    if (this.#open.get(companyId) !== replica) return
    this.#open.delete(companyId)
    this.entries.push({ at: Date.now(), companyId, replica, kind: 'close', reason })
  }

  /** What WhatsApp sees when a replica's process dies: all its sockets drop. */
  dropReplica (replica: string, reason = 'process died'): void {
    for (const [companyId, holder] of this.#open) if (holder === replica) this.close(companyId, replica, reason)
  }

  holderOf (companyId: string): string | undefined {
    return this.#open.get(companyId)
  }

  openBy (replica?: string): string[] {
    return [...this.#open].filter(([, holder]) => replica === undefined || holder === replica).map(([companyId]) => companyId)
  }
}

/** The ledger every in-process replica shares. */
export const inProcessLedger = new ConnectionLedger()

export interface LedgerPort {
  open: (companyId: string, replica: string) => Promise<boolean>
  close: (companyId: string, replica: string, reason: string) => Promise<void>
}

export function localLedgerPort (ledger: ConnectionLedger): LedgerPort {
  return {
    open: async (companyId, replica) => ledger.open(companyId, replica),
    close: async (companyId, replica, reason) => ledger.close(companyId, replica, reason)
  }
}

/** The connection double: it holds nothing but the ledger's record of an open connection. */
export function testTransport (replica: string, ledger: LedgerPort): Connector {
  return {
    async connect (companyId) {
      if (!await ledger.open(companyId, replica)) {
        throw new Error(`connection for ${companyId} refused: already open on another replica (440)`)
      }
    },
    async disconnect (companyId, reason) {
      await ledger.close(companyId, replica, reason).catch(() => {})
    }
  }
}
