//! The generic conformance suite: what every [`Store`] / [`AsyncStore`] must pass — the
//! in-memory store, the PostgreSQL store, and any store you write. A client of the store
//! contract ([`store`](crate::store)) and of the engine, so it sits above both.
//!
//! Compiled for this crate's tests and, for everyone else, behind the `conformance` feature:
//!
//! ```toml
//! [dev-dependencies]
//! seathold = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! # What it checks
//!
//! One module per clause of the [store contract](crate::store); [`checks`] lists every
//! check, in one place, with the clause it holds the store to. Each check takes an *empty*
//! store and panics with a message naming its clause; [`run_all`] runs them all and lists
//! every one that failed, not only the first. [`flash_sale`] runs a threaded workload on
//! the store and audits it (the one place non-atomic commits and reused outbox ids show);
//! [`run_all_blocking`] includes it. [`interleave`] explores every ordering of the loads and
//! commits of a few racing operations (the exactly-once promise), through any store.
//!
//! Each check is seen to fail on a deliberately broken store: `tests/store_mutants.rs`
//! keeps one *mutant* per clause beside a correct store written only against the public
//! API, and asserts that the suite fails each mutant by the check named here.
//!
//! | clause | checks | mutant it catches |
//! | --- | --- | --- |
//! | 1 atomic commit | [`check_failed_guard_writes_nothing`], [`check_round_trip`], [`check_configure_keeps_counters`], [`flash_sale`] | each write applied as its own guard holds (no transaction); guards checked and writes applied under two separate locks |
//! | 2 guards, in order | [`check_occurrence_guards`], [`check_record_guards`], [`check_capacity_guard`] (and per dimension, freed, admitted), [`check_counter_guard`], [`check_room_guard`], [`check_dropped_dimension_in_use`], [`check_invalid_commits`], [`check_guard_order`] | no capacity guard; record versions not compared; counter guards skipped; room guards skipped; "would go negative" judged before the record guards; a dropped dimension in use answered as a capacity conflict |
//! | 3 reads (O(1) is benchmarked, not checked) | [`check_load_absent`], [`check_scan_pages`], [`check_occurrences_listing`] | `scan` not filtered by occurrence |
//! | 4 expiry index | [`check_due_exact`], [`check_due_follows_writes`], [`check_due_oldest_first_within_a_second`] | the index keeps a rewritten record's first due time |
//! | 5 ordered outbox | [`check_outbox_order`], [`check_outbox_ack`], [`check_event_ids_never_repeat_after_ack`], [`flash_sale`] | `ack_events` deletes nothing; ids reused once acknowledged |
//! | 6 a lost acknowledgement is safe | [`check_engine_retry_after_lost_ack`], [`check_engine_exactly_once_sequences`], [`flash_sale`] (loses one ack in seven) | — (it follows from 1 and 2: every mutant above that breaks them breaks this) |
//! | 7 versions never repeat | [`check_versions_never_repeat`], [`check_stale_guard_after_recreate`] | a put stored at "old version + 1, or 1 if new" |
//!
//! Not checked here: O(1) work per operation (clause 3; the benchmarks measure it), and
//! what survives a restart of the store's handle (a persistent store tests that itself:
//! see the SQLite example's tests). Every time used is a fixed instant (no system clock).
//!
//! # Running it
//!
//! A blocking [`Store`], from a `#[test]` (`stores/sqlite` in the repository runs the suite, the flash
//! sale and the interleavings on a store written outside the crate):
//!
//! ```no_run
//! use seathold::MemoryStore;
//! use seathold::conformance;
//!
//! // #[test]
//! fn memory_store_conforms() {
//!     // `fresh` must return an EMPTY store each call.
//!     conformance::run_all_blocking(MemoryStore::new);
//! }
//! ```
//!
//! An [`AsyncStore`] from your runtime's test macro; for a shared database, make `fresh`
//! return an empty store (a new schema, say):
//!
//! ```no_run
//! use seathold::MemoryStore;
//! use seathold::conformance;
//!
//! async fn my_store_conforms() {
//!     conformance::run_all(async || MemoryStore::new()).await;
//! }
//! ```

mod atomic;
mod engine;
mod expiry;
mod flash_sale;
mod guards;
pub mod interleave;
mod outbox;
mod proxy;
mod reads;
mod versions;

use std::future::Future;
use std::pin::Pin;

pub use atomic::{check_configure_keeps_counters, check_failed_guard_writes_nothing, check_round_trip};
pub use engine::{
    check_engine_capacity, check_engine_exactly_once_sequences, check_engine_lapse_and_sweep,
    check_engine_retry_after_lost_ack,
};
pub use expiry::{check_due_exact, check_due_follows_writes, check_due_oldest_first_within_a_second};
pub use flash_sale::{FlashSale, FlashSaleReport, check_flash_sale, flash_sale, flash_sale_async};
pub use guards::{
    check_admitted_dimension_fits_whatever_is_freed, check_capacity_guard, check_capacity_guard_per_dimension,
    check_counter_guard, check_dropped_dimension_in_use, check_freed_dimension_over_its_cap, check_guard_order,
    check_invalid_commits, check_occurrence_guards, check_record_guards, check_room_guard,
};
pub use outbox::{check_event_ids_never_repeat_after_ack, check_outbox_ack, check_outbox_order};
pub use reads::{check_load_absent, check_occurrences_listing, check_scan_pages};
pub use versions::{check_stale_guard_after_recreate, check_versions_never_repeat};

use crate::store::{AsyncStore, Store};

/// A check's future.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One check of the suite.
pub struct Check<S> {
    /// The check's name (the function's).
    pub name: &'static str,
    /// The clause of the store contract it holds a store to.
    pub clause: &'static str,
    /// Run it on an empty store.
    pub run: for<'a> fn(&'a S) -> CheckFuture<'a>,
}

macro_rules! checks {
    ($($clause:literal => [$($name:ident),* $(,)?]),* $(,)?) => {
        /// Every check, with its clause, in the order [`run_all`] runs them.
        pub fn checks<S: AsyncStore>() -> Vec<Check<S>> {
            vec![$($(Check { name: stringify!($name), clause: $clause, run: |s| Box::pin($name(s)) },)*)*]
        }
    };
}

checks! {
    "1 atomic commit" => [check_configure_keeps_counters, check_round_trip, check_failed_guard_writes_nothing],
    "2 guards" => [
        check_occurrence_guards,
        check_record_guards,
        check_capacity_guard,
        check_capacity_guard_per_dimension,
        check_admitted_dimension_fits_whatever_is_freed,
        check_freed_dimension_over_its_cap,
        check_dropped_dimension_in_use,
        check_counter_guard,
        check_room_guard,
        check_invalid_commits,
        check_guard_order,
    ],
    "3 reads" => [check_load_absent, check_scan_pages, check_occurrences_listing],
    "4 expiry index" => [check_due_exact, check_due_follows_writes, check_due_oldest_first_within_a_second],
    "5 ordered outbox" => [check_outbox_order, check_outbox_ack, check_event_ids_never_repeat_after_ack],
    "7 versions never repeat" => [check_versions_never_repeat, check_stale_guard_after_recreate],
    "6 through the engine" => [
        check_engine_capacity,
        check_engine_lapse_and_sweep,
        check_engine_retry_after_lost_ack,
        check_engine_exactly_once_sequences,
    ],
}

/// A check that failed, with its clause and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// The clause of the store contract it holds a store to.
    pub clause: &'static str,
    /// Its panic message.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (clause {}): {}", self.check, self.clause, self.message)
    }
}

/// Run every check, each on a store returned by `fresh` (which must be empty each call), and
/// panic once at the end listing every check that failed, with its clause (see
/// [`run_all_report`] for the list without the panic).
pub async fn run_all<S: AsyncStore>(fresh: impl AsyncFnMut() -> S) {
    let failures = run_all_report(fresh).await;
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
        panic!("{} conformance check(s) failed:\n{}", failures.len(), list.join("\n"));
    }
}

/// Run every check, each on a store returned by `fresh`, and answer the ones that failed
/// (empty: the store passes). A failing check does not stop the others.
pub async fn run_all_report<S: AsyncStore>(mut fresh: impl AsyncFnMut() -> S) -> Vec<Failure> {
    let mut failures = Vec::new();
    for check in checks::<S>() {
        let store = fresh().await;
        if let Err(message) = CatchPanic((check.run)(&store)).await {
            failures.push(Failure { check: check.name, clause: check.clause, message });
        }
    }
    failures
}

/// Run one check, naming it and its clause if it fails.
///
/// # Panics
/// If the check fails, with the check's name, its clause and its message.
pub async fn run_one<S: AsyncStore>(check: &Check<S>, store: &S) {
    if let Err(message) = CatchPanic((check.run)(store)).await {
        panic!("conformance check {} (clause {}) failed: {message}", check.name, check.clause);
    }
}

/// A check's future, with a panic while it is polled turned into its message.
struct CatchPanic<'a>(CheckFuture<'a>);

impl Future for CatchPanic<'_> {
    type Output = Result<(), String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Ready(())) => std::task::Poll::Ready(Ok(())),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic_message(panic.as_ref()))),
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// [`run_all`] for a blocking [`Store`], on the calling thread, and then the threaded
/// [`flash_sale`] on one more fresh store: panics once at the end listing every failure.
pub fn run_all_blocking<S: Store>(fresh: impl FnMut() -> S) {
    let failures = run_all_blocking_report(fresh);
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
        panic!("{} conformance check(s) failed:\n{}", failures.len(), list.join("\n"));
    }
}

/// [`run_all_report`] for a blocking [`Store`], plus the threaded [`flash_sale`] (reported
/// as `check_flash_sale`, clause `1, 5, 6 threaded`).
pub fn run_all_blocking_report<S: Store>(mut fresh: impl FnMut() -> S) -> Vec<Failure> {
    let mut failures = block_on(run_all_report(async || fresh()));
    let sale = flash_sale(&fresh(), &FlashSale::default());
    if !sale.violations.is_empty() {
        failures.push(Failure { check: "check_flash_sale", clause: "1, 5, 6 threaded", message: sale.to_string() });
    }
    failures
}

/// Drive a future to completion on the calling thread: use it to run one check on a blocking
/// [`Store`]. The same executor the blocking [`Engine`](crate::Engine) uses.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    crate::engine::block_on::block_on(fut)
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures
// ---------------------------------------------------------------------------------------------

pub(crate) mod fixtures {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use crate::catalogue::{Dim, OccurrenceConfig, Pool, Tier};
    use crate::contract::{ActorId, DomainEvent, EventKind, Money, OccKey, Ref, TierName};
    use crate::holds::{ActorRecord, Hold, HoldState};
    use crate::records::{Record, RecordKey, UsageDelta, Versioned};
    use crate::store::{AsyncStore, Commit, CommitError, Committed, OccurrenceGuard, RecordWrite, Snapshot, WriteOp};

    pub(crate) const T0: OffsetDateTime = datetime!(2026-12-01 19:00:00 UTC);

    pub(crate) fn occ(s: &str) -> OccKey {
        OccKey::new(s).unwrap_or_else(|e| panic!("fixture occ_key {s}: {e}"))
    }

    pub(crate) fn actor(s: &str) -> ActorId {
        ActorId::new(s).unwrap_or_else(|e| panic!("fixture actor {s}: {e}"))
    }

    pub(crate) fn r(s: &str) -> Ref {
        Ref::new(s).unwrap_or_else(|e| panic!("fixture ref {s}: {e}"))
    }

    pub(crate) fn tier(s: &str) -> TierName {
        TierName::new(s).unwrap_or_else(|e| panic!("fixture tier {s}: {e}"))
    }

    pub(crate) fn eur(a: &str) -> Money {
        Money::parse(a, "EUR").unwrap_or_else(|e| panic!("fixture money {a}: {e}"))
    }

    pub(crate) fn config(capacity: u32) -> OccurrenceConfig {
        OccurrenceConfig::new(capacity, 600).unwrap_or_else(|e| panic!("fixture config: {e}"))
    }

    /// Capacity 10; tier `a` capped at 4 in pool `p` (capacity 3); tier `b` uncapped.
    pub(crate) fn tiered() -> OccurrenceConfig {
        config(10)
            .with_tiers(vec![
                Tier::new(tier("a"), eur("10.00")).with_capacity(4).with_pools(vec![pool("p")]),
                Tier::new(tier("b"), eur("5.00")),
            ])
            .with_pools(vec![Pool { pool: pool("p"), capacity: 3 }])
    }

    pub(crate) fn pool(s: &str) -> crate::contract::PoolName {
        crate::contract::PoolName::new(s).unwrap_or_else(|e| panic!("fixture pool {s}: {e}"))
    }

    pub(crate) fn hold(o: &OccKey, a: &str, hr: &str, quantity: u32, expires_at: OffsetDateTime) -> Hold {
        Hold {
            occ_key: o.clone(),
            actor: actor(a),
            hold_ref: r(hr),
            quantity,
            price: eur("10.00"),
            lines: crate::contract::Lines::default(),
            metadata: None,
            placed_at: T0,
            expires_at,
            state: HoldState::Held,
            ended_at: None,
            tickets: Vec::new(),
            revived: false,
            first_expires_at: None,
            cancelled_seats: 0,
            cancellations: 0,
            refunded: None,
            seat_ids: crate::seating::SeatList::new(),
        }
    }

    pub(crate) fn actor_record(o: &OccKey, a: &str) -> ActorRecord {
        ActorRecord::new(o.clone(), actor(a))
    }

    pub(crate) fn event(o: &OccKey, a: &str, hr: &str, q: u32) -> DomainEvent {
        DomainEvent {
            occ_key: o.clone(),
            actor: actor(a),
            hold_ref: Some(r(hr)),
            at: T0,
            kind: EventKind::HoldReleased { quantity: q },
            metadata: None,
        }
    }

    pub(crate) fn put(record: Record, expected: Option<u64>) -> RecordWrite {
        RecordWrite { key: record.key(), expected, op: WriteOp::Put(record) }
    }

    pub(crate) fn create(o: &OccKey, cfg: OccurrenceConfig) -> Commit {
        Commit { occurrence: OccurrenceGuard::Create(cfg), ..Commit::new(o.clone()) }
    }

    pub(crate) fn at(o: &OccKey, v: u64) -> Commit {
        Commit { occurrence: OccurrenceGuard::At(v), ..Commit::new(o.clone()) }
    }

    pub(crate) fn held(n: i64) -> UsageDelta {
        UsageDelta { held: n, ..UsageDelta::default() }
    }

    pub(crate) fn total() -> Dim {
        Dim::Total
    }

    pub(crate) async fn commit_ok<S: AsyncStore>(s: &S, c: Commit, clause: &str) -> Committed {
        match s.commit(c).await {
            Ok(done) => done,
            Err(e) => panic!("{clause}: a commit whose guards hold was refused: {e}"),
        }
    }

    pub(crate) async fn commit_err<S: AsyncStore>(s: &S, c: Commit, clause: &str) -> CommitError {
        match s.commit(c).await {
            Ok(_) => panic!("{clause}: a commit whose guard fails was applied"),
            Err(e) => e,
        }
    }

    pub(crate) async fn load<S: AsyncStore>(s: &S, o: &OccKey, keys: &[RecordKey]) -> Snapshot {
        s.load(o, keys).await.unwrap_or_else(|e| panic!("load failed: {e}"))
    }

    pub(crate) async fn get<S: AsyncStore>(s: &S, o: &OccKey, key: &RecordKey) -> Option<Versioned<Record>> {
        load(s, o, std::slice::from_ref(key)).await.records.into_iter().next().flatten()
    }
}
