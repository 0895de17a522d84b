// md.js — a small Markdown renderer that cannot inject HTML: it builds DOM
// nodes and puts every piece of text in as text (raw HTML in the source shows
// as literal characters). Headings, paragraphs, lists (with indented
// continuation lines and hard breaks), block quotes, code, **bold**,
// *italic*, `code`, backslash escapes. Enough for study guides (the server's
// Markdown escapes every punctuation character of source text); nothing in
// it can execute, load or link anything.
import { h } from './ui.js';

const INLINE = /(\\[!-/:-@[-`{-~]|\*\*(?:\\.|[^*\\])+\*\*|\*(?:\\.|[^*\s\\])(?:\\.|[^*\\])*\*|`[^`]+`)/g;

function inline(text) {
  const out = [];
  let last = 0;
  let m;
  INLINE.lastIndex = 0;
  const re = new RegExp(INLINE.source, 'g');
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const t = m[0];
    if (t[0] === '\\') out.push(t[1]);
    else if (t.startsWith('**')) out.push(h('strong', null, inline(t.slice(2, -2))));
    else if (t.startsWith('`')) out.push(h('code', null, t.slice(1, -1)));
    else out.push(h('em', null, inline(t.slice(1, -1))));
    last = m.index + t.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// A list item's or a paragraph's content: a leading "> " is a quotation.
function block(text) {
  const q = /^>\s?(.*)$/.exec(text);
  return q ? h('blockquote', null, inline(q[1])) : inline(text);
}

export function renderMarkdown(src, headingBase = 2) {
  const root = document.createDocumentFragment();
  const lines = String(src || '').replace(/\r\n?/g, '\n').split('\n');
  let para = [];
  let list = null;
  let item = null; // the last list item, for continuation lines
  const flush = () => {
    if (para.length) {
      const p = h('p');
      para.forEach((l, i) => {
        if (i) p.append(/ {2,}$/.test(para[i - 1]) ? h('br') : ' ');
        p.append(...inline(l.trim()));
      });
      root.append(p);
    }
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if (/^```/.test(line)) {
      flush(); list = item = null;
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      root.append(h('pre', null, h('code', null, code.join('\n'))));
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flush(); list = item = null;
      const level = Math.min(6, headingBase + m[1].length - 1);
      root.append(h('h' + level, null, inline(m[2])));
    } else if ((m = /^\s{0,3}(?:[-*+]|(\d+)[.)])\s+(.*)$/.exec(line))) {
      flush();
      const tag = m[1] ? 'ol' : 'ul';
      if (!list || list.tagName.toLowerCase() !== tag) { list = h(tag); root.append(list); }
      item = h('li', null, block(m[2]));
      list.append(item);
    } else if (item && /^\s{2,}\S/.test(line)) {
      item.append(/ {2,}$/.test(lines[i - 1]) ? h('br') : ' ', ...inline(line.trim()));
    } else if ((m = /^>\s?(.*)$/.exec(line))) {
      flush(); list = item = null;
      root.append(h('blockquote', null, inline(m[1])));
    } else if (!line.trim()) {
      flush(); list = item = null;
    } else {
      list = item = null;
      para.push(line);
    }
  }
  flush();
  return root;
}
