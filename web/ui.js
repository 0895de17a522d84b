// ui.js — building DOM nodes (never from HTML strings), messages and helpers.

export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export function clear(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

// A readable message for any error (API or other).
export function describe(e) {
  if (e && e.status !== undefined) {
    if (e.status === 0) return e.message;
    return e.field ? `${e.message}` : e.message;
  }
  return (e && e.message) || String(e);
}

export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, describe(e));
}

let toastTimer = 0;
export function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// A labelled input: returns [wrapper, input].
let ids = 0;
export function field(label, attrs) {
  const id = 'f' + ++ids;
  const input = h(attrs && attrs.multiline ? 'textarea' : 'input', Object.assign({ id, name: id }, attrs, { multiline: null }));
  return [h('div', { class: 'field' }, h('label', { for: id }, label), input), input];
}

// Runs an async action from a form or button: disables it, shows errors in `out`.
export async function busy(btn, out, fn) {
  if (out) out.replaceChildren();
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } catch (e) {
    if (out) out.append(errorBox(e)); else toast(describe(e));
    return undefined;
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// The API's search snippet: HTML-escaped text with <mark>…</mark>. Built as
// nodes: only <mark> becomes an element, everything else stays text.
export function snippetNodes(s) {
  const unescape = (t) => t.replace(/&(lt|gt|quot|#39|#x27|amp);/g, (m, n) =>
    ({ lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'", amp: '&' })[n]);
  const out = [];
  const parts = s.split(/(<mark>|<\/mark>)/);
  let inMark = false;
  for (const p of parts) {
    if (p === '<mark>') { inMark = true; continue; }
    if (p === '</mark>') { inMark = false; continue; }
    if (!p) continue;
    out.push(inMark ? h('mark', null, unescape(p)) : document.createTextNode(unescape(p)));
  }
  return out;
}
