//! Path and query extractors: axum's, with their plain-text rejections turned into our error
//! body (an id that is not valid UTF-8, a query string that cannot be decoded).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_error(&r)),
        }
    }
}

fn path_error(r: &PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_path",
        format!(
            "the path cannot be read ({}): ids are letters, digits, '.', '_' and '-'",
            r.body_text()
        ),
        None,
    )
}

pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_error(&r)),
        }
    }
}

fn query_error(r: &QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!(
            "the query string cannot be read ({}): percent-encode it as UTF-8",
            r.body_text()
        ),
        None,
    )
}
