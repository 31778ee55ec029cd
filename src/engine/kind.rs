//! The engine's own errors classified ([`OpError`], the webhook and ticket refusals): every
//! other error implements [`Classify`] beside its own definition.

use super::error::OpError;
use super::{TicketRefusal, WebhookRefusal};
use crate::kind::{Classify, ErrorKind};

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

impl Classify for WebhookRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Signature(s) => s.kind(),
            Self::Parse(p) => p.kind(),
            Self::Provider(p) => p.kind(),
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
    use crate::contract::ParseError;
    use crate::holds::RequestRefusal;
    use crate::store::StoreError;

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
