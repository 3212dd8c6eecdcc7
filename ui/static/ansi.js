// TestArena dashboard: ANSI escape sequences in log lines, as the server's reports read them
// (src/report/ansi.rs). SGR colours and attributes become CSS classes (`ansi-fg-2`, `ansi-bold`…),
// every other sequence — cursor movement, erase, charset selection such as `ESC ( B`, titles,
// device control strings — is dropped. The result is text and class names only: the viewer
// puts it into the page with textContent. Needs common.js.
(() => {
  'use strict';

  const ESC = '\x1b';

  /** The CSS classes of a style, space-separated; '' for the default style. */
  function classes(s) {
    const out = [];
    if (s.fg !== null) out.push(`ansi-fg-${s.fg}`);
    if (s.bg !== null) out.push(`ansi-bg-${s.bg}`);
    if (s.bold) out.push('ansi-bold');
    if (s.dim) out.push('ansi-dim');
    if (s.italic) out.push('ansi-italic');
    if (s.underline) out.push('ansi-underline');
    return out.join(' ');
  }

  const plain = () => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

  /** An extended colour's arguments (`5;n` or `2;r;g;b`): a palette index below 16, else null. */
  const extended = (args) => (args[0] === 5 && args[1] < 16 ? args[1] : null);

  /** Applies one SGR sequence's parameter text (`0;32`, `38:5:1`, ``) to the style `s`. */
  function sgr(s, text) {
    const params = text === '' ? [[0]] : text.split(';').map((p) => p.split(':').map((n) => Number(n) || 0));
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      const code = p[0];
      if (code === 0) Object.assign(s, plain());
      else if (code === 1) s.bold = true;
      else if (code === 2) s.dim = true;
      else if (code === 3) s.italic = true;
      else if (code === 4) s.underline = true;
      else if (code === 22) { s.bold = false; s.dim = false; }
      else if (code === 23) s.italic = false;
      else if (code === 24) s.underline = false;
      else if (code >= 30 && code <= 37) s.fg = code - 30;
      else if (code === 39) s.fg = null;
      else if (code >= 40 && code <= 47) s.bg = code - 40;
      else if (code === 49) s.bg = null;
      else if (code >= 90 && code <= 97) s.fg = code - 90 + 8;
      else if (code >= 100 && code <= 107) s.bg = code - 100 + 8;
      else if (code === 38 || code === 48) {
        let args;
        if (p.length > 1) args = p.slice(1);
        else {
          const kind = i + 1 < params.length ? params[++i][0] : null;
          const n = kind === 5 ? 1 : (kind === 2 ? 3 : 0);
          args = [kind, ...params.slice(i + 1, i + 1 + n).map((v) => v[0])];
          i += Math.min(n, params.length - i - 1);
        }
        s[code === 38 ? 'fg' : 'bg'] = extended(args);
      }
    }
  }

  /**
   * A log line without its escape sequences: `{ text, segs }`, where `segs` lists the runs of
   * text with their classes (`[{ text, cls }]`) when any run is styled, else is null.
   */
  function parse(line) {
    if (!line.includes(ESC)) return { text: line, segs: null };
    const segs = [];
    const style = plain();
    let cls = '';
    let styled = false;
    const put = (t) => {
      if (!t) return;
      const last = segs[segs.length - 1];
      if (last && last.cls === cls) last.text += t;
      else segs.push({ text: t, cls });
      if (cls) styled = true;
    };
    let i = 0;
    const n = line.length;
    while (i < n) {
      const e = line.indexOf(ESC, i);
      if (e < 0) { put(line.slice(i)); break; }
      put(line.slice(i, e));
      i = e + 1;
      if (i >= n) break;
      const c = line.charCodeAt(i);
      if (c === 0x5b) { // CSI: parameters 0x30–0x3F, intermediates 0x20–0x2F, final 0x40–0x7E
        let j = i + 1;
        while (j < n && line.charCodeAt(j) >= 0x30 && line.charCodeAt(j) <= 0x3f) j++;
        const params = line.slice(i + 1, j);
        const k = j;
        while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
        if (j >= n) { i = n; break; }
        const final = line[j];
        if (final === 'm' && k === j && /^[0-9;:]*$/.test(params)) { sgr(style, params); cls = classes(style); }
        i = j + 1;
      } else if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) {
        // OSC, DCS, SOS, PM, APC: a string ended by BEL (OSC) or ST (ESC \).
        let j = i + 1;
        for (; j < n; j++) {
          if (line[j] === '\x07' && c === 0x5d) { j++; break; }
          if (line[j] === ESC && line[j + 1] === '\\') { j += 2; break; }
        }
        i = j;
      } else {
        // Any other escape: intermediates 0x20–0x2F (`(` of `ESC ( B`), then one final byte.
        let j = i;
        while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
        i = j + 1;
      }
    }
    const text = segs.map((s) => s.text).join('');
    return { text, segs: styled ? segs : null };
  }

  window.TA.ansi = { parse };
})();
