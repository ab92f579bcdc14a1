// The one module that talks to the server: every fetch, the X-API-Key
// header, and the error shape {"error":{"code","message"}}. Views pass plain
// objects of parameters; nothing else builds a URL or calls fetch.
//
// The key lives in sessionStorage only (gone when the tab closes): never in
// a URL, a cookie or localStorage.

const KEY = 'evlog.key';

/** A failed request: HTTP status (0: no answer), the API's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** The message for people, with the status and code. */
  get words() {
    return this.status ? `${this.message} (${this.status} ${this.code})` : this.message;
  }
}

/** The API key of this tab. */
export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || '';
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

let refused = null;
/** Calls `f(error)` whenever the server refuses the key (401, or no key). */
export function whenKeyRefused(f) {
  refused = f;
}

/** `path` with a query string of `params`; array values repeat the name. */
function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (x !== undefined && x !== null && x !== '') q.append(k, String(x));
    }
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function errorOf(resp) {
  let code = `http_${resp.status}`;
  let message = `The server answered ${resp.status} ${resp.statusText}`.trim();
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = String(body.error.code);
      message = String(body.error.message);
    }
  } catch {
    // Not the JSON error shape (e.g. 431 has no body): keep the status line.
  }
  const e = new ApiError(resp.status, code, message);
  if ((resp.status === 401 || code === 'api_key_required') && refused) refused(e);
  return e;
}

async function request(path, { params, method = 'GET', body, signal, headers = {}, auth = true } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (auth && session.key) h['X-API-Key'] = session.key;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url(path, params), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached (is evlog serve running?)');
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

async function json(path, opts) {
  const resp = await request(path, opts);
  try {
    return await resp.json();
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(resp.status, 'bad_response', `The answer of ${path} was not JSON`);
  }
}

/** The path of one event (also shown as a link in the details). */
export function eventPath(id) {
  return `/events/${encodeURIComponent(id)}`;
}

/** The endpoints the console uses; `params` are the API's query parameters. */
export const api = {
  whoami: (signal) => json('/whoami', { signal }),
  events: (params, signal) => json('/events', { params, signal }),
  event: (id, signal) => json(eventPath(id), { signal }),
  types: (params, signal) => json('/events/types', { params, signal }),
  stats: (params, signal) => json('/events/stats', { params, signal }),
  health: (signal) => json('/health', { signal, auth: false }),
  rotate: (dryRun, signal) =>
    json('/admin/rotate', { method: 'POST', params: dryRun ? { dry_run: 'true' } : {}, signal }),
  /** `params`: {retention_days, dry_run?, force?}. */
  purge: (params, signal) => json('/admin/purge', { method: 'POST', params, signal }),
  /** Marks event `id` resolved (`note` optional); answers its state {resolved, resolved_at?, resolved_by?}. */
  resolve: (id, note) =>
    json(`${eventPath(id)}/resolve`, { method: 'POST', body: note ? { note } : undefined }),
  /** Opens event `id` again; answers its state. */
  reopen: (id) => json(`${eventPath(id)}/reopen`, { method: 'POST' }),

  /**
   * Every match of `params` as `format` (csv or ndjson), read to the end as
   * a Blob; `onProgress(bytes)` as it comes. A transfer the server breaks
   * off (an error midway) rejects.
   */
  async exportFile(params, format, { signal, onProgress } = {}) {
    const resp = await request('/events/export', {
      params: { ...params, format },
      signal,
      headers: { Accept: format === 'csv' ? 'text/csv' : 'application/x-ndjson' },
    });
    const reader = resp.body.getReader();
    const chunks = [];
    let bytes = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        bytes += value.length;
        if (onProgress) onProgress(bytes);
      }
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'export_broken', `The export broke off after ${bytes} bytes; try again`);
    }
    const type = resp.headers.get('content-type') || 'application/octet-stream';
    return new Blob(chunks, { type });
  },

  /**
   * The live stream (server-sent events) of `params` as a Response whose
   * body the caller reads; resumes after `lastEventId` (a seq) when given.
   * fetch, not EventSource: EventSource cannot send the key header.
   */
  stream: (params, lastEventId, signal) =>
    request('/events/stream', {
      params,
      signal,
      headers: {
        Accept: 'text/event-stream',
        ...(lastEventId !== null && lastEventId !== undefined
          ? { 'Last-Event-ID': String(lastEventId) }
          : {}),
      },
    }),
};
