//! The storage boundary: what the engine asks of a store, and what a store guarantees.
//!
//! Owns: the [`Store`] trait (blocking) and its twin [`AsyncStore`], the unit of change
//! ([`Commit`]) and what one operation reads ([`Snapshot`]), their errors, the in-memory
//! default [`MemoryStore`], and (behind the `conformance` feature) the generic
//! [`conformance`] suite every store must pass.
//!
//! May not touch: the rules. A store never decides whether a hold fits or how a payment
//! settles; it loads records, enforces the guards written in a [`Commit`], and applies the
//! whole commit or none of it.
//!
//! # The contract a store must keep
//!
//! 1. **Atomic commit.** [`Store::commit`] applies everything in the [`Commit`] — occurrence
//!    configuration, seat counters, hold writes, the settlement record and the outbox events —
//!    or nothing. A commit that returns `Ok` is durable for the store's durability level.
//! 2. **Guards, checked at commit time against the current state, never against what was
//!    loaded:**
//!    - *capacity:* a commit that admits seats ([`Commit::admits_seats`]: its net seat change
//!      is positive, or it writes a hold in state `Held`, i.e. places one) must be refused
//!      with [`Conflict::Capacity`] unless `held + confirmed <= capacity` after it (capacity as
//!      set by `configure` in the same commit, if any). The second condition matters: a
//!      request that replaces lapsed holds places seats with a net change of zero or less,
//!      and if the capacity was lowered after it was decided it must not go in. A commit that
//!      admits nothing (a confirmation, a release, an expiry) is never refused for capacity:
//!      lowering the capacity revokes nothing;
//!    - *hold versions:* a [`HoldWrite`] with `expected: None` must find no record for that
//!      (occurrence, actor), and one with `expected: Some(v)` must find version `v`; otherwise
//!      [`Conflict::HoldChanged`]. Each applied write stores the hold with version `v + 1`
//!      (`1` for a new record);
//!    - *settlement records:* inserted only if no record exists for (occ_key, actor, ref),
//!      otherwise [`Conflict::SettlementExists`];
//!    - seat changes or hold writes for an occurrence that does not exist:
//!      [`Conflict::UnknownOccurrence`].
//!
//!    A lost guard is a [`CommitError::Conflict`]: retryable, nothing written. It must never
//!    be a silent overwrite.
//! 3. **O(1) per operation.** Loading and committing touch a constant number of records
//!    (the occurrence's counters, a few holds, one settlement record, a few events), whatever
//!    the number of holds the occurrence has. No whole-occurrence document is read or
//!    rewritten per hold.
//! 4. **An expiry index.** [`Store::lapsed_holds`] finds held holds with
//!    `expires_at <= now` without scanning live or ended ones.
//! 5. **An ordered outbox.** Committed events get ids ([`EventId`]) that never repeat; within
//!    one occurrence ids increase in commit order, and [`Store::pending_events`] yields events
//!    oldest first until [`Store::ack_events`] removes them. Acknowledging must reliably delete.
//! 6. **A lost acknowledgement is safe.** If a commit was applied but the caller saw an error,
//!    a retry of the whole operation loads the committed state and answers the same outcome;
//!    the store needs nothing special for this beyond 1 and 2.
//!
//! Run [`conformance`] against your store to check all of this (enable the `conformance`
//! feature in your dev-dependencies).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use memory::MemoryStore;

use std::error::Error as StdError;
use std::future::Future;

use thiserror::Error;
use time::OffsetDateTime;

use crate::contract::{ActorId, DomainEvent, EventId, OccKey, OutboxEvent, Ref};
use crate::holds::{Hold, HoldState, Occurrence, OccurrenceConfig, SeatDelta};
use crate::settlement::SettlementRecord;

/// A record's version, for conditional writes. Starts at 1 and grows by 1 per write.
pub type Version = u64;

/// A record with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version read.
    pub version: Version,
    /// The record.
    pub value: T,
}

impl<T> std::borrow::Borrow<T> for Versioned<T> {
    fn borrow(&self) -> &T {
        &self.value
    }
}

/// What one operation needs to read, all of it O(1) records.
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    /// The occurrence (its configuration and counters).
    pub occ_key: &'a OccKey,
    /// Load this actor's hold record at the occurrence.
    pub actor: Option<&'a ActorId>,
    /// Load the settlement record for (occ_key, actor, this ref). Ignored without `actor`.
    pub settlement_ref: Option<&'a Ref>,
}

/// What a [`LoadRequest`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The occurrence, if it exists.
    pub occurrence: Option<Occurrence>,
    /// The actor's hold record, if any.
    pub hold: Option<Versioned<Hold>>,
    /// The settlement record, if any.
    pub settlement: Option<SettlementRecord>,
}

/// Write one hold record, guarded by the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldWrite {
    /// `None`: the record must not exist yet. `Some(v)`: it must be at version `v`.
    pub expected: Option<Version>,
    /// The hold's new state (keyed by `hold.occ_key` and `hold.actor`).
    pub hold: Hold,
}

/// One operation's whole change to one occurrence, applied atomically (see the module docs
/// for the guards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The occurrence changed.
    pub occ_key: OccKey,
    /// Create the occurrence, or change its capacity and TTL; counters are kept.
    pub configure: Option<OccurrenceConfig>,
    /// Change to the seat counters, under the capacity guard.
    pub seats: SeatDelta,
    /// Hold records written, at most one per actor.
    pub holds: Vec<HoldWrite>,
    /// A settlement record to insert if absent.
    pub settlement: Option<SettlementRecord>,
    /// Events to append to the outbox, in order.
    pub events: Vec<DomainEvent>,
}

impl Commit {
    /// An empty commit for an occurrence.
    pub fn new(occ_key: OccKey) -> Self {
        Self {
            occ_key,
            configure: None,
            seats: SeatDelta::default(),
            holds: Vec::new(),
            settlement: None,
            events: Vec::new(),
        }
    }

    /// Whether this commit admits seats — its net seat change is positive, or it places a hold
    /// (writes one in state `Held`) — and so falls under the capacity guard.
    pub fn admits_seats(&self) -> bool {
        self.seats.net() > 0 || self.holds.iter().any(|w| w.hold.state == HoldState::Held)
    }
}

/// The store could not do what was asked. For a commit, the change may or may not have been
/// applied (a lost acknowledgement): retry the whole operation, which is safe.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is unreachable or failed (connection lost, timeout, I/O error). Retry later;
    /// retrying the whole operation is safe.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A stored record could not be read back (corrupt or written by an incompatible
    /// version). Not retryable: needs an operator.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Which guard of a [`Commit`] failed. Nothing was written; reload and decide again.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The seats no longer fit the capacity.
    #[error("capacity guard failed")]
    Capacity,
    /// A hold record is not at the expected version.
    #[error("hold of {actor} changed since it was read")]
    HoldChanged {
        /// Whose hold.
        actor: ActorId,
    },
    /// A settlement record for this (occurrence, actor, ref) already exists.
    #[error("settlement already recorded")]
    SettlementExists,
    /// The occurrence does not exist (or the counters would go negative).
    #[error("occurrence missing or counters inconsistent")]
    UnknownOccurrence,
}

/// Why a commit was not applied.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommitError {
    /// A guard failed: nothing was written. Reload and decide again.
    #[error("conflict: {0}")]
    Conflict(#[from] Conflict),
    /// The store failed; the commit may or may not have been applied.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A blocking store. Small, `&self`, and contractual: read the [module docs](self) before
/// implementing it, then run [`conformance`] against it. Every `Store` is also an
/// [`AsyncStore`] (through a blanket implementation), so one engine serves both.
pub trait Store: Send + Sync {
    /// Load what one operation needs. Must read O(1) records.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn load(&self, req: LoadRequest<'_>) -> Result<Snapshot, StoreError>;

    /// Up to `limit` holds in state `Held` with `expires_at <= now`, from the expiry index:
    /// of one occurrence if `occ_key` is given (oldest first), else of any occurrences.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Versioned<Hold>>, StoreError>;

    /// Seats in holds of this occurrence in state `Held` with `expires_at <= now`. Work is
    /// proportional to the lapsed holds not yet expired, which the sweep keeps small.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn lapsed_seats(&self, occ_key: &OccKey, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Apply a commit atomically, checking its guards against the current state.
    ///
    /// # Errors
    /// [`CommitError::Conflict`] if a guard failed (nothing written);
    /// [`CommitError::Store`] if the store failed (outcome unknown).
    fn commit(&self, commit: Commit) -> Result<(), CommitError>;

    /// Up to `limit` committed, unacknowledged events, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Remove these events from the outbox. Unknown ids are ignored. Must reliably delete:
    /// an acknowledged event is never yielded again.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError>;
}

/// The asynchronous twin of [`Store`], with the same contract, for stores that do network
/// I/O (such as PostgreSQL). No runtime is assumed. Every [`Store`] is an `AsyncStore`.
pub trait AsyncStore: Send + Sync {
    /// As [`Store::load`].
    fn load(&self, req: LoadRequest<'_>) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
    /// As [`Store::lapsed_holds`].
    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Hold>>, StoreError>> + Send;
    /// As [`Store::lapsed_seats`].
    fn lapsed_seats(
        &self,
        occ_key: &OccKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// As [`Store::commit`].
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), CommitError>> + Send;
    /// As [`Store::pending_events`].
    fn pending_events(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send;
    /// As [`Store::ack_events`].
    fn ack_events(&self, ids: &[EventId]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: Store + ?Sized> AsyncStore for S {
    fn load(&self, req: LoadRequest<'_>) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        std::future::ready(Store::load(self, req))
    }
    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Hold>>, StoreError>> + Send {
        std::future::ready(Store::lapsed_holds(self, occ_key, now, limit))
    }
    fn lapsed_seats(
        &self,
        occ_key: &OccKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        std::future::ready(Store::lapsed_seats(self, occ_key, now))
    }
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), CommitError>> + Send {
        std::future::ready(Store::commit(self, commit))
    }
    fn pending_events(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send {
        std::future::ready(Store::pending_events(self, limit))
    }
    fn ack_events(&self, ids: &[EventId]) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Store::ack_events(self, ids))
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn load(&self, req: LoadRequest<'_>) -> Result<Snapshot, StoreError> {
        (**self).load(req)
    }
    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Versioned<Hold>>, StoreError> {
        (**self).lapsed_holds(occ_key, now, limit)
    }
    fn lapsed_seats(&self, occ_key: &OccKey, now: OffsetDateTime) -> Result<u64, StoreError> {
        (**self).lapsed_seats(occ_key, now)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        (**self).commit(commit)
    }
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        (**self).pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        (**self).ack_events(ids)
    }
}
