// The console's state and the page URL: which view, the filters, the page,
// the event open in the details. Everything a link should carry is in the
// query string of `/` (so a shared link opens the same page); the API key
// never is. This module maps that state to the API's parameters.

export const RANGES = [
  ['today', 'Today'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['all', 'All time'],
  ['custom', 'Custom'],
];
export const DEFAULT_RANGE = '7d';
export const PAGE_SIZES = [25, 50, 100, 200];
export const DEFAULT_LIMIT = 50;
export const STATUSES = ['success', 'failure', 'pending', 'in_progress'];
export const LEVELS = ['info', 'warning', 'error', 'security'];
export const VIEWS = ['events', 'stats', 'admin'];
/** The start of "All time": before any storable timestamp. */
const ALL_TIME = '0001-01-01T00:00:00Z';
const DAY_MS = 86400000;

/** The state of the page URL `search` (unknown values fall back to defaults). */
export function readUrl(search) {
  const p = new URLSearchParams(search);
  const get = (k) => p.get(k) || '';
  const known = (list, v) => (list.includes(v) ? v : '');
  let range = RANGES.some(([r]) => r === get('range')) ? get('range') : DEFAULT_RANGE;
  if (!p.has('range') && (p.has('start') || p.has('end'))) range = 'custom';
  const limit = Number(get('limit'));
  return {
    view: known(VIEWS, get('view')) || 'events',
    range,
    start: range === 'custom' ? get('start') : '',
    end: range === 'custom' ? get('end') : '',
    types: [...new Set(p.getAll('event_type').filter(Boolean))],
    status: known(STATUSES, get('status')),
    level: known(LEVELS, get('level')),
    user: get('user_id'),
    request: get('request_id'),
    source: get('source'),
    tenant: get('tenant'),
    open: get('resolved') === 'false',
    q: get('q'),
    page: Math.min(1e9, Math.max(1, Math.floor(Number(get('page'))) || 1)),
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULT_LIMIT,
    event: get('event'),
    tz: get('tz') === 'utc' ? 'utc' : 'local',
    live: get('live') === '1',
  };
}

/** The query string (with `?`, or empty) of state `s`; defaults are left out. */
export function writeUrl(s) {
  const p = new URLSearchParams();
  if (s.view !== 'events') p.set('view', s.view);
  if (s.range !== DEFAULT_RANGE) p.set('range', s.range);
  if (s.range === 'custom') {
    if (s.start) p.set('start', s.start);
    if (s.end) p.set('end', s.end);
  }
  for (const t of s.types) p.append('event_type', t);
  if (s.status) p.set('status', s.status);
  if (s.level) p.set('level', s.level);
  if (s.user) p.set('user_id', s.user);
  if (s.request) p.set('request_id', s.request);
  if (s.source) p.set('source', s.source);
  if (s.tenant) p.set('tenant', s.tenant);
  if (s.open) p.set('resolved', 'false');
  if (s.q) p.set('q', s.q);
  if (s.page > 1) p.set('page', String(s.page));
  if (s.limit !== DEFAULT_LIMIT) p.set('limit', String(s.limit));
  if (s.live) p.set('live', '1');
  if (s.tz === 'utc') p.set('tz', 'utc');
  if (s.event) p.set('event', s.event);
  const q = p.toString();
  return q ? `?${q}` : '';
}

/** The default state (what `/` shows). */
export function defaults() {
  return readUrl('');
}

const FILTER_KEYS = ['range', 'start', 'end', 'types', 'status', 'level', 'user', 'request', 'source', 'tenant', 'open', 'q'];

/** A string that changes whenever the filters of `s` do. */
export function filterKey(s) {
  return JSON.stringify(FILTER_KEYS.map((k) => s[k]));
}

/** `s` with its filters replaced by those of `f` (paging back to page 1). */
export function withFilters(s, f) {
  const out = { ...s, page: 1, event: '' };
  for (const k of FILTER_KEYS) if (k in f) out[k] = f[k];
  if (out.range !== 'custom') {
    out.start = '';
    out.end = '';
  }
  return out;
}

/** The API's filter parameters for state `s`, the time range as of `now`. */
export function apiParams(s, now = new Date()) {
  const p = {};
  const ago = (ms) => new Date(now.getTime() - ms).toISOString();
  switch (s.range) {
    case 'today': {
      const d = new Date(now);
      d.setHours(0, 0, 0, 0);
      p.start = d.toISOString();
      break;
    }
    case '24h':
      p.start = ago(DAY_MS);
      break;
    case '7d':
      p.start = ago(7 * DAY_MS);
      break;
    case '30d':
      p.start = ago(30 * DAY_MS);
      break;
    case 'custom':
      if (s.start) p.start = s.start;
      if (s.end) p.end = s.end;
      if (!s.start && !s.end) p.start = ALL_TIME;
      break;
    default:
      p.start = ALL_TIME;
  }
  if (s.types.length) p.event_type = s.types;
  if (s.status) p.status = s.status;
  if (s.level) p.level = s.level;
  if (s.user) p.user_id = s.user;
  if (s.request) p.request_id = s.request;
  if (s.source) p.source = s.source;
  if (s.tenant) p.tenant = s.tenant;
  if (s.open) p.resolved = 'false';
  if (s.q) p.q = s.q;
  return p;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD HH:MM:SS` of a stored timestamp, local or UTC. */
export function formatTime(iso, tz) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  if (tz === 'utc') {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(
      d.getUTCHours(),
    )}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}:${pad(d.getSeconds())}`;
}

/** The value of a datetime-local input (local time) for an RFC 3339 time. */
export function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}`;
}

/** An RFC 3339 UTC time for a datetime-local value (local time); '' if empty. */
export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/**
 * The tenant scope of the signed-in key ({tenant, all_tenants} of
 * /whoami), in words for the header.
 */
export function tenantScope(who) {
  if (who.all_tenants) return 'all tenants';
  return who.tenant ? `tenant ${who.tenant}` : 'default tenant';
}

/** A count with thousands separators. */
export function count(n) {
  return Number(n).toLocaleString('en-US');
}
