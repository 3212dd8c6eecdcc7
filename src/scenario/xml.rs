//! A small element tree read from quick-xml events, every node with its byte offset.
//!
//! This layer only checks that the document is well-formed XML (one root element, closed tags,
//! known entities); what the elements mean is checked by `parse`. A malformed document stops at
//! the first error: after a syntax error the rest of the file cannot be trusted. Nothing here
//! recurses: open elements are an explicit stack, capped at [`MAX_DEPTH`].

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

use super::MAX_DEPTH;

/// An element with its attributes and children in document order.
#[derive(Debug)]
pub(super) struct Element {
    pub name: String,
    /// Offset of the `<` that opens the element.
    pub pos: usize,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

/// An attribute with its value unescaped.
#[derive(Debug)]
pub(super) struct Attr {
    pub name: String,
    pub value: String,
    /// Offset of the attribute's name.
    pub pos: usize,
}

#[derive(Debug)]
pub(super) enum Node {
    Element(Element),
    /// Character data (text, references and CDATA merged), line ends normalised to `\n`.
    Text {
        text: String,
        /// Offset of the first non-whitespace character, or of the run if it is all whitespace.
        pos: usize,
    },
}

/// Why a document is not well-formed, at a byte offset.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct XmlError {
    pub pos: usize,
    pub message: String,
}

impl XmlError {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        XmlError {
            pos,
            message: message.into(),
        }
    }
}

/// A run of character data being collected between two tags.
struct TextRun {
    text: String,
    start: usize,
    first_non_ws: Option<usize>,
}

/// Reads `src` into its root element.
pub(super) fn read_tree(src: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(src);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut run: Option<TextRun> = None;
    loop {
        let at = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| XmlError::new(offset(reader.error_position()), xml_message(&e)))?;
        match event {
            Event::Start(e) => {
                flush(&mut run, &mut stack)?;
                check_depth(&stack, at)?;
                stack.push(element(&e, at)?);
            }
            Event::Empty(e) => {
                flush(&mut run, &mut stack)?;
                check_depth(&stack, at)?;
                attach(element(&e, at)?, &mut stack, &mut root)?;
            }
            Event::End(_) => {
                flush(&mut run, &mut stack)?;
                let Some(el) = stack.pop() else {
                    return Err(XmlError::new(at, "closing tag without an opening tag"));
                };
                attach(el, &mut stack, &mut root)?;
            }
            Event::Text(t) => {
                let first = t.find(|c: char| !c.is_whitespace()).map(|i| at + i);
                push_text(&mut run, at, &t.xml10_content(), first);
            }
            Event::CData(c) => push_text(&mut run, at, &c.xml10_content(), Some(at)),
            Event::GeneralRef(r) => {
                push_text(&mut run, at, &resolve_reference(&r, at)?, Some(at));
            }
            Event::DocType(_) => {
                return Err(XmlError::new(at, "DOCTYPE declarations are not supported"));
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    flush(&mut run, &mut stack)?;
    if let Some(open) = stack.last() {
        return Err(XmlError::new(
            open.pos,
            format!("element <{}> is not closed", open.name),
        ));
    }
    root.ok_or_else(|| XmlError::new(0, "no root element: expected <scenario>"))
}

/// Refuses an element that would be nested deeper than [`MAX_DEPTH`] (the root is at depth 1).
///
/// Checked before the element is read: the open elements, quick-xml's stack of open names
/// and the finished tree (dropped recursively) all stay within the cap, whatever the file.
fn check_depth(open: &[Element], at: usize) -> Result<(), XmlError> {
    if open.len() < MAX_DEPTH {
        return Ok(());
    }
    Err(XmlError::new(
        at,
        format!(
            "elements are nested more than {MAX_DEPTH} deep: a scenario nests four \
             (scenario, suite, test, step)"
        ),
    ))
}

fn offset(pos: u64) -> usize {
    usize::try_from(pos).unwrap_or(usize::MAX)
}

fn xml_message(e: &quick_xml::Error) -> String {
    let detail = match e {
        quick_xml::Error::Syntax(s) => s.to_string(),
        quick_xml::Error::IllFormed(i) => i.to_string(),
        quick_xml::Error::InvalidAttr(a) => a.to_string(),
        other => other.to_string(),
    };
    format!("malformed XML: {detail}")
}

/// Appends character data; `first` is the offset of its first non-blank character, if any.
fn push_text(run: &mut Option<TextRun>, at: usize, text: &str, first: Option<usize>) {
    let run = run.get_or_insert_with(|| TextRun {
        text: String::new(),
        start: at,
        first_non_ws: None,
    });
    run.first_non_ws = run.first_non_ws.or(first);
    run.text.push_str(text);
}

/// Ends the current text run, attaching it to the open element (or checking it is blank).
fn flush(run: &mut Option<TextRun>, stack: &mut [Element]) -> Result<(), XmlError> {
    let Some(run) = run.take() else { return Ok(()) };
    let pos = run.first_non_ws.unwrap_or(run.start);
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Text {
            text: run.text,
            pos,
        }),
        None if run.first_non_ws.is_some() => {
            return Err(XmlError::new(pos, "text outside the root element"));
        }
        None => {}
    }
    Ok(())
}

fn attach(el: Element, stack: &mut [Element], root: &mut Option<Element>) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None if root.is_some() => {
            return Err(XmlError::new(
                el.pos,
                format!("a second root element <{}>: only one is allowed", el.name),
            ));
        }
        None => *root = Some(el),
    }
    Ok(())
}

/// Reads an element's name and attributes; `at` is the offset of its `<`.
fn element(e: &BytesStart<'_>, at: usize) -> Result<Element, XmlError> {
    let content: &str = e;
    // The tag content starts right after `<`.
    let base = at + 1;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| attr_error(&err, base))?;
        let key = a.key.0;
        let rel = key
            .as_ptr()
            .addr()
            .saturating_sub(content.as_ptr().addr())
            .min(content.len());
        let pos = base + rel;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| XmlError::new(pos, xml_message(&err)))?;
        attrs.push(Attr {
            name: key.to_owned(),
            value: value.into_owned(),
            pos,
        });
    }
    Ok(Element {
        name: e.name().0.to_owned(),
        pos: at,
        attrs,
        children: Vec::new(),
    })
}

/// An attribute syntax error; its position counts from `base`, the start of the tag content.
fn attr_error(e: &quick_xml::events::attributes::AttrError, base: usize) -> XmlError {
    use quick_xml::events::attributes::AttrError::*;
    let (pos, what) = match *e {
        ExpectedEq(p) => (p, "an attribute name must be followed by `=`".to_owned()),
        ExpectedValue(p) => (p, "`=` must be followed by a quoted value".to_owned()),
        UnquotedValue(p) => (p, "an attribute value must be in quotes".to_owned()),
        ExpectedQuote(p, q) => (p, format!("missing closing quote `{}`", char::from(q))),
        Duplicated(p, _) => (p, "the same attribute appears twice".to_owned()),
    };
    XmlError::new(base + pos, format!("malformed XML: {what}"))
}

/// Resolves `&name;` (the five predefined entities) and character references.
fn resolve_reference(r: &BytesRef<'_>, at: usize) -> Result<String, XmlError> {
    let name: &str = r;
    match r.resolve_char_ref() {
        Ok(Some(c)) => return Ok(c.to_string()),
        Ok(None) => {}
        Err(e) => {
            return Err(XmlError::new(
                at,
                format!("malformed XML: bad character reference &{name};: {e}"),
            ));
        }
    }
    let s = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => {
            return Err(XmlError::new(
                at,
                format!(
                    "unknown entity &{name};: use &lt; &gt; &amp; &apos; &quot; or a character reference"
                ),
            ));
        }
    };
    Ok(s.to_owned())
}

/// Maps byte offsets to 1-based line and character column, each in time independent of the
/// file's and the line's length: a file of one long line with a diagnostic per element must not
/// count the characters of that line once per diagnostic (found by fuzzing: 100,000 elements on
/// one line took minutes).
pub(super) struct Positions<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
    /// The number of characters before every multiple of [`BLOCK`] bytes.
    chars_before_block: Vec<usize>,
}

/// Bytes between two character counts kept by [`Positions`].
const BLOCK: usize = 512;

impl<'a> Positions<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let mut chars_before_block = Vec::with_capacity(src.len() / BLOCK + 2);
        let mut chars = 0;
        for block in src.as_bytes().chunks(BLOCK) {
            chars_before_block.push(chars);
            chars += char_starts(block);
        }
        chars_before_block.push(chars);
        Positions {
            src,
            line_starts,
            chars_before_block,
        }
    }

    pub fn line_col(&self, pos: usize) -> (u32, u32) {
        let mut pos = pos.min(self.src.len());
        while !self.src.is_char_boundary(pos) {
            pos -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= pos);
        let start = self.line_starts[line - 1];
        let column = self.chars_before(pos) - self.chars_before(start) + 1;
        (to_u32(line), to_u32(column))
    }

    /// The number of characters in `src[..pos]`.
    fn chars_before(&self, pos: usize) -> usize {
        let block = pos / BLOCK;
        self.chars_before_block[block] + char_starts(&self.src.as_bytes()[block * BLOCK..pos])
    }
}

/// The bytes that start a character: all but UTF-8 continuation bytes (`0b10xx_xxxx`). In a
/// range between character boundaries, its number of characters.
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line and column the slow way: count every character.
    fn naive(src: &str, pos: usize) -> (u32, u32) {
        let mut pos = pos.min(src.len());
        while !src.is_char_boundary(pos) {
            pos -= 1;
        }
        let start = src[..pos].rfind('\n').map_or(0, |i| i + 1);
        let line = src[..pos].matches('\n').count() + 1;
        (to_u32(line), to_u32(src[start..pos].chars().count() + 1))
    }

    #[test]
    fn positions_agree_with_counting_every_character() {
        let mut src = String::new();
        for i in 0..3000 {
            src.push(['a', '\u{e9}', '\u{65e5}', '\u{1f600}', '\n'][i % 5 * (i % 7) % 5]);
        }
        for extra in ["", "x", "\u{65e5}"] {
            let src = format!("{src}{extra}");
            let positions = Positions::new(&src);
            for pos in (0..src.len() + 3)
                .step_by(7)
                .chain([0, BLOCK, 2 * BLOCK, src.len()])
            {
                assert_eq!(positions.line_col(pos), naive(&src, pos), "at {pos}");
            }
        }
        assert_eq!(Positions::new("").line_col(5), (1, 1));
    }
}
