import { spawn } from 'node:child_process'
import { Readable } from 'node:stream'
import { ErrorCode } from '../../contracts/index.ts'
import { GatewayError } from '../../core/errors.ts'

/** Whether `ffmpeg` runs here (checked once at start). */
export async function ffmpegRuns (path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(path, ['-hide_banner', '-version'], { stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('exit', (code) => resolve(code === 0))
  })
}

/**
 * A voice note as WhatsApp plays it (Opus in Ogg, mono, 48 kHz) from any audio ffmpeg reads,
 * streamed through ffmpeg: the input goes to its stdin as it comes, the result is its stdout.
 */
export function toVoiceNote (path: string, input: AsyncIterable<Uint8Array>): { output: Readable, finished: Promise<void> } {
  const child = spawn(path, [
    '-hide_banner', '-loglevel', 'error', '-i', 'pipe:0', '-vn', '-map_metadata', '-1',
    '-c:a', 'libopus', '-b:a', '32k', '-ac', '1', '-ar', '48000', '-application', 'voip', '-f', 'ogg', 'pipe:1'
  ], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-500) })
  const output = child.stdout
  const fail = (err: Error) => { if (!output.destroyed) output.destroy(err) }
  child.once('error', (err) => fail(new GatewayError(ErrorCode.MEDIA_CONVERSION_UNAVAILABLE, `ffmpeg could not run: ${err.message}`)))
  // Its stdout may end before the exit code says the conversion failed: the caller waits for both.
  const finished = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) return resolve()
      const err = new GatewayError(ErrorCode.UNSUPPORTED_MEDIA, `the audio could not be converted to a voice note: ${stderr.trim()}`)
      fail(err)
      reject(err)
    })
  })
  finished.catch(() => {})
  // The input's own errors (over the size limit, say) end the conversion with that error.
  Readable.from(input).on('error', (err) => {
    child.kill('SIGKILL')
    fail(err)
  }).pipe(child.stdin).on('error', () => {})
  return { output, finished }
}
