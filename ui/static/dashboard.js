// TestArena dashboard: the live queue list, the queue page and its log viewer.
// Vanilla JS, no build step, no external resources. Everything that comes from the server is
// set as text (textContent / text nodes), never parsed as HTML.
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

  // ---- the queue list ----------------------------------------------------------------------

  const queueLink = (id) => `/queues/${encodeURIComponent(id)}`;

  /** One list row, the same markup as pages/list.html. */
  function renderRow(q) {
    const n = (q.scenarios || []).length;
    const bits = [n ? `${n} scenario${n === 1 ? '' : 's'}` : 'all scenarios', `priority ${q.priority}`];
    if (q.attempt > 1) bits.push(`attempt ${q.attempt}`);
    let reason = null;
    if (q.waiting_reason) reason = h('span', { class: 'reason', text: q.waiting_reason });
    else if (q.error) reason = h('span', { class: 'reason reason-error', text: q.error });
    return h('tr', { class: 'qrow', 'data-id': q.id, 'data-status': q.status, 'data-created': q.created_at },
      h('td', { 'data-label': 'Queue', class: 'qid' },
        h('a', { href: queueLink(q.id), text: q.id }), h('span', { class: 'small muted', text: bits.join(' · ') })),
      h('td', { 'data-label': 'Status' }, badge(q.status), reason),
      h('td', { 'data-label': 'Source' },
        h('span', { class: 'mono repo', text: q.repo }),
        h('span', { class: 'mono ref', text: q.branch || q.commit || 'default branch' })),
      h('td', { 'data-label': 'Environment', text: q.environment }),
      h('td', { 'data-label': 'Created' }, timeEl(q.created_at, 'rel')),
      h('td', { 'data-label': 'Duration', class: 'num' }, durEl(q.started_at, q.finished_at)));
  }

  function listPage(app) {
    const filter = app.dataset.filter || '';
    const paged = Boolean(app.dataset.paged);
    const rows = $('#rows');
    const rowOf = (id) => rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    const updateEmpty = () => { $('#empty').hidden = rows.children.length > 0; };

    function upsert(q) {
      const old = rowOf(q.id);
      if (filter && q.status !== filter) {
        if (old) old.remove();
        updateEmpty();
        return;
      }
      const tr = renderRow(q);
      if (old) {
        if (old.dataset.status !== q.status) tr.classList.add('flash');
        old.replaceWith(tr);
      } else if (!paged) {
        const after = Array.from(rows.children).find((r) => r.dataset.created < q.created_at);
        if (after) rows.insertBefore(tr, after);
        else if (!$('.pager a[href*="cursor"]')) rows.append(tr);
        else return;
        tr.classList.add('flash');
      }
      updateEmpty();
    }

    function count(status, delta) {
      const b = status && $(`[data-count="${status}"]`);
      if (b) b.textContent = Math.max(0, Number(b.textContent) + delta);
    }

    const refresh = coalesce(async (id) => {
      try {
        upsert(await api('GET', `/api/queues/${encodeURIComponent(id)}`));
      } catch (e) {
        if (e.status === 404) { const r = rowOf(id); if (r) r.remove(); updateEmpty(); } else notify(e.message);
      }
    });

    followChanges(app.dataset.seq, (c) => {
      if (c.task) return;
      count(c.from, -1);
      count(c.to, 1);
      if (c.from === null) count('all', 1);
      if (c.to === null) {
        count('all', -1);
        const r = rowOf(c.queue);
        if (r) r.remove();
        updateEmpty();
        return;
      }
      refresh(c.queue);
    }, () => window.location.reload(), $('#conn'));

    const form = $('#enqueue');
    if (form) enqueueForm(form, upsert);
  }

  /** The enqueue form: posts JSON, shows an API error next to the field it names. */
  function enqueueForm(form, onCreated) {
    const fieldBox = { repo: 'repo', branch: 'ref', commit: 'ref', environment: 'environment', scenarios: 'scenarios', priority: 'priority' };
    const submit = $('#enqueue-submit');
    const formError = $('#form-error');
    const ok = $('#form-ok');

    function clear() {
      $$('.field-error', form).forEach((p) => { p.hidden = true; p.textContent = ''; });
      $$('[aria-invalid]', form).forEach((i) => i.removeAttribute('aria-invalid'));
      formError.hidden = true;
      ok.hidden = true;
    }

    function fieldError(field, message) {
      const box = fieldBox[field];
      if (!box) { formError.textContent = message; formError.hidden = false; return; }
      const p = $(`#e-${box}`);
      p.textContent = message;
      p.hidden = false;
      const input = $(`#f-${box}`);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear();
      const value = (name) => String(form.elements[name].value || '').trim();
      const body = { repo: value('repo'), environment: value('environment') };
      if (!body.repo) { fieldError('repo', 'Give a git URL or a path on the server.'); return; }
      const ref = value('ref');
      if (ref) body[value('ref_kind') === 'commit' ? 'commit' : 'branch'] = ref;
      const scenarios = value('scenarios').split(',').map((s) => s.trim()).filter(Boolean);
      if (scenarios.length) body.scenarios = scenarios;
      const priority = value('priority');
      if (priority !== '') {
        if (!/^-?\d{1,9}$/.test(priority)) { fieldError('priority', 'Use a whole number, e.g. 0 or 10.'); return; }
        body.priority = Number(priority);
      }
      submit.disabled = true;
      submit.textContent = 'Enqueuing…';
      try {
        const q = await api('POST', '/api/queues', body);
        ok.replaceChildren('Enqueued ', h('a', { href: queueLink(q.id), text: q.id }), '.');
        ok.hidden = false;
        onCreated(q);
      } catch (e) {
        fieldError(e.field, e.message);
      } finally {
        submit.disabled = false;
        submit.textContent = 'Enqueue';
      }
    });
  }

  // ---- the queue page ----------------------------------------------------------------------

  /** The test counts of a task, the same markup as the `counts` macro. */
  function renderCounts(c) {
    const items = [h('li', { class: 'count count-total' }, h('b', { text: c.total }), ' tests')];
    for (const [key, label] of [['passed', 'passed'], ['failed', 'failed'], ['timed_out', 'timed out'], ['error', 'error'], ['skipped', 'skipped']]) {
      if (c[key]) items.push(h('li', { class: `count status-${key}` }, h('b', { text: c[key] }), ` ${label}`));
    }
    return h('ul', { class: 'counts', 'aria-label': 'Test counts' }, items);
  }

  /** Where a test's HTML log lives under its task directory, as the server names it. */
  function testLogPath(suite, name) {
    const part = (s) => {
      let out = Array.from(s).map((c) => (/^[A-Za-z0-9._-]$/.test(c) ? c : '_')).slice(0, 100).join('');
      if (out === '' || out.startsWith('.')) out = `_${out.slice(1)}`;
      return out;
    };
    return `tests/${part(suite)}/${part(name)}.html`;
  }

  /** The tests of a task, the same markup as the `tests_table` macro. */
  function renderTests(tests, prefix) {
    if (!tests.length) return h('p', { class: 'muted empty', text: 'No test results.' });
    const th = (text, cls) => h('th', { scope: 'col', class: cls, text });
    return h('div', { class: 'table-wrap' }, h('table', { class: 'tests' },
      h('thead', {}, h('tr', {}, th('Suite'), th('Test'), th('Status'), th('Duration', 'num'), th('Message'), th('Log'))),
      h('tbody', {}, tests.map((t) => h('tr', { class: `row-${t.status}` },
        h('td', { 'data-label': 'Suite', text: t.suite }),
        h('td', { 'data-label': 'Test', class: 'name', text: t.name }),
        h('td', { 'data-label': 'Status' }, badge(t.status)),
        h('td', { 'data-label': 'Duration', class: 'num', text: duration(t.duration_ms) }),
        h('td', { 'data-label': 'Message', class: 'message', text: t.message || '' }),
        h('td', { 'data-label': 'Log' }, h('a', { href: prefix + testLogPath(t.suite, t.name), text: 'log' })))))));
  }

  const TERMINAL = new Set(['passed', 'failed', 'error', 'timed_out', 'aborted', 'skipped']);

  function countTests(tests) {
    const c = { total: tests.length, passed: 0, failed: 0, timed_out: 0, error: 0, skipped: 0 };
    tests.forEach((t) => { c[t.status] = (c[t.status] || 0) + 1; });
    return c;
  }

  function renderTask(q, t) {
    const base = `/queues/${encodeURIComponent(q.id)}/files/tasks/${encodeURIComponent(t.id)}/`;
    let meta = 'not started';
    if (t.started_at && t.finished_at) meta = duration(Date.parse(t.finished_at) - Date.parse(t.started_at));
    else if (t.status === 'running') meta = 'running';
    const files = TERMINAL.has(t.status) ? h('nav', { class: 'links', 'aria-label': `Files of task ${t.id}` },
      ['report.html', 'junit.xml', 'summary.json'].map((f) => h('a', { class: 'pill', href: base + f, text: f }))) : null;
    return h('section', { class: `card task status-edge-${t.status}`, id: `task-${t.id}`, 'aria-labelledby': `task-title-${t.id}` },
      h('div', { class: 'card-head' },
        h('div', {}, h('h2', { id: `task-title-${t.id}`, text: t.id }), h('p', { class: 'sub mono', text: t.scenario })),
        badge(t.status)),
      renderCounts(countTests(t.tests)),
      h('p', { class: 'meta', text: meta }),
      t.error ? h('pre', { class: 'message-box', text: t.error }) : null,
      files,
      renderTests(t.tests, base));
  }

  function factTime(dd, iso) {
    dd.replaceChildren(iso ? timeEl(iso, 'abs') : '—');
  }

  function queuePage(app) {
    const id = app.dataset.queue;
    const log = new LogView(id);
    let lastTasks = null;
    let gone = false;

    function render(q) {
      const head = $('#head');
      head.className = head.className.replace(/status-edge-\S+/, `status-edge-${q.status}`);
      $('#q-status').replaceChildren(badge(q.status));
      document.title = `${q.id} · ${human(q.status)} · TestArena`;
      $('[data-fact="attempt"]').textContent = q.attempt;
      factTime($('[data-fact="started_at"]'), q.started_at);
      factTime($('[data-fact="finished_at"]'), q.finished_at);
      const dur = $('#q-duration');
      dur.dataset.start = q.started_at || '';
      dur.dataset.end = q.finished_at || '';
      paintDuration(dur);
      const reason = $('#q-reason');
      reason.textContent = q.waiting_reason || '';
      reason.hidden = !q.waiting_reason;
      const error = $('#q-error');
      error.textContent = q.error || '';
      error.hidden = !q.error;
      const terminal = TERMINAL.has(q.status);
      $('#q-report').hidden = !terminal;
      $('#abort').disabled = terminal || gone;
      const tasks = JSON.stringify(q.tasks);
      if (tasks !== lastTasks) {
        lastTasks = tasks;
        const box = $('#tasks');
        if (q.tasks.length) box.replaceChildren(...q.tasks.map((t) => renderTask(q, t)));
        else box.replaceChildren(h('section', { class: 'card' }, h('p', { class: 'muted empty', text: terminal ? 'This queue has no tasks.' : 'No tasks yet: they are listed once the run has found its scenarios.' })));
      }
    }

    function markGone() {
      if (gone) return;
      gone = true;
      log.stop('Deleted');
      $('#abort').disabled = true;
      $('#delete').disabled = true;
      $('#head').after(h('section', { class: 'card banner', role: 'alert' },
        h('p', {}, 'This queue was deleted. ', h('a', { href: '/', text: 'Back to all queues' }))));
    }

    const refresh = coalesce(async () => {
      if (gone) return;
      try { render(await api('GET', `/api/queues/${encodeURIComponent(id)}`)); } catch (e) {
        if (e.status === 404) markGone(); else notify(`Could not refresh the queue: ${e.message}`);
      }
    });

    followChanges(app.dataset.seq, (c) => {
      if (c.queue !== id) return;
      if (c.to === null && !c.task) markGone(); else refresh(id);
    }, () => refresh(id), null);

    $('#abort').addEventListener('click', async (ev) => {
      const btn = ev.currentTarget;
      if (!await confirmAction('Abort this queue?', `Queue ${id} stops now: its processes are terminated and it is marked aborted.`, 'Abort')) return;
      btn.disabled = true;
      btn.textContent = 'Aborting…';
      try {
        render(await api('POST', `/api/queues/${encodeURIComponent(id)}/abort`));
        notify(`Queue ${id} aborted.`, 'ok', 4000);
      } catch (e) {
        notify(e.status === 202 ? e.message : `Abort failed: ${e.message}`, e.status === 202 ? 'warn' : 'error');
        btn.disabled = false;
        refresh(id);
      } finally {
        btn.textContent = 'Abort';
      }
    });

    $('#delete').addEventListener('click', async (ev) => {
      const btn = ev.currentTarget;
      if (!await confirmAction('Delete this queue?', `Queue ${id} is aborted if it runs, then its record, log and reports are removed. This cannot be undone.`, 'Delete')) return;
      btn.disabled = true;
      try {
        await api('DELETE', `/api/queues/${encodeURIComponent(id)}`);
        markGone();
      } catch (e) {
        if (e.status === 404) markGone();
        else { notify(`Delete failed: ${e.message}`); btn.disabled = false; }
      }
    });
  }

  // ---- the log viewer ----------------------------------------------------------------------

  const MARKER = /^=== (step|task|test|queue) (\S+) (.*)$/;
  const OUTCOMES = new Set(['passed', 'failed', 'error', 'timed_out', 'aborted', 'cancelled', 'skipped']);
  /** Rows drawn above and below the visible ones. */
  const OVERSCAN = 20;
  /** Tallest spacer we make; longer logs map scroll positions onto lines proportionally. */
  const MAX_PX = 8000000;
  /** Marker entries shown in the side list; more are counted, not drawn. */
  const MAX_MARKERS = 5000;

  /**
   * A live, virtual log: every line is kept in an array, only the visible window is in the DOM
   * (rows of a fixed height, recycled), so a log of hundreds of thousands of lines stays smooth.
   */
  class LogView {
    constructor(id) {
      this.url = `/api/queues/${encodeURIComponent(id)}/log/stream`;
      this.view = $('#logview');
      this.spacer = $('#log-spacer');
      this.win = $('#log-window');
      this.state = $('#log-state');
      this.lines = [];
      this.pool = [];
      this.follow = true;
      this.pausedAt = 0;
      this.offset = 0;
      this.ended = false;
      this.current = -1;
      this.version = 0;
      this.query = '';
      this.matches = [];
      this.matchAt = -1;
      this.marks = new Map();
      this.markCount = 0;
      this.painted = false;
      this.lineH = this.measure();
      this.bind();
      this.connect();
    }

    measure() {
      const probe = h('div', { class: 'log-line' }, h('span', { class: 'ln', text: '1' }), h('span', { class: 'lt', text: 'x' }));
      this.win.append(probe);
      const px = probe.getBoundingClientRect().height;
      probe.remove();
      return px > 0 ? px : 20;
    }

    bind() {
      this.view.addEventListener('scroll', () => {
        const atBottom = this.view.scrollTop + this.view.clientHeight >= this.view.scrollHeight - this.lineH;
        if (atBottom !== this.follow) this.setFollow(atBottom);
        this.schedule();
      }, { passive: true });
      if (window.ResizeObserver) new ResizeObserver(() => this.schedule()).observe(this.view);
      $('#log-follow').addEventListener('click', () => this.setFollow(!this.follow));
      const q = $('#log-q');
      let timer = 0;
      q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => this.search(q.value), 150); });
      q.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && e.shiftKey) { e.preventDefault(); this.search(q.value); this.step(-1); }
        if (e.key === 'Escape') { q.value = ''; this.search(''); }
      });
      $('#log-search').addEventListener('submit', (e) => { e.preventDefault(); this.search(q.value); this.step(1); });
      $('#log-prev').addEventListener('click', () => { this.search(q.value); this.step(-1); });
      document.addEventListener('keydown', (e) => {
        const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
        if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey) { e.preventDefault(); q.focus(); }
      });
    }

    connect() {
      setConn(this.state, 'connecting', 'Connecting…');
      const es = new EventSource(`${this.url}?from=${this.offset}`);
      this.es = es;
      es.onopen = () => setConn(this.state, 'live', 'Live');
      es.addEventListener('log', (e) => {
        this.offset = Number(e.lastEventId) || this.offset;
        this.append(e.data);
      });
      es.addEventListener('end', (e) => {
        let status = 'finished';
        try { status = JSON.parse(e.data).status; } catch (err) { /* keep the default */ }
        this.ended = true;
        es.close();
        setConn(this.state, `ended-${status}`, `Ended · ${human(status)}`);
        this.schedule(() => performance.mark('testarena:log-complete'));
      });
      es.onerror = () => {
        if (this.ended) return;
        if (es.readyState === EventSource.CLOSED) {
          setConn(this.state, 'reconnecting', 'Connection lost · retrying');
          this.retry = setTimeout(() => this.connect(), 3000);
        } else {
          setConn(this.state, 'reconnecting', 'Reconnecting…');
        }
      };
    }

    stop(text) {
      this.ended = true;
      clearTimeout(this.retry);
      if (this.es) this.es.close();
      setConn(this.state, 'ended', text);
    }

    append(text) {
      const start = this.lines.length;
      const parts = text.split('\n');
      for (let k = 0; k < parts.length; k++) {
        const line = parts[k];
        const i = start + k;
        this.lines.push(line);
        if (line.charCodeAt(0) === 61 && line.startsWith('=== ')) this.marker(i, line);
        if (this.query && line.toLowerCase().includes(this.query)) this.matches.push(i);
      }
      if (this.query) this.showHits();
      this.schedule();
    }

    marker(i, line) {
      const m = MARKER.exec(line);
      if (!m) return;
      const [, kind, name, event] = m;
      const word = event.split(/[\s:(]/)[0];
      const state = word === 'started' ? 'running' : (OUTCOMES.has(word) ? word : 'info');
      const key = `${kind} ${name}`;
      let entry = this.marks.get(key);
      if (!entry || word === 'started') {
        entry = { line: i, el: null };
        this.marks.set(key, entry);
        this.markCount++;
        if (this.markCount <= MAX_MARKERS) {
          const btn = h('button', { type: 'button', class: 'mk-btn' },
            h('span', { class: 'mk-kind', text: kind }),
            h('span', { class: 'mk-name', text: kind === 'queue' ? 'run' : name }),
            h('span', { class: 'mk-state' }));
          btn.addEventListener('click', () => this.jumpTo(entry.line));
          entry.el = h('li', { class: `mk mk-${kind}` }, btn);
          $('#markers').append(entry.el);
          $('#markers-empty').hidden = true;
        }
      }
      if (entry.el) {
        entry.el.dataset.state = state;
        entry.el.querySelector('.mk-state').textContent = word === 'started' ? 'running' : event;
        entry.el.firstChild.title = line;
      }
    }

    setFollow(on) {
      this.follow = on;
      if (!on) this.pausedAt = this.lines.length;
      this.paintFollow();
      if (on) this.schedule();
    }

    paintFollow() {
      const btn = $('#log-follow');
      btn.setAttribute('aria-pressed', String(this.follow));
      const fresh = this.lines.length - this.pausedAt;
      btn.textContent = this.follow ? 'Following' : (fresh > 0 ? `Follow (${fresh.toLocaleString()} new)` : 'Follow');
      btn.classList.toggle('btn-primary', !this.follow);
    }

    search(text) {
      const query = text.trim().toLowerCase();
      if (query === this.query) return;
      this.query = query;
      this.matches = [];
      this.matchAt = -1;
      if (query) this.lines.forEach((l, i) => { if (l.toLowerCase().includes(query)) this.matches.push(i); });
      this.version++;
      this.showHits();
      this.schedule();
    }

    showHits() {
      const hits = $('#log-hits');
      if (!this.query) hits.textContent = '';
      else if (!this.matches.length) hits.textContent = 'no match';
      else hits.textContent = `${this.matchAt < 0 ? '–' : (this.matchAt + 1).toLocaleString()} of ${this.matches.length.toLocaleString()}`;
    }

    step(dir) {
      const n = this.matches.length;
      if (!n) return;
      if (this.matchAt < 0) {
        const top = this.firstVisible();
        const k = this.matches.findIndex((i) => i >= top);
        this.matchAt = dir > 0 ? (k < 0 ? 0 : k) : (k <= 0 ? n - 1 : k - 1);
      } else {
        this.matchAt = (this.matchAt + dir + n) % n;
      }
      this.showHits();
      this.jumpTo(this.matches[this.matchAt]);
    }

    /** The scroll geometry: real height of all lines, spacer height, and their ratio. */
    geometry() {
      const total = this.lines.length * this.lineH;
      const px = Math.min(total, MAX_PX);
      const vh = this.view.clientHeight;
      const ratio = px > vh && total > px ? (total - vh) / (px - vh) : 1;
      return { total, px, vh, ratio };
    }

    firstVisible() {
      return Math.floor((this.view.scrollTop * this.geometry().ratio) / this.lineH);
    }

    jumpTo(i) {
      this.setFollow(false);
      this.current = i;
      this.version++;
      const g = this.geometry();
      this.view.scrollTop = Math.max(0, i * this.lineH - g.vh / 3) / g.ratio;
      this.schedule();
    }

    schedule(after) {
      if (after) (this.after = this.after || []).push(after);
      if (this.scheduled) return;
      this.scheduled = true;
      requestAnimationFrame(() => { this.scheduled = false; this.render(); });
    }

    render() {
      const n = this.lines.length;
      const H = this.lineH;
      const g = this.geometry();
      if (this.height !== g.px) {
        this.height = g.px;
        this.spacer.style.height = `${g.px}px`;
      }
      if (this.shown !== n) {
        this.shown = n;
        const digits = String(n).length;
        if (digits !== this.digits) {
          this.digits = digits;
          this.view.style.setProperty('--gutter', `${digits + 1}ch`);
        }
        $('#log-count').textContent = `${n.toLocaleString()} line${n === 1 ? '' : 's'}`;
        this.view.classList.toggle('is-empty', n === 0);
      }
      if (this.follow && n) this.view.scrollTop = this.view.scrollHeight;
      else if (!this.follow) this.paintFollow();
      const scrollTop = this.view.scrollTop;
      const realTop = scrollTop * g.ratio;
      const first = Math.max(0, Math.floor(realTop / H) - OVERSCAN);
      const last = Math.min(n, Math.ceil((realTop + g.vh) / H) + OVERSCAN);
      const count = Math.max(0, last - first);
      while (this.pool.length < count) {
        const row = h('div', { class: 'log-line' }, h('span', { class: 'ln' }), h('span', { class: 'lt' }));
        this.win.append(row);
        this.pool.push(row);
      }
      this.win.style.transform = `translateY(${scrollTop + (first * H - realTop)}px)`;
      for (let k = 0; k < this.pool.length; k++) {
        const row = this.pool[k];
        if (k >= count) { if (!row.hidden) { row.hidden = true; row.idx = -1; } continue; }
        const i = first + k;
        if (row.hidden) row.hidden = false;
        if (row.idx === i && row.ver === this.version) continue;
        row.idx = i;
        row.ver = this.version;
        const text = this.lines[i];
        row.firstChild.textContent = i + 1;
        this.paintText(row.lastChild, text);
        let cls = 'log-line';
        if (text.startsWith('=== ')) cls += ' log-mk';
        if (this.query && text.toLowerCase().includes(this.query)) cls += ' is-match';
        if (i === this.current) cls += ' is-current';
        row.className = cls;
      }
      if (n && !this.painted) {
        this.painted = true;
        performance.mark('testarena:log-first-lines');
      }
      const after = this.after;
      this.after = null;
      if (after) after.forEach((f) => f());
    }

    /** The line as text; matches of the search wrapped in <mark>, still as text nodes. */
    paintText(span, text) {
      const q = this.query;
      const lower = q ? text.toLowerCase() : '';
      // Lower-casing can change the length of a few characters: then no offsets to trust.
      if (!q || !lower.includes(q) || lower.length !== text.length) { span.textContent = text; return; }
      const parts = [];
      let at = 0;
      for (let k = lower.indexOf(q); k >= 0; k = lower.indexOf(q, at)) {
        if (k > at) parts.push(text.slice(at, k));
        parts.push(h('mark', { text: text.slice(k, k + q.length) }));
        at = k + q.length;
      }
      if (at < text.length) parts.push(text.slice(at));
      span.replaceChildren(...parts);
    }
  }

  // ---- start ------------------------------------------------------------------------------

  function start() {
    const app = $('#app');
    if (app && app.dataset.page === 'list') listPage(app);
    if (app && app.dataset.page === 'queue') queuePage(app);
    tick();
    setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
