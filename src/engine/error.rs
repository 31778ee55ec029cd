//! The engine's errors: one generic shape, typed per operation by what the rules refuse.

use crate::kind::{Classify, ErrorKind};
use thiserror::Error;

use crate::contract::{OccKey, OpKey};
use crate::store::StoreError;

/// Why an engine operation failed. `R` is the operation's own refusal type: what the rules
/// said no to (nothing was changed; the variant says what to fix). The other variants are
/// the same for every operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpError<R> {
    /// The rules refused the operation: nothing was changed, and repeating it as it is will
    /// fail the same way. `R` says what to fix.
    #[error(transparent)]
    Refused(R),
    /// Other callers kept winning the race for the same records; nothing was changed. Retry,
    /// with backoff.
    #[error("gave up after {attempts} conflicting attempts; retry")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed: the operation may or may not have been applied. Retrying the same
    /// operation is safe — it observes what was committed and answers the same outcome
    /// ([`StoreError::Corrupt`] and [`StoreError::Internal`] excepted: they need an
    /// operator).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operation key was used before at this occurrence for another command (`first`):
    /// nothing was changed. A retry must repeat its command exactly; a new operation needs a
    /// fresh key.
    #[error("operation key {op_key} was used for another command ({first})")]
    OpKeyReused {
        /// The key.
        op_key: OpKey,
        /// The command it was first used for.
        first: String,
    },
}

impl<R> OpError<R> {
    /// Whether retrying the same call may succeed (contention, an unavailable store).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Contention { .. } | Self::Store(StoreError::Unavailable(_)))
    }

    /// The same error with its refusal mapped by `f` (the other variants carried over).
    pub fn map_refused<R2>(self, f: impl FnOnce(R) -> OpError<R2>) -> OpError<R2> {
        match self {
            Self::Refused(r) => f(r),
            Self::Contention { attempts } => OpError::Contention { attempts },
            Self::Store(s) => OpError::Store(s),
            Self::OpKeyReused { op_key, first } => OpError::OpKeyReused { op_key, first },
        }
    }

    /// The refusal, if the rules refused.
    pub fn refusal(&self) -> Option<&R> {
        match self {
            Self::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// The occurrence asked for does not exist: open it first, or fix the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown occurrence {occ_key}")]
pub struct UnknownOccurrence {
    /// The key asked for.
    pub occ_key: OccKey,
}

impl Classify for UnknownOccurrence {
    fn kind(&self) -> ErrorKind {
        ErrorKind::NotFound
    }
}

/// Why [`expire_due`](crate::Engine::expire_due) stopped early.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The store failed after `expired` holds were expired. Run the sweep again later.
    #[error("sweep stopped after expiring {expired} holds: {source}")]
    Store {
        /// Holds expired before the failure.
        expired: usize,
        /// The store's error.
        source: StoreError,
    },
}
