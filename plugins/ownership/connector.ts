/**
 * What holding a company means: the ownership module opens the connection after it wins the lease
 * and closes it before it gives the lease up.
 */
export interface Connector {
  connect: (companyId: string, lease: { epoch: number }) => Promise<void>
  /** Must not throw; closing is best effort and bounded. */
  disconnect: (companyId: string, reason: string) => Promise<void>
}
