// The statistics of the current filters (GET /events/stats): totals, error
// rate, unique users, duration percentiles, bars by type, status and level,
// and the histogram over time. Every bar is a link to the events it counts.

import { api } from './api.js';
import { h, svg, fill, afterPaint } from './dom.js';
import { apiParams, filterKey, withFilters, count, formatTime } from './filters.js';

const INTERVAL_MS = { hour: 3600000, day: 86400000 };

function card(label, value, note) {
  return h(
    'div',
    { class: 'card' },
    h('div', { class: 'card-label', text: label }),
    h('div', { class: 'card-value', text: value }),
    note ? h('div', { class: 'card-note muted', text: note }) : null,
  );
}

function ms(v) {
  if (v === null || v === undefined) return '—';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v * 10) / 10} ms`;
}

/** The statistics view. `ctx`: {navigate, href(state), state(), rendered()}. */
export function statsView(ctx) {
  const status = h('div', { class: 'status', role: 'status' });
  const body = h('div', { class: 'stats-body' });
  const el = h('section', { class: 'view view-stats', 'aria-label': 'Statistics' }, status, body);
  let loading = null;
  let shown = null;

  /** A list of bars, biggest first; each links to the events view with `filter(key)` added. */
  function bars(title, counts, filter) {
    const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const max = Math.max(1, ...entries.map((e) => e[1]));
    const s = ctx.state();
    const list = entries.length
      ? h(
          'ul',
          { class: 'bars' },
          entries.map(([k, n]) =>
            h(
              'li',
              null,
              h(
                'a',
                {
                  href: ctx.href({ ...withFilters(s, filter(k)), view: 'events' }),
                  'data-nav': '',
                  title: `Show the ${count(n)} ${k} events`,
                },
                h('span', { class: 'bar-label', text: k }),
                h('span', { class: 'bar-count', text: count(n) }),
                svg(
                  'svg',
                  { class: 'bar', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
                  svg('rect', { x: 0, y: 0, width: Math.max(0.5, (100 * n) / max).toFixed(2), height: 10 }),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted', text: 'None' });
    return h('section', { class: 'chart' }, h('h3', { text: title }), list);
  }

  function histogram(r) {
    const buckets = r.histogram || [];
    const section = h('section', { class: 'chart wide' }, h('h3', { text: `Events per ${r.histogram_interval}` }));
    if (!buckets.length) {
      section.append(h('p', { class: 'muted', text: 'None' }));
      return section;
    }
    const max = Math.max(1, ...buckets.map((b) => b.count));
    const w = 10;
    const step = INTERVAL_MS[r.histogram_interval] || INTERVAL_MS.day;
    const s = ctx.state();
    const chart = svg(
      'svg',
      {
        class: 'histogram',
        viewBox: `0 0 ${buckets.length * w} 100`,
        preserveAspectRatio: 'none',
        role: 'group',
        'aria-label': `Events per ${r.histogram_interval}`,
      },
      buckets.map((b, i) => {
        const height = b.count ? Math.max(1, (100 * b.count) / max) : 0;
        const from = new Date(b.start);
        const to = new Date(from.getTime() + step);
        const label = `${formatTime(b.start, s.tz)}: ${count(b.count)} events`;
        return svg(
          'a',
          {
            href: ctx.href({
              ...withFilters(s, { range: 'custom', start: from.toISOString(), end: to.toISOString() }),
              view: 'events',
            }),
            'data-nav': '',
            'aria-label': label,
          },
          svg('title', { text: label }),
          svg('rect', { class: 'hit', x: i * w, y: 0, width: w, height: 100 }),
          svg('rect', { x: i * w + 1, y: (100 - height).toFixed(2), width: w - 2, height: height.toFixed(2) }),
        );
      }),
    );
    const axis = h(
      'div',
      { class: 'axis muted' },
      h('span', { text: formatTime(buckets[0].start, s.tz) }),
      h('span', { text: `max ${count(max)}` }),
      h('span', { text: formatTime(buckets[buckets.length - 1].start, s.tz) }),
    );
    section.append(chart, axis);
    return section;
  }

  function draw(r) {
    const rate = `${(100 * (r.error_rate || 0)).toFixed(2)} %`;
    fill(
      body,
      h(
        'div',
        { class: 'cards' },
        card('Events', count(r.total)),
        card('Error rate', rate, 'failures / events'),
        card('Unique users', count(r.unique_users)),
        card('Duration p50', ms(r.p50_duration_ms)),
        card('Duration p95', ms(r.p95_duration_ms)),
        card('Duration p99', ms(r.p99_duration_ms), r.avg_duration_ms === null ? 'no durations' : `mean ${ms(r.avg_duration_ms)}`),
      ),
      h(
        'div',
        { class: 'charts' },
        bars('By type', r.by_type, (k) => ({ types: [k] })),
        bars('By status', r.by_status, (k) => ({ status: k })),
        bars('By level', r.by_level, (k) => ({ level: k })),
        histogram(r),
      ),
    );
  }

  async function load(s) {
    if (loading) loading.abort();
    const ac = new AbortController();
    loading = ac;
    body.classList.add('loading');
    body.setAttribute('aria-busy', 'true');
    fill(status, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Loading statistics…');
    try {
      const r = await api.stats(apiParams(s), ac.signal);
      if (ac.signal.aborted) return;
      shown = s;
      draw(r);
      fill(status);
    } catch (e) {
      if (e.name === 'AbortError') return;
      shown = s;
      fill(body);
      fill(status, h('p', { class: 'error', role: 'alert', text: `Could not load statistics: ${e.words || e.message}` }));
    }
    loading = null;
    body.classList.remove('loading');
    body.setAttribute('aria-busy', 'false');
    await afterPaint();
    ctx.rendered();
  }

  function update(s) {
    if (!shown || filterKey(s) !== filterKey(shown) || s.tz !== shown.tz) load(s);
  }

  function unmount() {
    if (loading) loading.abort();
  }

  return { el, update, unmount };
}
