// TestArena dashboard, shared by every page: DOM and formatting helpers, the JSON API and its
// errors, notices, the confirmation dialog, the change stream and the page start-up.
// Vanilla JS, no build step, no external resources. The page scripts load after this one, in
// order, and share what it exports on `window.TA`. Everything that comes from the server is set
// as text (textContent / text nodes), never parsed as HTML.
(() => {
  'use strict';

  // ---- small helpers ---------------------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  /** An element; `text` sets textContent, strings among the children become text nodes. */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) e.append(c);
    }
    return e;
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  /** A short human duration, as the server's `duration` filter writes it. */
  function duration(ms) {
    ms = Math.max(0, Math.floor(ms));
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${Math.floor(ms / 1000)}.${Math.floor((ms % 1000) / 100)} s`;
    if (ms < 3600000) return `${Math.floor(ms / 60000)}m ${pad2(Math.floor((ms % 60000) / 1000))}s`;
    return `${Math.floor(ms / 3600000)}h ${pad2(Math.floor((ms % 3600000) / 60000))}m`;
  }

  const absFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const absolute = (iso) => absFormat.format(new Date(iso));

  function relative(iso) {
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 45) return 'just now';
    if (s < 90) return '1 min ago';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return absolute(iso);
  }

  const human = (status) => String(status).replaceAll('_', ' ');
  const badge = (status) => h('span', { class: `badge status-${status}`, text: human(status) });

  /** `<time>` shown relative (`rel`) or in local time (`abs`); refreshed by `tick`. */
  function timeEl(iso, mode) {
    const t = h('time', { datetime: iso, [`data-${mode}`]: true, title: absolute(iso) });
    t.textContent = mode === 'rel' ? relative(iso) : absolute(iso);
    return t;
  }

  /** A duration that keeps counting while it has a start and no end. */
  function durEl(start, end) {
    const e = h('span', { class: 'dur', 'data-start': start || '', 'data-end': end || '' });
    paintDuration(e);
    return e;
  }

  function paintDuration(e) {
    const { start, end } = e.dataset;
    e.textContent = start ? duration((end ? Date.parse(end) : Date.now()) - Date.parse(start)) : '—';
  }

  let ticks = 0;
  function tick() {
    $$('.dur[data-start]').forEach((e) => { if (e.dataset.start && !e.dataset.end) paintDuration(e); });
    if (ticks++ % 20 === 0) {
      $$('time[data-rel]').forEach((t) => { t.textContent = relative(t.dateTime); t.title = absolute(t.dateTime); });
      $$('time[data-abs]').forEach((t) => { t.textContent = absolute(t.dateTime); });
    }
  }

  // ---- API, notices, confirmation ----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      Object.assign(this, { status, code, field });
    }
  }

  /** Calls the JSON API; a failure is an ApiError with the server's readable message. */
  async function api(method, url, body) {
    let res;
    try {
      res = await fetch(url, {
        method,
        cache: 'no-store',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'The server cannot be reached: check the connection and try again.');
    }
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    // An error body is `{"error": {"code", "message"}}`; a queue's own `error` is a string.
    const problem = data && typeof data.error === 'object' && data.error ? data.error : null;
    if (!res.ok || (res.status === 202 && problem)) {
      const err = problem || {};
      throw new ApiError(res.status, err.code || `http_${res.status}`,
        err.message || `The server answered ${res.status} ${res.statusText}.`, err.field);
    }
    return data;
  }

  function notify(text, kind = 'error', ms = 8000) {
    const box = $('#notices');
    if (!box) return;
    const close = h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss' }, '×');
    const n = h('div', { class: `notice notice-${kind}` }, h('span', { text }), close);
    close.addEventListener('click', () => n.remove());
    box.append(n);
    if (ms) setTimeout(() => n.remove(), ms);
  }

  /** Asks in the page's dialog; resolves true when confirmed. */
  function confirmAction(title, text, ok) {
    const d = $('#confirm');
    if (!d || typeof d.showModal !== 'function') return Promise.resolve(window.confirm(text));
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = ok;
    d.returnValue = '';
    d.showModal();
    return new Promise((resolve) => {
      const onClose = () => {
        // The close event of an earlier round may arrive after this one opened: not ours.
        if (d.open) return;
        d.removeEventListener('close', onClose);
        resolve(d.returnValue === 'ok');
      };
      d.addEventListener('close', onClose);
    });
  }

  function setConn(el, state, text) {
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
  }

  /**
   * Follows `/api/events` from `seq`: one EventSource per page. The browser reconnects by
   * itself and resumes with Last-Event-ID; if it gives up (an HTTP error), we reopen from the
   * last change seen after a pause.
   */
  function followChanges(seq, onChange, onReset, conn) {
    let last = seq;
    let lost = false;
    const open = () => {
      setConn(conn, 'connecting', 'Connecting…');
      const es = new EventSource(`/api/events?from=${encodeURIComponent(last)}`);
      es.onopen = () => {
        setConn(conn, 'live', 'Live');
        if (lost) notify('Reconnected: updates are live again.', 'ok', 4000);
        lost = false;
      };
      es.onerror = () => {
        if (!lost) notify('Lost the connection to the server; reconnecting…', 'warn', 6000);
        lost = true;
        setConn(conn, 'reconnecting', 'Reconnecting…');
        if (es.readyState === EventSource.CLOSED) setTimeout(open, 3000);
      };
      es.addEventListener('change', (e) => {
        last = e.lastEventId || last;
        try { onChange(JSON.parse(e.data)); } catch (err) { console.error(err); }
      });
      es.addEventListener('reset', (e) => { last = e.lastEventId || last; onReset(); });
    };
    open();
  }

  /** Runs `fn(key)` at most once at a time per key; a call meanwhile runs it once more after. */
  function coalesce(fn) {
    const running = new Set();
    const again = new Set();
    const run = async (key) => {
      if (running.has(key)) { again.add(key); return; }
      running.add(key);
      try { await fn(key); } finally {
        running.delete(key);
        if (again.delete(key)) run(key);
      }
    };
    return run;
  }

  const queueLink = (id) => `/queues/${encodeURIComponent(id)}`;

  // ---- start ------------------------------------------------------------------------------

  /**
   * Starts a page once the document is parsed: `page(app)` when `#app` is the page `name`, then
   * the clock that keeps durations and times current. Each page script calls it last.
   */
  function start(name, page) {
    const run = () => {
      const app = $('#app');
      if (app && app.dataset.page === name) page(app);
      tick();
      setInterval(tick, 1000);
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', run);
    else run();
  }

  // ---- account ----------------------------------------------------------------------------

  /** The sign-out button in the top bar: ends the session, then shows the page as a visitor. */
  function accountButtons() {
    const out = $('#sign-out');
    if (!out) return;
    out.addEventListener('click', async () => {
      out.disabled = true;
      try {
        await api('DELETE', '/api/session');
        location.reload();
      } catch (e) {
        out.disabled = false;
        notify(e.message);
      }
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', accountButtons);
  else accountButtons();

  window.TA = Object.assign(window.TA || {}, {
    $, $$, h, duration, human, badge, timeEl, durEl, paintDuration,
    ApiError, api, notify, confirmAction, setConn, followChanges, coalesce, queueLink, start,
  });
})();
