// run.mjs — the web app in a real headless Chromium (Debian's /usr/bin/chromium
// driven by puppeteer-core), against a real notebookd on a database of its
// own, made from the test cluster's migrated template.
//
// One user's whole session, step by step, each step an "ok - …" / "not ok - …"
// line: sign up, create a notebook, upload a PDF (written here) and paste a
// text, wait until both are ready, search, ask (streamed when the server
// streams), open a citation and see its quote highlighted, quiz and study
// guide (when the server offers them; when not, the step checks that the page
// says so and its name says the route is missing), trash and restore the
// notebook, sign out and in again with a one-time code from the mail folder.
// Any console error, page error, failed request or HTTP error fails the run;
// axe-core checks each main screen (no serious or critical violation), at
// desktop and at 360 px. Screenshots go to build/screenshots/, or to
// NB_SCREENSHOTS_DIR (NB_SCREENSHOTS_DIR=docs/screenshots refreshes the
// README's pictures), so that a test run leaves the tree as it was.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const shots = path.resolve(root, process.env.NB_SCREENSHOTS_DIR || 'build/screenshots');
const BIN = process.env.NOTEBOOKD_BIN || path.join(root, 'build/release/notebookd');
const TMP = process.env.NB_TEST_TMP || fs.mkdtempSync('/tmp/nb-browser-');
const ADMIN = process.env.NB_TEST_ADMIN_URL;
const DBURL = process.env.NB_TEST_DATABASE_URL;
const CHROMIUM = process.env.NB_CHROMIUM || '/usr/bin/chromium';
const axeSource = fs.readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');

let passed = 0;
let failed = 0;
const problems = []; // console errors, failed requests: the run fails on any
// An error a step provokes on purpose, e.g. ['DELETE /v1/me 401']: its HTTP
// answer and Chromium's console line about it are let through, once each.
let expected = [];
function ok(name) { passed++; console.log('ok - ' + name); }
function notOk(name, e) {
  failed++;
  console.log('not ok - ' + name);
  console.error('# ' + name + ': ' + (e && e.stack ? e.stack : e));
}
function note(s) { console.log('# ' + s); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}

// ---------------------------------------------------------------- a tiny PDF
// Two pages of Helvetica text, offsets computed: poppler extracts it.
function makePdf(pages) {
  const objs = [];
  const kids = pages.map((_, i) => `${4 + i * 2} 0 R`).join(' ');
  objs.push('<< /Type /Catalog /Pages 2 0 R >>');
  objs.push(`<< /Type /Pages /Kids [${kids}] /Count ${pages.length} >>`);
  objs.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  pages.forEach((lines, i) => {
    const content = 'BT /F1 12 Tf 72 720 Td 16 TL\n' +
      lines.map((l) => `(${l.replace(/[\\()]/g, '\\$&')}) Tj T*`).join('\n') + '\nET';
    objs.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${5 + i * 2} 0 R >>`);
    objs.push(`<< /Length ${Buffer.byteLength(content)} >>\nstream\n${content}\nendstream`);
  });
  let out = '%PDF-1.4\n';
  const offs = [];
  objs.forEach((o, i) => { offs.push(Buffer.byteLength(out)); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n` +
    offs.map((o) => String(o).padStart(10, '0') + ' 00000 n \n').join('') +
    `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

// ---------------------------------------------------------------- the server
async function startServer() {
  const db = 'nbt_browser_' + process.pid;
  let url = DBURL;
  if (ADMIN) {
    const r = spawnSync('psql', [ADMIN, '-v', 'ON_ERROR_STOP=1', '-qc',
      `DROP DATABASE IF EXISTS ${db}`, '-qc', `CREATE DATABASE ${db} TEMPLATE notebookd_template`]);
    if (r.status !== 0) throw new Error('psql: ' + r.stderr);
    url = DBURL.replace('/notebookd?', `/${db}?`);
  }
  if (!url) throw new Error('NB_TEST_DATABASE_URL is not set (run through scripts/test.sh)');
  const port = await freePort();
  const mail = path.join(TMP, 'browser-mail');
  fs.mkdirSync(mail, { recursive: true });
  const log = fs.openSync(path.join(TMP, 'browser-notebookd.log'), 'w');
  const proc = spawn(BIN, ['serve'], {
    stdio: ['ignore', log, log],
    env: Object.assign({}, process.env, {
      DATABASE_URL: url, NOTEBOOKD_LISTEN: `127.0.0.1:${port}`, NOTEBOOKD_JWT_SECRET: 'browser-secret-' + 'x'.repeat(40),
      NOTEBOOKD_MAIL_DIR: mail, NOTEBOOKD_AUTH_RATE_PER_MIN: '0', NOTEBOOKD_AUTH_IP_RATE_PER_MIN: '0',
      NOTEBOOKD_ACCESS_LOG: '0', NOTEBOOKD_JOB_POLL_MS: '200',
    }),
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error('notebookd exited: ' + fs.readFileSync(path.join(TMP, 'browser-notebookd.log'), 'utf8').slice(-2000));
    try { if ((await fetch(base + '/healthz')).ok) break; } catch { /* not yet */ }
    await sleep(50);
  }
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    if (ADMIN) spawnSync('psql', [ADMIN, '-qc', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
    const text = fs.readFileSync(path.join(TMP, 'browser-notebookd.log'), 'utf8');
    if (/AddressSanitizer|runtime error:|LeakSanitizer/.test(text)) throw new Error('sanitizer report:\n' + text.slice(-4000));
    return proc.exitCode;
  };
  return { base, mail, stop };
}

// ---------------------------------------------------------------- page helpers
async function fill(page, label, value) {
  const id = await page.waitForFunction((l) => {
    const lab = [...document.querySelectorAll('label')].find((x) => x.textContent.trim() === l && x.offsetParent !== null);
    return lab && lab.htmlFor;
  }, { timeout: 15000 }, label).then((h) => h.jsonValue());
  await page.click('#' + id, { clickCount: 3 });
  await page.type('#' + id, value);
  return '#' + id;
}

async function button(page, text, scope = 'body') {
  const h = await page.waitForFunction((t, s) => [...document.querySelectorAll(s + ' button, ' + s + ' summary')]
    .find((b) => b.textContent.trim() === t && b.offsetParent !== null && !b.disabled), { timeout: 20000 }, text, scope);
  return h.asElement();
}

async function click(page, text, scope) { await (await button(page, text, scope)).click(); }

async function waitText(page, selector, text, timeout = 30000) {
  await page.waitForFunction((s, t) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
    { timeout }, selector, text);
}

async function axe(page, name) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    throw new Error(`axe on ${name}: ` + bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ` +
      v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')).join('; '));
  }
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, name + '.png') });
}

function latestCode(dir, email, after) {
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.eml')).sort().reverse()) {
    if (after.has(f)) continue;
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const [head, body] = text.split(/\r?\n\r?\n/, 2).length === 2 ? [text.split(/\r?\n\r?\n/)[0], text.split(/\r?\n\r?\n/).slice(1).join('\n')] : [text, ''];
    if (head.includes(email)) { const m = /\b[0-9]{6}\b/.exec(body); if (m) return m[0]; }
  }
  return null;
}

// ---------------------------------------------------------------- the run
const steps = [];
const step = (name, fn) => steps.push([name, fn]);

// A unit check of web/api.js's event-stream reader, in node: the API.md
// framing (event/data lines, comments, CRLF, a frame split across reads).
async function sseUnit() {
  const api = await import(path.join(root, 'web/api.js'));
  const wire = ': keep-alive\r\n\r\nevent: delta\ndata: {"text": "Plants make "}\n\nevent: delta\r\n' +
    'data: {"text": "sugar."}\r\n\r\n: ping\n\nevent: done\ndata: {"user_message": {"id": "u"}, ' +
    '"assistant_message": {"id": "a", "content": "Plants make sugar."}}\n\n';
  const enc = new TextEncoder().encode(wire);
  const cuts = [0, 5, 17, 40, 41, 90, 130, enc.length];
  const saved = globalThis.fetch;
  globalThis.fetch = async () => new Response(new ReadableStream({
    start(c) { for (let i = 1; i < cuts.length; i++) c.enqueue(enc.slice(cuts[i - 1], cuts[i])); c.close(); },
  }), { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  try {
    let text = '';
    const r = await api.ask('c', 'q', (d) => { text += d; });
    if (text !== 'Plants make sugar.' || r.assistant_message.id !== 'a') throw new Error('got ' + text + ' ' + JSON.stringify(r));
    globalThis.fetch = async () => new Response('event: delta\ndata: {"text": "x"}\n\nevent: error\ndata: ' +
      '{"error": {"code": "internal", "message": "the generator failed"}}\n\n',
    { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    const e = await api.ask('c', 'q', () => {}).then(() => null, (x) => x);
    if (!e || e.message !== 'the generator failed') throw new Error('an error event was not raised: ' + e);
    globalThis.fetch = async () => new Response('event: delta\ndata: {"text": "x"}\n\n',
      { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    const cut = await api.ask('c', 'q', () => {}).then(() => null, (x) => x);
    if (!cut) throw new Error('a stream without done was taken as complete');
  } finally {
    globalThis.fetch = saved;
  }
}

async function main() {
  try { await sseUnit(); ok('unit: the event-stream reader of web/api.js (split frames, comments, CRLF, error, truncation)'); } catch (e) {
    notOk('unit: the event-stream reader of web/api.js (split frames, comments, CRLF, error, truncation)', e);
  }
  const server = await startServer();
  const doc = await (await fetch(server.base + '/openapi.json')).json();
  const offers = (p, m) => !!(doc.paths[p] && doc.paths[p][m]);
  const streams = !!(doc.paths['/v1/conversations/{id}/messages']?.post?.responses?.['200']?.content?.['text/event-stream']);
  const quizzes = offers('/v1/notebooks/{id}/quizzes', 'post') && offers('/v1/quizzes/{id}', 'get');
  const guides = offers('/v1/notebooks/{id}/study-guides', 'post') && offers('/v1/study-guides/{id}', 'get');
  note(`server offers: streaming ${streams ? 'yes' : 'NO'}, quizzes ${quizzes ? 'yes' : 'NO'}, study guides ${guides ? 'yes' : 'NO'}`);

  const args = ['--disable-dev-shm-usage', '--no-first-run', '--disable-gpu', '--lang=en-US'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args });
  const page = await browser.newPage();
  await page.setViewport({ width: 1366, height: 900 });
  page.setDefaultTimeout(30000);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const i = expected.findIndex((x) => x.console && m.text().includes(`status of ${x.status}`));
    if (i >= 0) { expected[i].console = false; return; }
    problems.push('console error: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  const answers = [];
  page.on('response', (r) => {
    const key = `${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`;
    const i = expected.findIndex((x) => x.http && x.key === key);
    if (i >= 0) expected[i].http = false;
    else if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    if (r.url().endsWith('/messages') && r.request().method() === 'POST') answers.push(r.headers()['content-type'] || '');
  });

  const email = `student-${process.pid}-${Date.now()}@example.com`;
  const password = 'correct horse battery';
  const pdfWord = 'photosynthesis';
  let quoteSeen = '';

  step('the page loads under its CSP with no error and shows sign in', async () => {
    await page.goto(server.base + '/', { waitUntil: 'networkidle0' });
    await waitText(page, 'h1', 'Sign in');
    await axe(page, 'sign in');
    await shot(page, 'signin-desktop');
  });

  step('the Markdown renderer (study guides) puts no HTML from its input into the page', async () => {
    const r = await page.evaluate(async () => {
      const base = document.querySelector('script[type=module]').src.replace(/app\.js$/, '');
      const { renderMarkdown } = await import(base + 'md.js');
      const div = document.createElement('div');
      div.append(renderMarkdown('# The water cycle\\.\n\n## Summary\n\n<img src=x onerror="window.__x=1"> **bold \\* star** ' +
        '<script>window.__x=2</script> [link](javascript:window.__x=3)\n\n' +
        '1. **Why\\?**  \n   Because\\. \\[1\\]\n2. > a quote\n', 4));
      document.body.append(div);
      await new Promise((res) => setTimeout(res, 50));
      const out = { x: window.__x, bad: div.querySelectorAll('img, script, a, iframe, [onerror]').length,
        h4: div.querySelector('h4')?.textContent, h5: div.querySelector('h5')?.textContent,
        strong: div.querySelector('p strong')?.textContent, text: div.textContent,
        br: div.querySelectorAll('ol li br').length, quote: div.querySelector('ol li blockquote')?.textContent };
      div.remove();
      return out;
    });
    const want = { x: undefined, bad: 0, h4: 'The water cycle.', h5: 'Summary', strong: 'bold * star', br: 1, quote: 'a quote' };
    for (const [k, v] of Object.entries(want)) if (r[k] !== v) throw new Error(`${k}: got ${JSON.stringify(r[k])}, want ${JSON.stringify(v)}`);
    if (!r.text.includes('<img src=x onerror=') || !r.text.includes('Because. [1]')) throw new Error('text: ' + r.text);
  });

  step('sign up with the keyboard only', async () => {
    await page.focus('a[href="#/signup"]');
    await page.keyboard.press('Enter');
    await waitText(page, 'h1', 'Create an account');
    await fill(page, 'Display name (optional)', 'Ada');
    await page.keyboard.press('Tab');
    await page.keyboard.type(email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
    await waitText(page, 'h1', 'Your notebooks');
    await waitText(page, '#topnav', 'Ada');
    await axe(page, 'notebooks (empty)');
  });

  let nbUrl = '';
  step('create a notebook', async () => {
    const sel = await fill(page, 'Title of a new notebook', 'Biology 101');
    await page.focus(sel);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => location.hash.startsWith('#/n/'));
    await waitText(page, 'h1', 'Biology 101');
    nbUrl = page.url();
    await waitText(page, '.sources', 'No sources yet');
  });

  step('upload a PDF (with a progress bar) and paste a text', async () => {
    const pdf = path.join(TMP, 'cells.pdf');
    fs.writeFileSync(pdf, makePdf([
      ['Cells are the basic unit of life.', 'Plants make sugar by ' + pdfWord + ' in their chloroplasts.'],
      ['Mitochondria release energy from sugar.', 'Chlorophyll absorbs light for ' + pdfWord + '.'],
    ]));
    await click(page, 'Add a source');
    const input = await page.$('input[type=file]');
    await input.uploadFile(pdf);
    await fill(page, 'Title', 'The water cycle');
    // a lecture's worth of text (enough for a quiz), pasted: set at once, typing 12 KB would take a minute
    const area = await fill(page, 'Text to add', 'The');
    const notes = fs.readFileSync(path.join(root, 'tests/fixtures/chat/water_cycle.txt'), 'utf8');
    await page.$eval(area, (el, v) => { el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); }, notes);
    await click(page, 'Add text');
  });

  step('both sources become ready (live status)', async () => {
    await page.waitForFunction(() => {
      const s = [...document.querySelectorAll('.source')];
      return s.length === 2 && s.every((x) => x.dataset.status === 'ready');
    }, { timeout: 60000 });
    await waitText(page, '.source', '2 pages');
  });

  step(guides ? 'the source viewer shows the source guide (summary, topics) once it is made'
    : 'source guide: this server has no study routes, so makes none: the viewer shows the text alone', async () => {
    for (let t = 0; ; t++) {
      await click(page, 'The water cycle', '.sources');
      await page.waitForSelector('.viewer .chunks, .viewer .empty');
      const has = await page.$('.viewer .guide h4');
      if (!guides) {
        if (has) throw new Error('a source guide from a server without study routes');
        break;
      }
      if (has) {
        const topics = await page.$$eval('.viewer .guide .topics li', (l) => l.length);
        const summary = await page.$eval('.viewer .guide p', (p) => p.textContent);
        if (!summary) throw new Error('an empty summary');
        note(`source guide: ${summary.length} characters of summary, ${topics} topics`);
        break;
      }
      if (t > 60) throw new Error('no source guide after a minute');
      await click(page, '← Back to sources');
      await sleep(1000);
    }
    await click(page, '← Back to sources');
  });

  step('search shows highlighted snippets that open the source at the hit', async () => {
    const sel = await fill(page, 'Search this notebook', pdfWord);
    await page.focus(sel);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.hits mark');
    const marked = await page.$eval('.hits mark', (m) => m.textContent.toLowerCase());
    if (marked !== pdfWord) throw new Error('the <mark> holds ' + JSON.stringify(marked));
    if (await page.$('.hits script, .snippet *:not(mark)')) throw new Error('the snippet became HTML');
    await (await page.$('.hits button.hit')).click();
    await page.waitForSelector('.viewer .chunk.hit');
    const txt = await page.$eval('.viewer .chunk.hit', (e) => e.textContent);
    if (!txt.includes(pdfWord)) throw new Error('the opened chunk lacks the word: ' + txt);
    await waitText(page, '.viewer .page', 'Page 1');
    await shot(page, 'source-viewer-desktop');
    await click(page, '← Back to sources');
  });

  step(streams ? 'ask a question: the answer streams in with citation chips'
    : 'ask a question: answer with citation chips (the server does not stream: plain POST fallback)', async () => {
    const sel = await fill(page, 'Ask about your sources', 'What does photosynthesis make in plants?');
    await page.focus(sel);
    await click(page, 'Ask');
    await page.waitForSelector('.msg.assistant:not([aria-busy]) .chips .chip', { timeout: 60000 });
    const ct = answers[answers.length - 1] || '';
    if (streams && !ct.startsWith('text/event-stream')) throw new Error('the server streams but the page got ' + ct);
    const pieces = Number(await page.$eval('.msg.assistant:last-child', (e) => e.dataset.pieces));
    if (streams && !(pieces > 0)) throw new Error('a streamed answer arrived in no delta');
    if (!streams && pieces !== 0) throw new Error('deltas from a server that does not stream');
    note('the answer arrived in ' + pieces + ' streamed pieces');
    if (!streams && !ct.startsWith('application/json')) throw new Error('unexpected answer type ' + ct);
    note('answer content type: ' + ct);
    await axe(page, 'notebook with an answer');
    await shot(page, 'notebook-desktop');
  });

  step('a citation chip opens the source with the quote highlighted', async () => {
    const chip = await page.$('.msg.assistant .chips .chip');
    quoteSeen = await chip.evaluate((b) => b.title);
    await chip.click();
    await page.waitForSelector('.viewer mark.quote');
    const m = await page.$eval('.viewer mark.quote', (e) => ({ text: e.textContent, focused: document.activeElement === e,
      visible: (() => { const r = e.getBoundingClientRect(); const c = e.closest('.chunks').getBoundingClientRect();
        return r.bottom > c.top && r.top < c.bottom; })() }));
    if (m.text !== quoteSeen) throw new Error(`highlighted ${JSON.stringify(m.text)}, cited ${JSON.stringify(quoteSeen)}`);
    if (!m.visible) throw new Error('the quote is not scrolled into view');
    if (!m.focused) throw new Error('the quote does not have the focus');
    await shot(page, 'citation-desktop');
    await click(page, '← Back to sources');
  });

  step(quizzes ? 'generate a quiz and take it one question at a time'
    : 'quiz: the route is missing on this server (POST /v1/notebooks/{id}/quizzes): the studio says "not available"', async () => {
    if (!quizzes) {
      await waitText(page, '#pane-studio', 'Quizzes are not available on this server.');
      return;
    }
    await fill(page, 'Number of questions', '2');
    await click(page, 'Generate a quiz');
    for (let i = 0; ; i++) {
      await page.waitForSelector('#pane-studio fieldset input[type=radio]:not([disabled]), #pane-studio .score', { timeout: 60000 });
      if (await page.$('#pane-studio .score')) break;
      await page.keyboard.press('Space'); // the first choice has the focus
      await click(page, 'Check answer', '#pane-studio');
      await page.waitForSelector('#pane-studio .right, #pane-studio .wrong');
      if (!(await page.$('#pane-studio form .chips .chip'))) throw new Error('the explanation has no citation');
      if (i === 0) await shot(page, 'quiz-desktop');
      const next = await page.waitForFunction(() => [...document.querySelectorAll('#pane-studio button')]
        .find((b) => b.textContent === 'Next question' || b.textContent === 'See the score'));
      await next.asElement().click();
      if (i > 25) throw new Error('the quiz does not end');
    }
    await waitText(page, '#pane-studio .score', 'Your score:');
  });

  step(guides ? 'generate and read a study guide'
    : 'study guide: the route is missing on this server (POST /v1/notebooks/{id}/study-guides): the studio says "not available"', async () => {
    if (!guides) {
      await waitText(page, '#pane-studio', 'Study guides are not available on this server.');
      await shot(page, 'studio-desktop');
      return;
    }
    await click(page, 'Generate a study guide');
    await page.waitForSelector('#pane-studio .guide-doc', { timeout: 60000 });
    if (await page.$('#pane-studio .guide-doc script, #pane-studio .guide-doc iframe')) throw new Error('raw HTML in the guide');
    await shot(page, 'studio-desktop');
  });

  step('phone width (360 px): tabs switch the panes, axe passes', async () => {
    await page.setViewport({ width: 360, height: 740 });
    await page.waitForSelector('.tabs [role=tab]');
    await shot(page, 'notebook-chat-phone');
    await (await page.$('#tab-sources')).click();
    await page.waitForFunction(() => getComputedStyle(document.getElementById('pane-chat')).display === 'none' &&
      getComputedStyle(document.getElementById('pane-sources')).display !== 'none');
    await axe(page, 'notebook at 360 px');
    await shot(page, 'notebook-sources-phone');
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 360) throw new Error('the page scrolls sideways at 360 px: ' + wide);
    await page.setViewport({ width: 1366, height: 900 });
  });

  step('dark colour scheme and reduced motion: axe passes', async () => {
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' },
      { name: 'prefers-reduced-motion', value: 'reduce' }]);
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (bg !== 'rgb(20, 22, 28)') throw new Error('not the dark background: ' + bg);
    const tr = await page.evaluate(() => getComputedStyle(document.querySelector('button')).transitionDuration);
    if (tr !== '0s') throw new Error('transitions despite prefers-reduced-motion: ' + tr);
    await axe(page, 'notebook, dark');
    await shot(page, 'notebook-dark-desktop');
    await page.emulateMediaFeatures([]);
  });

  step('trash the notebook and restore it from the trash', async () => {
    await page.evaluate(() => { location.hash = '#/'; });
    await waitText(page, '.grid h2', 'Biology 101');
    await waitText(page, '.grid .meta', '2 sources');
    await shot(page, 'notebooks-desktop');
    await click(page, 'Move to trash');
    await waitText(page, '.grid', 'No notebooks yet');
    await page.evaluate(() => { location.hash = '#/trash'; });
    await waitText(page, '.grid h2', 'Biology 101');
    await axe(page, 'trash');
    await click(page, 'Restore');
    await waitText(page, '.grid', 'The trash is empty.');
    await page.evaluate(() => { location.hash = '#/'; });
    await waitText(page, '.grid h2', 'Biology 101');
  });

  step('account page: rename, and a reload keeps the session (HttpOnly cookie)', async () => {
    await page.evaluate(() => { location.hash = '#/account'; });
    await waitText(page, 'h1', 'Account');
    await fill(page, 'Display name', 'Ada L.');
    await click(page, 'Save');
    await waitText(page, '#topnav', 'Ada L.');
    await axe(page, 'account');
    await shot(page, 'account-desktop');
    await click(page, 'Download my data (JSON)');
    await waitText(page, '#toast', 'Export downloaded.');
    const readable = await page.evaluate(() => document.cookie);
    if (readable.includes('nb_refresh')) throw new Error('the refresh cookie is readable by script');
    await page.reload({ waitUntil: 'networkidle0' });
    await waitText(page, 'h1', 'Account');
  });

  step('sign out, then sign in with a one-time code from the mail folder', async () => {
    await click(page, 'Sign out');
    await waitText(page, 'h1', 'Sign in');
    await page.evaluate(() => { location.hash = '#/otp'; });
    await waitText(page, 'h1', 'one-time code');
    const before = new Set(fs.readdirSync(server.mail));
    await fill(page, 'Email', email);
    await click(page, 'Email me a code');
    let code = null;
    for (let i = 0; i < 200 && !code; i++) { code = latestCode(server.mail, email, before); if (!code) await sleep(50); }
    if (!code) throw new Error('no code arrived in ' + server.mail);
    await fill(page, 'Code from the email', code);
    await click(page, 'Sign in');
    await waitText(page, '.grid h2', 'Biology 101');
    await page.goto(nbUrl, { waitUntil: 'networkidle0' });
    await waitText(page, '.msg.assistant', '');
  });

  step('delete the account: a wrong password is a readable error, the right one erases it', async () => {
    await page.evaluate(() => { location.hash = '#/account'; });
    await waitText(page, 'h1', 'Account');
    expected = [{ key: 'DELETE /v1/me 401', status: 401, http: true, console: true }];
    const pw = await fill(page, 'Your password, to confirm', 'not my password');
    await click(page, 'Delete my account and everything in it');
    await waitText(page, '.error[role=alert]', 'password');
    if (expected[0].http) throw new Error('the wrong password was not refused with 401');
    await page.click(pw, { clickCount: 3 });
    await page.type(pw, password);
    await click(page, 'Delete my account and everything in it');
    await waitText(page, 'h1', 'Create an account');
    const r = await fetch(server.base + '/v1/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password }) });
    if (r.status !== 401) throw new Error('the deleted account can still log in: ' + r.status);
  });

  for (const [name, fn] of steps) {
    if (failed) { notOk(name + ' (not run: an earlier step failed)', 'skipped because of an earlier failure'); continue; }
    try { await fn(); ok(name); } catch (e) {
      notOk(name, e);
      await page.screenshot({ path: path.join(root, 'build/browser-failure.png') }).catch(() => {});
      console.error('# the page at the failure: ' + path.join(root, 'build/browser-failure.png'));
    }
  }
  await browser.close();
  if (problems.length) notOk('no console error, page error or failed request during the run', problems.join('\n'));
  else ok('no console error, page error or failed request during the run');
  const rc = await server.stop();
  if (rc === 0) ok('notebookd stopped cleanly'); else notOk('notebookd stopped cleanly', 'exit status ' + rc);
}

main().catch((e) => notOk('browser suite', e)).finally(() => {
  console.log(`# ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
