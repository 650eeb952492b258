import type { ProfilePort } from './profiles-port.ts'
import type { TestArea } from './test-area.ts'

export function testProfilePort (_area: TestArea): ProfilePort {
  return {
    blocklist: async () => { throw new Error('profiles: in progress') }
  }
}
