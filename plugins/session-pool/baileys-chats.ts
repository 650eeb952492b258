import type { BaileysArea } from './baileys-area.ts'
import type { ChatPort } from './chats-port.ts'

export function chatPortOf (_area: BaileysArea): ChatPort {
  return {
    archive: async () => { throw new Error('chats: in progress') }
  }
}
