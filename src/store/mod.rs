//! The storage boundary: what the engine asks of a store, and what a store guarantees.
//!
//! Owns: the [`Store`] trait (blocking) and its twin [`AsyncStore`], the unit of change
//! ([`Commit`]: seat deltas, conditional record writes, events) and what one operation reads
//! ([`Snapshot`]), their errors, the in-memory default [`MemoryStore`], and (feature
//! `postgres`) the PostgreSQL store, `store::postgres::PostgresStore`.
//!
//! May not touch: the rules. A store never decides whether a hold fits or how a payment
//! settles; it keeps occurrences and [`Record`]s, enforces the guards written in a
//! [`Commit`], and applies the whole commit or none of it. It never interprets a record
//! beyond [`Record::due`] (for the expiry index) and [`Record::key`].
//!
//! # The contract a store must keep
//!
//! The consistency boundary is one occurrence: one commit changes one occurrence, atomically,
//! under one lock (or its equivalent); every operation reads and writes O(1) records.
//!
//! 1. **Atomic commit.** [`Store::commit`] applies everything in the [`Commit`] — the
//!    occurrence's configuration, its seat counters, every record write and the outbox
//!    events — or nothing. A commit that returns `Ok` is durable for the store's durability
//!    level.
//! 2. **Guards, checked at commit time against the current state, never against what was
//!    loaded** (object_store's `PutMode`, per record). [`check_commit`] decides all of them,
//!    in this order, and a store that can read its occurrence and the written records'
//!    versions under its lock should call it rather than re-derive them; the first guard
//!    that fails is the answer:
//!    1. *shape* ([`validate_commit`]): one write per key, a put under its own key, one
//!       delta per dimension, no deltas or counter guards with an `Unchecked` occurrence —
//!       otherwise [`CommitError::Invalid`];
//!    2. *occurrence* ([`OccurrenceGuard`]): `At(v)` — it exists at config version `v`;
//!       `Create` — it does not exist; `Update { expected }` — it exists at version
//!       `expected` (the new configuration is stored at `expected + 1`, counters kept);
//!       `Unchecked` — nothing asserted. Otherwise [`Conflict::Occurrence`]. An `Unchecked`
//!       commit for an occurrence that does not exist stores its records and events and
//!       creates no occurrence (a refund signal for an unknown key);
//!    3. *records* ([`RecordWrite`]), in the commit's order: `expected: None` — no record
//!       under the key; `expected: Some(v)` — the record is at version `v`; whatever the
//!       [`WriteOp`] (`Check` writes nothing, `Put` stores the record at the commit's
//!       version — clause 7 —, `Delete` removes it). Otherwise [`Conflict::Record`] naming
//!       a key that differs (of several, the first in (kind, key) order as text sorts
//!       byte by byte, so every store names the same one);
//!    4. *counters*: every `(dimension, usage)` in [`Commit::unchanged`] must be the
//!       dimension's counters as they stand before the commit (all four fields; a dimension
//!       never counted counts zero), otherwise [`Conflict::Usage`]. A decision that
//!       concluded from what the counters did *not* hold guards that reading, as a `Check`
//!       guards a record. Then *room*: every `(dimension, seats)` in [`Commit::at_least`]
//!       must have at least that many seats taken (all four counters) before the commit,
//!       otherwise [`Conflict::Usage`] — no seat was freed there since the decision read it.
//!       Guard by guard in the commit's order, counter guards first: a guard on a dimension
//!       neither the stored nor the new configuration has is [`CommitError::Invalid`] when
//!       its turn comes;
//!    5. *arithmetic*: a delta on a dimension neither configuration has, or one that takes a
//!       counter below zero, is [`CommitError::Invalid`]. It comes after the record and
//!       counter guards on purpose: a stale decision is a race (retry), and only a decision
//!       made on the current records and counters that still goes negative is a bug;
//!    6. *capacity*: seat deltas are added to the counters, and every dimension listed in
//!       [`Commit::admits`] must then be within its cap in the configuration the commit
//!       leaves ([`OccurrenceConfig::capacity_of`]), otherwise [`Conflict::Capacity`] naming
//!       the first that is over. This holds whatever else the same commit frees: a hold
//!       placed while lapsed ones are expired must still fit. A dimension *not* listed (a
//!       confirmation, a release, an expiry, or the seats a cancellation frees beside an
//!       offer it makes elsewhere) is never refused for capacity: lowering a capacity
//!       revokes nothing, so a dimension left over a lowered cap can always shed seats.
//!       Admitting to a dimension the new configuration lacks is [`CommitError::Invalid`];
//!    7. *reconfiguration*: a commit may change counters of the dimensions of the
//!       configuration it leaves, and of the one it replaces (so it can empty a dimension
//!       it drops); once applied, a dimension the new configuration drops must count no
//!       seat, otherwise [`Conflict::Occurrence`] (decide again on the current counters, or
//!       wait for those seats to end). Dimensions dropped with nothing counted are forgotten.
//!
//!    A lost guard is a [`CommitError::Conflict`]: retryable, nothing written. It must
//!    never be a silent overwrite. A malformed commit is not a race: it is refused with
//!    [`CommitError::Invalid`], nothing written, and the engine does not retry it.
//! 3. **O(1) per operation.** Loading and committing touch the occurrence and the records
//!    named, whatever the number of records the occurrence has. No whole-occurrence document
//!    is read or rewritten per hold.
//! 4. **An expiry index.** Every record whose [`Record::due`] is `Some(t)` is found by
//!    [`Store::due`] once `t <= now`, oldest first, without scanning the others; the index
//!    follows every write.
//! 5. **An ordered outbox.** Committed events get ids ([`EventId`]) that never repeat; within
//!    one occurrence ids increase in commit order, and [`Store::pending_events`] yields events
//!    oldest first until [`Store::ack_events`] removes them. Acknowledging must reliably
//!    delete.
//! 6. **A lost acknowledgement is safe.** If a commit was applied but the caller saw an error,
//!    a retry of the whole operation loads the committed state and answers the same outcome;
//!    the store needs nothing special for this beyond 1 and 2.
//! 7. **A version names one state, forever.** Every record a commit puts is stored at the
//!    version the commit answers ([`Committed::version`]), and that version is greater than
//!    every version any record of the occurrence was ever stored at — also one deleted since.
//!    So a version never repeats for a key, even after the record is deleted and created
//!    again (a block unblocked and blocked again under the same name): a guard taken on the
//!    old record fails against the new one. "The old version + 1" is *not* enough (a
//!    re-created record would start again at 1, and a stale `Delete` at version 1 would
//!    remove the new record while the decision subtracted the old one's seats). A
//!    per-occurrence commit sequence (`MemoryStore`) or a store-wide sequence (the
//!    PostgreSQL store) both keep this; the sequence must survive everything that deletes
//!    records, and never restart below a version already issued.
//!
//! The conformance suite ([`conformance`](crate::conformance), feature `conformance`) holds
//! a store to every clause but 3 (which the benchmarks measure): its docs list, per clause,
//! the checks and the broken stores (*mutants*) each check is seen to catch.

mod check;
mod intercept;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sharded;

pub use check::{NextOccurrence, check_commit};
pub use intercept::{Call, Intercept, Intercepted};
pub use memory::MemoryStore;
pub use sharded::{NoShards, ShardedStore};

use crate::kind::{Classify, ErrorKind};
use std::error::Error as StdError;
use std::future::Future;

use thiserror::Error;
use time::OffsetDateTime;

use crate::catalogue::{Dim, OccurrenceConfig};
use crate::contract::{EventId, OccKey, OutboxEvent};
pub use crate::records::{
    Events, Few, Occurrence, Record, RecordKey, RecordKind, Usage, UsageDelta, Version, Versioned,
};

/// What a [`Store::load`] found: the occurrence, and one entry per key asked for (in order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The occurrence, if it exists.
    pub occurrence: Option<Occurrence>,
    /// The records, in the order of the keys asked for (`None`: absent).
    pub records: Vec<Option<Versioned<Record>>>,
}

/// A record the expiry index says is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Its occurrence.
    pub occ_key: OccKey,
    /// The record, with its version.
    pub record: Versioned<Record>,
}

/// What a commit asserts about (and does to) its occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OccurrenceGuard {
    /// Nothing asserted: the occurrence may or may not exist. The commit must carry no seat
    /// deltas (a refund signal for an unknown occurrence, say).
    Unchecked,
    /// The occurrence exists at this config version.
    At(Version),
    /// Create the occurrence with this configuration; it must not exist.
    Create(OccurrenceConfig),
    /// Replace the configuration of the occurrence at config version `expected`; counters are
    /// kept (dimensions the new configuration drops must count nothing).
    Update {
        /// The config version it must be at.
        expected: Version,
        /// The new configuration.
        config: OccurrenceConfig,
    },
}

/// What a [`RecordWrite`] does once its guard holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a commit holds a few of these, briefly
pub enum WriteOp {
    /// Nothing: the guard alone (the record was read for the decision).
    Check,
    /// Store this record (its [`Record::key`] must be the write's key).
    Put(Record),
    /// Remove the record.
    Delete,
}

/// A conditional write of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// The record's key.
    pub key: RecordKey,
    /// `None`: no record may exist under the key. `Some(v)`: it must be at version `v`.
    pub expected: Option<Version>,
    /// What to do.
    pub op: WriteOp,
}

/// One operation's whole change to one occurrence, applied atomically (see the module docs
/// for the guards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The occurrence changed.
    pub occ_key: OccKey,
    /// What the occurrence must be, and any configuration written.
    pub occurrence: OccurrenceGuard,
    /// Changes to the seat counters, per dimension (one entry per dimension).
    pub deltas: Few<(Dim, UsageDelta), 6>,
    /// The dimensions the commit admits seats to. After the deltas, each must be within its
    /// cap in the configuration the commit leaves, otherwise [`Conflict::Capacity`]. A
    /// dimension not listed here is never refused for capacity, even if it ends over its
    /// cap (seats only leave it, or a lowered cap is still being shed).
    pub admits: Few<Dim, 6>,
    /// Counter guards: each listed dimension's counters must be exactly these before the
    /// commit, otherwise [`Conflict::Usage`].
    pub unchanged: Vec<(Dim, Usage)>,
    /// Room guards: each listed dimension must have at least this many seats taken before
    /// the commit, otherwise [`Conflict::Usage`].
    pub at_least: Vec<(Dim, u64)>,
    /// Conditional record writes (one per key).
    pub records: Vec<RecordWrite>,
    /// Events to append to the outbox, in order.
    pub events: Events,
}

impl Commit {
    /// A commit that asserts nothing and changes nothing, for `occ_key`.
    pub fn new(occ_key: OccKey) -> Self {
        Self {
            occ_key,
            occurrence: OccurrenceGuard::Unchecked,
            deltas: Few::new(),
            admits: Few::new(),
            unchanged: Vec::new(),
            at_least: Vec::new(),
            records: Vec::new(),
            events: Events::new(),
        }
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
    /// The store refused a malformed commit ([`CommitError::Invalid`]): a bug in seathold or
    /// in the store, not a race. Not retryable: report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// Which guard of a [`Commit`] failed. Nothing was written; reload and decide again.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The seats no longer fit this dimension's cap.
    #[error("capacity guard failed on {dim}")]
    Capacity {
        /// The dimension.
        dim: Dim,
    },
    /// A record is not at the expected version (or exists / does not exist).
    #[error("record {key} changed since it was read")]
    Record {
        /// The record.
        key: RecordKey,
    },
    /// The occurrence is not as expected: created, removed or reconfigured since it was read.
    #[error("occurrence changed since it was read")]
    Occurrence,
    /// A dimension's counters are not as the decision read them ([`Commit::unchanged`]):
    /// seats were taken or freed there since.
    #[error("counters of {dim} changed since they were read")]
    Usage {
        /// The dimension.
        dim: Dim,
    },
}

/// Why a commit was not applied.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommitError {
    /// A guard failed: nothing was written. Reload and decide again.
    #[error("conflict: {0}")]
    Conflict(#[from] Conflict),
    /// The commit is malformed (see the module docs): nothing was written, and retrying
    /// cannot help.
    #[error("invalid commit: {0}")]
    Invalid(String),
    /// The store failed; the commit may or may not have been applied.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a store answers for an applied [`Commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Committed {
    /// The version every record the commit put is now stored at: greater than any version a
    /// record of the occurrence had before (clause 7 of the [module docs](self)). A commit
    /// that put nothing may answer any version.
    pub version: Version,
}

impl Committed {
    /// The answer of a commit whose puts are stored at `version`.
    pub fn at(version: Version) -> Self {
        Self { version }
    }
}

/// A blocking store. Small, `&self`, and contractual: read the [module docs](self) before
/// implementing it, then run the conformance suite against it. Every `Store` is also an
/// [`AsyncStore`] (through a blanket implementation), so one engine serves both.
pub trait Store: Send + Sync {
    /// The occurrence `occ_key` and the records `keys` of it. Must read O(`keys`) records.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError>;

    /// Up to `limit` records due at `now` (`Record::due() <= now`), oldest first: of one
    /// occurrence if `occ_key` is given, else of any (the sweep; a store shared by several
    /// sweepers may lease what it returns so they take disjoint batches).
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError>;

    /// Up to `limit` records of one kind of an occurrence, in a stable store-defined order,
    /// after `after` (a key a previous page ended on). For listings (the ledger, an actor's
    /// bookings), not for decisions: it is O(records of that kind).
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError>;

    /// Up to `limit` occurrence keys in ascending order, after `after`.
    ///
    /// # Errors
    /// [`StoreError`] if the store failed.
    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError>;

    /// Apply a commit atomically, checking its guards against the current state, and answer
    /// the version its puts are stored at (clause 7: never one a record of the occurrence
    /// had before).
    ///
    /// # Errors
    /// [`CommitError::Conflict`] if a guard failed (nothing written);
    /// [`CommitError::Invalid`] if the commit is malformed (nothing written);
    /// [`CommitError::Store`] if the store failed (outcome unknown).
    fn commit(&self, commit: Commit) -> Result<Committed, CommitError>;

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
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
    /// As [`Store::due`].
    fn due(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Due>, StoreError>> + Send;
    /// As [`Store::scan`].
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Record>>, StoreError>> + Send;
    /// As [`Store::occurrences`].
    fn occurrences(
        &self,
        after: Option<&OccKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OccKey>, StoreError>> + Send;
    /// As [`Store::commit`].
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<Committed, CommitError>> + Send;
    /// As [`Store::pending_events`].
    fn pending_events(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send;
    /// As [`Store::ack_events`].
    fn ack_events(&self, ids: &[EventId]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: Store + ?Sized> AsyncStore for S {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        std::future::ready(Store::load(self, occ_key, keys))
    }
    fn due(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Due>, StoreError>> + Send {
        std::future::ready(Store::due(self, occ_key, now, limit))
    }
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Record>>, StoreError>> + Send {
        std::future::ready(Store::scan(self, occ_key, kind, after, limit))
    }
    fn occurrences(
        &self,
        after: Option<&OccKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OccKey>, StoreError>> + Send {
        std::future::ready(Store::occurrences(self, after, limit))
    }
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<Committed, CommitError>> + Send {
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
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        (**self).load(occ_key, keys)
    }
    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        (**self).due(occ_key, now, limit)
    }
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        (**self).scan(occ_key, kind, after, limit)
    }
    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        (**self).occurrences(after, limit)
    }
    fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        (**self).commit(commit)
    }
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        (**self).pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        (**self).ack_events(ids)
    }
}

/// Check what a store can check of a commit without its state: one write per key, puts
/// under their own key, deltas only with an occurrence guard, one entry per dimension.
/// Stores call it first and answer [`CommitError::Invalid`] on failure.
///
/// # Errors
/// A description of what is malformed.
pub fn validate_commit(c: &Commit) -> Result<(), String> {
    for (i, w) in c.records.iter().enumerate() {
        if c.records[..i].iter().any(|o| o.key == w.key) {
            return Err(format!("record {} written twice", w.key));
        }
        if let WriteOp::Put(r) = &w.op {
            if !r.has_key(&w.key) {
                return Err(format!("record put under {} has key {}", w.key, r.key()));
            }
        }
    }
    for (i, (d, _)) in c.deltas.iter().enumerate() {
        if c.deltas[..i].iter().any(|(o, _)| o == d) {
            return Err(format!("dimension {d} changed twice"));
        }
    }
    if matches!(c.occurrence, OccurrenceGuard::Unchecked) && !c.deltas.is_empty() {
        return Err("seat deltas on an unchecked occurrence".to_owned());
    }
    if matches!(c.occurrence, OccurrenceGuard::Unchecked)
        && !(c.admits.is_empty() && c.unchanged.is_empty() && c.at_least.is_empty())
    {
        return Err("capacity or counter guards on an unchecked occurrence".to_owned());
    }
    Ok(())
}
