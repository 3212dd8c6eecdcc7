//! SGR sequences into spans, everything else dropped, HTML escaped.

use super::*;

const E: &str = "\u{1b}";

/// `input` rendered as HTML.
fn check(input: &str, expected: &str) {
    assert_eq!(html(input), expected, "html({input:?})");
}

#[test]
fn esp_idf_log_lines_become_coloured_spans() {
    check(
        &format!("{E}[0;32mI (312) main: hello{E}[0m"),
        r#"<span class="ansi-fg-2">I (312) main: hello</span>"#,
    );
    check(
        &format!("{E}[0;33mW (5) wifi: weak{E}[0m tail"),
        r#"<span class="ansi-fg-3">W (5) wifi: weak</span> tail"#,
    );
    check(
        &format!("{E}[0;31mE (9) app: failed{E}[0m"),
        r#"<span class="ansi-fg-1">E (9) app: failed</span>"#,
    );
}

#[test]
fn colours_and_attributes() {
    let cases = [
        // Bold and its reset; 22 also ends dim.
        (
            "[1mbold[22mplain",
            r#"<span class="ansi-bold">bold</span>plain"#,
        ),
        ("[2mdim[22m.", r#"<span class="ansi-dim">dim</span>."#),
        (
            "[3mi[23m[4mu[24m",
            r#"<span class="ansi-italic">i</span><span class="ansi-underline">u</span>"#,
        ),
        // Every normal and bright foreground.
        (
            "[30ma[37mb[90mc[97md",
            r#"<span class="ansi-fg-0">a</span><span class="ansi-fg-7">b</span><span class="ansi-fg-8">c</span><span class="ansi-fg-15">d</span>"#,
        ),
        // Backgrounds, normal and bright, with a foreground.
        (
            "[41;97mx[49my[100mz",
            r#"<span class="ansi-fg-15 ansi-bg-1">x</span><span class="ansi-fg-15">y</span><span class="ansi-fg-15 ansi-bg-8">z</span>"#,
        ),
        ("[47mw", r#"<span class="ansi-bg-7">w</span>"#),
        // 39 resets the foreground only, 0 and an empty SGR everything.
        (
            "[1;31ma[39mb[0mc",
            r#"<span class="ansi-fg-1 ansi-bold">a</span><span class="ansi-bold">b</span>c"#,
        ),
        (
            "[1;31ma[mb",
            r#"<span class="ansi-fg-1 ansi-bold">a</span>b"#,
        ),
        // 256 colours: the first 16 map to the palette, the rest to the default colour; their
        // arguments are never read as codes of their own (5 = blink, 1 = bold, 0 = reset).
        (
            "[38;5;1mr[38;5;200mx",
            r#"<span class="ansi-fg-1">r</span>x"#,
        ),
        ("[48;5;12mb", r#"<span class="ansi-bg-12">b</span>"#),
        ("[38:5:3my", r#"<span class="ansi-fg-3">y</span>"#),
        ("[1;38;2;255;0;0mt", r#"<span class="ansi-bold">t</span>"#),
        (
            "[32;38;2;1;0;0;4mt",
            r#"<span class="ansi-underline">t</span>"#,
        ),
        ("[38;2;10;20mshort", "short"),
        // Codes we do not render leave the style as it was.
        ("[5;7;9;53mplain", "plain"),
        ("[32m[5mgreen", r#"<span class="ansi-fg-2">green</span>"#),
    ];
    for (input, expected) in cases {
        check(&input.replace('[', &format!("{E}[")), expected);
    }
}

#[test]
fn other_sequences_are_dropped() {
    let cases = [
        // Charset selection, as `tput sgr0` writes it.
        ("a\u{1b}(Bb", "ab"),
        ("\u{1b}[1m\u{1b}(B\u{1b}[mx", "x"),
        // Cursor movement, erase, private modes, scrolling regions.
        ("\u{1b}[2K\u{1b}[1Gline", "line"),
        ("\u{1b}[?25lhidden cursor\u{1b}[?25h", "hidden cursor"),
        ("\u{1b}[3;20r\u{1b}[H\u{1b}[2J", ""),
        // Keypad mode, index, save and restore cursor.
        ("\u{1b}=\u{1b}D\u{1b}7x\u{1b}8", "x"),
        // A window title (OSC), ended by BEL or by ST; a hyperlink.
        ("\u{1b}]0;title\u{7}after", "after"),
        ("\u{1b}]0;title\u{1b}\\after", "after"),
        ("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\", "link"),
        // A device control string.
        ("\u{1b}Pq#0;2;0;0;0\u{1b}\\after", "after"),
        // An SGR with an intermediate byte is not an SGR.
        ("\u{1b}[1 mx", "x"),
        // Unterminated at the end of the line.
        ("cut \u{1b}[12", "cut "),
        ("lone \u{1b}", "lone "),
    ];
    for (input, expected) in cases {
        check(input, expected);
        assert_eq!(strip(input), expected, "strip({input:?})");
    }
}

#[test]
fn text_is_escaped_and_cleaned() {
    check(
        "<b>&amp;</b> \"q\" 'a'",
        "&lt;b&gt;&amp;amp;&lt;&#x2f;b&gt; &quot;q&quot; &#x27;a&#x27;",
    );
    check(
        &format!("{E}[31m<script>&{E}[0m>"),
        r#"<span class="ansi-fg-1">&lt;script&gt;&amp;</span>&gt;"#,
    );
    // Controls XML forbids are marked; tab and line breaks stay.
    check("nul\0bell\u{7}vt\u{b}", "nul\u{FFFD}bell\u{FFFD}vt\u{FFFD}");
    check("tab\tcr\r", "tab\tcr\r");
    check(
        &format!("{E}[32mnul\0{E}[0m"),
        "<span class=\"ansi-fg-2\">nul\u{FFFD}</span>",
    );
    check(
        "non-characters \u{FFFE}\u{FFFF}",
        "non-characters \u{FFFD}\u{FFFD}",
    );
    check("ünïcödé ✓ 🚀", "ünïcödé ✓ 🚀");
    check(
        &format!("{E}[1mü🚀{E}[0m"),
        "<span class=\"ansi-bold\">ü🚀</span>",
    );
}

#[test]
fn strip_keeps_the_text_only() {
    assert_eq!(
        strip(&format!("{E}[0;32mI (312) main: hello{E}[0m")),
        "I (312) main: hello"
    );
    assert!(matches!(strip("plain"), Cow::Borrowed("plain")));
    assert_eq!(
        spans(&format!("a{E}[1mb")),
        [
            Span {
                style: Style::default(),
                text: "a".into()
            },
            Span {
                style: Style {
                    bold: true,
                    ..Style::default()
                },
                text: "b".into()
            },
        ]
    );
}
