//! A stable classification of every error, for a web layer: each [`ErrorKind`] maps to one
//! HTTP status, with no catch-all.

use serde::Serialize;

use super::error::{OpError, UnknownOccurrence};
use super::ops::{Never, OpenRefusal, PriceRefusal};
use super::{TicketRefusal, WebhookRefusal};
use crate::catalogue::{BlockRefusal, ConfigError, PricingError, SetPriceError};
use crate::contract::{IdError, MoneyError, ParseError};
use crate::holds::{CancelRefusal, ExtendRefusal, RequestRefusal};
use crate::store::StoreError;
use crate::waitlist::WaitlistRefusal;
use crate::webhooks::{AdapterError, SignatureError};

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

impl<R: Classify> Classify for OpError<R> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(r) => r.kind(),
            Self::Contention { .. } => ErrorKind::Unavailable,
            Self::Store(s) => s.kind(),
            Self::OpKeyReused { .. } => ErrorKind::Unprocessable,
        }
    }
}

impl<R: Classify> OpError<R> {
    /// The error's [`ErrorKind`] (and so its HTTP status).
    pub fn kind(&self) -> ErrorKind {
        Classify::kind(self)
    }
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

impl Classify for Never {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

impl Classify for UnknownOccurrence {
    fn kind(&self) -> ErrorKind {
        ErrorKind::NotFound
    }
}

impl Classify for IdError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLong { .. } => ErrorKind::PayloadTooLarge,
            _ => ErrorKind::BadRequest,
        }
    }
}

impl Classify for MoneyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownCurrency(_) | Self::TooPrecise { .. } => ErrorKind::Unprocessable,
            _ => ErrorKind::BadRequest,
        }
    }
}

impl Classify for ParseError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::BadId { source, .. } => source.kind(),
            Self::BadMoney { source, .. } => source.kind(),
            _ => ErrorKind::BadRequest,
        }
    }
}

impl Classify for SignatureError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadSecret | Self::NoSecret => ErrorKind::Internal,
            _ => ErrorKind::Unauthorized,
        }
    }
}

impl Classify for AdapterError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Parse(p) => p.kind(),
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for WebhookRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Signature(s) => s.kind(),
            Self::Parse(p) => p.kind(),
            Self::Provider(p) => p.kind(),
        }
    }
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TierInUse(_)
            | Self::PoolInUse(_)
            | Self::PlainSeatsInUse
            | Self::PriceLocked(_)
            | Self::SeatingInUse => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for OpenRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(c) => c.kind(),
            Self::Exists => ErrorKind::Conflict,
        }
    }
}

impl Classify for PricingError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoLines => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for RequestRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::RefUsed | Self::RequestChanged => ErrorKind::Conflict,
            Self::BadQuantity { .. } | Self::NoLines | Self::TooManyLines { .. } => ErrorKind::BadRequest,
            Self::LinesNeedTiers | Self::TiersNeedLines | Self::PriceRequired => ErrorKind::Unprocessable,
            Self::Pricing(p) => p.kind(),
            Self::Seat(s) => s.kind(),
        }
    }
}

impl Classify for crate::seating::SeatError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownSeat(_) | Self::DuplicateSeat(_) | Self::NoSeats => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for SetPriceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownTier(_) => ErrorKind::Unprocessable,
            Self::Locked(_) => ErrorKind::Conflict,
        }
    }
}

impl Classify for PriceRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::Price(p) => p.kind(),
        }
    }
}

impl Classify for BlockRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::Unknown(_) => ErrorKind::NotFound,
            Self::Exists(_) => ErrorKind::Conflict,
            Self::BadSeats { .. } => ErrorKind::BadRequest,
            Self::Seat(s) => s.kind(),
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for CancelRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::UnknownBooking => ErrorKind::NotFound,
            Self::NotConfirmed => ErrorKind::Conflict,
            Self::BadTicket { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for ExtendRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::UnknownHold => ErrorKind::NotFound,
            Self::NotLive => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for WaitlistRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::BadSeats { .. } => ErrorKind::BadRequest,
            Self::ListFull { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

impl Classify for TicketRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoTicketKey => ErrorKind::Internal,
            Self::UnknownBooking => ErrorKind::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status() {
        let all = [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::PayloadTooLarge, 413),
            (ErrorKind::Unprocessable, 422),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (k, s) in all {
            assert_eq!(k.http_status(), s);
        }
    }

    #[test]
    fn only_unavailability_is_retryable() {
        let contention: OpError<RequestRefusal> = OpError::Contention { attempts: 3 };
        assert!(contention.is_retryable() && contention.kind() == ErrorKind::Unavailable);
        let used: OpError<RequestRefusal> = OpError::Refused(RequestRefusal::RefUsed);
        assert!(!used.is_retryable() && used.kind() == ErrorKind::Conflict);
        let bug: OpError<RequestRefusal> = OpError::Store(StoreError::Internal("x".into()));
        assert!(!bug.is_retryable() && bug.kind() == ErrorKind::Internal);
        let too_big: OpError<ParseError> = OpError::Refused(ParseError::TooLarge { len: 1, max: 0 });
        assert_eq!(too_big.kind().http_status(), 413);
    }
}
