import type { CallPort } from './calls-port.ts'
import type { TestArea } from './test-area.ts'

export function testCallPort (_area: TestArea): CallPort {
  return {
    reject: async () => { throw new Error('calls: in progress') }
  }
}
