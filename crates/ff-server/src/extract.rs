//! Request extractors whose every rejection is an [`ApiError`], so a bad
//! body, query string or path answers the same JSON as any other error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::lenient::Lenient;

/// A JSON request body: a missing or other content type answers 415 (so a
/// browser cannot send one cross-origin without a CORS preflight),
/// malformed JSON 400, a well-formed body of the wrong shape 422 naming the
/// field, an oversized one 413. A whole float reads as an integer.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(Lenient(&mut de)).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::malformed_json(&inner)
            } else {
                ApiError::invalid(
                    if path == "." { "body".to_owned() } else { path },
                    inner.to_string(),
                )
            }
        })?;
        de.end().map_err(|err| ApiError::malformed_json(&err))?;
        Ok(Self(value))
    }
}

/// `application/json`, with or without parameters such as `charset`, or a
/// `+json` structured suffix; compared case-insensitively.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else {
        ApiError::new(rejection.status(), "bad_request", rejection.body_text())
    }
}

/// A query string: a parameter of the wrong type or an unknown one answers
/// 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(Self)
            .map_err(|err| {
                let path = err.path().to_string();
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                ApiError::invalid(field, err.into_inner().to_string())
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Path parameters: one that is not valid UTF-8 once percent-decoded
/// answers 400.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    rejection.body_text(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::is_json;

    fn with(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn accepts_json_content_types_only() {
        assert!(is_json(&with("application/json")));
        assert!(is_json(&with("application/json; charset=utf-8")));
        assert!(is_json(&with("Application/JSON")));
        assert!(is_json(&with("application/merge-patch+json")));
        assert!(!is_json(&HeaderMap::new()));
        assert!(!is_json(&with("text/plain")));
        assert!(!is_json(&with("application/x-www-form-urlencoded")));
        assert!(!is_json(&with("multipart/form-data; boundary=x")));
        assert!(!is_json(&with("application/jsonp")));
    }
}
