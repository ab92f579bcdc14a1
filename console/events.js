// The events view: the table of matching events (newest first), paging,
// the Live toggle and the export. Rows are focusable: arrow keys move,
// Enter opens the details. Each row shows whether its event is resolved;
// for admin keys a Resolve / Reopen button acts on it (the focused row's
// button is the one Tab reaches).

import { api } from './api.js';
import { h, fill, veil, select, labelled, afterPaint } from './dom.js';
import { PAGE_SIZES, apiParams, filterKey, formatTime, count, STATUSES, LEVELS } from './filters.js';
import { LiveStream } from './live.js';

/** The API's largest `offset`; deeper pages go through a cursor. */
const MAX_OFFSET = 100000;
/** Rows kept while live events pile up on top. */
const MAX_ROWS = 2000;

/**
 * Where each page starts, per filters and page size: page 1 at the top,
 * page n+1 at the `next_cursor` of page n once seen. A page is fetched from
 * the nearest known start before it with an offset; beyond the API's offset
 * limit it hops there one cursor at a time. Cursors are positions in
 * (time, seq) order, so they stay right when new events arrive on top.
 */
class Pages {
  constructor() {
    this.key = '';
    this.starts = new Map([[1, null]]);
  }

  async fetch(state, signal) {
    const key = `${filterKey(state)}|${state.limit}`;
    if (key !== this.key) {
      this.key = key;
      this.starts = new Map([[1, null]]);
    }
    const filters = apiParams(state);
    const limit = state.limit;
    let from = 1;
    for (const p of this.starts.keys()) if (p <= state.page && p > from) from = p;
    let cursor = this.starts.get(from);
    let skip = (state.page - from) * limit;
    const hop = Math.floor(MAX_OFFSET / limit) * limit;
    while (skip > MAX_OFFSET) {
      // The last event of the page before page `from + hop/limit`: its cursor starts that page.
      const r = await api.events({ ...filters, cursor, offset: hop - 1, limit: 1 }, signal);
      // Past the end: the caller shows the last page instead.
      if (!r.next_cursor || (state.page - 1) * limit >= r.total) return { ...r, events: [] };
      from += hop / limit;
      cursor = r.next_cursor;
      this.starts.set(from, cursor);
      skip -= hop;
    }
    const r = await api.events({ ...filters, cursor, offset: skip || undefined, limit }, signal);
    if (r.next_cursor) this.starts.set(state.page + 1, r.next_cursor);
    return r;
  }
}

function badge(kind, value, known) {
  const v = known.includes(value) ? value : 'other';
  return h('span', { class: `badge ${kind}-${v}`, text: value });
}

/** Whether `ev` can be resolved (not itself a resolution, which the API refuses). */
export function resolvable(ev) {
  return ev.event_type !== 'event_resolved' && ev.event_type !== 'event_reopened';
}

/** The state of `ev` in words: a "Resolved" badge (by whom and when on hover), or "Open". */
export function stateBadge(ev, tz) {
  if (!ev.resolved) return h('span', { class: 'badge state-open', text: 'Open' });
  const when = ev.resolved_at ? ` ${formatTime(ev.resolved_at, tz)}` : '';
  const by = ev.resolved_by ? ` by ${ev.resolved_by}` : '';
  return h('span', { class: 'badge state-resolved', title: `Resolved${by}${when}`.trim(), text: 'Resolved' });
}

/** The contents of a row's state cell: the badge, and the admin's button. */
function stateCell(ev, tz, admin) {
  if (!resolvable(ev)) return [];
  if (!admin) return [stateBadge(ev, tz)];
  const verb = ev.resolved ? 'Reopen' : 'Resolve';
  return [
    stateBadge(ev, tz),
    h('button', { type: 'button', class: 'row-action', tabindex: '-1', 'data-action': verb.toLowerCase(), text: verb }),
  ];
}

/** One table row for a stored event; `admin` adds the Resolve / Reopen button. */
function row(ev, tz, admin) {
  const ts = String(ev.timestamp ?? '');
  const desc = String(ev.action_description ?? '');
  return h(
    'tr',
    { tabindex: '-1', 'data-id': String(ev.id ?? '') },
    h('td', { class: 'c-time' }, h('time', { datetime: ts, title: `UTC ${ts}`, text: formatTime(ts, tz) })),
    h('td', { class: 'c-type', text: String(ev.event_type ?? '') }),
    h('td', { class: 'c-user', text: String(ev.user_id ?? '') }),
    h('td', { class: 'c-status' }, badge('status', String(ev.status ?? ''), STATUSES)),
    h('td', { class: 'c-level' }, badge('level', String(ev.level ?? ''), LEVELS)),
    h('td', { class: 'c-desc', title: desc, text: desc }),
    h('td', { class: 'c-state' }, stateCell(ev, tz, admin)),
  );
}

/**
 * The events view. `ctx`: {who, navigate, state(), rendered(), openEvent(ev)}.
 * Returns {el, update(state, before), changed(event), refocus(), unmount()};
 * `changed` takes an event whose state changed elsewhere (the details).
 */
export function eventsView(ctx) {
  const admin = ctx.who.role === 'admin';
  const pages = new Pages();
  const byId = new Map(); // id → event, for the rows shown
  let loading = null; // the AbortController of the load in flight
  let live = null;
  let total = 0;
  let shown = null; // the state whose results are on screen

  // Toolbar: live, export, time zone.
  const liveBox = h('input', { type: 'checkbox', role: 'switch' });
  const liveState = h('span', { class: 'live-state muted', role: 'status' });
  liveBox.addEventListener('change', () =>
    ctx.navigate({ ...ctx.state(), live: liveBox.checked, page: 1, event: '' }),
  );
  const format = select(
    [
      ['csv', 'CSV'],
      ['ndjson', 'NDJSON'],
    ],
    'csv',
  );
  const exportBtn = h('button', { type: 'button', text: 'Export' });
  const exportState = h('span', { class: 'export-state muted', role: 'status' });
  let exporting = null;
  exportBtn.addEventListener('click', () => (exporting ? exporting.abort() : runExport()));
  const utc = h('input', { type: 'checkbox' });
  utc.addEventListener('change', () => ctx.navigate({ ...ctx.state(), tz: utc.checked ? 'utc' : 'local' }, { replace: true }));
  const toolbar = h(
    'div',
    { class: 'toolbar' },
    h('label', { class: 'check switch' }, liveBox, 'Live'),
    liveState,
    h('span', { class: 'spacer' }),
    h('span', { class: 'export' }, labelled('Export as', format), exportBtn),
    exportState,
    h('label', { class: 'check' }, utc, 'Times in UTC'),
  );

  // Pager.
  const prev = h('button', { type: 'button', text: 'Previous' });
  const next = h('button', { type: 'button', text: 'Next' });
  const pageText = h('span', { class: 'page-text', 'aria-live': 'polite' });
  const totalText = h('span', { class: 'total muted' });
  const size = select(
    PAGE_SIZES.map((n) => [String(n), String(n)]),
    '50',
  );
  size.addEventListener('change', () => ctx.navigate({ ...ctx.state(), limit: Number(size.value), page: 1, live: false }));
  prev.addEventListener('click', () => ctx.navigate({ ...ctx.state(), page: ctx.state().page - 1, live: false }));
  next.addEventListener('click', () => ctx.navigate({ ...ctx.state(), page: ctx.state().page + 1, live: false }));
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    prev,
    pageText,
    next,
    totalText,
    h('span', { class: 'spacer' }),
    h('span', { class: 'page-size' }, labelled('Page size', size)),
  );

  // Status line, table, empty message.
  const status = h('div', { class: 'status', role: 'status' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'events' },
    h('caption', { class: 'sr-only', text: 'Events, newest first. Enter opens one.' }),
    h(
      'colgroup',
      null,
      h('col', { class: 'c-time' }),
      h('col', { class: 'c-type' }),
      h('col', { class: 'c-user' }),
      h('col', { class: 'c-status' }),
      h('col', { class: 'c-level' }),
      h('col', { class: 'c-desc' }),
      h('col', { class: admin ? 'c-state admin' : 'c-state' }),
    ),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        ['Time', 'Type', 'User', 'Status', 'Level', 'Description', 'State'].map((t) => h('th', { scope: 'col', text: t })),
      ),
    ),
    tbody,
  );
  const empty = h('p', { class: 'empty', text: 'No events match these filters' });
  const problem = h('p', { class: 'error', role: 'alert' });
  const results = h('div', { class: 'results' }, table, empty, problem);
  empty.hidden = true;
  problem.hidden = true;
  veil(pager, true);

  const el = h('section', { class: 'view view-events', 'aria-label': 'Events' }, toolbar, pager, status, results);

  // Rows: click or Enter opens; arrows, Home and End move the focus. One
  // row is in the Tab order (roving tabindex), and its button after it.
  const rows = () => [...tbody.rows];
  const setCurrent = (tr) => {
    for (const r of rows()) {
      r.tabIndex = r === tr ? 0 : -1;
      const b = r.querySelector('button.row-action');
      if (b) b.tabIndex = r === tr ? 0 : -1;
    }
  };
  const focusRow = (tr) => {
    if (!tr) return;
    setCurrent(tr);
    tr.focus();
  };
  const open = (tr) => {
    const ev = tr && byId.get(tr.dataset.id);
    if (ev) ctx.openEvent(ev);
  };
  tbody.addEventListener('click', (e) => {
    const b = e.target.closest('button.row-action');
    if (b) act(b);
    else open(e.target.closest('tr'));
  });
  tbody.addEventListener('focusin', (e) => {
    const tr = e.target.closest('tr');
    if (tr) setCurrent(tr);
  });
  tbody.addEventListener('keydown', (e) => {
    const tr = e.target.closest('tr');
    if (!tr) return;
    // Enter and Space on the button press it (its click), and do not open the details.
    if (e.target.tagName === 'BUTTON' && (e.key === 'Enter' || e.key === ' ')) return;
    const all = rows();
    const i = all.indexOf(tr);
    const moves = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: all.length - 1, PageDown: i + 10, PageUp: i - 10 };
    if (e.key in moves) {
      e.preventDefault();
      focusRow(all[Math.max(0, Math.min(all.length - 1, moves[e.key]))]);
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open(tr);
    }
  });

  // Resolve / Reopen from a row. In an "Open only" list a resolved row
  // leaves at once; elsewhere its state cell changes in place.
  async function act(button) {
    const tr = button.closest('tr');
    const ev = byId.get(tr.dataset.id);
    // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
    if (!ev || button.getAttribute('aria-disabled') === 'true') return;
    const resolve = button.dataset.action === 'resolve';
    button.setAttribute('aria-disabled', 'true');
    fill(status, `${resolve ? 'Resolving' : 'Reopening'} event…`);
    try {
      const r = resolve ? await api.resolve(ev.id) : await api.reopen(ev.id);
      const next = withState(ev, r);
      fill(status, `Event ${next.resolved ? 'resolved' : 'reopened'}`);
      changed(next);
    } catch (e) {
      button.removeAttribute('aria-disabled');
      fill(status, h('span', { class: 'error', role: 'alert', text: `Could not ${resolve ? 'resolve' : 'reopen'} the event: ${e.words || e.message}` }));
    }
  }

  /** Shows the new state of `ev` (changed here or in the details). */
  function changed(ev) {
    const id = String(ev.id);
    const tr = rows().find((r) => r.dataset.id === id);
    if (!tr) return;
    const s = shown || ctx.state();
    const hadFocus = tr.contains(document.activeElement);
    if (s.open && ev.resolved) {
      const all = rows();
      const i = all.indexOf(tr);
      const after = all[i + 1] || all[i - 1] || null;
      const current = tr.tabIndex === 0;
      byId.delete(id);
      tr.remove();
      total = Math.max(0, total - 1);
      drawPager(s);
      empty.hidden = tbody.rows.length > 0;
      table.hidden = tbody.rows.length === 0;
      if (hadFocus && after) focusRow(after);
      else if (current && after) setCurrent(after);
      return;
    }
    byId.set(id, ev);
    const cell = tr.querySelector('td.c-state');
    const onButton = cell.contains(document.activeElement);
    fill(cell, stateCell(ev, s.tz, admin));
    const b = cell.querySelector('button');
    if (b) b.tabIndex = tr.tabIndex;
    if (onButton && b) b.focus();
  }

  function drawPager(s) {
    const pagesTotal = Math.max(1, Math.ceil(total / s.limit));
    pageText.textContent = `Page ${s.page} of ${pagesTotal}`;
    totalText.textContent = `${count(total)} event${total === 1 ? '' : 's'}`;
    prev.disabled = s.page <= 1;
    next.disabled = s.page >= pagesTotal;
    veil(pager, total === 0);
  }

  function drawRows(events, s) {
    byId.clear();
    const trs = events.map((ev) => {
      byId.set(String(ev.id), ev);
      return row(ev, s.tz, admin);
    });
    if (trs.length) {
      trs[0].tabIndex = 0;
      const b = trs[0].querySelector('button.row-action');
      if (b) b.tabIndex = 0;
    }
    fill(tbody, trs);
    empty.hidden = events.length > 0;
    table.hidden = events.length === 0;
  }

  function setLoading(on, what) {
    results.classList.toggle('loading', on);
    results.setAttribute('aria-busy', on ? 'true' : 'false');
    fill(status, on ? [h('span', { class: 'spinner', 'aria-hidden': 'true' }), what] : null);
  }

  async function load(s) {
    if (loading) loading.abort();
    const ac = new AbortController();
    loading = ac;
    stopLive();
    setLoading(true, 'Loading events…');
    try {
      const r = await pages.fetch(s, ac.signal);
      if (ac.signal.aborted) return;
      const last = Math.max(1, Math.ceil(r.total / s.limit));
      if (s.page > last) {
        // A link past the end: show the last page instead.
        loading = null;
        ctx.navigate({ ...s, page: last }, { replace: true });
        return;
      }
      total = r.total;
      problem.hidden = true;
      drawRows(r.events, s);
      drawPager(s);
      shown = s;
      setLoading(false);
      loading = null;
      if (s.live && s.page === 1) startLive(s, r.events);
      await afterPaint();
      ctx.rendered();
    } catch (e) {
      if (e.name === 'AbortError') return;
      loading = null;
      setLoading(false);
      total = 0;
      drawRows([], s);
      empty.hidden = true;
      problem.hidden = false;
      problem.textContent = `Could not load events: ${e.words || e.message}`;
      veil(pager, true);
      shown = s;
      ctx.rendered();
    }
  }

  // Live: new events on top, without moving what the reader looks at (the
  // rows in view stay in place; the focus stays on its row).
  function startLive(s, events) {
    stopLive();
    const seqs = events.map((e) => Number(e.seq)).filter(Number.isFinite);
    live = new LiveStream(apiParams(s), seqs.length ? Math.max(...seqs) : null, {
      onEvent: (ev) => {
        const id = String(ev.id);
        if (byId.has(id)) return;
        byId.set(id, ev);
        const tr = row(ev, ctx.state().tz, admin);
        tr.classList.add('fresh');
        // Keep what the reader looks at in place: the focused row, else the
        // first row in view, stays where it is on screen (unless the page is
        // scrolled to the top, where new events should be seen).
        const anchor = window.scrollY > 0 ? anchorRow() : null;
        const top = anchor && anchor.getBoundingClientRect().top;
        tbody.prepend(tr);
        if (anchor) window.scrollBy(0, anchor.getBoundingClientRect().top - top);
        while (tbody.rows.length > MAX_ROWS) {
          const gone = tbody.rows[tbody.rows.length - 1];
          byId.delete(gone.dataset.id);
          gone.remove();
        }
        total += 1;
        empty.hidden = true;
        table.hidden = false;
        drawPager(s);
      },
      onState: (text, bad) => {
        liveState.textContent = text;
        liveState.classList.toggle('error', Boolean(bad));
      },
    });
    live.start();
  }
  function anchorRow() {
    const focused = document.activeElement;
    if (focused && focused.parentElement === tbody) return focused;
    return rows().find((r) => r.getBoundingClientRect().bottom > 0) || null;
  }
  function stopLive() {
    if (live) live.stop();
    live = null;
    liveState.textContent = '';
  }

  async function runExport() {
    const s = ctx.state();
    const fmt = format.value;
    exporting = new AbortController();
    exportBtn.textContent = 'Cancel export';
    exportState.classList.remove('error');
    exportState.textContent = 'Exporting…';
    try {
      const blob = await api.exportFile(apiParams(s), fmt, {
        signal: exporting.signal,
        onProgress: (n) => {
          exportState.textContent = `Exporting… ${bytes(n)}`;
        },
      });
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
      const name = `evlog-events-${stamp}.${fmt}`;
      const href = URL.createObjectURL(blob);
      const a = h('a', { href, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
      exportState.textContent = `Exported ${bytes(blob.size)} as ${name}`;
    } catch (e) {
      exportState.textContent = e.name === 'AbortError' ? 'Export cancelled' : `Export failed: ${e.words || e.message}`;
      exportState.classList.toggle('error', e.name !== 'AbortError');
    } finally {
      exporting = null;
      exportBtn.textContent = 'Export';
    }
  }

  function update(s, before) {
    liveBox.checked = s.live && s.page === 1;
    utc.checked = s.tz === 'utc';
    size.value = String(s.limit);
    const same =
      shown &&
      before &&
      filterKey(s) === filterKey(shown) &&
      s.page === shown.page &&
      s.limit === shown.limit &&
      s.live === shown.live;
    if (!same) {
      load(s);
    } else if (s.tz !== shown.tz) {
      for (const t of tbody.querySelectorAll('time')) t.textContent = formatTime(t.getAttribute('datetime'), s.tz);
      shown = s;
    }
  }

  function unmount() {
    if (loading) loading.abort();
    if (exporting) exporting.abort();
    stopLive();
  }

  /** Focuses the row in the Tab order (after the dialog's own row left). */
  function refocus() {
    const tr = rows().find((r) => r.tabIndex === 0);
    if (tr) tr.focus();
  }

  return { el, update, changed, refocus, unmount };
}

/** `ev` with the state of a resolve/reopen answer `r` ({resolved, resolved_at?, resolved_by?}). */
export function withState(ev, r) {
  const next = { ...ev, resolved: Boolean(r.resolved) };
  delete next.resolved_at;
  delete next.resolved_by;
  if (r.resolved) {
    if (r.resolved_at) next.resolved_at = r.resolved_at;
    if (r.resolved_by) next.resolved_by = r.resolved_by;
  }
  return next;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
