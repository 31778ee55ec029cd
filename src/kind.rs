//! A stable classification of every error, for a web layer: each [`ErrorKind`] maps to one
//! HTTP status, with no catch-all.
//!
//! Owns: [`ErrorKind`] and [`Classify`]. Each error type implements [`Classify`] beside its
//! own definition (a refusal in its lifecycle module), so a new refusal is classified where
//! it is declared.

use serde::Serialize;

/// What kind of failure an error is. Stable: a new error maps to one of these.
///
/// | kind | HTTP | retry? | meaning |
/// | --- | --- | --- | --- |
/// | `BadRequest` | 400 | no | malformed input: fix the request |
/// | `Unauthorized` | 401 | no | a webhook's signature does not verify |
/// | `NotFound` | 404 | no | no such occurrence or booking |
/// | `Conflict` | 409 | no | the request conflicts with state (a used ref, a locked price, a booking to cancel that is not paid…) |
/// | `PayloadTooLarge` | 413 | no | a body or value over its documented limit |
/// | `Unprocessable` | 422 | no | well-formed, but the rules refuse it (unknown tier, bad configuration…) |
/// | `Unavailable` | 503 | yes | contention or the store is down: retry with backoff |
/// | `Internal` | 500 | no | corrupt data or a bug (in seathold or the store): needs an operator |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 413.
    PayloadTooLarge,
    /// 422.
    Unprocessable,
    /// 503.
    Unavailable,
    /// 500.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::Unprocessable => 422,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// Errors that know their [`ErrorKind`].
pub trait Classify {
    /// The kind.
    fn kind(&self) -> ErrorKind;
}
