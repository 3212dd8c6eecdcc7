// TestArena dashboard: the enqueue form on the queue list. Needs common.js.
(() => {
  'use strict';

  const { $, $$, h, api, queueLink } = window.TA;

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

  window.TA.enqueueForm = enqueueForm;
})();
