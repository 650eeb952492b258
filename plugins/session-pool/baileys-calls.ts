import type { BaileysArea } from './baileys-area.ts'
import type { CallPort } from './calls-port.ts'

export function callPortOf (_area: BaileysArea): CallPort {
  return {
    reject: async () => { throw new Error('calls: in progress') }
  }
}
