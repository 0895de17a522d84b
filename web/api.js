// api.js — every call the page makes to notebookd's /v1 API.
//
// The access token lives in this module's memory only. The refresh token is an
// HttpOnly cookie set by the server on /v1/auth: page script never sees it.
// A call answered 401 is retried once after a cookie refresh. Errors become
// ApiError with the API's code, message and field.

let access = null;
let refreshing = null;
const HINT = 'nb_session'; // "1" while a refresh cookie is believed to exist; not a secret
export let onSignedOut = () => {};
export function setSignedOutHandler(fn) { onSignedOut = fn; }

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed (HTTP ${status})`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.field = e.field || null;
  }
}

export function signedIn() { return access !== null; }

function setTokens(t) {
  access = t.access_token;
  try { localStorage.setItem(HINT, '1'); } catch { /* private mode */ }
  return t.user;
}

function forget() {
  access = null;
  try { localStorage.removeItem(HINT); } catch { /* ignore */ }
}

async function parse(res) {
  const text = await res.text(); // read even when empty: an unread body counts as an aborted load
  if (res.status === 204) return null;
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = null; }
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

// Exchanges the refresh cookie for a new access token (and a rotated cookie).
export async function refresh() {
  if (!refreshing) {
    refreshing = fetch('/v1/auth/refresh', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}', credentials: 'same-origin',
    }).then(parse).then(setTokens, (e) => { forget(); throw e; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

// Resumes a session on page load without a failing request when there is none.
export async function resume() {
  let hint = null;
  try { hint = localStorage.getItem(HINT); } catch { /* ignore */ }
  if (!hint) return null;
  try { return await refresh(); } catch { return null; }
}

function headers(json, extra) {
  const h = Object.assign({}, extra || {});
  if (json) h['Content-Type'] = 'application/json';
  if (access) h.Authorization = 'Bearer ' + access;
  return h;
}

export async function raw(method, path, body, extra, retry = true) {
  const res = await fetch(path, {
    method, headers: headers(body !== undefined, extra), credentials: 'same-origin',
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  // Only a refused access token is worth a refresh (a wrong password is 401 too).
  if (res.status === 401 && retry && access && !path.startsWith('/v1/auth/') &&
      /access token/.test((await res.clone().json().catch(() => null))?.error?.message || '')) {
    try { await refresh(); } catch { onSignedOut(); throw new ApiError(401, null); }
    return raw(method, path, body, extra, false);
  }
  return res;
}

export async function call(method, path, body) {
  return parse(await raw(method, path, body));
}

export const get = (p) => call('GET', p);
export const post = (p, b) => call('POST', p, b === undefined ? {} : b);
export const patch = (p, b) => call('PATCH', p, b);
export const del = (p, b) => call('DELETE', p, b);

// Auth
export async function register(email, password, display_name) {
  const b = { email, password };
  if (display_name) b.display_name = display_name;
  return setTokens(await call('POST', '/v1/auth/register', b));
}
export async function login(email, password) {
  return setTokens(await call('POST', '/v1/auth/login', { email, password }));
}
export const otpRequest = (email, purpose) => call('POST', '/v1/auth/otp/request', { email, purpose });
export async function otpVerify(email, purpose, code, new_password) {
  const b = { email, purpose, code };
  if (new_password) b.new_password = new_password;
  const r = await call('POST', '/v1/auth/otp/verify', b);
  return r && r.access_token ? setTokens(r) : null;
}
export async function logout() {
  try { await call('POST', '/v1/auth/logout', {}); } finally { forget(); }
}
export function dropSession() { forget(); }

// Every page of a list.
export async function all(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(path + sep + 'limit=100' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// Upload with progress (fetch has no upload progress): XMLHttpRequest.
export function upload(notebookId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const send = (again) => {
      const x = new XMLHttpRequest();
      x.open('POST', `/v1/notebooks/${notebookId}/sources`);
      if (access) x.setRequestHeader('Authorization', 'Bearer ' + access);
      x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      x.onload = async () => {
        let body = null;
        try { body = JSON.parse(x.responseText); } catch { body = null; }
        if (x.status === 401 && again) {
          try { await refresh(); } catch (e) { reject(e); return; }
          send(false);
          return;
        }
        if (x.status >= 200 && x.status < 300) resolve(body); else reject(new ApiError(x.status, body));
      };
      x.onerror = () => reject(new ApiError(0, { error: { message: 'the upload failed (network error)' } }));
      const fd = new FormData();
      fd.append('file', file, file.name);
      x.send(fd);
    };
    send(true);
  });
}

// Asks a question. Streams (text/event-stream) when the server does, calling
// onDelta(text) per piece; falls back to the plain JSON answer otherwise.
// Resolves {user_message, assistant_message}.
export async function ask(conversationId, content, onDelta) {
  const res = await raw('POST', `/v1/conversations/${conversationId}/messages`, { content },
    { Accept: 'text/event-stream, application/json;q=0.5' });
  const ct = res.headers.get('Content-Type') || '';
  if (!res.ok || !ct.startsWith('text/event-stream') || !res.body) return parse(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let done = null;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (value) buf += value;
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (!data.length) continue;
      const obj = JSON.parse(data.join('\n'));
      if (event === 'delta') onDelta(obj.text || '');
      else if (event === 'done') done = obj;
      else if (event === 'error') throw new ApiError(500, obj);
    }
    if (end) break;
  }
  if (!done) throw new ApiError(0, { error: { message: 'the answer stopped before it was complete' } });
  return done;
}

// Which routes this server offers (quizzes and study guides may be absent).
let routes = null;
export async function offers(path, method) {
  if (!routes) {
    routes = fetch('/openapi.json').then((r) => r.json()).then((d) => d.paths || {}, () => ({}));
  }
  const p = (await routes)[path];
  return !!(p && p[method]);
}
