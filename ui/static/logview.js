// TestArena dashboard: the windowed live log viewer of the queue page (follow, search, jump to
// a step, task or test; console colours as classes; the queue's log or one task's). Needs
// common.js and ansi.js.
(() => {
  'use strict';

  const { $, h, human, setConn, ansi } = window.TA;

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
      this.id = id;
      this.base = `/api/queues/${encodeURIComponent(id)}`;
      this.url = `${this.base}/log/stream`;
      this.view = $('#logview');
      this.spacer = $('#log-spacer');
      this.win = $('#log-window');
      this.state = $('#log-state');
      this.reset();
      this.lineH = this.measure();
      this.bind();
      this.connect();
    }

    /** Shows one task's own log (`task`), or every task's (`''`): a new stream from the start. */
    show(task) {
      const base = task ? `${this.base}/tasks/${encodeURIComponent(task)}/log` : `${this.base}/log`;
      clearTimeout(this.retry);
      if (this.es) this.es.close();
      this.url = `${base}/stream`;
      const download = $('#log-download');
      download.href = base;
      download.download = task ? `${this.id}-${task}.log` : `${this.id}.log`;
      $('#markers').replaceChildren();
      $('#markers-empty').hidden = false;
      this.win.replaceChildren();
      this.reset();
      this.height = -1;
      this.shown = -1;
      const q = $('#log-q');
      if (q.value) this.search(q.value);
      this.schedule();
      this.connect();
    }

    /** Forgets every line: the state of a viewer that has read nothing yet. */
    reset() {
      /** Every line's text, escape sequences removed (what search and markers read). */
      this.lines = [];
      /** The coloured lines' runs (`[{ text, cls }]`) by line index. */
      this.styles = new Map();
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
      const task = $('#log-task');
      if (task) task.addEventListener('change', () => this.show(task.value));
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
        const i = start + k;
        const { text: line, segs } = ansi.parse(parts[k]);
        this.lines.push(line);
        if (segs) this.styles.set(i, segs);
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
        this.paintText(row.lastChild, text, this.styles.get(i));
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

    /**
     * The line as text nodes: its coloured runs (`segs`) in spans with their classes, matches of
     * the search wrapped in <mark>. Never parsed as HTML.
     */
    paintText(span, text, segs) {
      const q = this.query;
      const lower = q ? text.toLowerCase() : '';
      // Lower-casing can change the length of a few characters: then no offsets to trust.
      const hits = q && lower.includes(q) && lower.length === text.length;
      if (!hits && !segs) { span.textContent = text; return; }
      const ranges = [];
      if (hits) for (let k = lower.indexOf(q); k >= 0; k = lower.indexOf(q, k + q.length)) ranges.push([k, k + q.length]);
      const parts = [];
      let at = 0;
      let r = 0;
      for (const run of segs || [{ text, cls: '' }]) {
        const end = at + run.text.length;
        const pieces = [];
        for (let pos = at; pos < end;) {
          while (r < ranges.length && ranges[r][1] <= pos) r++;
          const range = ranges[r];
          const inside = range && range[0] <= pos;
          const stop = inside ? Math.min(end, range[1]) : (range ? Math.min(end, range[0]) : end);
          pieces.push(inside ? h('mark', { text: text.slice(pos, stop) }) : text.slice(pos, stop));
          pos = stop;
        }
        if (run.cls) parts.push(h('span', { class: run.cls }, pieces));
        else parts.push(...pieces);
        at = end;
      }
      span.replaceChildren(...parts);
    }
  }

  window.TA.LogView = LogView;
})();
