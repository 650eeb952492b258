import type makeWASocket from '@whiskeysockets/baileys'
import type { BaileysEventMap } from '@whiskeysockets/baileys'
import { refusalOf } from './baileys-groups.ts'
import { WhatsAppRefusal } from './socket-port.ts'

/** The phone shares the app-state key right after linking; a change asked before it arrives waits this long for it. */
const KEY_WAIT_MS = 10_000
/** WhatsApp's answer to a patch that does not build on the collection's latest version. */
const CONFLICT = 409

type Sock = ReturnType<typeof makeWASocket>

/**
 * Writes one app-state patch (`write` calls Baileys' `chatModify` or a call built on it, such as
 * `updateProfileName`): once the phone has shared the app-state key, its refusal as a
 * WhatsAppRefusal. A patch that raced another device's (409) is written once more: Baileys syncs
 * the collection first and builds on that device's patch (its local state is untouched by the refused one).
 */
export async function patchAppState (sock: Sock, write: () => Promise<unknown>): Promise<void> {
  await keyShared(sock)
  const patch = async () => {
    try {
      await write()
    } catch (err) {
      throw refusalOf(err)
    }
  }
  try {
    await patch()
  } catch (err) {
    if (!(err instanceof WhatsAppRefusal && err.code === CONFLICT)) throw err
    await patch()
  }
}

/** The app-state key, which the phone shares once the device is linked. */
function keyShared (sock: Sock): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (sock.authState.creds.myAppStateKeyId) return resolve()
    const done = () => {
      clearTimeout(timer)
      sock.ev.off('creds.update', listener)
    }
    const listener = (update: BaileysEventMap['creds.update']) => {
      if (!update.myAppStateKeyId) return
      done()
      resolve()
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error('the phone has not shared the app-state key with this device yet'))
    }, KEY_WAIT_MS)
    sock.ev.on('creds.update', listener)
  })
}
