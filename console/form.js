// The filter form shared by the events view and the statistics: time range
// (presets or custom), event types, status, level, user, request id, source
// (the emitting service), tenant (an all-tenants admin's picker), "Open
// only" (events not resolved) and full text. Lists and boxes apply on
// change; text fields on Enter or when they lose focus (or with Apply).

import { api } from './api.js';
import { h, labelled, select, fill } from './dom.js';
import {
  RANGES,
  STATUSES,
  LEVELS,
  defaults,
  toLocalInput,
  fromLocalInput,
  count,
} from './filters.js';

const any = [['', 'Any']];

/**
 * The form. `who` is the signed-in key ({role, user_id}); `onApply(filters)`
 * gets the filters whenever they change. Returns {el, update(state)}.
 */
export function filterForm(who, onApply) {
  const range = select(RANGES, '', { name: 'range' });
  const start = h('input', { type: 'datetime-local', name: 'start' });
  const end = h('input', { type: 'datetime-local', name: 'end' });
  const custom = h('div', { class: 'custom-range' }, h('div', { class: 'field' }, labelled('From', start)),
    h('div', { class: 'field' }, labelled('To', end)));
  const status = select([...any, ...STATUSES.map((s) => [s, s])], '', { name: 'status' });
  const level = select([...any, ...LEVELS.map((l) => [l, l])], '', { name: 'level' });
  const user = h('input', { type: 'text', name: 'user_id', autocomplete: 'off', spellcheck: 'false' });
  const request = h('input', { type: 'text', name: 'request_id', autocomplete: 'off', spellcheck: 'false' });
  const source = h('input', { type: 'text', name: 'source', autocomplete: 'off', spellcheck: 'false', placeholder: 'api-service' });
  // An all-tenants admin picks a tenant (empty: every tenant, `_`: the
  // default one); any other key reads its own tenant only (shown in the header).
  const tenant = who.all_tenants
    ? h('input', {
        type: 'text',
        name: 'tenant',
        autocomplete: 'off',
        spellcheck: 'false',
        placeholder: 'All tenants',
        title: 'A tenant name; _ for the default tenant; empty for every tenant',
      })
    : null;
  const open = h('input', { type: 'checkbox', name: 'resolved', value: 'false' });
  const q = h('input', { type: 'search', name: 'q', autocomplete: 'off', placeholder: 'words, "a phrase", src/lib.rs' });
  if (who.role === 'user') {
    // The API reads a user key's own events only; say so rather than offer a filter.
    user.disabled = true;
    user.setAttribute('title', 'A user key sees only its own events');
  }

  // Event types: a disclosure with one checkbox per type, listed on first open.
  const typesSummary = h('summary', { id: 'types-summary', 'aria-labelledby': 'types-label types-summary' });
  const typesList = h('div', { class: 'types-list', role: 'group', 'aria-label': 'Event types' });
  const types = h('details', { class: 'types' }, typesSummary, typesList);
  let known = null; // [{name, count, description}] once loaded
  let chosen = [];
  let listed = null; // the names the boxes show, to redraw only when they change
  const drawTypes = () => {
    typesSummary.textContent = chosen.length ? chosen.join(', ') : 'Any';
    const names = known ? known.map((t) => t.name) : [];
    const all = [...names, ...chosen.filter((c) => !names.includes(c))];
    if (listed && listed.join('\n') === all.join('\n')) {
      // Same boxes: only their state (a rebuild would lose the keyboard focus).
      for (const box of typesList.querySelectorAll('input[type=checkbox]')) box.checked = chosen.includes(box.value);
      return;
    }
    listed = known ? all : null;
    const rows = all.map((name) => {
      const t = known && known.find((k) => k.name === name);
      const box = h('input', { type: 'checkbox', value: name });
      box.checked = chosen.includes(name);
      const text = t ? `${name} (${count(t.count)})` : name;
      return h('label', { class: 'check', title: t && t.description ? t.description : null }, box, text);
    });
    const clear = h('button', { type: 'button', class: 'link', text: 'Any type', onclick: () => emit({ types: [] }) });
    fill(typesList, known ? null : h('p', { class: 'muted', text: 'Loading types…' }), rows, clear);
  };
  types.addEventListener('toggle', async () => {
    if (!types.open || known) return;
    try {
      const params = tenant && tenant.value.trim() ? { tenant: tenant.value.trim() } : {};
      known = (await api.types(params)).types.filter((t) => t.count > 0 || chosen.includes(t.name) || t.builtin);
    } catch (e) {
      known = [];
      typesList.prepend(h('p', { class: 'error', role: 'alert', text: e.words || String(e) }));
      return;
    }
    drawTypes();
  });
  // The list closes on Escape and on a click or focus outside it.
  types.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && types.open) {
      ev.preventDefault();
      ev.stopPropagation();
      types.open = false;
      typesSummary.focus();
    }
  });
  const outside = (ev) => {
    if (types.open && !types.contains(ev.target)) types.open = false;
  };
  document.addEventListener('click', outside);
  document.addEventListener('focusin', outside);
  typesList.addEventListener('change', (ev) => {
    const box = ev.target;
    const next = box.checked ? [...chosen, box.value] : chosen.filter((t) => t !== box.value);
    emit({ types: next });
  });

  const emit = (f) => onApply(f);
  const textFields = () => ({
    user: who.role === 'user' ? '' : user.value.trim(),
    request: request.value.trim(),
    source: source.value.trim(),
    ...(tenant ? { tenant: tenant.value.trim() } : {}),
    q: q.value.trim(),
  });
  const rangeFields = () => ({
    range: range.value,
    start: range.value === 'custom' ? fromLocalInput(start.value) : '',
    end: range.value === 'custom' ? fromLocalInput(end.value) : '',
  });

  range.addEventListener('change', () => {
    custom.hidden = range.value !== 'custom';
    emit(rangeFields());
  });
  for (const i of [start, end]) i.addEventListener('change', () => emit(rangeFields()));
  status.addEventListener('change', () => emit({ status: status.value }));
  level.addEventListener('change', () => emit({ level: level.value }));
  open.addEventListener('change', () => emit({ open: open.checked }));
  for (const i of [user, request, source, tenant, q]) if (i) i.addEventListener('change', () => emit(textFields()));

  const reset = h('button', {
    type: 'button',
    text: 'Reset',
    onclick: () => {
      const d = defaults();
      emit({ ...d, types: [] });
    },
  });
  const el = h(
    'form',
    { class: 'filters', 'aria-label': 'Filters', autocomplete: 'off' },
    h('div', { class: 'field' }, labelled('Time range', range)),
    custom,
    h('div', { class: 'field types-field' }, h('span', { class: 'label', id: 'types-label', text: 'Event types' }), types),
    h('div', { class: 'field' }, labelled('Status', status)),
    h('div', { class: 'field' }, labelled('Level', level)),
    h('div', { class: 'field check-field' }, h('label', { class: 'check', title: 'Events not resolved' }, open, 'Open only')),
    h('div', { class: 'field' }, labelled('User', user)),
    h('div', { class: 'field' }, labelled('Request id', request)),
    h('div', { class: 'field' }, labelled('Source', source)),
    tenant ? h('div', { class: 'field' }, labelled('Tenant', tenant)) : null,
    h('div', { class: 'field wide' }, labelled('Search', q)),
    h('div', { class: 'field buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Apply' }), reset),
  );
  el.addEventListener('submit', (ev) => {
    ev.preventDefault();
    emit({ ...rangeFields(), ...textFields(), status: status.value, level: level.value });
  });

  /** Shows the filters of state `s`. */
  function update(s) {
    range.value = s.range;
    custom.hidden = s.range !== 'custom';
    if (s.range === 'custom') {
      start.value = toLocalInput(s.start);
      end.value = toLocalInput(s.end);
    }
    status.value = s.status;
    level.value = s.level;
    open.checked = s.open;
    user.value = who.role === 'user' ? who.user_id : s.user;
    request.value = s.request;
    source.value = s.source;
    if (tenant && tenant.value.trim() !== s.tenant) {
      tenant.value = s.tenant;
      // The type counts are of a tenant: listed again on the next open.
      known = null;
      listed = null;
    }
    q.value = s.q;
    chosen = [...s.types];
    drawTypes();
  }
  return { el, update };
}
