//! Problem details (RFC 9457) for every error the router answers, and the extractors that
//! turn axum's own rejections (a missing route, a wrong method, a body too large, a body
//! that is not JSON) into them.
//!
//! Owns: [`Problem`], its stable `type` URIs and the body / path extractors. May not touch:
//! the engine, the rules.

use std::fmt::Display;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Classify, ErrorKind};

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer as RFC 9457 problem details ([`Details`]), boxed so an error result
/// stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<Details>);

/// The members of a problem body: `type` (a stable URN naming the problem,
/// `urn:seathold:problem:<name>`), `title`, `status`, `detail`, and, where one field of the
/// request is at fault, `field` (its JSON path, or the name of the path parameter or header).
/// A refused domain answer (a show that is full) also carries the library's answer as
/// `answer`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Details {
    /// `urn:seathold:problem:<name>`: match on it, not on `title` or `detail`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The library's answer, for a refused domain answer (`full`, `seat_taken`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub answer: Option<Value>,
}

impl Problem {
    /// A problem named `name` with `status`.
    pub fn new(status: StatusCode, name: &str, detail: impl Display) -> Self {
        Self(Box::new(Details {
            kind: format!("urn:seathold:problem:{name}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.to_string(),
            field: None,
            answer: None,
        }))
    }

    /// Its members.
    pub fn details(&self) -> &Details {
        &self.0
    }

    /// The same problem, naming the field at fault.
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// The same problem, carrying the library's answer.
    pub fn with_answer(mut self, answer: Value) -> Self {
        self.0.answer = Some(answer);
        self
    }

    /// The problem for a library error of kind `kind`.
    pub fn of_kind(kind: ErrorKind, detail: impl Display) -> Self {
        let status = StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let name = match serde_json::to_value(kind) {
            Ok(Value::String(s)) => s,
            _ => "internal".to_owned(),
        };
        Self::new(status, &name, detail)
    }
}

impl<E: Classify + Display> From<E> for Problem {
    fn from(e: E) -> Self {
        Self::of_kind(e.kind(), e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

/// A JSON answer with its status.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = (status, body).into_response();
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e).into_response(),
    }
}

/// A request body: JSON (`Content-Type: application/json`) within the router's size limit,
/// or empty. Anything else is a problem: 413 `payload_too_large`, 415 `unsupported_media_type`.
pub(crate) struct Body(pub(crate) Bytes);

/// The body's bytes within the size limit, whatever its type: a signed webhook's (its
/// signature covers the bytes; a provider may label them as it likes).
pub(crate) struct Raw(pub(crate) Bytes);

async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|r| {
        let status = r.status();
        let name = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
        Problem::new(status, name, r.body_text())
    })
}

impl<S: Send + Sync> FromRequest<S> for Raw {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        Ok(Raw(bytes(req, state).await?))
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let bytes = bytes(req, state).await?;
        if !bytes.is_empty() && !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        Ok(Body(bytes))
    }
}

impl Body {
    /// The body as `T`: unknown fields refused by name, a bad field named by its path.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let bytes: &[u8] = if self.0.is_empty() { b"{}" } else { &self.0 };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let p = Problem::new(StatusCode::BAD_REQUEST, "bad_body", &inner);
            if path == "." { p } else { p.at(path) }
        })?;
        // Nothing may follow the JSON value.
        de.end().map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_body", e))?;
        Ok(value)
    }
}

/// `value` as `T`, a bad field named by its path (as [`Body::parse`]).
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let p = Problem::new(StatusCode::BAD_REQUEST, "bad_body", e.into_inner());
        if path == "." { p } else { p.at(path) }
    })
}

/// Path parameters, by name; a malformed one is a 400 problem, never axum's plain text.
pub(crate) struct Params(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(map) = Path::<std::collections::BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|r| Problem::new(StatusCode::BAD_REQUEST, "bad_path", r.body_text()))?;
        Ok(Params(map.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
    }
}

impl Params {
    /// The path parameter `name` as an identifier of type `T` (a 400 problem naming it if
    /// it is not one).
    pub(crate) fn id<T, E: Display>(
        &self,
        name: &str,
        make: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<T, Problem> {
        let raw = self.0.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        make(raw).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_id", e).at(name))
    }
}

/// The answer to a path no route has.
pub(crate) async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no route has this path")
}

/// The answer to a method a route does not have.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take this method")
}
