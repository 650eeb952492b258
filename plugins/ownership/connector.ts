/** The lease a connection attempt runs under. */
export interface ConnectLease {
  /** The fencing epoch: a connection belongs to exactly one. */
  epoch: number
  /** Whether the lease is still held under this epoch; asked right before a socket is opened. */
  isHeld: () => boolean
  /**
   * The monotonic time (performance.now()) after which nothing may be written to the connection: the
   * lease may have passed to another replica by then, however late this replica's timers run.
   */
  writableUntil: () => number
}

/**
 * What holding a company means: the ownership module opens the connection after it wins the lease
 * and closes it before it gives the lease up.
 */
export interface Connector {
  /** The longest a close may take before the connection is cut; the fence starts at least this early. */
  readonly closeTimeoutMs: number
  /**
   * Opens the connection, unless the lease ended meanwhile or a newer lease's attempt is under way;
   * the connection it replaces is closed first. Resolves whether it opened one.
   */
  connect: (companyId: string, lease: ConnectLease) => Promise<boolean>
  /**
   * Closes the connection (or cancels the attempt) of this epoch or an older one, never a newer one's,
   * and resolves once no such connection is open or closing. Must not throw; closing is bounded.
   */
  disconnect: (companyId: string, epoch: number, reason: string) => Promise<void>
}
