/**
 * Small files of every kind WhatsApp carries, made here so the tests need no fixtures: real headers
 * (what content sniffing and Baileys read) and random bodies, so every file's SHA-256 is its own.
 */
import { createHash, randomBytes } from 'node:crypto'
import sharp from 'sharp'

export const sha256Hex = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

export async function jpeg (width = 64, height = 48): Promise<Buffer> {
  return sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer()
}

export async function png (width = 32, height = 32): Promise<Buffer> {
  return sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } }).png().toBuffer()
}

export async function webp (width = 256, height = 256): Promise<Buffer> {
  return sharp(randomBytes(width * height * 4), { raw: { width, height, channels: 4 } }).webp({ quality: 10 }).toBuffer()
}

/** An MP4 container: an `ftyp` box, then `bytes` of payload in an `mdat` box. */
export function mp4 (bytes = 64 * 1024): Buffer {
  const ftyp = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypmp42'), Buffer.alloc(4), Buffer.from('mp42isom')])
  const header = Buffer.alloc(8)
  header.writeUInt32BE(bytes + 8)
  header.write('mdat', 4)
  return Buffer.concat([ftyp, header, randomBytes(bytes)])
}

export function pdf (bytes = 8 * 1024): Buffer {
  return Buffer.concat([
    Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'),
    Buffer.from(randomBytes(bytes).toString('base64')),
    Buffer.from('\n%%EOF\n')
  ])
}

/** PCM audio (16-bit mono, 8 kHz) in a WAV container: a format ffmpeg converts to a voice note. */
export function wav (seconds = 1): Buffer {
  const samples = 8_000 * seconds
  const data = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(8_000 * Math.sin(i / 8)), i * 2)
  const header = Buffer.alloc(44)
  header.write('RIFF', 0)
  header.writeUInt32LE(36 + data.length, 4)
  header.write('WAVEfmt ', 8)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(1, 22)
  header.writeUInt32LE(8_000, 24)
  header.writeUInt32LE(16_000, 28)
  header.writeUInt16LE(2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36)
  header.writeUInt32LE(data.length, 40)
  return Buffer.concat([header, data])
}

const CRC_TABLE = new Uint32Array(256).map((_, index) => {
  let value = index << 24
  for (let bit = 0; bit < 8; bit++) value = value & 0x80000000 ? (value << 1) ^ 0x04c11db7 : value << 1
  return value >>> 0
})
const oggCrc = (bytes: Uint8Array) => {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]) >>> 0
  return crc
}
function oggPage (data: Buffer, granule: number, sequence: number, type: number): Buffer {
  const segments: number[] = []
  let left = data.length
  while (left >= 255) { segments.push(255); left -= 255 }
  segments.push(left)
  const header = Buffer.alloc(27 + segments.length)
  header.write('OggS')
  header[5] = type
  header.writeBigInt64LE(BigInt(granule), 6)
  header.writeUInt32LE(1, 14)
  header.writeUInt32LE(sequence, 18)
  header[26] = segments.length
  Buffer.from(segments).copy(header, 27)
  const page = Buffer.concat([header, data])
  page.writeUInt32LE(oggCrc(page), 22)
  return page
}

/** A voice note as WhatsApp plays it: Opus frames (20 ms of silence each) in Ogg pages. */
export function oggOpus (seconds = 2): Buffer {
  const head = Buffer.alloc(19)
  head.write('OpusHead')
  head[8] = 1
  head[9] = 1
  head.writeUInt16LE(312, 10)
  head.writeUInt32LE(48_000, 12)
  const tags = Buffer.concat([Buffer.from('OpusTags'), Buffer.from([4, 0, 0, 0]), Buffer.from('test'), Buffer.alloc(4)])
  const frames = seconds * 50
  const pages = [oggPage(head, 0, 0, 2), oggPage(tags, 0, 1, 0)]
  for (let i = 0; i < frames; i++) {
    pages.push(oggPage(Buffer.from([0xf8, 0xff, 0xfe]), 312 + (i + 1) * 960, i + 2, i === frames - 1 ? 4 : 0))
  }
  return Buffer.concat(pages)
}

/** What each kind is sent as in the tests. */
export async function filesOfEveryKind () {
  return {
    image: { data: await jpeg(), mimetype: 'image/jpeg' },
    video: { data: mp4(), mimetype: 'video/mp4' },
    audio: { data: oggOpus(), mimetype: 'audio/ogg; codecs=opus' },
    document: { data: pdf(), mimetype: 'application/pdf', fileName: 'booking.pdf' },
    sticker: { data: await webp(), mimetype: 'image/webp' }
  } as const
}
