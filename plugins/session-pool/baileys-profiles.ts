import type { BaileysArea } from './baileys-area.ts'
import type { ProfilePort } from './profiles-port.ts'

export function profilePortOf (_area: BaileysArea): ProfilePort {
  return {
    blocklist: async () => { throw new Error('profiles: in progress') }
  }
}
