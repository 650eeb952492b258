import { createHash, randomBytes } from 'node:crypto'
import { STATUS_BROADCAST, type InboundStatus, type StatusPort } from './status-port.ts'
import type { TestArea } from './test-area.ts'
import type { TestWhatsApp } from './test-socket.ts'

/**
 * Status posts on the test double: each batch is recorded as a send to `status@broadcast` under the
 * post's one id (TestWhatsApp.sentTo(companyId, 'status@broadcast')), a file read once for its size
 * and hash.
 */
export function testStatusPort (area: TestArea): StatusPort {
  return {
    post: async (status, batches) => {
      await area.writable()
      const messageId = `3EB0${randomBytes(8).toString('hex').toUpperCase()}`
      let media: { kind: string, mimetype: string, size: number, sha256: string, caption?: string } | undefined
      if ('file' in status) {
        const hash = createHash('sha256')
        let size = 0
        for await (const chunk of status.file.stream) {
          hash.update(chunk as Buffer)
          size += (chunk as Buffer).length
        }
        const { kind, mimetype, caption } = status.file
        media = { kind, mimetype, size, sha256: hash.digest('hex'), ...(caption ? { caption } : {}) }
      }
      for (const statusJidList of batches) {
        area.record({
          to: STATUS_BROADCAST,
          messageId,
          at: performance.now(),
          ...('text' in status
            ? { text: status.text, status: { statusJidList, backgroundArgb: status.backgroundArgb, font: status.font } }
            : { media, status: { statusJidList } })
        })
      }
      return { messageId, timestamp: Math.floor(Date.now() / 1000), batches: batches.length }
    }
  }
}

/** A contact's status reaches the company's open connection (tests act as the contact). */
export function postTestStatus (whatsapp: TestWhatsApp, companyId: string, status: Partial<InboundStatus> & { poster: string }): string {
  const id = status.id ?? `ST${randomBytes(8).toString('hex').toUpperCase()}`
  whatsapp.socketOf(companyId)?.emitLater('statuses', [{ timestamp: Math.floor(Date.now() / 1000), ...status, id }])
  return id
}
