//! Which exposition format a scrape gets: the classic Prometheus text format (version 0.0.4) by
//! default, OpenMetrics 1.0.0 when the scraper's `Accept` prefers it. Prometheus itself sends
//! `application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,
//! text/plain;version=0.0.4;q=0.5,*/*;q=0.1`; `curl` and `promtool` send `*/*` or nothing.

/// An exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what `promtool check metrics` reads.
    Classic,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Classic => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: the acceptable media range with the highest
    /// q-value (the first of equals) that we serve; `Classic` when none is named or the header
    /// is absent or malformed.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Classic;
        };
        let mut best: Option<(Format, f32)> = None;
        for range in accept.split(',') {
            let Some((format, q)) = media_range(range) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((format, q));
            }
        }
        best.map_or(Format::Classic, |(format, _)| format)
    }
}

/// One media range of an `Accept` header: the format it names (if one we serve) and its q-value.
fn media_range(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let mut q = 1.0_f32;
    let mut version = None;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" => {
                q = value
                    .parse()
                    .ok()
                    .filter(|q: &f32| (0.0..=1.0).contains(q))?
            }
            "version" => version = Some(value.to_owned()),
            _ => {}
        }
    }
    let format = match (media.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0")) => Format::OpenMetrics,
        ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::Classic,
        _ => return None,
    };
    Some((format, q))
}

#[cfg(test)]
mod tests {
    use super::Format::{self, Classic, OpenMetrics};

    fn check(accept: Option<&str>, expected: Format) {
        assert_eq!(Format::from_accept(accept), expected, "{accept:?}");
    }

    #[test]
    fn accept_picks_the_format_the_scraper_prefers() {
        // What Prometheus 2.x sends, and the same with the preference turned around.
        check(
            Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            OpenMetrics,
        );
        check(
            Some(
                "text/plain;version=0.0.4;q=0.9, application/openmetrics-text;version=1.0.0;q=0.5",
            ),
            Classic,
        );
        check(
            Some("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0"),
            OpenMetrics,
        );
        check(
            Some("Application/OpenMetrics-Text; Version=\"1.0.0\"; charset=utf-8"),
            OpenMetrics,
        );
        check(Some("application/openmetrics-text"), OpenMetrics);
        // Equal q: the first listed.
        check(
            Some("text/plain;q=0.5,application/openmetrics-text;q=0.5"),
            Classic,
        );
        // Classic by default: nothing, anything, text, an unknown type, q=0, malformed.
        check(None, Classic);
        check(Some(""), Classic);
        check(Some("*/*"), Classic);
        check(Some("text/*"), Classic);
        check(Some("application/json"), Classic);
        check(Some("application/openmetrics-text;version=0.0.1"), Classic);
        check(Some("application/openmetrics-text;q=0"), Classic);
        check(Some("application/openmetrics-text;q=abc"), Classic);
        check(Some("application/openmetrics-text;q=2"), Classic);
        check(Some("application/openmetrics-text;garbage"), Classic);
        check(Some(",,;;=,"), Classic);
    }

    #[test]
    fn content_types_name_the_format_and_its_version() {
        assert_eq!(
            Classic.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }
}
