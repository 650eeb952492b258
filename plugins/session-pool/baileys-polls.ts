import type { BaileysArea } from './baileys-area.ts'
import type { PollPort } from './polls-port.ts'

export function pollPortOf (_area: BaileysArea): PollPort {
  return {
    send: async () => { throw new Error('polls: in progress') },
    openVote: () => undefined
  }
}
