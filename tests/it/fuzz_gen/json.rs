//! JSON trees for the webhook and enqueue bodies: any value, deep nesting, huge arrays, numbers
//! at the edges, and strings in every escaping (including invalid ones), rendered as text here
//! so that what no serializer would write can be written.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::common::{MAX_INPUT, NUMBERS, odd_string};

/// A JSON value, or something in its place.
#[derive(Clone, Debug)]
pub enum J {
    Null,
    Bool(bool),
    /// Written as is: `1e309`, `-0`, `NaN`, `18446744073709551616`.
    Num(String),
    Str(JStr),
    Arr(Vec<J>),
    Obj(Vec<(JStr, J)>),
    /// `inner` inside `depth` arrays (or objects `{"a": …}`), closed or not.
    Deep {
        depth: u32,
        object: bool,
        closed: bool,
        inner: Box<J>,
    },
    /// An array of `n` copies of `item`.
    Repeat {
        n: u32,
        item: Box<J>,
    },
    /// Any token: `]`, `,`, `tru`, a raw control character.
    Raw(String),
}

/// A string and how it is escaped: 0 as serde_json does, 1 every character as `\u`, 2 a lone
/// surrogate appended, 3 control characters left raw, 4 an invalid escape, 5 unterminated.
#[derive(Clone, Debug)]
pub struct JStr {
    pub text: String,
    pub style: u8,
}

impl JStr {
    pub fn plain(text: impl Into<String>) -> JStr {
        JStr {
            text: text.into(),
            style: 0,
        }
    }
}

pub fn s(text: impl Into<String>) -> J {
    J::Str(JStr::plain(text))
}

/// Escaping that keeps the JSON valid.
pub fn valid_style() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![6 => Just(0u8), 1 => Just(1u8)]
}

fn any_style() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![30 => Just(0u8), 4 => Just(1u8), 1 => 2u8..=5]
}

pub fn jstr(text: BoxedStrategy<String>) -> BoxedStrategy<JStr> {
    (text, any_style())
        .prop_map(|(text, style)| JStr { text, style })
        .boxed()
}

/// A valid JSON string holding `text`.
pub fn valid_jstr(text: BoxedStrategy<String>) -> BoxedStrategy<J> {
    (text, valid_style())
        .prop_map(|(text, style)| J::Str(JStr { text, style }))
        .boxed()
}

pub const JSON_TOKENS: &[&str] = &[
    "]",
    "}",
    "[",
    "{",
    ",",
    ":",
    "\"",
    "tru",
    "nul",
    "\u{1}",
    "\u{7f}",
    "//",
    "/*",
    "\\",
    "'a'",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\uZZZZ\"",
    "\u{feff}",
    "\t",
    "\r\n",
    "-",
    "+1",
    "01",
    "1.e5",
    "0x10",
];

pub fn number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(NUMBERS).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
        2 => (-1100i32..1100).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// Nesting depths: shallow, around serde_json's limit of 128, and thousands.
pub fn depth() -> BoxedStrategy<u32> {
    prop_oneof![
        6 => 1u32..100,
        4 => 120u32..140,
        1 => 140u32..20_000,
    ]
    .boxed()
}

/// Element counts: few, around the limits (256 scenarios), and many.
pub fn count() -> BoxedStrategy<u32> {
    prop_oneof![
        100 => 0u32..64,
        10 => 64u32..300,
        4 => 250u32..260,
        1 => 300u32..200_000,
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        3 => number().prop_map(J::Num),
        5 => jstr(odd_string()).prop_map(J::Str),
        1 => select(JSON_TOKENS).prop_map(|t| J::Raw(t.to_owned())),
    ]
    .boxed()
}

pub fn key() -> BoxedStrategy<JStr> {
    jstr(odd_string())
}

/// Any JSON value (or near-JSON), up to a few levels of structure, with deep and huge parts.
pub fn value() -> BoxedStrategy<J> {
    leaf()
        .prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                3 => vec(inner.clone(), 0..6).prop_map(J::Arr),
                3 => vec((key(), inner.clone()), 0..6).prop_map(J::Obj),
                1 => (depth(), any::<bool>(), prop_oneof![4 => Just(true), 1 => Just(false)], inner.clone())
                    .prop_map(|(depth, object, closed, inner)| J::Deep { depth, object, closed, inner: Box::new(inner) }),
                1 => (count(), inner).prop_map(|(n, item)| J::Repeat { n, item: Box::new(item) }),
            ]
        })
        .boxed()
}

/// An object's members; a member whose value is `None` is left out.
pub type Members = Vec<(&'static str, Option<J>)>;

/// A member of a typed payload: the right value, or (when `hostile`) sometimes any value, left
/// out, or given twice.
pub fn member(name: &'static str, good: BoxedStrategy<J>, hostile: bool) -> BoxedStrategy<Members> {
    if !hostile {
        return good.prop_map(move |v| vec![(name, Some(v))]).boxed();
    }
    prop_oneof![
        40 => good.clone().prop_map(move |v| vec![(name, Some(v))]),
        1 => Just(vec![(name, None)]),
        2 => value().prop_map(move |v| vec![(name, Some(v))]),
        1 => (good, value()).prop_map(move |(a, b)| vec![(name, Some(a)), (name, Some(b))]),
    ]
    .boxed()
}

/// Extra members nobody asked for (when `hostile`).
pub fn extra_members(hostile: bool) -> BoxedStrategy<Vec<(JStr, J)>> {
    if hostile {
        prop_oneof![6 => Just(Vec::new()), 1 => vec((key(), value()), 1..4)].boxed()
    } else {
        Just(Vec::new()).boxed()
    }
}

/// An object from typed members (in order) and extra ones.
pub fn object(members: Vec<Members>, extra: Vec<(JStr, J)>) -> J {
    let mut out: Vec<(JStr, J)> = members
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.map(|v| (JStr::plain(k), v)))
        .collect();
    out.extend(extra);
    J::Obj(out)
}

pub fn render(j: &J) -> Vec<u8> {
    let mut out = Vec::new();
    write(j, &mut out);
    out
}

fn write(j: &J, out: &mut Vec<u8>) {
    if out.len() > MAX_INPUT {
        return;
    }
    match j {
        J::Null => out.extend_from_slice(b"null"),
        J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        J::Num(n) | J::Raw(n) => out.extend_from_slice(n.as_bytes()),
        J::Str(s) => write_str(s, out),
        J::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        J::Obj(members) => {
            out.push(b'{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
        J::Deep {
            depth,
            object,
            closed,
            inner,
        } => {
            let open: &[u8] = if *object { b"{\"a\":" } else { b"[" };
            let close = if *object { b'}' } else { b']' };
            for _ in 0..*depth {
                out.extend_from_slice(open);
            }
            write(inner, out);
            if *closed {
                out.extend(std::iter::repeat_n(close, *depth as usize));
            }
        }
        J::Repeat { n, item } => {
            out.push(b'[');
            for i in 0..*n {
                if out.len() > MAX_INPUT {
                    break;
                }
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
    }
}

fn write_str(s: &JStr, out: &mut Vec<u8>) {
    match s.style {
        0 => out.extend_from_slice(
            serde_json::to_string(&s.text)
                .expect("a string serializes")
                .as_bytes(),
        ),
        1 | 2 => {
            out.push(b'"');
            let mut units = [0u16; 2];
            for c in s.text.chars() {
                for u in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                }
            }
            if s.style == 2 {
                out.extend_from_slice(b"\\ud83d");
            }
            out.push(b'"');
        }
        3 => {
            out.push(b'"');
            for c in s.text.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out.push(b'"');
        }
        4 => {
            out.push(b'"');
            out.extend_from_slice(s.text.replace(['"', '\\'], "").as_bytes());
            out.extend_from_slice(b"\\x\"");
        }
        _ => {
            out.push(b'"');
            out.extend_from_slice(s.text.replace(['"', '\\'], "").as_bytes());
        }
    }
}
