// app.js — the study desk: routing (location.hash), the signed-out screens,
// the notebooks list, the account page. The notebook screen is notebook.js.
import * as api from './api.js';
import { h, clear, field, busy, errorBox, toast, when } from './ui.js';
import { notebookScreen } from './notebook.js';

const main = document.getElementById('main');
const nav = document.getElementById('topnav');
let user = null;
let leave = () => {}; // the current screen's teardown (timers)

api.setSignedOutHandler(() => { user = null; api.dropSession(); go('#/signin'); });

export function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function title(text) {
  document.title = text + ' · notebookd';
  return h('h1', { id: 'page-title' }, text);
}

function focusMain() {
  const t = main.querySelector('h1');
  if (t) { t.tabIndex = -1; t.focus({ preventScroll: true }); }
}

function topnav() {
  if (!user) {
    clear(nav);
    return;
  }
  const out = h('button', { type: 'button', class: 'link', onclick: async () => {
    try { await api.logout(); } catch { /* signed out locally all the same */ }
    user = null;
    go('#/signin');
  } }, 'Sign out');
  clear(nav, h('ul', null,
    h('li', null, h('a', { href: '#/' }, 'Notebooks')),
    h('li', null, h('a', { href: '#/trash' }, 'Trash')),
    h('li', null, h('a', { href: '#/account' }, user.display_name || user.email)),
    h('li', null, out)));
}

// ---------------------------------------------------------------- signed out

function authCard(heading, form, links) {
  return h('section', { class: 'card narrow', 'aria-labelledby': 'page-title' }, title(heading), form,
    h('ul', { class: 'links' }, links.map(([href, text]) => h('li', null, h('a', { href }, text)))));
}

function signIn() {
  const [fe, email] = field('Email', { type: 'email', autocomplete: 'username', required: true });
  const [fp, pw] = field('Password', { type: 'password', autocomplete: 'current-password', required: true });
  const out = h('div');
  const btn = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { onsubmit: (e) => {
    e.preventDefault();
    busy(btn, out, async () => { user = await api.login(email.value, pw.value); go('#/'); });
  } }, fe, fp, out, btn);
  return authCard('Sign in', form, [['#/signup', 'Create an account'], ['#/otp', 'Sign in with a one-time code'],
    ['#/reset', 'Forgot your password?']]);
}

function signUp() {
  const [fn, name] = field('Display name (optional)', { autocomplete: 'nickname', maxlength: 100 });
  const [fe, email] = field('Email', { type: 'email', autocomplete: 'username', required: true });
  const [fp, pw] = field('Password (at least 10 characters)', { type: 'password', autocomplete: 'new-password',
    required: true, minlength: 10 });
  const out = h('div');
  const btn = h('button', { type: 'submit' }, 'Create account');
  const form = h('form', { onsubmit: (e) => {
    e.preventDefault();
    busy(btn, out, async () => { user = await api.register(email.value, pw.value, name.value.trim()); go('#/'); });
  } }, fn, fe, fp, out, btn);
  return authCard('Create an account', form, [['#/signin', 'I already have an account']]);
}

// One-time code flows: purpose "login" or "reset_password".
function codeFlow(purpose) {
  const reset = purpose === 'reset_password';
  const [fe, email] = field('Email', { type: 'email', autocomplete: 'username', required: true });
  const out = h('div');
  const btn = h('button', { type: 'submit' }, 'Email me a code');
  const step2 = h('div');
  const form = h('form', { onsubmit: (e) => {
    e.preventDefault();
    busy(btn, out, async () => {
      await api.otpRequest(email.value, purpose);
      const [fc, code] = field('Code from the email', { inputmode: 'numeric', autocomplete: 'one-time-code',
        required: true });
      const [fp, pw] = reset ? field('New password (at least 10 characters)', { type: 'password',
        autocomplete: 'new-password', required: true, minlength: 10 }) : [null, null];
      const out2 = h('div');
      const b2 = h('button', { type: 'submit' }, reset ? 'Set the new password' : 'Sign in');
      clear(step2, h('form', { onsubmit: (ev) => {
        ev.preventDefault();
        busy(b2, out2, async () => {
          const u = await api.otpVerify(email.value, purpose, code.value.trim(), pw && pw.value);
          if (reset) { toast('Password changed: sign in with it.'); go('#/signin'); } else { user = u; go('#/'); }
        });
      } }, h('p', { role: 'status' }, `If ${email.value} has an account, a code is on its way.`), fc, fp, out2, b2));
      code.focus();
    });
  } }, fe, out, btn);
  return authCard(reset ? 'Reset your password' : 'Sign in with a one-time code', h('div', null, form, step2),
    [['#/signin', 'Sign in with a password'], ['#/signup', 'Create an account']]);
}

// ------------------------------------------------------------ notebooks list

async function notebooks(trashed) {
  const list = h('ul', { class: 'grid', 'aria-live': 'polite' }, h('li', { class: 'loading' }, 'Loading notebooks…'));
  const out = h('div');
  const section = h('section', { 'aria-labelledby': 'page-title' }, title(trashed ? 'Trash' : 'Your notebooks'));
  if (!trashed) {
    const [ft, t] = field('Title of a new notebook', { required: true, maxlength: 200 });
    const btn = h('button', { type: 'submit' }, 'Create notebook');
    section.append(h('form', { class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      busy(btn, out, async () => {
        const nb = await api.post('/v1/notebooks', { title: t.value.trim() });
        go('#/n/' + nb.id);
      });
    } }, ft, btn));
  } else {
    section.append(h('p', null, 'Notebooks in the trash can be restored until they are purged.'));
  }
  section.append(out, list);
  (async () => {
    try {
      const items = await api.all('/v1/notebooks' + (trashed ? '?trashed=true' : ''));
      clear(list);
      if (!items.length) {
        list.append(h('li', { class: 'empty' }, trashed ? 'The trash is empty.' : 'No notebooks yet: create one above.'));
      }
      for (const nb of items) list.append(notebookCard(nb, trashed, out));
    } catch (e) {
      clear(list, h('li', null, errorBox(e)));
    }
  })();
  return section;
}

function notebookCard(nb, trashed, out) {
  const count = `${nb.source_count} source${nb.source_count === 1 ? '' : 's'}`;
  const card = h('li', { class: 'card' });
  const head = trashed ? h('h2', null, nb.title) : h('h2', null, h('a', { href: '#/n/' + nb.id }, nb.title));
  const actions = h('div', { class: 'actions' });
  if (trashed) {
    const r = h('button', { type: 'button' }, 'Restore');
    r.addEventListener('click', () => busy(r, out, async () => {
      await api.post(`/v1/notebooks/${nb.id}/restore`);
      toast(`Restored “${nb.title}”.`);
      route();
    }));
    actions.append(r);
  } else {
    const rn = h('button', { type: 'button', class: 'secondary' }, 'Rename');
    rn.addEventListener('click', () => {
      const [fr, inp] = field('New title', { required: true, maxlength: 200, value: nb.title });
      const ok = h('button', { type: 'submit' }, 'Save');
      const f = h('form', { class: 'inline', onsubmit: (e) => {
        e.preventDefault();
        busy(ok, out, async () => { await api.patch('/v1/notebooks/' + nb.id, { title: inp.value.trim() }); route(); });
      } }, fr, ok);
      actions.replaceWith(f);
      inp.focus();
    });
    const tr = h('button', { type: 'button', class: 'danger' }, 'Move to trash');
    tr.addEventListener('click', () => busy(tr, out, async () => {
      await api.del('/v1/notebooks/' + nb.id);
      toast(`“${nb.title}” is in the trash.`);
      route();
    }));
    actions.append(rn, tr);
  }
  card.append(head, h('p', { class: 'meta' }, count, ' · ', trashed ? 'trashed ' + when(nb.deleted_at)
    : 'updated ' + when(nb.updated_at)), actions);
  return card;
}

// ---------------------------------------------------------------- account

function account() {
  const section = h('section', { class: 'card narrow', 'aria-labelledby': 'page-title' }, title('Account'));
  const out = h('div');
  const [fn, name] = field('Display name', { maxlength: 100, value: user.display_name || '', autocomplete: 'nickname' });
  const save = h('button', { type: 'submit' }, 'Save');
  const exp = h('button', { type: 'button', class: 'secondary' }, 'Download my data (JSON)');
  exp.addEventListener('click', () => busy(exp, out, async () => {
    const data = await api.get('/v1/me/export');
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
    const a = h('a', { href: url, download: 'notebookd-export.json', hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    toast('Export downloaded.');
  }));
  const [fp, pw] = field('Your password, to confirm', { type: 'password', autocomplete: 'current-password', required: true });
  const delOut = h('div');
  const delBtn = h('button', { type: 'submit', class: 'danger' }, 'Delete my account and everything in it');
  section.append(
    h('p', null, 'Signed in as ', h('strong', null, user.email)),
    h('form', { onsubmit: (e) => {
      e.preventDefault();
      busy(save, out, async () => {
        user = await api.patch('/v1/me', { display_name: name.value.trim() });
        topnav();
        toast('Saved.');
      });
    } }, fn, save),
    h('h2', null, 'Your data'), exp, out,
    h('h2', null, 'Delete the account'),
    h('form', { onsubmit: (e) => {
      e.preventDefault();
      busy(delBtn, delOut, async () => {
        await api.del('/v1/me', { password: pw.value });
        api.dropSession();
        user = null;
        toast('Your account was deleted.');
        go('#/signup');
      });
    } }, h('p', null, 'This erases every notebook, source and conversation at once. It cannot be undone.'),
    fp, delOut, delBtn));
  return section;
}

// ---------------------------------------------------------------- router

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash || '#/';
  const open = ['#/signin', '#/signup', '#/otp', '#/reset'];
  if (!user && !open.includes(hash)) { location.hash = '#/signin'; return; }
  if (user && open.includes(hash)) { location.hash = '#/'; return; }
  topnav();
  let view;
  try {
    if (hash === '#/signin') view = signIn();
    else if (hash === '#/signup') view = signUp();
    else if (hash === '#/otp') view = codeFlow('login');
    else if (hash === '#/reset') view = codeFlow('reset_password');
    else if (hash === '#/trash') view = await notebooks(true);
    else if (hash === '#/account') view = account();
    else if (hash.startsWith('#/n/')) {
      const r = await notebookScreen(hash.slice(4), { title, go });
      view = r.view;
      leave = r.leave;
    } else view = await notebooks(false);
  } catch (e) {
    view = h('section', { 'aria-labelledby': 'page-title' }, title('Something went wrong'), errorBox(e),
      h('p', null, h('a', { href: '#/' }, 'Back to your notebooks')));
  }
  clear(main, view);
  focusMain();
}

window.addEventListener('hashchange', route);
(async () => {
  user = await api.resume();
  route();
})();
