import type { StatusPort } from './status-port.ts'
import type { TestArea } from './test-area.ts'

export function testStatusPort (_area: TestArea): StatusPort {
  return {
    postText: async () => { throw new Error('status: in progress') }
  }
}
