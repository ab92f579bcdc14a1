// The console's shell: sign-in, the header (views, who is signed in, Sign
// out), the filter form, and routing. The state lives in the page URL's
// query string (filters.js): links are shareable, Back and Forward work,
// and the server needs no route per view.
//
// Timing for the benchmark (User Timing): `evlog:nav-to-first-results`
// (navigation start → first results painted) and `evlog:filter-to-results`
// (a filter change → its results painted).

import { api, session, whenKeyRefused } from './api.js';
import { h, fill, labelled } from './dom.js';
import { readUrl, writeUrl, withFilters, tenantScope } from './filters.js';
import { filterForm } from './form.js';
import { eventsView } from './events.js';
import { statsView } from './stats.js';
import { adminView } from './admin.js';
import { detailsDialog } from './details.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const whoBox = document.getElementById('who');

let state = readUrl(location.search);
let who = null;
let view = null; // {kind, el, update, unmount}
let form = null;
let viewHost = null;
let details = null;
let detailsAc = null;

// ---------------------------------------------------------------- timing

let firstMeasured = false;
let filterChanged = false;

function rendered() {
  if (!firstMeasured) {
    firstMeasured = true;
    performance.mark('evlog:first-results');
    performance.measure('evlog:nav-to-first-results', { start: 0, end: 'evlog:first-results' });
  }
  if (filterChanged) {
    filterChanged = false;
    performance.mark('evlog:results');
    performance.measure('evlog:filter-to-results', { start: 'evlog:filter-change', end: 'evlog:results' });
  }
}

// ---------------------------------------------------------------- routing

/** The link of state `s`. */
function href(s) {
  return `/${writeUrl(s)}`;
}

/** Goes to state `next` (a new history entry unless `replace`). */
function navigate(next, { replace = false } = {}) {
  const url = href(next);
  if (url === `${location.pathname}${location.search}`) return false;
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  const prev = state;
  state = next;
  render(prev);
  return true;
}

window.addEventListener('popstate', () => {
  const prev = state;
  state = readUrl(location.search);
  if (who) render(prev);
});

// Links inside the console (views, chart bars) change the state in place.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-nav]');
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  const target = new URL(a.getAttribute('href'), location.href);
  navigate(readUrl(target.search));
});

// ---------------------------------------------------------------- sign-in

function teardown() {
  if (view) view.unmount();
  view = null;
  form = null;
  viewHost = null;
  if (details) details.close();
  nav.hidden = true;
  fill(nav);
  fill(whoBox);
}

/** The sign-in form, with `message` (the server's words) when there is one. */
function signIn(message) {
  who = null;
  teardown();
  const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const problem = h('p', { class: 'error', role: 'alert', text: message || '' });
  problem.hidden = !message;
  // No `name` on the key field and method post: the key can never end up in a URL.
  const f = h(
    'form',
    { class: 'signin', method: 'post', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', text: 'Sign in' }),
    h('p', {
      class: 'muted',
      text: 'Paste an evlog API key (evlog keys add). It stays in this tab only and is forgotten when the tab closes.',
    }),
    h('div', { class: 'field' }, labelled('API key', key)),
    submit,
    problem,
  );
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const k = key.value.trim();
    if (!k) return;
    session.set(k);
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      who = await api.whoami();
      start();
    } catch (err) {
      session.clear();
      signIn(err.words || err.message);
    }
  });
  fill(main, f);
  key.focus();
}

whenKeyRefused((e) => {
  session.clear();
  signIn(e.words);
});

// ---------------------------------------------------------------- the app

const VIEW_LINKS = [
  ['events', 'Events'],
  ['stats', 'Statistics'],
  ['admin', 'Admin'],
];

function drawNav() {
  fill(
    nav,
    VIEW_LINKS.filter(([v]) => v !== 'admin' || who.role === 'admin').map(([v, text]) =>
      h('a', {
        href: href({ ...state, view: v, event: '', page: v === 'events' ? state.page : 1 }),
        'data-nav': '',
        'aria-current': state.view === v ? 'page' : null,
        text,
      }),
    ),
  );
  nav.hidden = false;
}

function start() {
  teardown();
  const signOut = h('button', {
    type: 'button',
    text: 'Sign out',
    onclick: () => {
      session.clear();
      signIn('Signed out.');
    },
  });
  fill(
    whoBox,
    h(
      'span',
      { class: 'who', title: `key ${who.key_id}` },
      h('strong', { text: who.user_id }),
      ` (${who.role}) · `,
      h('span', { class: 'tenant', text: tenantScope(who) }),
    ),
    signOut,
  );
  form = filterForm(who, (f) => {
    const next = withFilters(state, f);
    // Enter in a text field fires both change and submit: one change only.
    if (href(next) === `${location.pathname}${location.search}`) return;
    performance.mark('evlog:filter-change');
    filterChanged = true;
    navigate(next);
  });
  viewHost = h('div', { class: 'view-host' });
  if (!details) {
    details = detailsDialog(
      () => {
        if (detailsAc) detailsAc.abort();
        delete details.el.dataset.id;
        // The row the focus came from may have left (resolved under "Open only").
        if (document.activeElement === document.body && view && view.refocus) view.refocus();
        if (state.event) navigate({ ...state, event: '' }, { replace: true });
      },
      {
        canResolve: () => Boolean(who && who.role === 'admin'),
        onChanged: (ev) => {
          if (view && view.changed) view.changed(ev);
        },
      },
    );
    document.body.append(details.el);
  }
  fill(main, form.el, viewHost);
  render(null);
}

const VIEWS = { events: eventsView, stats: statsView, admin: adminView };

function render(prev) {
  if (!who) return;
  drawNav();
  if (!view || view.kind !== state.view) {
    if (view) view.unmount();
    const ctx = {
      who,
      navigate,
      href,
      rendered,
      state: () => state,
      openEvent: (ev) => {
        // Shown from the row's data; the URL names it (a shareable link
        // fetches it). Opening and closing replace the history entry.
        details.el.dataset.id = String(ev.id);
        details.show(ev, state.tz);
        navigate({ ...state, event: String(ev.id) }, { replace: true });
      },
    };
    view = { kind: state.view, ...VIEWS[state.view](ctx) };
    fill(viewHost, view.el);
    prev = null;
  }
  form.el.hidden = state.view === 'admin';
  form.update(state);
  view.update(state, prev);
  showDetails();
}

async function showDetails() {
  if (!state.event) {
    details.close();
    return;
  }
  if (details.isOpen() && details.el.dataset.id === state.event) return;
  details.el.dataset.id = state.event;
  if (detailsAc) detailsAc.abort();
  detailsAc = new AbortController();
  const id = state.event;
  details.showLoading(id);
  try {
    const ev = await api.event(id, detailsAc.signal);
    if (state.event === id) details.show(ev, state.tz);
  } catch (e) {
    if (e.name !== 'AbortError' && state.event === id) details.showError(id, e);
  }
}

// ---------------------------------------------------------------- boot

async function boot() {
  if (!session.key) {
    signIn('');
    return;
  }
  try {
    who = await api.whoami();
  } catch (e) {
    session.clear();
    signIn(e.words || e.message);
    return;
  }
  start();
}

boot();
