import type { BaileysArea } from './baileys-area.ts'
import type { StatusPort } from './status-port.ts'

export function statusPortOf (_area: BaileysArea): StatusPort {
  return {
    postText: async () => { throw new Error('status: in progress') }
  }
}
