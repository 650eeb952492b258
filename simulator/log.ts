export interface SimulatorLogEntry {
  at: number
  kind:
    | 'handshake' | 'pair-device' | 'pair-success' | 'login' | 'replaced' | 'logged-out'
    | 'recv' | 'message' | 'inbound' | 'refused' | 'closed' | 'error' | 'media' | 'group'
    | 'profile' | 'call' | 'app-state' | 'history'
  detail: string
}

/** Adds an entry to the simulator's log, which tests and the control API's `/log` read. */
export type Recorder = (kind: SimulatorLogEntry['kind'], detail: string) => void
