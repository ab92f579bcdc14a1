// A live tail of /events/stream read with fetch and a stream reader
// (EventSource cannot send the X-API-Key header): server-sent events parsed
// here, reconnecting with Last-Event-ID (the seq of the last event
// received) after a dropped connection, so nothing is missed or repeated.

import { api } from './api.js';

/** Retry delays after a dropped stream, in ms (the last one repeats). */
const BACKOFF = [500, 1000, 2000, 5000, 10000];

/**
 * Parses server-sent events from text chunks; `onMessage({event, data, id})`
 * for each complete message (comments and keep-alives are skipped).
 */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buf = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = null;
  }

  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length || this.event) {
        this.onMessage({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
  }
}

/**
 * Follows the events matching `params` stored after seq `after` (or from
 * now when null). `handlers.onEvent(event)` per new event;
 * `handlers.onState(text, isError)` when the connection changes.
 */
export class LiveStream {
  constructor(params, after, handlers) {
    this.params = params;
    this.last = after;
    this.handlers = handlers;
    this.ac = null;
  }

  start() {
    this.ac = new AbortController();
    this.run(this.ac.signal);
  }

  stop() {
    if (this.ac) this.ac.abort();
    this.ac = null;
  }

  async run(signal) {
    const { onEvent, onState } = this.handlers;
    let failures = 0;
    while (!signal.aborted) {
      onState(failures ? 'Reconnecting…' : 'Connecting…');
      try {
        const resp = await api.stream(this.params, this.last, signal);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser((m) => {
          if (m.id !== null && m.id !== '') this.last = m.id;
          if (m.event !== 'event') return;
          let ev;
          try {
            ev = JSON.parse(m.data);
          } catch {
            return;
          }
          onEvent(ev);
        });
        onState('Live: new events appear on top');
        failures = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.push(value);
        }
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') return;
        if (e.status >= 400 && e.status < 500) {
          // The request itself is wrong (filters, key): retrying will not help.
          onState(`Live stopped: ${e.words || e.message}`, true);
          return;
        }
      }
      if (signal.aborted) return;
      const wait = BACKOFF[Math.min(failures, BACKOFF.length - 1)];
      failures += 1;
      onState(`Connection lost; reconnecting in ${Math.round(wait / 100) / 10} s…`, true);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
