// TestArena dashboard: the queue list page. Rows follow the change stream live; the counts per
// status follow too. Needs common.js and enqueue.js.
(() => {
  'use strict';

  const {
    $, h, badge, timeEl, durEl, api, notify, followChanges, coalesce, queueLink, enqueueForm, start,
  } = window.TA;

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

  start('list', listPage);
})();
