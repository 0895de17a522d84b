// notebook.js — one notebook: sources | chat | studio (tabs on a phone).
// Sources are polled while any is pending or processing; everything else is
// loaded on demand. A citation opens the source viewer at its quote, which is
// highlighted by code-point offsets into the chunk text.
import * as api from './api.js';
import { h, clear, field, busy, errorBox, toast, describe, snippetNodes } from './ui.js';
import { renderMarkdown } from './md.js';

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function notebookScreen(id, { title, go }) {
  const nb = await api.get('/v1/notebooks/' + id);
  let timer = 0; // the sources poll
  let pollTimer = 0; // a quiz or study guide being written
  let alive = true;
  const leave = () => { alive = false; clearTimeout(timer); clearTimeout(pollTimer); };

  // ---------- layout: three panes, tabs under 900 px
  const panes = {};
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Notebook panes' });
  const layout = h('div', { class: 'panes', dataset: { show: 'chat' } });
  for (const [key, label] of [['sources', 'Sources'], ['chat', 'Chat'], ['studio', 'Studio']]) {
    const tab = h('button', { type: 'button', role: 'tab', id: 'tab-' + key, 'aria-controls': 'pane-' + key,
      'aria-selected': key === 'chat' ? 'true' : 'false', onclick: () => show(key) }, label);
    tabs.append(tab);
    panes[key] = h('section', { class: 'pane', id: 'pane-' + key, role: 'tabpanel', 'aria-labelledby': 'h-' + key });
    layout.append(panes[key]);
  }
  tabs.addEventListener('keydown', (e) => {
    const keys = ['sources', 'chat', 'studio'];
    const i = keys.indexOf(layout.dataset.show);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const k = keys[(i + (e.key === 'ArrowRight' ? 1 : 2)) % 3];
      show(k);
      document.getElementById('tab-' + k).focus();
    }
  });
  function show(key) {
    layout.dataset.show = key;
    for (const t of tabs.children) t.setAttribute('aria-selected', String(t.id === 'tab-' + key));
  }

  const head = h('div', { class: 'nbhead' }, title(nb.title),
    h('p', { class: 'meta' }, h('a', { href: '#/' }, '← All notebooks')));
  const view = h('div', { class: 'notebook' }, head, tabs, layout);

  // ---------- sources pane
  const srcOut = h('div');
  const srcList = h('ul', { class: 'sources', 'aria-live': 'polite' });
  const trashed = h('ul', { class: 'sources' });
  const viewer = h('div', { class: 'viewer', hidden: true });
  const srcMain = h('div');
  let sources = [];

  const [ftt, textTitle] = field('Title', { maxlength: 200 });
  const [ftx, textBody] = field('Text to add', { multiline: true, rows: 4, required: true });
  const addText = h('button', { type: 'submit' }, 'Add text');
  const [fu, url] = field('Web page address', { type: 'url', required: true, placeholder: 'https://…' });
  const addUrl = h('button', { type: 'submit' }, 'Add URL');
  const [ff, fileInput] = field('Upload files (PDF, text, Markdown, HTML)', { type: 'file', multiple: true,
    accept: '.pdf,.txt,.md,.markdown,.html,.htm,application/pdf,text/plain,text/markdown,text/html' });
  const uploads = h('ul', { class: 'uploads' });
  const drop = h('div', { class: 'drop' }, ff, h('p', { class: 'meta' }, 'or drop files here'), uploads);

  async function uploadFiles(files) {
    for (const file of files) {
      const bar = h('progress', { max: 100, value: 0, 'aria-label': 'Uploading ' + file.name });
      const li = h('li', null, file.name, ' ', bar);
      uploads.append(li);
      try {
        await api.upload(id, file, (p) => { bar.value = Math.round(p * 100); });
        li.remove();
      } catch (e) {
        clear(li, file.name, ': ', describe(e));
        li.classList.add('error');
        li.setAttribute('role', 'alert');
      }
      refreshSources();
    }
  }
  fileInput.addEventListener('change', () => { uploadFiles([...fileInput.files]); fileInput.value = ''; });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    uploadFiles([...e.dataTransfer.files]);
  });

  const [fq, q] = field('Search this notebook', { type: 'search', required: true, maxlength: 1000 });
  const searchBtn = h('button', { type: 'submit' }, 'Search');
  const hits = h('div', { 'aria-live': 'polite' });

  srcMain.append(
    h('form', { class: 'inline', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      busy(searchBtn, hits, () => search(q.value));
    } }, fq, searchBtn),
    hits,
    h('details', null, h('summary', null, 'Add a source'),
      h('form', { onsubmit: (e) => {
        e.preventDefault();
        busy(addText, srcOut, async () => {
          const b = { kind: 'text', content: textBody.value };
          if (textTitle.value.trim()) b.title = textTitle.value.trim();
          await api.post(`/v1/notebooks/${id}/sources`, b);
          textBody.value = ''; textTitle.value = '';
          refreshSources();
        });
      } }, h('h3', null, 'Paste text'), ftt, ftx, addText),
      h('form', { onsubmit: (e) => {
        e.preventDefault();
        busy(addUrl, srcOut, async () => {
          await api.post(`/v1/notebooks/${id}/sources`, { kind: 'url', url: url.value.trim() });
          url.value = '';
          refreshSources();
        });
      } }, h('h3', null, 'Add a web page'), fu, addUrl),
      h('h3', null, 'Upload'), drop),
    srcOut, h('h3', null, 'In this notebook'), srcList,
    h('h3', { class: 'trash-head' }, 'Trashed this session'), trashed);
  panes.sources.append(h('h2', { id: 'h-sources' }, 'Sources'), srcMain, viewer);

  function statusText(s) {
    if (s.status === 'failed') return 'failed: ' + (s.error || 'unknown reason');
    if (s.status === 'ready') return `ready · ${plural(s.chunk_count, 'chunk')}` + (s.page_count ? ` · ${plural(s.page_count, 'page')}` : '');
    return s.status + '…';
  }

  function sourceItem(s) {
    const li = h('li', { class: 'source', dataset: { status: s.status, id: s.id } });
    const open = h('button', { type: 'button', class: 'link', onclick: () => openSource(s.id) }, s.title);
    const actions = h('div', { class: 'actions' });
    if (s.status === 'failed') {
      const r = h('button', { type: 'button', class: 'secondary' }, 'Retry');
      r.addEventListener('click', () => busy(r, srcOut, async () => { await api.post(`/v1/sources/${s.id}/retry`); refreshSources(); }));
      actions.append(r);
    }
    const rn = h('button', { type: 'button', class: 'secondary', 'aria-label': 'Rename ' + s.title }, 'Rename');
    rn.addEventListener('click', () => {
      const [fr, inp] = field('New title', { required: true, maxlength: 200, value: s.title });
      const ok = h('button', { type: 'submit' }, 'Save');
      actions.replaceWith(h('form', { class: 'inline', onsubmit: (e) => {
        e.preventDefault();
        busy(ok, srcOut, async () => { await api.patch('/v1/sources/' + s.id, { title: inp.value.trim() }); refreshSources(); });
      } }, fr, ok));
      inp.focus();
    });
    const tr = h('button', { type: 'button', class: 'danger', 'aria-label': 'Move ' + s.title + ' to the trash' }, 'Trash');
    tr.addEventListener('click', () => busy(tr, srcOut, async () => {
      await api.del('/v1/sources/' + s.id);
      const rs = h('button', { type: 'button', 'aria-label': 'Restore ' + s.title }, 'Restore');
      const item = h('li', null, s.title, ' ', rs);
      rs.addEventListener('click', () => busy(rs, srcOut, async () => {
        await api.post(`/v1/sources/${s.id}/restore`);
        item.remove();
        refreshSources();
      }));
      trashed.append(item);
      refreshSources();
    }));
    actions.append(rn, tr);
    li.append(open, h('span', { class: 'badge', 'data-status': s.status }, statusText(s)), actions);
    return li;
  }

  async function refreshSources() {
    clearTimeout(timer);
    try {
      sources = await api.all(`/v1/notebooks/${id}/sources`);
    } catch (e) {
      clear(srcList, h('li', null, errorBox(e)));
      return;
    }
    if (!alive) return;
    clear(srcList);
    if (!sources.length) srcList.append(h('li', { class: 'empty' }, 'No sources yet: paste a text, add a web page or upload a PDF.'));
    for (const s of sources) srcList.append(sourceItem(s));
    if (sources.some((s) => s.status === 'pending' || s.status === 'processing')) {
      timer = setTimeout(refreshSources, 1000);
    }
  }

  async function search(text) {
    const r = await api.get(`/v1/notebooks/${id}/search?q=${encodeURIComponent(text)}&limit=10`);
    const list = h('ol', { class: 'hits' });
    for (const it of r.items) {
      list.append(h('li', null, h('button', { type: 'button', class: 'hit', onclick: () => openSource(it.source_id, { chunk_id: it.chunk_id }) },
        h('span', { class: 'meta' }, it.source_title + (it.page ? ` · page ${it.page}` : '')), h('span', { class: 'snippet' }, snippetNodes(it.snippet)))));
    }
    clear(hits, h('p', { class: 'meta', role: 'status' }, r.items.length ? plural(r.items.length, 'result') +
      (r.match === 'any' ? ' (no passage has every word; showing passages with some)' : '') : 'No results.'), list);
  }

  // The source viewer: its guide and its text, chunk by chunk, with page numbers.
  async function openSource(sourceId, at) {
    show('sources');
    srcMain.hidden = true;
    viewer.hidden = false;
    const back = h('button', { type: 'button', class: 'secondary', onclick: () => {
      viewer.hidden = true; srcMain.hidden = false; srcList.querySelector('button')?.focus();
    } }, '← Back to sources');
    clear(viewer, back, h('p', { class: 'loading', role: 'status' }, 'Loading the source…'));
    back.focus();
    try {
      const [s, chunks] = await Promise.all([api.get('/v1/sources/' + sourceId), api.all(`/v1/sources/${sourceId}/chunks`, 5000)]);
      const body = h('div', { class: 'chunks' });
      let page = null;
      let target = null;
      for (const c of chunks) {
        if (c.page !== null && c.page !== page) { page = c.page; body.append(h('p', { class: 'page' }, 'Page ' + page)); }
        const p = h('p', { class: 'chunk', dataset: { id: c.id } });
        if (at && at.chunk_id === c.id && at.char_start !== undefined) {
          const cps = Array.from(c.text);
          const mark = h('mark', { class: 'quote', tabindex: -1 }, cps.slice(at.char_start, at.char_end).join(''));
          p.append(cps.slice(0, at.char_start).join(''), mark, cps.slice(at.char_end).join(''));
          target = mark;
        } else {
          p.textContent = c.text;
          if (at && at.chunk_id === c.id) { p.classList.add('hit'); p.tabIndex = -1; target = p; }
        }
        body.append(p);
      }
      const guide = h('div', { class: 'guide' });
      if (s.summary) {
        guide.append(h('h4', null, 'Source guide'), h('p', null, s.summary.text));
        if (s.topics && s.topics.length) guide.append(h('ul', { class: 'topics' }, s.topics.map((t) => h('li', null, t))));
      }
      clear(viewer, back, h('h3', null, s.title), h('p', { class: 'meta' }, statusText(s)), guide,
        chunks.length ? body : h('p', { class: 'empty' }, s.status === 'ready' ? 'This source has no text.' : 'The text appears once the source is ready.'));
      if (target) {
        const reduce = matchMedia('(prefers-reduced-motion: reduce)').matches;
        target.scrollIntoView({ block: 'center', behavior: reduce ? 'auto' : 'smooth' });
        target.focus({ preventScroll: true });
      }
    } catch (e) {
      clear(viewer, back, errorBox(e));
    }
  }

  // ---------- chat pane
  const convSel = h('select', { id: 'conv-select' });
  const newConv = h('button', { type: 'button', class: 'secondary' }, 'New conversation');
  const messages = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' });
  const [fa, question] = field('Ask about your sources', { multiline: true, rows: 2, required: true, maxlength: 10000 });
  const askBtn = h('button', { type: 'submit' }, 'Ask');
  const chatOut = h('div');
  let conv = null;

  function citationChips(cits) {
    if (!cits || !cits.length) return null;
    return h('ul', { class: 'chips', 'aria-label': 'Citations' }, cits.map((c, i) => h('li', null,
      h('button', { type: 'button', class: 'chip', title: c.quote, 'aria-label': `Citation ${i + 1}: ${c.quote.slice(0, 80)}`,
        onclick: () => openSource(c.source_id, c) }, String(i + 1)))));
  }

  function messageItem(m) {
    return h('li', { class: 'msg ' + m.role }, h('span', { class: 'who' }, m.role === 'user' ? 'You' : 'Notebook'),
      h('div', { class: 'text' }, m.content), citationChips(m.citations));
  }

  async function loadConversations(select, messagesToo = true) {
    const list = await api.all(`/v1/notebooks/${id}/conversations`);
    clear(convSel, list.length ? null : h('option', { value: '' }, 'No conversations yet'),
      list.map((c) => h('option', { value: c.id }, `${c.title || 'Conversation'} (${c.message_count})`)));
    if (select) convSel.value = select;
    else if (list.length) convSel.value = list[0].id;
    conv = convSel.value || null;
    if (messagesToo) await loadMessages();
  }

  async function loadMessages() {
    if (!conv) { clear(messages, h('li', { class: 'empty' }, 'Ask a question: answers quote your sources, with numbered citations.')); return; }
    const list = await api.all(`/v1/conversations/${conv}/messages`);
    clear(messages, list.length ? list.map(messageItem) : h('li', { class: 'empty' }, 'No messages yet.'));
  }

  convSel.addEventListener('change', () => { conv = convSel.value || null; loadMessages().catch((e) => clear(chatOut, errorBox(e))); });
  newConv.addEventListener('click', () => busy(newConv, chatOut, async () => {
    const c = await api.post(`/v1/notebooks/${id}/conversations`, {});
    await loadConversations(c.id);
    question.focus();
  }));

  const askForm = h('form', { class: 'ask', onsubmit: (e) => {
    e.preventDefault();
    busy(askBtn, chatOut, async () => {
      if (!conv) { const c = await api.post(`/v1/notebooks/${id}/conversations`, {}); await loadConversations(c.id); }
      const text = question.value;
      messages.querySelector('.empty')?.remove();
      messages.append(messageItem({ role: 'user', content: text, citations: [] }));
      const live = h('div', { class: 'text' }, h('span', { class: 'loading' }, 'Thinking…'));
      const pending = h('li', { class: 'msg assistant', 'aria-busy': 'true' }, h('span', { class: 'who' }, 'Notebook'), live);
      messages.append(pending);
      question.value = '';
      let streamed = '';
      try {
        let pieces = 0;
        const r = await api.ask(conv, text, (d) => { pieces++; streamed += d; live.textContent = streamed; });
        const done = messageItem(r.assistant_message);
        done.dataset.pieces = String(pieces); // how many streamed pieces it arrived in (0: a plain answer)
        pending.replaceWith(done);
        loadConversations(conv, false).catch(() => {});
      } catch (err) {
        pending.remove();
        question.value = text;
        throw err;
      }
    });
  } }, fa, askBtn);
  question.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); askForm.requestSubmit(); }
  });
  panes.chat.append(h('h2', { id: 'h-chat' }, 'Chat'),
    h('div', { class: 'inline' }, h('label', { for: 'conv-select' }, 'Conversation'), convSel, newConv),
    messages, chatOut, askForm);

  // ---------- studio pane
  panes.studio.append(h('h2', { id: 'h-studio' }, 'Studio'));
  const studio = h('div');
  panes.studio.append(studio);

  async function poll(path) {
    for (;;) {
      const r = await api.get(path);
      if (!alive || r.status !== 'pending') return r;
      await new Promise((res) => { pollTimer = setTimeout(res, 1000); });
    }
  }

  // "Use only these sources": checkboxes of the ready sources; none ticked means all.
  function sourcePicker() {
    const box = h('fieldset', { class: 'pick' }, h('legend', null, 'Sources to use (none ticked: all)'));
    const ready = sources.filter((s) => s.status === 'ready');
    if (!ready.length) box.append(h('p', { class: 'meta' }, 'No ready source yet.'));
    for (const s of ready) {
      const cid = 'pick-' + Math.random().toString(36).slice(2);
      box.append(h('div', { class: 'choice' }, h('input', { type: 'checkbox', id: cid, value: s.id }), h('label', { for: cid }, s.title)));
    }
    box.picked = () => [...box.querySelectorAll('input:checked')].map((i) => i.value);
    return box;
  }
  function pickerSlot() {
    const slot = h('details', null, h('summary', null, 'Choose sources'));
    slot.addEventListener('toggle', () => {
      if (!slot.open) return;
      slot.querySelector('fieldset')?.remove();
      slot.append(sourcePicker());
    });
    slot.picked = () => slot.querySelector('fieldset')?.picked() || [];
    return slot;
  }

  async function setupStudio() {
    const [quizOk, guideOk] = await Promise.all([api.offers('/v1/notebooks/{id}/quizzes', 'post'),
      api.offers('/v1/notebooks/{id}/study-guides', 'post')]);
    // quizzes
    const qBox = h('section', { class: 'tool', 'aria-labelledby': 'h-quiz' }, h('h3', { id: 'h-quiz' }, 'Quiz'));
    if (!quizOk) qBox.append(h('p', { class: 'empty' }, 'Quizzes are not available on this server.'));
    else {
      const [fnq, nq] = field('Number of questions', { type: 'number', min: 1, max: 20, value: 5 });
      const gen = h('button', { type: 'submit' }, 'Generate a quiz');
      const out = h('div', { 'aria-live': 'polite' });
      const qPick = pickerSlot();
      qBox.append(h('form', { onsubmit: (e) => {
        e.preventDefault();
        busy(gen, out, async () => {
          clear(out, h('p', { class: 'loading', role: 'status' }, 'Writing the quiz…'));
          const body = { num_questions: Number(nq.value) };
          if (qPick.picked().length) body.source_ids = qPick.picked();
          const quiz = await api.post(`/v1/notebooks/${id}/quizzes`, body);
          const ready = await poll('/v1/quizzes/' + quiz.id);
          if (ready.status === 'failed') { clear(out, errorBox({ message: 'The quiz failed: ' + (ready.error || 'unknown reason') })); return; }
          takeQuiz(ready, out);
        });
      } }, fnq, qPick, gen), out);
    }
    // study guides
    const gBox = h('section', { class: 'tool', 'aria-labelledby': 'h-guide' }, h('h3', { id: 'h-guide' }, 'Study guide'));
    if (!guideOk) gBox.append(h('p', { class: 'empty' }, 'Study guides are not available on this server.'));
    else {
      const gen = h('button', { type: 'button' }, 'Generate a study guide');
      const out = h('div', { 'aria-live': 'polite' });
      const gPick = pickerSlot();
      gen.addEventListener('click', () => busy(gen, out, async () => {
        clear(out, h('p', { class: 'loading', role: 'status' }, 'Writing the study guide…'));
        const g = await api.post(`/v1/notebooks/${id}/study-guides`, gPick.picked().length ? { source_ids: gPick.picked() } : {});
        const ready = await poll('/v1/study-guides/' + g.id);
        if (ready.status === 'failed') { clear(out, errorBox({ message: 'The study guide failed: ' + (ready.error || 'unknown reason') })); return; }
        // the Markdown opens with the guide's title as its "#" heading (an h4 here)
        const md = ready.markdown || '';
        const doc = h('article', { class: 'guide-doc', 'aria-label': ready.title || 'Study guide' },
          /^#\s/.test(md) ? null : h('h4', null, ready.title || 'Study guide'), renderMarkdown(md, 4));
        if (ready.summary && ready.summary.citations) doc.append(h('p', { class: 'meta' }, 'Summary sources:'), citationChips(ready.summary.citations));
        clear(out, doc);
      }));
      gBox.append(gPick, gen, out);
    }
    clear(studio, qBox, gBox);
  }

  function takeQuiz(quiz, out) {
    let i = 0;
    let score = 0;
    const step = () => {
      if (i >= quiz.questions.length) {
        clear(out, h('p', { class: 'score', role: 'status', tabindex: -1 }, `Your score: ${score} of ${quiz.questions.length}`));
        out.firstChild.focus();
        return;
      }
      const qq = quiz.questions[i];
      const name = 'q' + i + '-' + quiz.id;
      const choices = qq.choices.map((c, k) => {
        const cid = name + '-' + k;
        return h('div', { class: 'choice' }, h('input', { type: 'radio', name, id: cid, value: k, required: true }), h('label', { for: cid }, c));
      });
      const submit = h('button', { type: 'submit' }, 'Check answer');
      const fb = h('div', { 'aria-live': 'polite' });
      const form = h('form', { onsubmit: (e) => {
        e.preventDefault();
        const picked = Number(new FormData(form).get(name));
        const right = picked === qq.answer_index;
        if (right) score++;
        for (const inp of form.querySelectorAll('input')) inp.disabled = true;
        const next = h('button', { type: 'button', onclick: () => { i++; step(); } }, i + 1 < quiz.questions.length ? 'Next question' : 'See the score');
        submit.remove();
        clear(fb, h('p', { class: right ? 'right' : 'wrong', role: 'status' }, right ? 'Correct.' : 'Not quite: the answer is “' + qq.answer + '”.'),
          qq.explanation ? h('p', null, qq.explanation) : null, citationChips(qq.citations), next);
        next.focus();
      } }, h('fieldset', null, h('legend', null, `Question ${i + 1} of ${quiz.questions.length}: ${qq.question}`), choices), submit, fb);
      clear(out, form);
      form.querySelector('input').focus();
    };
    step();
  }

  refreshSources();
  loadConversations().catch((e) => clear(chatOut, errorBox(e)));
  setupStudio().catch((e) => clear(studio, errorBox(e)));
  return { view, leave };
}
