//! The templates and the stylesheet under `ui/`, embedded in the binary at build time, and the
//! one template environment every page and report renders through.
//!
//! Every file under `ui/templates/` becomes a template named by its relative path
//! (`test_log.html`, `dashboard/queue.html`…). Auto-escaping follows the extension: `.html` and
//! `.xml` are HTML-escaped, anything else is not. `none` prints as nothing; a block tag takes its
//! own line break with it (`trim_blocks`, `lstrip_blocks`); printing an undefined variable is an
//! error, so a typo in a template fails its test instead of rendering an empty cell. The
//! stylesheet is the global `style_css`, marked safe, so a page can inline it and still work when
//! opened straight from disk.
//!
//! Every file under `ui/static/` is embedded once, here: the reports inline the stylesheet and
//! the dashboard serves the same files under `/static/` ([`Reports::static_file`]).

use std::borrow::Cow;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior, escape_formatter};
use rust_embed::RustEmbed;

use super::text;
use super::{ReportError, Reports};

#[derive(RustEmbed)]
#[folder = "ui/templates/"]
struct Templates;

#[derive(RustEmbed)]
#[folder = "ui/static/"]
struct Static;

/// The stylesheet shared by reports and dashboard pages.
pub const STYLESHEET: &str = "style.css";

/// Builds the environment: every embedded template (a syntax error is an error here), the
/// filters and the stylesheet global.
pub fn environment() -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        escape_formatter(out, state, value)
    });
    env.add_filter("duration", |ms: u64| text::human_duration(ms));
    env.add_filter("seconds", |ms: u64| text::seconds(ms));
    env.add_filter("offset", |ms: u64| text::offset(ms));
    env.add_filter("rfc3339", |ms: i64| crate::model::rfc3339(ms));
    env.add_filter("ansi", |s: Cow<'_, str>| {
        Value::from_safe_string(super::ansi::html(&s))
    });
    env.add_filter("xml_attr", |s: Cow<'_, str>| {
        Value::from_safe_string(text::xml_attr(&s))
    });
    let css = stylesheet()?;
    env.add_global("style_css", Value::from_safe_string(css.into_owned()));
    let mut sources = Vec::new();
    for name in Templates::iter() {
        let file = Templates::get(&name).ok_or_else(|| ReportError::Asset(name.to_string()))?;
        let source = utf8(file.data).ok_or_else(|| ReportError::Asset(name.to_string()))?;
        sources.push((name.into_owned(), source));
    }
    load(&mut env, sources)?;
    Ok(env)
}

/// Compiles the templates into the environment; the first syntax error is returned.
fn load(
    env: &mut Environment<'static>,
    sources: Vec<(String, Cow<'static, str>)>,
) -> Result<(), ReportError> {
    for (name, source) in sources {
        env.add_template_owned(name, source)?;
    }
    Ok(())
}

/// The shared stylesheet's text.
pub fn stylesheet() -> Result<Cow<'static, str>, ReportError> {
    Static::get(STYLESHEET)
        .and_then(|f| utf8(f.data))
        .ok_or_else(|| ReportError::Asset(STYLESHEET.to_owned()))
}

impl Reports {
    /// A file under `ui/static/` by its relative path (`style.css`, `common.js`…), as embedded
    /// at build time; `None` when there is no such file.
    pub fn static_file(path: &str) -> Option<rust_embed::EmbeddedFile> {
        Static::get(path)
    }
}

fn utf8(data: Cow<'static, [u8]>) -> Option<Cow<'static, str>> {
    match data {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_syntax_error_names_the_template_and_line() {
        let mut env = Environment::new();
        let sources = vec![
            ("good.html".to_owned(), Cow::Borrowed("{{ x }}")),
            ("bad.html".to_owned(), Cow::Borrowed("line one\n{% if %}")),
        ];
        let err = load(&mut env, sources).unwrap_err();
        let ReportError::Template(e) = &err else {
            panic!("{err}")
        };
        assert_eq!((e.name(), e.line()), (Some("bad.html"), Some(2)), "{err}");
    }

    #[test]
    fn the_shipped_templates_compile() {
        let env = environment().unwrap();
        let names: Vec<&str> = env.templates().map(|(name, _)| name).collect();
        for name in [
            "base.html",
            "_macros.html",
            "test_log.html",
            "task_report.html",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(stylesheet().unwrap().contains(".card"));
    }

    #[test]
    fn static_files_are_found_by_their_relative_path() {
        let css = Reports::static_file(STYLESHEET).unwrap();
        assert_eq!(utf8(css.data).unwrap(), stylesheet().unwrap());
        assert!(Reports::static_file("common.js").is_some());
        assert!(Reports::static_file("nope.js").is_none());
    }
}
