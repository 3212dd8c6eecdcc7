//! ANSI escape sequences in console text: SGR colours and attributes become styled spans, every
//! other sequence (cursor movement, erase, charset selection such as `ESC ( B`, titles, device
//! control strings) is dropped.
//!
//! The bytes are read by `anstyle-parse`, a VT500-series parser state machine, so a sequence is
//! recognised by the same rules a terminal uses, however it ends. A span's style is a set of CSS
//! classes (`ansi-fg-2`, `ansi-bold`…), never an inline style: the dashboard's content security
//! policy allows none. Text is escaped for HTML here, and characters XML 1.0 forbids become
//! U+FFFD, as in [`super::text::clean`].
//!
//! Colours: 30–37 and 90–97 (foreground), 40–47 and 100–107 (background) are classes 0–15;
//! `38;5;n`/`48;5;n` with `n` below 16 likewise; other 256-colour and true colours fall back to the
//! default colour. Attributes: bold (1), dim (2), italic (3), underline (4) and their resets.

use std::borrow::Cow;

use anstyle_parse::{Params, Parser, Perform};

/// What replaces a character that XML 1.0 does not allow.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether XML 1.0 allows `c` in a document (tab, newline and carriage return are the only
/// control characters it accepts).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// What SGR sequences have set: colours as indexes 0–15 of the terminal palette.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub fg: Option<u8>,
    pub bg: Option<u8>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
}

impl Style {
    /// The CSS classes of this style, space-separated; empty for the default style.
    pub fn classes(&self) -> String {
        let mut out = Vec::new();
        if let Some(c) = self.fg {
            out.push(format!("ansi-fg-{c}"));
        }
        if let Some(c) = self.bg {
            out.push(format!("ansi-bg-{c}"));
        }
        for (on, class) in [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
        ] {
            if on {
                out.push(class.to_owned());
            }
        }
        out.join(" ")
    }

    /// Applies one SGR sequence's parameters (`ESC [ … m`; no parameter means 0).
    fn apply(&mut self, params: &Params) {
        let mut it = params.iter();
        if params.is_empty() {
            *self = Style::default();
        }
        while let Some(p) = it.next() {
            let code = p.first().copied().unwrap_or(0);
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // `38:5:n` carries its arguments as sub-parameters, `38;5;n` as parameters.
                    let colour = if p.len() > 1 {
                        extended(&p[1..])
                    } else {
                        let kind = it.next().and_then(|k| k.first().copied());
                        let args = match kind {
                            Some(5) => 1,
                            Some(2) => 3,
                            _ => 0,
                        };
                        let values: Vec<u16> = it
                            .by_ref()
                            .take(args)
                            .map(|v| v.first().copied().unwrap_or(0))
                            .collect();
                        match kind {
                            Some(k) => extended(&[&[k][..], &values].concat()),
                            None => None,
                        }
                    };
                    if code == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

/// An extended colour (`5;n` or `2;r;g;b`) as a palette index, when it is one of the 16.
fn extended(args: &[u16]) -> Option<u8> {
    match args {
        [5, n, ..] if *n < 16 => Some(*n as u8),
        _ => None,
    }
}

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub style: Style,
    pub text: String,
}

/// Collects the printed text into spans, styled by the SGR sequences met on the way.
#[derive(Default)]
struct Collect {
    style: Style,
    spans: Vec<Span>,
}

impl Collect {
    fn push(&mut self, c: char) {
        let c = if is_xml_char(c) { c } else { REPLACEMENT };
        match self.spans.last_mut() {
            Some(last) if last.style == self.style => last.text.push(c),
            _ => self.spans.push(Span {
                style: self.style,
                text: c.to_string(),
            }),
        }
    }
}

impl Perform for Collect {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        // C0 controls: tab and line breaks are text, the others are marked.
        match byte {
            b'\t' | b'\n' | b'\r' => self.push(byte as char),
            _ => self.push(REPLACEMENT),
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: u8) {
        if action == b'm' && intermediates.is_empty() && !ignore {
            self.style.apply(params);
        }
    }
}

/// The text of `s` in styled spans; an unterminated sequence at the end is dropped.
pub fn spans(s: &str) -> Vec<Span> {
    let mut parser = Parser::<anstyle_parse::DefaultCharAccumulator>::new();
    let mut collect = Collect::default();
    for &b in s.as_bytes() {
        parser.advance(&mut collect, b);
    }
    collect.spans
}

/// Whether `s` has nothing to convert: no escape, no control or other character XML forbids.
fn is_plain(s: &str) -> bool {
    s.chars()
        .all(|c| c != '\u{1b}' && c != '\u{7f}' && is_xml_char(c))
}

/// `s` without escape sequences, with characters XML 1.0 forbids replaced by U+FFFD.
/// Borrows when there is nothing to change, which is the common case.
pub fn strip(s: &str) -> Cow<'_, str> {
    if is_plain(s) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(spans(s).into_iter().map(|span| span.text).collect())
}

/// `s` as HTML: text escaped as the template engine escapes it, each styled run in a `<span class="ansi-…">`.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    if is_plain(s) {
        escape_into(&mut out, s);
        return out;
    }
    for span in spans(s) {
        let classes = span.style.classes();
        if classes.is_empty() {
            escape_into(&mut out, &span.text);
        } else {
            out.push_str("<span class=\"");
            out.push_str(&classes);
            out.push_str("\">");
            escape_into(&mut out, &span.text);
            out.push_str("</span>");
        }
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2f;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
