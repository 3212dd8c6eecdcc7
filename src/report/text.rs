//! Text clean-up and formatting shared by every report format.
//!
//! Console output is untrusted: it carries ANSI escape sequences and stray control characters, some
//! of which XML 1.0 forbids outright. [`clean`] strips the escape sequences and replaces every
//! character that is not allowed in XML 1.0 with U+FFFD, so the same text is safe in HTML and in
//! JUnit XML (escaping of `<`, `&` and quotes is left to the template engine). The per-test HTML
//! log renders colours instead ([`super::ansi::html`]).

use std::borrow::Cow;

use crate::model::Millis;

pub use super::ansi::{REPLACEMENT, is_xml_char};

/// Removes ANSI escape sequences (all of them, see [`super::ansi`]) and replaces characters
/// invalid in XML 1.0 with U+FFFD. Borrows when there is nothing to change, which is the common
/// case.
pub fn clean(s: &str) -> Cow<'_, str> {
    super::ansi::strip(s)
}

/// [`clean`], owned.
pub fn cleaned(s: &str) -> String {
    clean(s).into_owned()
}

/// Seconds with three decimals, as JUnit wants them: `1234` → `"1.234"`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A short human duration: `850 ms`, `12.3 s`, `4m 05s`, `1h 02m`.
pub fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// The offset of a transcript line from the start of its test: `+12.345s`.
pub fn offset(ms: u64) -> String {
    format!("+{}s", seconds(ms))
}

/// Time between two instants, zero when the end is missing or before the start.
pub fn span(start: Option<Millis>, end: Option<Millis>) -> Option<u64> {
    match (start, end) {
        (Some(s), Some(e)) => Some(u64::try_from(e.saturating_sub(s)).unwrap_or(0)),
        _ => None,
    }
}

/// Escapes a value for an XML attribute, keeping line breaks and tabs (which a parser would
/// otherwise normalise to spaces) as character references.
pub fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push(REPLACEMENT),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(clean(input), expected, "clean({input:?})");
    }

    #[test]
    fn clean_strips_colours_and_replaces_controls() {
        check("plain text", "plain text");
        check("tab\tand\r\nlines", "tab\tand\r\nlines");
        check("\u{1b}[0;32mI (312) boot: ok\u{1b}[0m", "I (312) boot: ok");
        check("\u{1b}]0;title\u{7}after", "after");
        check("\u{1b}]0;title\u{1b}\\after", "after");
        check("nul\0bell\u{7}vt\u{b}", "nul\u{FFFD}bell\u{FFFD}vt\u{FFFD}");
        check("lone escape \u{1b}x", "lone escape ");
        check("charset \u{1b}(Bselected", "charset selected");
        check("unterminated \u{1b}[12", "unterminated ");
        check(
            "non-characters \u{FFFE}\u{FFFF}",
            "non-characters \u{FFFD}\u{FFFD}",
        );
        check("ünïcödé ✓ 🚀", "ünïcödé ✓ 🚀");
        assert!(matches!(clean("borrowed"), Cow::Borrowed(_)));
    }

    #[test]
    fn durations_format() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(60_005), "60.005");
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4m 05s");
        assert_eq!(human_duration(3_720_000), "1h 02m");
        assert_eq!(offset(1500), "+1.500s");
        assert_eq!(span(Some(1000), Some(2500)), Some(1500));
        assert_eq!(span(Some(2500), Some(1000)), Some(0));
        assert_eq!(span(Some(1000), None), None);
    }

    #[test]
    fn xml_attr_escapes_everything() {
        assert_eq!(
            xml_attr("<a href=\"x\">&'\n\t\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&#10;&#9;\u{FFFD}"
        );
    }
}
