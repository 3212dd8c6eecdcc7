// TestArena dashboard: the sign-in form. Needs common.js.
(() => {
  'use strict';

  const { $, api } = window.TA;
  const form = $('#signin');
  if (!form) return;
  const error = $('#e-token');
  const input = $('#f-token');
  const submit = $('#signin-submit');

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    input.removeAttribute('aria-invalid');
    const token = String(input.value || '').trim();
    if (!token) {
      error.textContent = 'Paste your token.';
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('POST', '/api/session', { token });
      // Only a path on this server (the server checked it too).
      const next = form.dataset.next || '/';
      location.assign(next.startsWith('/') && !next.startsWith('//') ? next : '/');
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
})();
