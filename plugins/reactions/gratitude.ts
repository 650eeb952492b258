/**
 * Words and phrases that thank, Russian and English. A trailing `*` matches any ending of the last
 * word (спасиб* covers спасибо, спасибочки, спасибки); otherwise words match whole.
 */
export const DEFAULT_GRATITUDE = [
  'спасиб*', 'пасиб*', 'спс', 'спасибо большое', 'благодарю', 'благодарим', 'благодарна', 'благодарен', 'благодарны',
  'благодарность', 'сенкс', 'мерси',
  'thanks', 'thank you', 'thank u', 'thankyou', 'thx', 'thanx', 'ty', 'tysm', 'appreciate it', 'much appreciated', 'cheers'
]

/** Phrases that contain a thanks word but do not thank: replies to thanks, refusals, "due to". */
export const DEFAULT_NOT_GRATITUDE = [
  'не за что', 'нет спасибо', 'спасибо не надо', 'спасибо не нужно', 'спасибо нет', 'благодаря',
  'no thanks', 'no thank you', 'thanks but no', 'thank you but no', 'thanks for nothing', 'no ty'
]

/** Longer messages are about something else, even when they say thanks on the way. */
export const MAX_GRATITUDE_WORDS = 30

export interface GratitudeRules {
  patterns: string[]
  exclusions: string[]
}

/** Lower case, ё as е, and words only: punctuation, emoji and spacing do not matter. */
function words (text: string): string[] {
  return text.toLowerCase().replaceAll('ё', 'е').split(/[^\p{L}\p{N}]+/u).filter(Boolean)
}

function matcher (pattern: string): (tokens: string[]) => boolean {
  const prefix = pattern.trimEnd().endsWith('*')
  const parts = words(pattern)
  if (parts.length === 0) return () => false
  return (tokens) => {
    for (let start = 0; start + parts.length <= tokens.length; start++) {
      const matches = parts.every((part, index) => {
        const token = tokens[start + index]
        return prefix && index === parts.length - 1 ? token.startsWith(part) : token === part
      })
      if (matches) return true
    }
    return false
  }
}

/** Compiles the rules once; the returned test says whether a message thanks. */
export function gratitudeTest (rules: GratitudeRules): (text: string) => boolean {
  const thanks = rules.patterns.map(matcher)
  const not = rules.exclusions.map(matcher)
  return (text) => {
    const tokens = words(text)
    if (tokens.length === 0 || tokens.length > MAX_GRATITUDE_WORDS) return false
    if (not.some((test) => test(tokens))) return false
    return thanks.some((test) => test(tokens))
  }
}
