import type { ChatPort } from './chats-port.ts'
import type { TestArea } from './test-area.ts'

export function testChatPort (_area: TestArea): ChatPort {
  return {
    archive: async () => { throw new Error('chats: in progress') }
  }
}
