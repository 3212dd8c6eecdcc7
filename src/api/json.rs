//! Our JSON extractor: axum's `Json`, with its plain-text rejections turned into our error body.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match <axum::Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

/// An optional body: none when the request has an empty body, else as [`ApiJson`] (so a body
/// without the JSON content type is still refused, never ignored).
impl<S, T> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large()
                } else {
                    ApiError::bad_request("unreadable_body", e.body_text(), None)
                }
            })?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        <ApiJson<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

fn rejection_to_error(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with the header Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", inner(&e.body_text())),
            None,
        ),
        JsonRejection::JsonDataError(e) => {
            let detail = inner(&e.body_text());
            let field = field_of(&detail);
            ApiError::bad_request(
                "invalid_body",
                format!("the body does not match the expected fields: {detail}"),
                field.as_deref(),
            )
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large()
        }
        other => ApiError::bad_request("unreadable_body", other.body_text(), None),
    }
}

/// axum prefixes serde's message with its own sentence; keep serde's part.
fn inner(text: &str) -> String {
    text.split_once(": ")
        .map(|(_, rest)| rest)
        .unwrap_or(text)
        .to_owned()
}

/// The field serde names in "missing field `x`", "unknown field `x`" or "x: invalid value".
fn field_of(detail: &str) -> Option<String> {
    if let Some(start) = detail.find('`') {
        let rest = &detail[start + 1..];
        if let Some(end) = rest.find('`')
            && (detail.contains("missing field") || detail.contains("unknown field"))
        {
            return Some(rest[..end].to_owned());
        }
    }
    let (path, _) = detail.split_once(": ")?;
    (!path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)))
    .then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_from_serde_messages() {
        assert_eq!(
            field_of("missing field `repo` at line 1 column 2").as_deref(),
            Some("repo")
        );
        assert_eq!(
            field_of("unknown field `colour`, expected one of `id`, `repo` at line 1").as_deref(),
            Some("colour")
        );
        assert_eq!(
            field_of("priority: invalid type: string \"x\", expected i32").as_deref(),
            Some("priority")
        );
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }
}
