// The admin panel (admin keys only; the API refuses others anyway): the
// server's health and index lag (GET /health); rotation: a dry-run plan
// first (POST /admin/rotate?dry_run=true), then Run with the counts of
// days compressed and deleted; purge: a retention in days, a preview (POST
// /admin/purge?dry_run=true) with the events and days it would delete and
// the days it keeps, then a confirm button for exactly that retention.

import { api } from './api.js';
import { h, fill, afterPaint, labelled } from './dom.js';
import { count } from './filters.js';

function row(label, value) {
  return [h('dt', { text: label }), h('dd', { text: value })];
}

function size(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n) || 0;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${u ? v.toFixed(1) : v} ${units[u]}`;
}

function fileList(title, items, describe) {
  if (!items || !items.length) return null;
  return h(
    'div',
    { class: 'file-list' },
    h('h4', { text: `${title} (${items.length})` }),
    h('ul', { class: 'plain mono' }, items.map((x) => h('li', { text: describe(x) }))),
  );
}

/** The report of a rotation or of its plan. */
function report(r) {
  const planned = r.dry_run;
  const c = (r.compressed || []).length;
  const d = (r.deleted || []).length;
  const f = (r.failures || []).length;
  const summary = planned
    ? `Plan: ${c} day${c === 1 ? '' : 's'} to compress, ${d} to delete`
    : `Done: ${c} day${c === 1 ? '' : 's'} compressed, ${d} deleted, ${f} failed`;
  return h(
    'div',
    { class: 'report' },
    h('p', { class: f ? 'error' : 'summary', role: 'status', text: summary }),
    h('p', { class: 'muted', text: `Day files ${size(r.bytes_before)} → ${size(r.bytes_after)}${planned ? ' (estimated)' : ''}` }),
    fileList(planned ? 'Would compress' : 'Compressed', r.compressed, String),
    fileList(planned ? 'Would delete' : 'Deleted', r.deleted, String),
    fileList('Kept: open warnings', r.kept_open_days, String),
    fileList('Failed', r.failures, (x) => `${x.file}: ${x.error}`),
    fileList('Left alone', r.skipped, (x) => `${x.file}: ${x.reason}`),
    fileList('Notes', r.notes, String),
  );
}

/** The report of a purge or of its preview: the server's sentence, then the days. */
function purgeReport(r) {
  const perDay = r.events_per_day || {};
  return h(
    'div',
    { class: 'report' },
    h('p', { class: (r.failures || []).length ? 'error' : 'summary', role: 'status', text: r.message }),
    fileList(r.dry_run ? 'Would delete' : 'Deleted', r.deleted_days, (d) => `${d}: ${count(perDay[d] ?? 0)} events`),
    fileList('Kept: open warnings', r.kept_open_days, String),
    fileList('Kept behind them', r.kept_behind_open_days, String),
    fileList('Kept: not yet published to the replication stream', r.kept_unpublished_days, String),
    fileList('Failed', r.failures, (x) => `${x.file}: ${x.error}`),
    fileList('Notes', r.notes, String),
  );
}

/** The admin view. `ctx`: {who, rendered()}. */
export function adminView(ctx) {
  if (ctx.who.role !== 'admin') {
    const el = h(
      'section',
      { class: 'view view-admin', 'aria-label': 'Admin' },
      h('p', { class: 'error', role: 'alert', text: 'The admin panel needs an admin key.' }),
    );
    return { el, update: () => ctx.rendered(), unmount: () => {} };
  }

  const health = h('dl', { class: 'facts' });
  const healthState = h('div', { class: 'status', role: 'status' });
  const refresh = h('button', { type: 'button', text: 'Refresh', onclick: () => loadHealth() });
  const plan = h('button', { type: 'button', text: 'Plan rotation (dry run)' });
  const run = h('button', { type: 'button', class: 'danger', text: 'Run rotation', disabled: true });
  const rotState = h('div', { class: 'status', role: 'status' });
  const rotOut = h('div', { class: 'rotation-report' });
  const days = h('input', { type: 'number', min: '0', max: '36500', step: '1', value: '90', required: true, inputmode: 'numeric' });
  const force = h('input', { type: 'checkbox' });
  const preview = h('button', { type: 'submit', text: 'Preview purge (dry run)' });
  const confirm = h('button', { type: 'button', class: 'danger', text: 'Purge now', disabled: true });
  const purgeState = h('div', { class: 'status', role: 'status' });
  const purgeOut = h('div', { class: 'purge-report' });
  const purgeForm = h(
    'form',
    { class: 'purge-form', 'aria-label': 'Purge', novalidate: true },
    h('div', { class: 'field' }, labelled('Retention (days)', days)),
    h('label', { class: 'check' }, force, 'Also delete days with open warnings'),
    h('div', { class: 'buttons' }, preview, confirm),
  );
  const el = h(
    'section',
    { class: 'view view-admin', 'aria-label': 'Admin' },
    h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Health' }), refresh), healthState, health),
    h(
      'section',
      { class: 'panel' },
      h('h2', { text: 'Rotation' }),
      h('p', {
        class: 'muted',
        text: 'Compresses old day files and deletes expired ones, with the server’s policy. Plan first to see what a run would do.',
      }),
      h('div', { class: 'buttons' }, plan, run),
      rotState,
      rotOut,
    ),
    h(
      'section',
      { class: 'panel' },
      h('h2', { text: 'Purge' }),
      h('p', {
        class: 'muted',
        text: 'Deletes whole days older than the retention. Days that still hold open warnings are kept unless you say otherwise. Preview first; then confirm.',
      }),
      purgeForm,
      purgeState,
      purgeOut,
    ),
  );
  const ac = new AbortController();

  async function loadHealth() {
    fill(healthState, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Loading…');
    try {
      const r = await api.health(ac.signal);
      const ix = r.index || {};
      fill(
        health,
        row('Status', r.status),
        row('Version', r.version),
        row('Events indexed', count(ix.documents ?? 0)),
        row('Index lag', `${count(ix.lag_events ?? 0)} events${ix.lag_events_exact === false ? ' (estimated)' : ''}, ${ix.lag_seconds ?? 0} s`),
        row('Lag bytes', size(ix.lag_bytes ?? 0)),
        row('Last index commit', ix.last_commit || 'none yet'),
        row('Index rebuilds', String(ix.rebuilds ?? 0)),
      );
      fill(healthState, `Checked at ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e.name === 'AbortError') return;
      fill(healthState, h('p', { class: 'error', role: 'alert', text: `Could not load health: ${e.words || e.message}` }));
    }
  }

  async function rotate(dryRun) {
    plan.disabled = true;
    run.disabled = true;
    fill(rotState, h('span', { class: 'spinner', 'aria-hidden': 'true' }), dryRun ? 'Planning…' : 'Rotating…');
    try {
      const r = await api.rotate(dryRun, ac.signal);
      fill(rotState);
      fill(rotOut, report(r));
      run.disabled = !dryRun;
    } catch (e) {
      if (e.name === 'AbortError') return;
      fill(rotState, h('p', { class: 'error', role: 'alert', text: `Rotation failed: ${e.words || e.message}` }));
    }
    plan.disabled = false;
  }
  plan.addEventListener('click', () => rotate(true));
  run.addEventListener('click', () => rotate(false));

  // The confirm button purges exactly what the last preview showed: any
  // change to the form takes it back until the next preview.
  let previewed = null;
  const purgeParams = () => ({ retention_days: days.value.trim(), ...(force.checked ? { force: 'true' } : {}) });
  const same = (a, b) => a && b && a.retention_days === b.retention_days && a.force === b.force;
  const stale = () => {
    previewed = null;
    confirm.disabled = true;
  };
  days.addEventListener('input', stale);
  force.addEventListener('change', stale);

  async function purge(dryRun) {
    const params = purgeParams();
    if (!dryRun && !same(params, previewed)) return;
    preview.disabled = true;
    confirm.disabled = true;
    fill(purgeState, h('span', { class: 'spinner', 'aria-hidden': 'true' }), dryRun ? 'Previewing…' : 'Purging…');
    try {
      const r = await api.purge(dryRun ? { ...params, dry_run: 'true' } : params, ac.signal);
      fill(purgeState);
      fill(purgeOut, purgeReport(r));
      previewed = dryRun && r.deleted_days.length ? params : null;
      confirm.disabled = !previewed;
      if (previewed) confirm.focus();
    } catch (e) {
      if (e.name === 'AbortError') return;
      previewed = null;
      fill(purgeOut);
      fill(purgeState, h('p', { class: 'error', role: 'alert', text: `Purge failed: ${e.words || e.message}` }));
    }
    preview.disabled = false;
  }
  purgeForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    purge(true);
  });
  confirm.addEventListener('click', () => purge(false));

  let first = true;
  return {
    el,
    async update() {
      if (!first) return;
      first = false;
      await loadHealth();
      await afterPaint();
      ctx.rendered();
    },
    unmount: () => ac.abort(),
  };
}
