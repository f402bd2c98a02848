// The console's only way to the server: the HTTP API, with the signed-in token.

export const config = {
  readOnly: document.body.dataset.readOnly === 'true',
  apiBase: document.body.dataset.apiBase || '',
};

const KEY = 'pop.console.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

/** An answer of the API that is not 2xx: its status, title, message and problems. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.errorResponse) || {};
    super(e.description || `HTTP ${status}`);
    this.status = status;
    this.title = e.title || String(status);
    this.problems = e.problems || [];
  }
}

function headers(json) {
  const h = { Accept: 'application/json' };
  const t = session.token();
  if (t) h.Authorization = `Bearer ${t}`;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

/** Calls the API: `method`, `path` (`/pop/...`), an optional JSON body. Throws ApiError. */
export async function api(method, path, body, opts = {}) {
  const res = await fetch(config.apiBase + path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { text }; }
  if (res.status === 401 && session.token() && !opts.signingIn) {
    window.dispatchEvent(new CustomEvent('pop:unauthorized'));
  }
  if (!res.ok && res.status !== 207) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

/**
 * Server-sent events of `path` read with fetch (so the token goes in the Authorization header, never
 * in the URL). Calls onEvent(name, data) per event; resolves when the stream ends; `signal` aborts.
 */
export async function streamEvents(path, onEvent, signal) {
  const res = await fetch(config.apiBase + path, { headers: { ...headers(false), Accept: 'text/event-stream' }, signal });
  if (!res.ok) {
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, body);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}
