//! One error enum per engine operation. Each variant says what the caller should do.

use thiserror::Error;

use crate::contract::{OccKey, ParseError, Ref};
use crate::store::StoreError;

/// Why [`open`](crate::Engine::open) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed; the change may or may not be applied. Retrying is safe.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`request`](crate::Engine::request) failed. Nothing was changed unless the variant
/// says otherwise.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No occurrence has this key: open it first, or fix the key.
    #[error("unknown occurrence {occ_key}")]
    UnknownOccurrence {
        /// The key asked for.
        occ_key: OccKey,
    },
    /// This ref was already used by the actor's previous, ended hold, or a payment was
    /// already accounted under it. Generate a fresh ref per checkout attempt
    /// ([`Ref::random`](crate::contract::Ref::random)).
    #[error("ref {hold_ref} was already used for an earlier hold; use a fresh ref per attempt")]
    RefReused {
        /// The reused ref.
        hold_ref: Ref,
    },
    /// The quantity is 0 or above [`MAX_QUANTITY`](crate::contract::MAX_QUANTITY).
    #[error("quantity must be from 1 to {max}, got {got}")]
    BadQuantity {
        /// The quantity asked for.
        got: u32,
        /// The maximum.
        max: u32,
    },
    /// Other callers kept winning the race for this occurrence; nothing was changed. Retry,
    /// with backoff.
    #[error("gave up after {attempts} conflicting attempts; retry")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed; the hold may or may not have been placed. Retrying with the same
    /// ref is safe: it answers the same checkout.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`settle`](crate::Engine::settle) or [`settle_json`](crate::Engine::settle_json)
/// failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The raw message is not a valid payment result; nothing was changed. Answer the sender
    /// with a client error and alert: redelivering the same bytes fails the same way.
    #[error("bad payment result: {0}")]
    Parse(#[from] ParseError),
    /// Other callers kept winning the race for this hold; nothing was changed. Retry (let the
    /// provider redeliver).
    #[error("gave up after {attempts} conflicting attempts; retry")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed; the result may or may not have been applied. Retrying is safe: a
    /// redelivery answers the first outcome, marked as a replay.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Why [`availability`](crate::Engine::availability) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AvailabilityError {
    /// No occurrence has this key.
    #[error("unknown occurrence {occ_key}")]
    UnknownOccurrence {
        /// The key asked for.
        occ_key: OccKey,
    },
    /// The store failed. Retry.
    #[error(transparent)]
    Store(#[from] StoreError),
}
