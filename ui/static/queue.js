// TestArena dashboard: the queue page. Its header and task cards follow the change stream;
// abort and delete ask first; the log is a LogView. Needs common.js and logview.js.
(() => {
  'use strict';

  const {
    $, h, duration, human, badge, timeEl, paintDuration,
    api, notify, confirmAction, followChanges, coalesce, LogView, start,
  } = window.TA;


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

  // "Re-run of" and "Re-runs": links between a queue and its re-runs.
  function renderFamily(q) {
    const nav = $('#q-family');
    const parts = [];
    if (q.rerun_of) parts.push(h('span', { class: 'muted small', text: 'Re-run of' }), ' ', h('a', { class: 'pill', href: `/queues/${encodeURIComponent(q.rerun_of)}`, text: q.rerun_of }));
    if (q.reruns && q.reruns.length) {
      parts.push(h('span', { class: 'muted small', text: 'Re-runs' }));
      q.reruns.forEach((r) => parts.push(' ', h('a', { class: 'pill', href: `/queues/${encodeURIComponent(r)}`, text: r })));
    }
    nav.replaceChildren(...parts);
    nav.hidden = parts.length === 0;
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
      $('#q-junit').hidden = !terminal;
      $('#abort').disabled = terminal || gone;
      $('#rerun').disabled = !terminal || gone;
      $('#rerun-failed').disabled = !terminal || gone || !q.tasks.some((t) => t.status !== 'passed');
      if (q.resolved_commit) $('[data-fact="resolved_commit"]').textContent = q.resolved_commit;
      renderFamily(q);
      const tasks = JSON.stringify(q.tasks);
      if (tasks !== lastTasks) {
        lastTasks = tasks;
        const box = $('#tasks');
        if (q.tasks.length) box.replaceChildren(...q.tasks.map((t) => renderTask(q, t)));
        else box.replaceChildren(h('section', { class: 'card' }, h('p', { class: 'muted empty', text: terminal ? 'This queue has no tasks.' : 'No tasks yet: they are listed once the run has found its scenarios.' })));
        syncTaskChoice(q.tasks);
      }
    }

    /** The log's task choice lists every task (found scenarios appear once the run has them). */
    function syncTaskChoice(tasks) {
      const select = $('#log-task');
      const have = new Set([...select.options].map((o) => o.value));
      for (const t of tasks) {
        if (!have.has(t.id)) select.append(h('option', { value: t.id, text: t.id }));
      }
    }

    function markGone() {
      if (gone) return;
      gone = true;
      log.stop('Deleted');
      $('#abort').disabled = true;
      $('#delete').disabled = true;
      $('#rerun').disabled = true;
      $('#rerun-failed').disabled = true;
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

    // A re-run is a new queue: go to its page.
    async function rerun(btn, only) {
      btn.disabled = true;
      try {
        const q = await api('POST', `/api/queues/${encodeURIComponent(id)}/rerun`, { only });
        window.location.assign(`/queues/${encodeURIComponent(q.id)}`);
      } catch (e) {
        notify(`Re-run failed: ${e.message}`);
        btn.disabled = false;
      }
    }
    $('#rerun').addEventListener('click', (ev) => rerun(ev.currentTarget, 'all'));
    $('#rerun-failed').addEventListener('click', (ev) => rerun(ev.currentTarget, 'failed'));

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

  start('queue', queuePage);
})();
