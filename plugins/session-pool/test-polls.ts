import type { PollPort } from './polls-port.ts'
import type { TestArea } from './test-area.ts'

export function testPollPort (_area: TestArea): PollPort {
  return {
    send: async () => { throw new Error('polls: in progress') },
    openVote: () => undefined
  }
}
