//! What every generator draws from: odd characters and strings, boundary numbers, byte
//! mutations (invalid UTF-8 among them), and a readable form of any bytes.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Inputs are cut at this size however a case multiplies (repeats of repeats).
pub const MAX_INPUT: usize = 3 << 20;

/// Numbers at the edges, written as they may appear in any of the formats (some are not
/// numbers there at all).
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "+0",
    "0.0",
    "-0.0",
    "1",
    "-1",
    "1e309",
    "-1e309",
    "1e-400",
    "NaN",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "+inf",
    "Infinity",
    "-2147483648",
    "2147483647",
    "-2147483649",
    "2147483648",
    "-9223372036854775808",
    "9223372036854775807",
    "-9223372036854775809",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "65535",
    "65536",
    "-1000",
    "1000",
    "-1001",
    "1001",
    "9007199254740993",
    "1.7976931348623157e308",
    "5e-324",
    "1e2",
    "1E+2",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "007",
    "1.",
    ".5",
    "-",
    "+",
    "1e",
    "123456789012345678901234567890123456789012345678901234567890",
];

/// Characters that tend to break things: controls, whitespace of every kind, bidi and
/// zero-width marks, noncharacters, the last scalar value, case-mapping oddities, combining
/// marks, and the syntax characters of XML, JSON, TOML, URLs and paths.
pub const ODD_CHARS: &[char] = &[
    '\0',
    '\u{1}',
    '\t',
    '\n',
    '\r',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200d}',
    '\u{200e}',
    '\u{202e}',
    '\u{2028}',
    '\u{2029}',
    '\u{2060}',
    '\u{3000}',
    '\u{feff}',
    '\u{fffd}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{10ffff}',
    '\u{1f600}',
    '\u{1f1e6}',
    '\u{e9}',
    '\u{301}',
    '\u{130}',
    '\u{df}',
    '\u{fb03}',
    '\u{1c5}',
    '\u{1d400}',
    '\u{65e5}',
    '\u{3a9}',
    '\u{d7ff}',
    '\u{e000}',
    '\u{f8ff}',
    '\u{660}',
    '<',
    '>',
    '&',
    '"',
    '\'',
    '\\',
    '/',
    ':',
    '.',
    '-',
    '_',
    ' ',
    '=',
    '[',
    ']',
    '{',
    '}',
    '#',
    '@',
    '~',
    '^',
    '*',
    '?',
    '$',
    '%',
    ',',
    ';',
    '`',
    '|',
    '+',
    '0',
    '9',
    'a',
    'Z',
];

/// Words worth trying anywhere: values the code looks for, and ones it should refuse.
pub const WORDS: &[&str] = &[
    "true",
    "false",
    "null",
    "yes",
    "0s",
    "1ms",
    "-1s",
    "1.5s",
    "1 s",
    " 5m ",
    "5min",
    "1d",
    "ms",
    "999999999999h",
    "1000000000000s",
    "18446744073709551615s",
    "9600h",
    "9601h",
    "1GiB",
    "17179869184GiB",
    "64KiB",
    "79",
    "stdio",
    "unix:",
    "unix:c.sock",
    "tcp:127.0.0.1:5555",
    "tcp:h:99999",
    "bwrap",
    "none",
    "read",
    "write",
    "admin",
    "esp32",
    "xtensa-sim",
    "main",
    "refs/heads/main",
    "refs/tags/v1.2.0",
    "refs/heads/",
    "refs/pull/4/head",
    "opened",
    "synchronized",
    "closed",
    "..",
    ".",
    "../x",
    "/etc/passwd",
    "/proc/self/root/etc",
    "a/../b",
    "a//b",
    "https://",
    "https://x/r",
    "https://gitea.example.invalid/team/fw.git",
    "https://gitea.example.invalid.evil/x.git",
    "https://x/%2e%2e/r",
    "git@h:r",
    "git@-oProxyCommand=x:r",
    "ssh://-oProxyCommand=x/r",
    "file:///srv/x",
    "ext::sh -c x",
    "/srv/fuzz-git/fw",
    "-x",
    "--upload-pack=touch /tmp/x",
    "@",
    "@{1}",
    "a.lock",
    "scenarios/a.xml",
    "127.0.0.1:8080",
    "[::1]:0",
    "0.0.0.0:65536",
    "sha256:",
    "tsa_",
    "${HOME}",
    "$(id)",
    "%00",
    "\\\\?\\C:\\x",
    "0000000000000000000000000000000000000000",
    "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091",
    "3F2A9C1B7D0E5A6B8C9D0E1F2A3B4C5D6E7F8091",
    "3f2a9c1",
    "3f2a9c",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

/// Bytes that are not UTF-8: stray continuation bytes, overlong forms, surrogates, values
/// past U+10FFFF, truncated sequences; and a BOM and NUL, which are UTF-8 but unwelcome.
pub const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xbf",
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xc3",
    b"\xe2\x82",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xf0\x9f\x98",
    b"\xef\xbb\xbf",
    b"\x00",
];

pub fn odd_char() -> impl Strategy<Value = char> + Clone {
    prop_oneof![
        5 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('0', '9'),
        3 => select(ODD_CHARS),
        2 => any::<char>(),
    ]
}

pub fn short_text() -> impl Strategy<Value = String> + Clone {
    vec(odd_char(), 0..12).prop_map(String::from_iter)
}

/// A length for a long string: mostly a few KiB, rarely past a MiB.
pub fn long_len() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![
        64 => 256usize..4096,
        8 => 4096usize..70_000,
        1 => 70_000usize..1_200_000,
    ]
}

/// `unit` repeated to at least `len` bytes (`x` for an empty unit).
pub fn repeat_to(unit: &str, len: usize) -> String {
    let unit = if unit.is_empty() { "x" } else { unit };
    unit.repeat(len.div_ceil(unit.len()).min(MAX_INPUT / unit.len()))
}

/// Any string: short and odd, a dictionary word or number, empty, or very long.
pub fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        60 => short_text(),
        22 => select(WORDS).prop_map(str::to_owned),
        12 => select(NUMBERS).prop_map(str::to_owned),
        6 => Just(String::new()),
        1 => (short_text(), long_len()).prop_map(|(s, n)| repeat_to(&s, n)),
    ]
    .boxed()
}

/// Text made of letters, digits and odd but harmless characters (no controls, no whitespace
/// at either end), `min..max` characters: what a valid value may hold.
pub fn tame_text(min: usize, max: usize) -> BoxedStrategy<String> {
    let letters = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('A', 'Z'),
        2 => proptest::char::range('0', '9'),
        1 => select(&['\u{e9}', '\u{65e5}', '\u{3a9}', '\u{1f600}', '\u{10ffff}', '\u{301}', '\u{fffd}'][..]),
    ];
    vec(letters, min..max).prop_map(String::from_iter).boxed()
}

/// A byte-level change applied after rendering; positions are fractions of the length
/// (`u32::MAX` is the end), so a change fits any input and shrinks towards the start.
#[derive(Clone, Debug)]
pub enum Mutation {
    Insert(u32, Vec<u8>),
    Delete(u32, u16),
    /// Repeats a range in place: huge counts from small inputs.
    Duplicate(u32, u16, u32),
    Truncate(u32),
    Replace(u32, u8),
}

fn snippet(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        3 => select(INVALID_UTF8).prop_map(<[u8]>::to_vec),
        4 => select(tokens).prop_map(|t| t.as_bytes().to_vec()),
        1 => select(NUMBERS).prop_map(|t| t.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 1..6),
    ]
}

fn mutation(tokens: &'static [&'static str]) -> impl Strategy<Value = Mutation> + Clone {
    let times = prop_oneof![16 => 2u32..10, 4 => 10u32..1000, 1 => 1000u32..100_000];
    prop_oneof![
        4 => (any::<u32>(), snippet(tokens)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => (any::<u32>(), 1u16..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => (any::<u32>(), 1u16..64, times).prop_map(|(at, n, t)| Mutation::Duplicate(at, n, t)),
        1 => any::<u32>().prop_map(Mutation::Truncate),
        2 => (any::<u32>(), any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
    ]
}

/// Mostly none (so the structure reaches the code intact), else one to three.
pub fn mutations(tokens: &'static [&'static str]) -> BoxedStrategy<Vec<Mutation>> {
    prop_oneof![
        3 => Just(Vec::new()),
        2 => vec(mutation(tokens), 1..4),
    ]
    .boxed()
}

fn at(frac: u32, len: usize) -> usize {
    ((u64::from(frac) * (len as u64 + 1)) >> 32) as usize
}

pub fn apply(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        match m {
            Mutation::Insert(p, b) => {
                let i = at(*p, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let i = at(*p, bytes.len());
                let end = (i + usize::from(*n)).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate(p, n, times) => {
                let i = at(*p, bytes.len());
                let end = (i + usize::from(*n)).min(bytes.len());
                let unit = bytes[i..end].to_vec();
                if unit.is_empty() {
                    continue;
                }
                let times = (*times as usize).min(MAX_INPUT / unit.len());
                let mut grown = Vec::with_capacity(bytes.len() + unit.len() * times);
                grown.extend_from_slice(&bytes[..end]);
                for _ in 0..times {
                    grown.extend_from_slice(&unit);
                }
                grown.extend_from_slice(&bytes[end..]);
                *bytes = grown;
            }
            Mutation::Truncate(p) => {
                let i = at(*p, bytes.len());
                bytes.truncate(i);
            }
            Mutation::Replace(p, b) => {
                let i = at(*p, bytes.len());
                if let Some(x) = bytes.get_mut(i) {
                    *x = *b;
                }
            }
        }
    }
}

/// `bytes` as a Rust byte string literal, at most about `max` characters of it (head and
/// tail).
pub fn show(bytes: &[u8], max: usize) -> String {
    fn escape(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c if c.is_control() || c.is_whitespace() && c != ' ' || !c.is_ascii() => {
                        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
                    }
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }
    let whole = escape(&bytes[..bytes.len().min(max * 2)]);
    if bytes.len() <= max * 2 && whole.len() <= max {
        return format!("b\"{whole}\"");
    }
    // Each end escaped from as many bytes as it may show characters, then cut.
    let (head_max, tail_max) = (max * 2 / 3, max / 3);
    let mut head = escape(&bytes[..bytes.len().min(head_max)]);
    head.truncate(head.floor_char_boundary(head_max));
    let mut tail = escape(&bytes[bytes.len().saturating_sub(tail_max)..]);
    tail = tail.split_off(tail.ceil_char_boundary(tail.len().saturating_sub(tail_max)));
    format!("b\"{head}\" …({} bytes in all)… b\"{tail}\"", bytes.len())
}

/// A check that an error message says something.
pub fn message(what: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(format!("{what}: an error with an empty message"))
    } else {
        Ok(())
    }
}
