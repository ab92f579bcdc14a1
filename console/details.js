// The details of one event in a modal dialog: every stored field, whatever
// fields there are (new ones show without a change here), metadata
// pretty-printed, lists one item a line; copy the id, or fetch the raw
// JSON from GET /events/{id}. Escape or Close closes it. For admin keys:
// Resolve (with an optional note) or Reopen, and then the new state.

import { api, eventPath } from './api.js';
import { h, fill, labelled } from './dom.js';
import { formatTime } from './filters.js';
import { withState, resolvable } from './events.js';

/** Fields shown first, in this order; the rest follow as stored. */
const FIRST = ['id', 'timestamp', 'event_type', 'user_id', 'status', 'level', 'action_description', 'resolved', 'resolved_at', 'resolved_by'];
/** Labels of the known fields (others show their name). */
const LABELS = {
  id: 'Id',
  timestamp: 'Time',
  event_type: 'Type',
  user_id: 'User',
  status: 'Status',
  level: 'Level',
  action_description: 'Description',
  resolved: 'Resolved',
  resolved_at: 'Resolved at',
  resolved_by: 'Resolved by',
  request_id: 'Request id',
  source: 'Source',
  tenant: 'Tenant',
  source_ip: 'Source IP',
  duration_ms: 'Duration (ms)',
  files_changed: 'Files',
  comments: 'Comments',
  metadata: 'Metadata',
  seq: 'Seq',
  hash: 'Hash',
};

function value(key, v, tz) {
  if (v === null || v === undefined) return h('span', { class: 'muted', text: 'none' });
  if (key === 'resolved') return h('span', { text: v ? 'yes' : 'no' });
  if (key === 'timestamp' || key === 'resolved_at') {
    return h('span', null, h('time', { datetime: String(v), text: formatTime(v, tz) }), h('span', { class: 'muted', text: ` (${v})` }));
  }
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) {
    if (!v.length) return h('span', { class: 'muted', text: 'none' });
    return h('ul', { class: 'plain' }, v.map((x) => h('li', { text: String(x) })));
  }
  if (typeof v === 'object') return h('pre', { class: 'json', text: JSON.stringify(v, null, 2) });
  return h('span', { class: 'mono-ish', text: String(v) });
}

/**
 * The dialog. `onClose()` runs when it closes (Escape, Close, or a click on
 * the backdrop); `canResolve()` tells whether the key may resolve (admin);
 * `onChanged(event)` gets the event after a resolve or reopen. Returns {el,
 * show(event, tz), showLoading(id), showError(id, e), close(), isOpen()}.
 */
export function detailsDialog(onClose, { canResolve = () => false, onChanged = () => {} } = {}) {
  const title = h('h2', { id: 'details-title', text: 'Event' });
  const body = h('div', { class: 'details-body' });
  const closeBtn = h('button', { type: 'button', text: 'Close', onclick: () => el.close() });
  const el = h(
    'dialog',
    { class: 'details', 'aria-labelledby': 'details-title' },
    h('div', { class: 'details-head' }, title, closeBtn),
    body,
  );
  el.addEventListener('close', () => onClose());
  el.addEventListener('click', (e) => {
    if (e.target === el) el.close(); // the backdrop
  });

  const open = () => {
    if (!el.open) el.showModal();
  };

  function actions(id) {
    const note = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', {
      type: 'button',
      text: 'Copy id',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(id);
          note.textContent = 'Id copied';
        } catch {
          note.textContent = 'Copying is not allowed here; select the id above';
        }
      },
    });
    const path = eventPath(id);
    const raw = h('a', {
      href: path,
      class: 'api-link',
      title: 'The stored event as JSON (fetched with your key)',
      text: `GET ${path}`,
      onclick: async (e) => {
        // The link itself would go without the key header: fetch it with the key instead.
        e.preventDefault();
        try {
          const ev = await api.event(id);
          const blob = new Blob([JSON.stringify(ev, null, 2)], { type: 'application/json' });
          const href = URL.createObjectURL(blob);
          const a = h('a', { href, download: `event-${id}.json`, hidden: true });
          document.body.append(a);
          a.click();
          a.remove();
          setTimeout(() => URL.revokeObjectURL(href), 60000);
          note.textContent = `Saved event-${id}.json`;
        } catch (err) {
          note.textContent = `Could not fetch it: ${err.words || err.message}`;
        }
      },
    });
    return h('div', { class: 'details-actions' }, copy, raw, note);
  }

  /** Resolve (a note, then the button) or Reopen; the dialog shows the outcome. */
  function resolution(ev, tz, said) {
    const msg = h('p', { class: 'muted', role: 'status', text: said || '' });
    const problem = h('p', { class: 'error', role: 'alert' });
    problem.hidden = true;
    const resolve = !ev.resolved;
    const note = resolve ? h('input', { type: 'text', maxlength: '2000', autocomplete: 'off', placeholder: 'why (optional)' }) : null;
    const button = h('button', { type: 'submit', class: 'primary', text: resolve ? 'Resolve' : 'Reopen' });
    const f = h(
      'form',
      { class: 'resolution', 'aria-label': 'Resolution' },
      note ? h('div', { class: 'field' }, labelled('Note', note)) : null,
      button,
      msg,
      problem,
    );
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
      if (button.getAttribute('aria-disabled') === 'true') return;
      button.setAttribute('aria-disabled', 'true');
      problem.hidden = true;
      msg.textContent = resolve ? 'Resolving…' : 'Reopening…';
      try {
        const r = resolve ? await api.resolve(ev.id, note.value.trim()) : await api.reopen(ev.id);
        const next = withState(ev, r);
        if (el.dataset.id !== String(ev.id)) return; // another event is shown now
        const words = r.changed
          ? `Event ${next.resolved ? 'resolved' : 'reopened'}`
          : `It already was ${next.resolved ? 'resolved' : 'open'}`;
        show(next, tz, words);
        onChanged(next);
      } catch (err) {
        button.removeAttribute('aria-disabled');
        msg.textContent = '';
        problem.hidden = false;
        problem.textContent = `Could not ${resolve ? 'resolve' : 'reopen'} the event: ${err.words || err.message}`;
      }
    });
    return { el: f, focus: button };
  }

  function show(ev, tz, said) {
    const id = String(ev.id ?? '');
    title.textContent = `${ev.event_type ?? 'Event'} by ${ev.user_id ?? '?'}`;
    const keys = [...FIRST.filter((k) => k in ev), ...Object.keys(ev).filter((k) => !FIRST.includes(k))];
    const dl = h(
      'dl',
      { class: 'fields' },
      keys.map((k) => [h('dt', { text: LABELS[k] || k }), h('dd', { 'data-field': k }, value(k, ev[k], tz))]),
    );
    const res = canResolve() && id && resolvable(ev) ? resolution(ev, tz, said) : null;
    fill(body, actions(id), res && res.el, dl);
    open();
    // After a resolve or reopen the focus stays on the (new) button.
    (said && res ? res.focus : closeBtn).focus();
  }

  function showLoading(id) {
    title.textContent = 'Event';
    fill(body, h('p', { role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `Loading event ${id}…`));
    open();
  }

  function showError(id, e) {
    title.textContent = 'Event';
    fill(body, h('p', { class: 'error', role: 'alert', text: `Could not load event ${id}: ${e.words || e.message}` }));
    open();
    closeBtn.focus();
  }

  return {
    el,
    show,
    showLoading,
    showError,
    close: () => el.open && el.close(),
    isOpen: () => el.open,
  };
}
