// The gateway's HTTP API as the dashboard calls it: every call carries the key, every failure
// becomes an ApiError with the gateway's own code and message (its one JSON error shape).

export class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** Calls with `key` as a bearer token; resolves to the JSON answer or throws an ApiError. */
export function createApi (key) {
  async function call (method, path, body, headers = {}) {
    let response
    try {
      response = await fetch(path, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers
        },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The gateway could not be reached. Check the connection and try again.')
    }
    const payload = await response.json().catch(() => undefined)
    if (!response.ok) {
      throw new ApiError(response.status, payload?.error?.code ?? `HTTP_${response.status}`, payload?.error?.message ?? response.statusText)
    }
    return payload
  }
  /** A file the gateway answers (a CSV report): its text, or an ApiError as for the rest. */
  async function text (path) {
    let response
    try {
      response = await fetch(path, { headers: { authorization: `Bearer ${key}` } })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The gateway could not be reached. Check the connection and try again.')
    }
    if (!response.ok) {
      const payload = await response.json().catch(() => undefined)
      throw new ApiError(response.status, payload?.error?.code ?? `HTTP_${response.status}`, payload?.error?.message ?? response.statusText)
    }
    return { text: await response.text(), type: response.headers.get('content-type') ?? '' }
  }
  return {
    text,
    get: (path) => call('GET', path),
    post: (path, body = {}, headers) => call('POST', path, body, headers),
    delete: (path) => call('DELETE', path)
  }
}

/** The path of a company's resource, its id escaped. */
export function companyPath (companyId, rest = '') {
  return `/api/whatsapp/sessions/${encodeURIComponent(companyId)}${rest}`
}
