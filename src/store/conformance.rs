//! The generic conformance suite: what every [`Store`] / [`AsyncStore`] must pass — the
//! in-memory store, a PostgreSQL store, and any store you write.
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
//! Each check is its own `async fn` taking an *empty* store, and panics with a message that
//! names the clause of the [store contract](super) it found broken:
//!
//! | check | clause |
//! | --- | --- |
//! | [`check_unknown_occurrence_loads_empty`] | loads: an empty store / unknown occurrence loads an empty [`Snapshot`] |
//! | [`check_configure_keeps_counters`] | 1 atomic commit: `configure` creates, then changes capacity and TTL and keeps the counters |
//! | [`check_round_trip`] | 1 atomic commit: holds, settlement records and events read back exactly as written |
//! | [`check_capacity_guard`] | 2 guards: a positive net change that would exceed the capacity is refused |
//! | [`check_capacity_lowered_refuses_nothing_non_positive`] | 2 guards: a commit that admits no seats is never refused, even over capacity |
//! | [`check_capacity_guard_on_a_placement_with_non_positive_net`] | 2 guards: a commit that places a hold is guarded even when the lapsed holds it replaces make its net change <= 0 |
//! | [`check_hold_version_guards`] | 2 guards: `expected: None` / `Some(v)`; versions start at 1 and grow by 1 |
//! | [`check_settlement_insert_if_absent`] | 2 guards: one settlement record per (occurrence, actor, ref) |
//! | [`check_settlement_for_unknown_occurrence`] | 2 guards: a refund record needs no occurrence (the `no_hold` row) |
//! | [`check_unknown_occurrence_guard`] | 2 guards: seats or holds of a missing occurrence are refused |
//! | [`check_failed_guard_writes_nothing`] | 1 + 2: a commit with a failing guard writes no counter, hold, record, event or configuration |
//! | [`check_lapsed_holds_exact`] | 4 expiry index: exactly the held holds with `expires_at <= now`, oldest first, `limit` respected |
//! | [`check_lapsed_holds_oldest_first_within_a_second`] | 4 expiry index: "oldest first" holds at sub-second resolution too |
//! | [`check_lapsed_seats`] | 4 expiry index: seats of exactly those holds |
//! | [`check_outbox_order`] | 5 outbox: unique ids, increasing per occurrence, oldest first, `limit` respected |
//! | [`check_outbox_ack`] | 5 outbox: ack removes exactly the acked ids (any order), ignores unknown ids, never yields them again |
//! | [`check_engine_capacity`] | through [`AsyncEngine`]: holds, settlement and a lowered capacity on this store |
//! | [`check_engine_lapse_and_sweep`] | through [`AsyncEngine`]: lapsed holds block nothing, end exactly once |
//! | [`check_engine_retry_after_lost_ack`] | 6 lost acknowledgement: a retried operation answers the committed outcome |
//!
//! Not checked here: O(1) work per operation (clause 3; the benchmarks measure it) and
//! behaviour under concurrent callers (the suite needs no runtime, so it runs one operation
//! at a time; race the engine from threads or tasks in your own tests). Every time used is a
//! fixed instant (no system clock), with at most millisecond precision.
//!
//! # Running it
//!
//! A blocking [`Store`], from a `#[test]`:
//!
//! ```no_run
//! use seathold::MemoryStore;
//! use seathold::store::conformance;
//!
//! // #[test]
//! fn memory_store_conforms() {
//!     // `fresh` must return an EMPTY store each call.
//!     conformance::run_all_blocking(MemoryStore::new);
//! }
//!
//! // One check at a time, to see which one failed:
//! // #[test]
//! fn memory_store_capacity_guard() {
//!     conformance::block_on(conformance::check_capacity_guard(&MemoryStore::new()));
//! }
//! ```
//!
//! An [`AsyncStore`] from your runtime's test macro. For a shared database, make `fresh`
//! return an empty store, for example by truncating its tables:
//!
//! ```no_run
//! use seathold::MemoryStore;
//! use seathold::store::conformance;
//!
//! async fn my_store_conforms() {
//!     conformance::run_all(async || {
//!         // e.g. `let store = PgStore::connect(url).await; store.truncate_all().await; store`
//!         MemoryStore::new()
//!     })
//!     .await;
//!     // or one check: conformance::check_outbox_ack(&MemoryStore::new()).await;
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::{
    AsyncStore, Commit, CommitError, Conflict, HoldWrite, LoadRequest, Snapshot, Store, StoreError, Version, Versioned,
};
use crate::AsyncEngine;
use crate::clock::ManualClock;
use crate::contract::{
    ActorId, DomainEvent, EventId, EventKind, Money, NoHoldReason, OccKey, OutboxEvent, PaymentResult, Ref,
};
use crate::holds::{Hold, HoldRequest, HoldState, Occurrence, OccurrenceConfig, RequestOutcome, SeatDelta};
use crate::settlement::{PaidOutcome, Refund, Settlement, SettlementRecord};

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Run every check, each on a store returned by `fresh` (which must be empty each call).
/// Panics at the first broken clause, naming it.
pub async fn run_all<S: AsyncStore>(mut fresh: impl AsyncFnMut() -> S) {
    check_unknown_occurrence_loads_empty(&fresh().await).await;
    check_configure_keeps_counters(&fresh().await).await;
    check_round_trip(&fresh().await).await;
    check_capacity_guard(&fresh().await).await;
    check_capacity_lowered_refuses_nothing_non_positive(&fresh().await).await;
    check_capacity_guard_on_a_placement_with_non_positive_net(&fresh().await).await;
    check_hold_version_guards(&fresh().await).await;
    check_settlement_insert_if_absent(&fresh().await).await;
    check_settlement_for_unknown_occurrence(&fresh().await).await;
    check_unknown_occurrence_guard(&fresh().await).await;
    check_failed_guard_writes_nothing(&fresh().await).await;
    check_lapsed_holds_exact(&fresh().await).await;
    check_lapsed_seats(&fresh().await).await;
    check_outbox_order(&fresh().await).await;
    check_outbox_ack(&fresh().await).await;
    check_engine_capacity(&fresh().await).await;
    check_engine_lapse_and_sweep(&fresh().await).await;
    check_engine_retry_after_lost_ack(&fresh().await).await;
    check_lapsed_holds_oldest_first_within_a_second(&fresh().await).await;
}

/// [`run_all`] for a blocking [`Store`], on the calling thread.
pub fn run_all_blocking<S: Store>(mut fresh: impl FnMut() -> S) {
    block_on(run_all(async || fresh()));
}

/// Drive a future to completion on the calling thread: use it to run one check on a blocking
/// [`Store`] (`block_on(check_outbox_ack(&store))`). The same executor the blocking
/// [`Engine`](crate::Engine) uses.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    crate::engine::block_on::block_on(fut)
}

// ---------------------------------------------------------------------------------------------
// Clause names used in panic messages
// ---------------------------------------------------------------------------------------------

const LOAD: &str = "store contract (load: what a load returns)";
const ATOMIC: &str = "store contract 1 (atomic commit)";
const CAPACITY: &str = "store contract 2 (guards: capacity)";
const HOLD_VERSION: &str = "store contract 2 (guards: hold versions)";
const SETTLEMENT: &str = "store contract 2 (guards: settlement insert-if-absent)";
const UNKNOWN_OCC: &str = "store contract 2 (guards: unknown occurrence)";
const EXPIRY: &str = "store contract 4 (expiry index)";
const OUTBOX: &str = "store contract 5 (outbox order)";
const ACK: &str = "store contract 5 (outbox acknowledgement)";
const LOST_ACK: &str = "store contract 6 (lost acknowledgement: retry answers the committed outcome)";
const ENGINE: &str = "engine over this store";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The suite's fixed "now". Never the system clock.
const T0: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn millis(n: i64) -> Duration {
    Duration::milliseconds(n)
}

fn occ(s: &str) -> OccKey {
    OccKey::new(s).expect("fixture occ_key is valid")
}

fn actor(s: &str) -> ActorId {
    ActorId::new(s).expect("fixture actor is valid")
}

fn rf(s: &str) -> Ref {
    Ref::new(s).expect("fixture ref is valid")
}

fn price() -> Money {
    Money::parse("25.00", "EUR").expect("fixture price is valid")
}

fn config(capacity: u32, ttl_secs: u64) -> OccurrenceConfig {
    OccurrenceConfig::new(capacity, ttl_secs).expect("fixture config is valid")
}

/// A held hold record.
fn hold(occ_key: &OccKey, who: &str, hold_ref: &str, quantity: u32, expires_at: OffsetDateTime) -> Hold {
    Hold {
        occ_key: occ_key.clone(),
        actor: actor(who),
        hold_ref: rf(hold_ref),
        quantity,
        price: price(),
        attempt: 1,
        placed_at: expires_at - secs(600),
        expires_at,
        state: HoldState::Held,
        ended_at: None,
    }
}

/// The same hold in a terminal state.
fn ended(h: &Hold, state: HoldState, at: OffsetDateTime) -> Hold {
    Hold { state, ended_at: Some(at), ..h.clone() }
}

fn event(h: &Hold, kind: EventKind) -> DomainEvent {
    DomainEvent {
        occ_key: h.occ_key.clone(),
        actor: h.actor.clone(),
        hold_ref: h.hold_ref.clone(),
        at: h.placed_at,
        kind,
    }
}

fn placed_event(h: &Hold) -> DomainEvent {
    event(h, EventKind::HoldPlaced { quantity: h.quantity, price: h.price, expires_at: h.expires_at })
}

fn refund_event(occ_key: &OccKey, who: &str, hold_ref: &str) -> DomainEvent {
    DomainEvent {
        occ_key: occ_key.clone(),
        actor: actor(who),
        hold_ref: rf(hold_ref),
        at: T0,
        kind: EventKind::RefundRequired {
            reason: NoHoldReason::NoHold,
            amount: Some(price().amount),
            currency: Some(price().currency),
            provider_ref: None,
        },
    }
}

fn refund_record(occ_key: &OccKey, who: &str, hold_ref: &str, reason: NoHoldReason) -> SettlementRecord {
    SettlementRecord {
        occ_key: occ_key.clone(),
        actor: actor(who),
        hold_ref: rf(hold_ref),
        outcome: PaidOutcome::Refund(Refund {
            occ_key: occ_key.clone(),
            actor: actor(who),
            hold_ref: rf(hold_ref),
            reason,
            amount: Some(price().amount),
            currency: Some(price().currency),
            provider_ref: None,
        }),
        settled_at: T0,
    }
}

fn seats(held: i64, confirmed: i64) -> SeatDelta {
    SeatDelta { held, confirmed }
}

/// A commit that configures an occurrence and nothing else.
fn configure(occ_key: &OccKey, cfg: OccurrenceConfig) -> Commit {
    let mut c = Commit::new(occ_key.clone());
    c.configure = Some(cfg);
    c
}

/// A commit that places a new hold record (`expected: None`) with its seats and event.
fn place(h: &Hold) -> Commit {
    write(h, None, seats(i64::from(h.quantity), 0))
}

/// A commit that writes one hold record at `expected`, with a seat change and one event.
fn write(h: &Hold, expected: Option<Version>, delta: SeatDelta) -> Commit {
    let mut c = Commit::new(h.occ_key.clone());
    c.seats = delta;
    c.holds.push(HoldWrite { expected, hold: h.clone() });
    c.events.push(match h.state {
        HoldState::Held => placed_event(h),
        HoldState::Confirmed => event(h, EventKind::HoldConfirmed { quantity: h.quantity }),
        HoldState::Released => event(h, EventKind::HoldReleased { quantity: h.quantity }),
        HoldState::Expired => event(h, EventKind::HoldExpired { quantity: h.quantity }),
    });
    c
}

fn q(h: &Hold) -> i64 {
    i64::from(h.quantity)
}

/// The seat change of ending a held hold in `state`.
fn ending(h: &Hold, state: HoldState) -> SeatDelta {
    match state {
        HoldState::Confirmed => seats(-q(h), q(h)),
        _ => seats(-q(h), 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Store calls that panic with the clause on a store error
// ---------------------------------------------------------------------------------------------

async fn commit_ok<S: AsyncStore>(store: &S, c: Commit, clause: &str, what: &str) {
    if let Err(e) = store.commit(c).await {
        panic!("{clause}: {what}: the commit should be applied, but the store answered: {e}");
    }
}

async fn commit_conflict<S: AsyncStore>(store: &S, c: Commit, clause: &str, what: &str) -> Conflict {
    match store.commit(c).await {
        Err(CommitError::Conflict(conflict)) => conflict,
        Ok(()) => panic!("{clause}: {what}: the commit was applied, but a guard must refuse it"),
        Err(e) => panic!("{clause}: {what}: expected a Conflict (retryable, nothing written), got: {e}"),
    }
}

async fn load<S: AsyncStore>(store: &S, occ_key: &OccKey, who: Option<&ActorId>, r: Option<&Ref>) -> Snapshot {
    let req = LoadRequest { occ_key, actor: who, settlement_ref: r };
    store.load(req).await.unwrap_or_else(|e| panic!("{LOAD}: load of {occ_key} failed: {e}"))
}

async fn occurrence<S: AsyncStore>(store: &S, occ_key: &OccKey, clause: &str) -> Occurrence {
    load(store, occ_key, None, None)
        .await
        .occurrence
        .unwrap_or_else(|| panic!("{clause}: occurrence {occ_key} was configured but loads as missing"))
}

async fn hold_of<S: AsyncStore>(store: &S, occ_key: &OccKey, who: &str) -> Option<Versioned<Hold>> {
    load(store, occ_key, Some(&actor(who)), None).await.hold
}

async fn counters<S: AsyncStore>(store: &S, occ_key: &OccKey, clause: &str) -> (u64, u64) {
    let o = occurrence(store, occ_key, clause).await;
    (o.held, o.confirmed)
}

async fn pending<S: AsyncStore>(store: &S, limit: usize) -> Vec<OutboxEvent> {
    store.pending_events(limit).await.unwrap_or_else(|e| panic!("{OUTBOX}: pending_events failed: {e}"))
}

async fn ack<S: AsyncStore>(store: &S, ids: &[EventId]) {
    if let Err(e) = store.ack_events(ids).await {
        panic!("{ACK}: ack_events({ids:?}) failed: {e}");
    }
}

async fn lapsed<S: AsyncStore>(
    store: &S,
    occ_key: Option<&OccKey>,
    now: OffsetDateTime,
    limit: usize,
) -> Vec<Versioned<Hold>> {
    store.lapsed_holds(occ_key, now, limit).await.unwrap_or_else(|e| panic!("{EXPIRY}: lapsed_holds failed: {e}"))
}

async fn lapsed_seats<S: AsyncStore>(store: &S, occ_key: &OccKey, now: OffsetDateTime) -> u64 {
    store.lapsed_seats(occ_key, now).await.unwrap_or_else(|e| panic!("{EXPIRY}: lapsed_seats failed: {e}"))
}

fn ids(events: &[OutboxEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn who(holds: &[Versioned<Hold>]) -> Vec<String> {
    holds.iter().map(|h| format!("{}/{}", h.value.occ_key, h.value.actor)).collect()
}

// ---------------------------------------------------------------------------------------------
// Store-level checks
// ---------------------------------------------------------------------------------------------

/// An empty store, or an unknown occurrence, loads an empty [`Snapshot`]; nothing is lapsed
/// or pending.
pub async fn check_unknown_occurrence_loads_empty<S: AsyncStore>(store: &S) {
    let k = occ("conf-nowhere");
    let snap = load(store, &k, Some(&actor("a")), Some(&rf("r"))).await;
    assert_eq!(snap, Snapshot::default(), "{LOAD}: an unknown occurrence must load an empty snapshot");
    let snap = load(store, &k, None, None).await;
    assert_eq!(snap, Snapshot::default(), "{LOAD}: an unknown occurrence must load an empty snapshot");
    assert!(pending(store, 100).await.is_empty(), "{OUTBOX}: a fresh store must have no pending events");
    assert!(
        lapsed(store, None, T0 + secs(86_400 * 365), 100).await.is_empty(),
        "{EXPIRY}: a fresh store must have no lapsed holds"
    );
    assert!(
        lapsed(store, Some(&k), T0 + secs(86_400 * 365), 100).await.is_empty(),
        "{EXPIRY}: an unknown occurrence must have no lapsed holds"
    );
    assert_eq!(lapsed_seats(store, &k, T0).await, 0, "{EXPIRY}: an unknown occurrence must have no lapsed seats");

    // Another occurrence existing changes nothing for the unknown one.
    let other = occ("conf-somewhere");
    commit_ok(store, configure(&other, config(3, 60)), ATOMIC, "configure").await;
    let h = hold(&other, "a", "r", 1, T0 + secs(60));
    commit_ok(store, place(&h), ATOMIC, "place a hold").await;
    let snap = load(store, &k, Some(&actor("a")), Some(&rf("r"))).await;
    assert_eq!(
        snap,
        Snapshot::default(),
        "{LOAD}: an unknown occurrence must load empty even when other occurrences have data"
    );
}

/// `configure` creates an occurrence with zero counters, and later changes capacity and TTL
/// while keeping the counters (even when lowered below what is in use).
pub async fn check_configure_keeps_counters<S: AsyncStore>(store: &S) {
    let k = occ("conf-configure");
    commit_ok(store, configure(&k, config(5, 600)), ATOMIC, "configure a new occurrence").await;
    let o = occurrence(store, &k, ATOMIC).await;
    assert_eq!(o, Occurrence::new(k.clone(), config(5, 600)), "{ATOMIC}: a new occurrence loads as configured");

    let a = hold(&k, "a", "ra", 2, T0 + secs(600));
    let b = hold(&k, "b", "rb", 1, T0 + secs(600));
    commit_ok(store, place(&a), ATOMIC, "place a (2 seats)").await;
    commit_ok(store, place(&b), ATOMIC, "place b (1 seat)").await;
    let cb = ended(&b, HoldState::Confirmed, T0);
    commit_ok(store, write(&cb, Some(1), ending(&b, HoldState::Confirmed)), ATOMIC, "confirm b").await;
    assert_eq!(counters(store, &k, ATOMIC).await, (2, 1), "{ATOMIC}: counters after 2 held and 1 confirmed");

    commit_ok(store, configure(&k, config(10, 60)), ATOMIC, "raise capacity, change TTL").await;
    let o = occurrence(store, &k, ATOMIC).await;
    assert_eq!(o.config, config(10, 60), "{ATOMIC}: configure must change capacity and TTL");
    assert_eq!((o.held, o.confirmed), (2, 1), "{ATOMIC}: configure must keep the seat counters");

    commit_ok(store, configure(&k, config(1, 60)), CAPACITY, "lower capacity below what is in use").await;
    let o = occurrence(store, &k, ATOMIC).await;
    assert_eq!(o.config, config(1, 60), "{ATOMIC}: configure must lower the capacity");
    assert_eq!(
        (o.held, o.confirmed),
        (2, 1),
        "{ATOMIC}: lowering the capacity must keep (revoke nothing of) the counters"
    );
    assert_eq!(hold_of(store, &k, "a").await.map(|h| h.value), Some(a), "{ATOMIC}: configure must keep the holds");
}

/// What is written reads back exactly: the hold record with its version, the settlement
/// record, and the events (in order, with every field, timestamps included).
pub async fn check_round_trip<S: AsyncStore>(store: &S) {
    let k = occ("conf-round-trip");
    commit_ok(store, configure(&k, config(10, 600)), ATOMIC, "configure").await;
    let mut h = hold(&k, "a", "ra", 3, T0 + millis(600_123));
    h.placed_at = T0 + millis(123);
    h.attempt = 4;
    h.price = Money::parse("12.345", "JPY").expect("valid money");
    let rec = refund_record(&k, "a", "r-old", NoHoldReason::RefMismatch);
    let mut c = place(&h);
    c.settlement = Some(rec.clone());
    c.events.push(refund_event(&k, "a", "r-old"));
    let events = c.events.clone();
    commit_ok(store, c, ATOMIC, "a commit with a hold, a settlement record and two events").await;

    let snap = load(store, &k, Some(&actor("a")), Some(&rf("r-old"))).await;
    assert_eq!(
        snap.hold,
        Some(Versioned { version: 1, value: h.clone() }),
        "{ATOMIC}: the hold must read back as written, at version 1"
    );
    assert_eq!(snap.settlement, Some(rec.clone()), "{ATOMIC}: the settlement record must read back as written");
    assert_eq!(
        snap.occurrence.map(|o| (o.held, o.confirmed)),
        Some((3, 0)),
        "{ATOMIC}: the counters must move with the commit"
    );
    let got: Vec<DomainEvent> = pending(store, 100).await.into_iter().map(|e| e.event).collect();
    assert_eq!(got, events, "{OUTBOX}: the events must read back as committed, in order");

    let confirmed = ended(&h, HoldState::Confirmed, T0 + millis(5_007));
    let mut c = write(&confirmed, Some(1), ending(&h, HoldState::Confirmed));
    let rec2 = SettlementRecord {
        occ_key: k.clone(),
        actor: actor("a"),
        hold_ref: rf("ra"),
        outcome: PaidOutcome::Confirmed,
        settled_at: T0 + millis(5_007),
    };
    c.settlement = Some(rec2.clone());
    commit_ok(store, c, ATOMIC, "confirm the hold with its settlement record").await;
    let snap = load(store, &k, Some(&actor("a")), Some(&rf("ra"))).await;
    assert_eq!(
        snap.hold,
        Some(Versioned { version: 2, value: confirmed }),
        "{ATOMIC}: the confirmed hold must read back at version 2"
    );
    assert_eq!(snap.settlement, Some(rec2), "{ATOMIC}: the second settlement record must read back as written");
    let snap = load(store, &k, Some(&actor("a")), Some(&rf("r-old"))).await;
    assert_eq!(snap.settlement, Some(rec), "{ATOMIC}: the first settlement record must be kept");
    let snap = load(store, &k, None, Some(&rf("ra"))).await;
    assert_eq!(
        (snap.hold, snap.settlement),
        (None, None),
        "{LOAD}: without an actor, no hold and no settlement record are loaded"
    );
    let snap = load(store, &k, Some(&actor("a")), None).await;
    assert_eq!(snap.settlement, None, "{LOAD}: without a settlement ref, no settlement record is loaded");
}

/// A commit whose net seat change is positive is refused with [`Conflict::Capacity`] when it
/// would take `held + confirmed` above the capacity (the capacity set by `configure` in the
/// same commit, if any); one that exactly fills it is applied.
pub async fn check_capacity_guard<S: AsyncStore>(store: &S) {
    let k = occ("conf-capacity");
    commit_ok(store, configure(&k, config(3, 600)), ATOMIC, "configure capacity 3").await;
    let a = hold(&k, "a", "ra", 2, T0 + secs(600));
    commit_ok(store, place(&a), CAPACITY, "2 of 3 seats").await;
    let b2 = hold(&k, "b", "rb", 2, T0 + secs(600));
    let c = commit_conflict(store, place(&b2), CAPACITY, "2 more seats with 1 free").await;
    assert_eq!(c, Conflict::Capacity, "{CAPACITY}: exceeding the capacity must be Conflict::Capacity");
    assert_eq!(hold_of(store, &k, "b").await, None, "{CAPACITY}: a refused hold must not be written");

    let b1 = hold(&k, "b", "rb", 1, T0 + secs(600));
    commit_ok(store, place(&b1), CAPACITY, "exactly the last free seat").await;
    assert_eq!(counters(store, &k, CAPACITY).await, (3, 0), "{CAPACITY}: counters at capacity");

    let c1 = hold(&k, "c", "rc", 1, T0 + secs(600));
    let c = commit_conflict(store, place(&c1), CAPACITY, "one seat when full").await;
    assert_eq!(c, Conflict::Capacity, "{CAPACITY}: a hold when full must be Conflict::Capacity");
    let mut bare = Commit::new(k.clone());
    bare.seats = seats(0, 1);
    let c = commit_conflict(store, bare, CAPACITY, "a bare +1 confirmed seat when full").await;
    assert_eq!(c, Conflict::Capacity, "{CAPACITY}: a positive net change of any counter is guarded");

    // Net zero at full capacity: confirming moves seats, it never needs a free one.
    let ca = ended(&a, HoldState::Confirmed, T0);
    commit_ok(store, write(&ca, Some(1), ending(&a, HoldState::Confirmed)), CAPACITY, "confirm at full capacity").await;
    assert_eq!(counters(store, &k, CAPACITY).await, (1, 2), "{CAPACITY}: confirming moves held to confirmed");

    // The capacity set by configure in the same commit is the one guarded.
    let mut c = place(&c1);
    c.configure = Some(config(4, 600));
    commit_ok(store, c, CAPACITY, "raise capacity to 4 and take the new seat in one commit").await;
    let d = hold(&k, "d", "rd", 1, T0 + secs(600));
    let mut c = place(&d);
    c.configure = Some(config(3, 600));
    let conflict = commit_conflict(store, c, CAPACITY, "lower capacity to 3 and take a seat in one commit").await;
    assert_eq!(conflict, Conflict::Capacity, "{CAPACITY}: the guard must use the capacity configured in the commit");
    let o = occurrence(store, &k, CAPACITY).await;
    assert_eq!(o.config.capacity(), 4, "{ATOMIC}: a refused commit must not apply its configure");
    assert_eq!((o.held, o.confirmed), (2, 2), "{CAPACITY}: counters after the refused commit");
}

/// After the capacity is lowered below what is held and sold, commits whose net seat change
/// is zero or negative (confirm, release, expire) are still applied; positive ones are not.
pub async fn check_capacity_lowered_refuses_nothing_non_positive<S: AsyncStore>(store: &S) {
    let k = occ("conf-lowered");
    commit_ok(store, configure(&k, config(4, 600)), ATOMIC, "configure capacity 4").await;
    let a = hold(&k, "a", "ra", 2, T0 + secs(600));
    let b = hold(&k, "b", "rb", 1, T0 + secs(600));
    let c = hold(&k, "c", "rc", 1, T0 + secs(600));
    for h in [&a, &b, &c] {
        commit_ok(store, place(h), CAPACITY, "fill capacity 4").await;
    }
    commit_ok(store, configure(&k, config(0, 600)), CAPACITY, "lower capacity to 0").await;
    assert_eq!(counters(store, &k, CAPACITY).await, (4, 0), "{CAPACITY}: lowering the capacity revokes nothing");

    let d = hold(&k, "d", "rd", 1, T0 + secs(600));
    let conflict = commit_conflict(store, place(&d), CAPACITY, "a new hold over a lowered capacity").await;
    assert_eq!(conflict, Conflict::Capacity, "{CAPACITY}: a new hold over a lowered capacity is Conflict::Capacity");

    let ca = ended(&a, HoldState::Confirmed, T0);
    commit_ok(store, write(&ca, Some(1), ending(&a, HoldState::Confirmed)), CAPACITY, "confirm (net 0) over capacity")
        .await;
    let rb = ended(&b, HoldState::Released, T0);
    commit_ok(store, write(&rb, Some(1), ending(&b, HoldState::Released)), CAPACITY, "release (net -1) over capacity")
        .await;
    let ec = ended(&c, HoldState::Expired, c.expires_at);
    commit_ok(store, write(&ec, Some(1), ending(&c, HoldState::Expired)), CAPACITY, "expire (net -1) over capacity")
        .await;
    assert_eq!(counters(store, &k, CAPACITY).await, (0, 2), "{CAPACITY}: counters after confirm, release, expire");

    let h = hold(&k, "e", "re", 1, T0 + secs(600));
    commit_conflict(store, place(&h), CAPACITY, "a new hold still over the lowered capacity").await;
    // A bare net-zero move of seats over a lowered capacity is not refused either.
    let mut mixed = Commit::new(k.clone());
    mixed.seats = seats(-1, 1);
    commit_ok(store, configure(&k, config(3, 600)), CAPACITY, "capacity 3").await;
    commit_ok(store, place(&h), CAPACITY, "a hold that fits capacity 3").await;
    commit_ok(store, configure(&k, config(1, 600)), CAPACITY, "capacity 1").await;
    commit_ok(store, mixed, CAPACITY, "held -1, confirmed +1 (net 0) over capacity").await;
    assert_eq!(counters(store, &k, CAPACITY).await, (0, 3), "{CAPACITY}: counters after a net-zero move");
}

/// Capacity guard: a commit that places a hold while expiring lapsed holds has a net seat
/// change of zero or less, yet it admits seats ([`Commit::admits_seats`]): if the capacity was
/// lowered after the request decided, it must be refused, and write nothing.
pub async fn check_capacity_guard_on_a_placement_with_non_positive_net<S: AsyncStore>(store: &S) {
    let k = occ("conf-replace");
    commit_ok(store, configure(&k, config(3, 600)), ATOMIC, "configure capacity 3").await;
    let a = hold(&k, "a", "ra", 1, T0 + secs(10));
    let b = hold(&k, "b", "rb", 1, T0 + secs(600));
    let c = hold(&k, "c", "rc", 1, T0 + secs(600));
    for h in [&a, &b, &c] {
        commit_ok(store, place(h), CAPACITY, "fill capacity 3").await;
    }
    // d takes the seat of a's lapsed hold: expire a, place d, one commit, net change 0.
    let d = hold(&k, "d", "rd", 1, T0 + secs(600));
    let replace = || {
        let mut commit = Commit::new(k.clone());
        commit.seats = seats(0, 0);
        commit.holds.push(HoldWrite { expected: Some(1), hold: ended(&a, HoldState::Expired, a.expires_at) });
        commit.holds.push(HoldWrite { expected: None, hold: d.clone() });
        commit.events.push(event(&a, EventKind::HoldExpired { quantity: a.quantity }));
        commit.events.push(placed_event(&d));
        commit
    };
    assert!(replace().admits_seats(), "a commit that places a hold admits seats");
    commit_ok(store, configure(&k, config(1, 600)), CAPACITY, "lower capacity to 1").await;
    let events_before = pending(store, usize::MAX).await.len();
    let conflict = commit_conflict(store, replace(), CAPACITY, "placing d over a lowered capacity, net 0").await;
    assert_eq!(
        conflict,
        Conflict::Capacity,
        "{CAPACITY}: a placement whose net change is 0 over a lowered capacity is Conflict::Capacity"
    );
    assert_eq!(counters(store, &k, CAPACITY).await, (3, 0), "{CAPACITY}: the refused commit changed the counters");
    let a_now = hold_of(store, &k, "a").await.map(|h| (h.version, h.value.state));
    assert_eq!(a_now, Some((1, HoldState::Held)), "{CAPACITY}: the refused commit wrote a's hold");
    assert!(hold_of(store, &k, "d").await.is_none(), "{CAPACITY}: the refused commit wrote d's hold");
    assert_eq!(pending(store, usize::MAX).await.len(), events_before, "{CAPACITY}: the refused commit wrote events");

    commit_ok(store, configure(&k, config(3, 600)), CAPACITY, "capacity back to 3").await;
    commit_ok(store, replace(), CAPACITY, "the same replacement within capacity 3").await;
    assert_eq!(counters(store, &k, CAPACITY).await, (3, 0), "{CAPACITY}: counters after a net-zero replacement");
}

/// Hold records are written under version guards: `expected: None` only when no record
/// exists, `Some(v)` only at version `v`; versions start at 1 and grow by 1; the key is
/// (occurrence, actor). A lost guard is [`Conflict::HoldChanged`] naming the actor.
pub async fn check_hold_version_guards<S: AsyncStore>(store: &S) {
    let k = occ("conf-versions");
    let k2 = occ("conf-versions-2");
    commit_ok(store, configure(&k, config(100, 600)), ATOMIC, "configure").await;
    commit_ok(store, configure(&k2, config(100, 600)), ATOMIC, "configure a second occurrence").await;
    let a = hold(&k, "a", "ra", 1, T0 + secs(600));
    commit_ok(store, place(&a), HOLD_VERSION, "a new record with expected None").await;
    assert_eq!(
        hold_of(store, &k, "a").await,
        Some(Versioned { version: 1, value: a.clone() }),
        "{HOLD_VERSION}: a new record must be at version 1"
    );
    let changed = Conflict::HoldChanged { actor: actor("a") };
    let c = commit_conflict(store, place(&a), HOLD_VERSION, "expected None when the record exists").await;
    assert_eq!(c, changed, "{HOLD_VERSION}: expected None on an existing record");
    let mut a2 = a.clone();
    a2.expires_at = T0 + secs(900);
    let c = commit_conflict(store, write(&a2, Some(2), SeatDelta::default()), HOLD_VERSION, "expected 2 at version 1")
        .await;
    assert_eq!(c, changed, "{HOLD_VERSION}: expected a future version");
    let c = commit_conflict(store, write(&a2, Some(0), SeatDelta::default()), HOLD_VERSION, "expected 0 at version 1")
        .await;
    assert_eq!(c, changed, "{HOLD_VERSION}: expected version 0 never exists");
    commit_ok(store, write(&a2, Some(1), SeatDelta::default()), HOLD_VERSION, "expected 1 at version 1").await;
    assert_eq!(
        hold_of(store, &k, "a").await,
        Some(Versioned { version: 2, value: a2.clone() }),
        "{HOLD_VERSION}: a write at version 1 must store version 2"
    );
    let c = commit_conflict(store, write(&a, Some(1), SeatDelta::default()), HOLD_VERSION, "a stale expected 1").await;
    assert_eq!(c, changed, "{HOLD_VERSION}: a stale version must lose (never a silent overwrite)");
    let ra = ended(&a2, HoldState::Released, T0);
    commit_ok(store, write(&ra, Some(2), ending(&a2, HoldState::Released)), HOLD_VERSION, "expected 2 at version 2")
        .await;
    assert_eq!(
        hold_of(store, &k, "a").await,
        Some(Versioned { version: 3, value: ra }),
        "{HOLD_VERSION}: versions grow by 1 per write"
    );

    let b = hold(&k, "b", "rb", 1, T0 + secs(600));
    let c = commit_conflict(store, write(&b, Some(1), seats(1, 0)), HOLD_VERSION, "expected 1 with no record").await;
    assert_eq!(c, Conflict::HoldChanged { actor: actor("b") }, "{HOLD_VERSION}: expected Some(v) with no record");
    assert_eq!(hold_of(store, &k, "b").await, None, "{HOLD_VERSION}: a refused write must write nothing");

    // Same actor, another occurrence: another record.
    let a_elsewhere = hold(&k2, "a", "ra", 1, T0 + secs(600));
    commit_ok(store, place(&a_elsewhere), HOLD_VERSION, "the same actor at another occurrence, expected None").await;
    assert_eq!(
        hold_of(store, &k2, "a").await.map(|h| h.version),
        Some(1),
        "{HOLD_VERSION}: records are keyed by (occurrence, actor)"
    );
    assert_eq!(
        hold_of(store, &k, "a").await.map(|h| h.version),
        Some(3),
        "{HOLD_VERSION}: the other record is untouched"
    );

    // Two actors in one commit, both guarded.
    let c1 = hold(&k, "c", "rc", 1, T0 + secs(600));
    let d1 = hold(&k, "d", "rd", 1, T0 + secs(600));
    let mut two = place(&c1);
    two.seats = seats(2, 0);
    two.holds.push(HoldWrite { expected: None, hold: d1.clone() });
    commit_ok(store, two, HOLD_VERSION, "two new records in one commit").await;
    assert_eq!(hold_of(store, &k, "c").await.map(|h| h.version), Some(1), "{HOLD_VERSION}: first of two writes");
    assert_eq!(hold_of(store, &k, "d").await.map(|h| h.version), Some(1), "{HOLD_VERSION}: second of two writes");
}

/// A settlement record is inserted only if none exists for (occurrence, actor, ref);
/// otherwise [`Conflict::SettlementExists`] and the first record is kept.
pub async fn check_settlement_insert_if_absent<S: AsyncStore>(store: &S) {
    let k = occ("conf-settlement");
    let k2 = occ("conf-settlement-2");
    commit_ok(store, configure(&k, config(10, 600)), ATOMIC, "configure").await;
    commit_ok(store, configure(&k2, config(10, 600)), ATOMIC, "configure a second occurrence").await;
    let first = refund_record(&k, "a", "r1", NoHoldReason::NoHold);
    let mut c = Commit::new(k.clone());
    c.settlement = Some(first.clone());
    c.events.push(refund_event(&k, "a", "r1"));
    commit_ok(store, c, SETTLEMENT, "the first record for (a, r1)").await;

    let mut second = refund_record(&k, "a", "r1", NoHoldReason::RefMismatch);
    second.settled_at = T0 + secs(1);
    let mut c = Commit::new(k.clone());
    c.settlement = Some(second);
    c.events.push(refund_event(&k, "a", "r1"));
    let conflict = commit_conflict(store, c, SETTLEMENT, "a second record for (a, r1)").await;
    assert_eq!(conflict, Conflict::SettlementExists, "{SETTLEMENT}: a second record must be SettlementExists");
    assert_eq!(
        load(store, &k, Some(&actor("a")), Some(&rf("r1"))).await.settlement,
        Some(first),
        "{SETTLEMENT}: the first record must be kept"
    );
    assert_eq!(pending(store, 100).await.len(), 1, "{ATOMIC}: the refused commit's event must not be written");

    for (key, who, r) in [(&k, "a", "r2"), (&k, "b", "r1"), (&k2, "a", "r1")] {
        let rec = refund_record(key, who, r, NoHoldReason::NoHold);
        let mut c = Commit::new(key.clone());
        c.settlement = Some(rec.clone());
        commit_ok(store, c, SETTLEMENT, &format!("a record for ({key}, {who}, {r}): the key differs")).await;
        assert_eq!(
            load(store, key, Some(&actor(who)), Some(&rf(r))).await.settlement,
            Some(rec),
            "{SETTLEMENT}: records are keyed by (occurrence, actor, ref)"
        );
    }
    assert_eq!(
        load(store, &k, Some(&actor("a")), Some(&rf("r3"))).await.settlement,
        None,
        "{LOAD}: no record for a ref never settled"
    );
}

/// A commit with only a settlement record and events (a refund for a payment to an unknown
/// occurrence, the `no_hold` row) needs no occurrence; the record is found on redelivery.
pub async fn check_settlement_for_unknown_occurrence<S: AsyncStore>(store: &S) {
    let k = occ("conf-never-opened");
    let rec = refund_record(&k, "a", "r1", NoHoldReason::NoHold);
    let mut c = Commit::new(k.clone());
    c.settlement = Some(rec.clone());
    c.events.push(refund_event(&k, "a", "r1"));
    commit_ok(store, c, SETTLEMENT, "a refund record for an occurrence that was never configured").await;
    let snap = load(store, &k, Some(&actor("a")), Some(&rf("r1"))).await;
    assert_eq!(snap.settlement, Some(rec), "{SETTLEMENT}: the refund record must be found on redelivery");
    assert_eq!(snap.occurrence, None, "{LOAD}: recording a refund must not create the occurrence");
    assert_eq!(snap.hold, None, "{LOAD}: recording a refund must not create a hold");
    assert_eq!(pending(store, 100).await.len(), 1, "{OUTBOX}: the refund event must be committed");
    let mut again = Commit::new(k.clone());
    again.settlement = Some(refund_record(&k, "a", "r1", NoHoldReason::NoHold));
    let conflict = commit_conflict(store, again, SETTLEMENT, "the same refund record again").await;
    assert_eq!(conflict, Conflict::SettlementExists, "{SETTLEMENT}: insert-if-absent holds without an occurrence too");
}

/// Seat changes or hold writes for an occurrence that does not exist are refused with
/// [`Conflict::UnknownOccurrence`]; so is a change that would take a counter below zero.
pub async fn check_unknown_occurrence_guard<S: AsyncStore>(store: &S) {
    let k = occ("conf-missing");
    let a = hold(&k, "a", "ra", 1, T0 + secs(600));
    let conflict = commit_conflict(store, place(&a), UNKNOWN_OCC, "a hold at a missing occurrence").await;
    assert_eq!(conflict, Conflict::UnknownOccurrence, "{UNKNOWN_OCC}: a hold at a missing occurrence");
    let mut bare = Commit::new(k.clone());
    bare.seats = seats(-1, 0);
    let conflict = commit_conflict(store, bare, UNKNOWN_OCC, "a seat change at a missing occurrence").await;
    assert_eq!(conflict, Conflict::UnknownOccurrence, "{UNKNOWN_OCC}: a seat change at a missing occurrence");
    let mut no_seats = Commit::new(k.clone());
    no_seats.holds.push(HoldWrite { expected: None, hold: a.clone() });
    let conflict =
        commit_conflict(store, no_seats, UNKNOWN_OCC, "a hold write (no seats) at a missing occurrence").await;
    assert_eq!(conflict, Conflict::UnknownOccurrence, "{UNKNOWN_OCC}: a hold write at a missing occurrence");
    assert_eq!(load(store, &k, Some(&actor("a")), None).await, Snapshot::default(), "{ATOMIC}: nothing written");
    assert!(pending(store, 100).await.is_empty(), "{ATOMIC}: no event of a refused commit is written");

    let k2 = occ("conf-negative");
    commit_ok(store, configure(&k2, config(5, 600)), ATOMIC, "configure").await;
    let b = hold(&k2, "b", "rb", 1, T0 + secs(600));
    commit_ok(store, place(&b), ATOMIC, "one held seat").await;
    let mut below = Commit::new(k2.clone());
    below.seats = seats(-2, 0);
    commit_conflict(store, below, UNKNOWN_OCC, "held 1 - 2 (a counter below zero)").await;
    let mut below = Commit::new(k2.clone());
    below.seats = seats(-1, -1);
    commit_conflict(store, below, UNKNOWN_OCC, "confirmed 0 - 1 (a counter below zero)").await;
    assert_eq!(counters(store, &k2, ATOMIC).await, (1, 0), "{ATOMIC}: refused changes leave the counters");
}

/// Everything a test can observe of the store, to compare before and after a refused commit.
async fn fingerprint<S: AsyncStore>(store: &S, keys: &[(&OccKey, &str, &str)]) -> String {
    let mut out = String::new();
    for (k, who, r) in keys {
        let snap = load(store, k, Some(&actor(who)), Some(&rf(r))).await;
        out.push_str(&format!("{snap:?}\n"));
        out.push_str(&format!("lapsed seats {}\n", lapsed_seats(store, k, T0 + secs(86_400)).await));
        out.push_str(&format!("lapsed {:?}\n", lapsed(store, Some(k), T0 + secs(86_400), 100).await));
    }
    out.push_str(&format!("{:?}\n", pending(store, 1000).await));
    out
}

/// A commit with any failing guard writes nothing: no configuration, counter, hold record,
/// settlement record or event.
pub async fn check_failed_guard_writes_nothing<S: AsyncStore>(store: &S) {
    let k = occ("conf-atomic");
    let gone = occ("conf-atomic-missing");
    commit_ok(store, configure(&k, config(2, 600)), ATOMIC, "configure capacity 2").await;
    let a = hold(&k, "a", "ra", 1, T0 + secs(600));
    commit_ok(store, place(&a), ATOMIC, "a holds 1").await;
    let mut c = Commit::new(k.clone());
    c.settlement = Some(refund_record(&k, "b", "rb", NoHoldReason::NoHold));
    c.events.push(refund_event(&k, "b", "rb"));
    commit_ok(store, c, ATOMIC, "a refund record for b").await;
    let keys = [(&k, "a", "ra"), (&k, "b", "rb"), (&k, "c", "rc"), (&gone, "a", "ra")];
    let before = fingerprint(store, &keys).await;

    let c_hold = hold(&k, "c", "rc", 2, T0 + secs(600));
    let c_rec = SettlementRecord {
        occ_key: k.clone(),
        actor: actor("c"),
        hold_ref: rf("rc"),
        outcome: PaidOutcome::Confirmed,
        settled_at: T0,
    };
    let a_conf = ended(&a, HoldState::Confirmed, T0);

    // Capacity fails; everything else in the commit would pass.
    let mut cap = place(&c_hold);
    cap.settlement = Some(c_rec.clone());
    cap.events.push(refund_event(&k, "c", "rc"));
    // The second of three hold writes has a stale version; the other two would pass.
    let mut version = place(&hold(&k, "c", "rc", 1, T0 + secs(600)));
    version.holds.push(HoldWrite { expected: Some(7), hold: hold(&k, "d", "rd", 1, T0) });
    version.holds.push(HoldWrite { expected: Some(1), hold: a_conf.clone() });
    version.seats = seats(0, 1);
    // Settlement exists, with a hold write and seats that would pass.
    let mut settled = place(&hold(&k, "c", "rc", 1, T0 + secs(600)));
    settled.settlement = Some(refund_record(&k, "b", "rb", NoHoldReason::RefMismatch));
    // A configure rides along with a failing hold guard.
    let mut reconfigure = write(&a_conf, Some(9), ending(&a, HoldState::Confirmed));
    reconfigure.configure = Some(config(50, 60));
    reconfigure.settlement = Some(c_rec.clone());
    // Unknown occurrence.
    let mut missing = place(&hold(&gone, "a", "ra", 1, T0 + secs(600)));
    missing.settlement = Some(refund_record(&gone, "a", "ra", NoHoldReason::NoHold));
    // Counters below zero.
    let mut negative = write(&ended(&a, HoldState::Released, T0), Some(1), seats(-3, 0));
    negative.settlement = Some(c_rec);

    let cases: [(&str, Commit, Option<Conflict>); 6] = [
        ("capacity guard fails", cap, Some(Conflict::Capacity)),
        ("second of three hold writes has a stale version", version, Some(Conflict::HoldChanged { actor: actor("d") })),
        ("settlement record exists", settled, Some(Conflict::SettlementExists)),
        ("configure with a failing hold guard", reconfigure, Some(Conflict::HoldChanged { actor: actor("a") })),
        ("unknown occurrence", missing, Some(Conflict::UnknownOccurrence)),
        ("a counter would go below zero", negative, None),
    ];
    for (what, commit, expected) in cases {
        let conflict = commit_conflict(store, commit, ATOMIC, what).await;
        if let Some(expected) = expected {
            assert_eq!(conflict, expected, "{ATOMIC}: {what}: wrong conflict");
        }
        let after = fingerprint(store, &keys).await;
        assert_eq!(after, before, "{ATOMIC}: {what}: a refused commit must write nothing");
    }
    let o = occurrence(store, &k, ATOMIC).await;
    assert_eq!(o.config, config(2, 600), "{ATOMIC}: a refused commit must not apply its configure");
}

/// `lapsed_holds` returns exactly the holds in state `Held` with `expires_at <= now` (not
/// confirmed, released, expired, renewed or live ones), each with its current version; of one
/// occurrence oldest first; at most `limit`.
pub async fn check_lapsed_holds_exact<S: AsyncStore>(store: &S) {
    let k = occ("conf-lapsed");
    let k2 = occ("conf-lapsed-2");
    commit_ok(store, configure(&k, config(100, 600)), ATOMIC, "configure").await;
    commit_ok(store, configure(&k2, config(100, 600)), ATOMIC, "configure a second occurrence").await;
    let now = T0;
    // Written in an order unlike their expiry order.
    let live = hold(&k, "live", "r", 1, now + secs(1));
    let at_now = hold(&k, "at-now", "r", 1, now);
    let old = hold(&k, "old", "r", 2, now - secs(30));
    let confirmed = hold(&k, "confirmed", "r", 1, now - secs(20));
    let released = hold(&k, "released", "r", 1, now - secs(10));
    let expired = hold(&k, "expired", "r", 1, now - secs(40));
    let renewed = hold(&k, "renewed", "r", 1, now - secs(50));
    let reheld = hold(&k, "reheld", "r1", 1, now - secs(60));
    let reheld_lapsed = hold(&k, "reheld-lapsed", "r1", 1, now - secs(70));
    let elsewhere = hold(&k2, "elsewhere", "r", 1, now - secs(25));
    for h in [&live, &at_now, &confirmed, &old, &released, &expired, &renewed, &reheld, &reheld_lapsed, &elsewhere] {
        commit_ok(store, place(h), ATOMIC, "place a hold").await;
    }
    for (h, state) in
        [(&confirmed, HoldState::Confirmed), (&released, HoldState::Released), (&expired, HoldState::Expired)]
    {
        commit_ok(store, write(&ended(h, state, now - secs(5)), Some(1), ending(h, state)), ATOMIC, "end a hold").await;
    }
    let mut renewed2 = renewed.clone();
    renewed2.expires_at = now + secs(600);
    commit_ok(store, write(&renewed2, Some(1), SeatDelta::default()), ATOMIC, "renew a hold").await;
    commit_ok(
        store,
        write(&ended(&reheld, HoldState::Released, now - secs(100)), Some(1), seats(-1, 0)),
        ATOMIC,
        "release",
    )
    .await;
    let reheld2 = Hold { hold_ref: rf("r2"), attempt: 2, expires_at: now + secs(600), ..reheld.clone() };
    commit_ok(store, write(&reheld2, Some(2), seats(1, 0)), ATOMIC, "hold again under a new ref").await;
    commit_ok(
        store,
        write(&ended(&reheld_lapsed, HoldState::Expired, now - secs(70)), Some(1), seats(-1, 0)),
        ATOMIC,
        "expire",
    )
    .await;
    let reheld_lapsed2 = Hold { hold_ref: rf("r2"), attempt: 2, expires_at: now - secs(5), ..reheld_lapsed.clone() };
    commit_ok(store, write(&reheld_lapsed2, Some(2), seats(1, 0)), ATOMIC, "hold again, lapsing later").await;

    let expected = vec![
        Versioned { version: 1, value: old.clone() },
        Versioned { version: 3, value: reheld_lapsed2.clone() },
        Versioned { version: 1, value: at_now.clone() },
    ];
    let got = lapsed(store, Some(&k), now, 100).await;
    assert_eq!(
        who(&got),
        who(&expected),
        "{EXPIRY}: lapsed_holds(occurrence) must be exactly the held holds with expires_at <= now, oldest first"
    );
    assert_eq!(got, expected, "{EXPIRY}: lapsed holds must come with their current record and version");
    assert_eq!(lapsed(store, Some(&k), now, 2).await, expected[..2], "{EXPIRY}: limit 2 must give the 2 oldest");
    assert!(lapsed(store, Some(&k), now, 0).await.is_empty(), "{EXPIRY}: limit 0 must give nothing");
    assert!(lapsed(store, Some(&k), now - secs(31), 100).await.is_empty(), "{EXPIRY}: nothing had lapsed 31 s earlier");
    assert_eq!(
        who(&lapsed(store, Some(&k), now - millis(1), 100).await),
        who(&expected[..2]),
        "{EXPIRY}: a hold expiring 1 ms after now has not lapsed (the rule is expires_at <= now)"
    );
    assert!(
        lapsed(store, Some(&occ("conf-lapsed-unknown")), now, 100).await.is_empty(),
        "{EXPIRY}: an unknown occurrence has no lapsed holds"
    );

    let mut all = lapsed(store, None, now, 100).await;
    all.sort_by_key(|h| (h.value.occ_key.clone(), h.value.actor.clone()));
    let mut all_expected = expected.clone();
    all_expected.push(Versioned { version: 1, value: elsewhere.clone() });
    all_expected.sort_by_key(|h| (h.value.occ_key.clone(), h.value.actor.clone()));
    assert_eq!(all, all_expected, "{EXPIRY}: lapsed_holds(None) must give the lapsed holds of every occurrence");
    let some = lapsed(store, None, now, 2).await;
    assert_eq!(some.len(), 2, "{EXPIRY}: lapsed_holds(None, limit 2) must give 2 holds");
    assert!(
        some.iter().all(|h| all_expected.contains(h)),
        "{EXPIRY}: lapsed_holds(None, limit 2) must give lapsed holds only"
    );
    let later = lapsed(store, Some(&k), now + secs(1), 100).await;
    assert_eq!(
        who(&later),
        vec!["conf-lapsed/old", "conf-lapsed/reheld-lapsed", "conf-lapsed/at-now", "conf-lapsed/live"],
        "{EXPIRY}: a second later the live hold has lapsed too (last, being the newest)"
    );
}

/// "Oldest first" is by `expires_at`, at sub-second resolution too: holds lapsing within the
/// same second still come out in expiry order, whatever their write order and whatever other
/// holds of that second ended.
pub async fn check_lapsed_holds_oldest_first_within_a_second<S: AsyncStore>(store: &S) {
    // Same TTL, written in expiry order; the first one is then confirmed.
    let k = occ("conf-subsecond");
    commit_ok(store, configure(&k, config(100, 600)), ATOMIC, "configure").await;
    let names = ["p", "q", "r", "s"];
    let holds: Vec<Hold> =
        names.iter().enumerate().map(|(i, n)| hold(&k, n, "r", 1, T0 + millis(100 * (i as i64 + 1)))).collect();
    for h in &holds {
        commit_ok(store, place(h), ATOMIC, "place").await;
    }
    let p = &holds[0];
    commit_ok(
        store,
        write(&ended(p, HoldState::Confirmed, T0), Some(1), ending(p, HoldState::Confirmed)),
        ATOMIC,
        "confirm p",
    )
    .await;
    let got = lapsed(store, Some(&k), T0 + secs(1), 100).await;
    assert_eq!(
        who(&got),
        vec!["conf-subsecond/q", "conf-subsecond/r", "conf-subsecond/s"],
        "{EXPIRY}: holds lapsing within one second must come out oldest first after another of that second ended"
    );
    assert_eq!(
        who(&lapsed(store, Some(&k), T0 + secs(1), 1).await),
        vec!["conf-subsecond/q"],
        "{EXPIRY}: limit 1 must give the oldest lapsed hold"
    );

    // Written out of expiry order (holds placed under different TTLs).
    let k2 = occ("conf-subsecond-2");
    commit_ok(store, configure(&k2, config(100, 600)), ATOMIC, "configure").await;
    for (n, ms) in [("late", 900), ("early", 100), ("middle", 500)] {
        commit_ok(store, place(&hold(&k2, n, "r", 1, T0 + millis(ms))), ATOMIC, "place").await;
    }
    let got = lapsed(store, Some(&k2), T0 + secs(1), 100).await;
    assert_eq!(
        who(&got),
        vec!["conf-subsecond-2/early", "conf-subsecond-2/middle", "conf-subsecond-2/late"],
        "{EXPIRY}: holds lapsing within one second must come out oldest first whatever the write order"
    );
}

/// `lapsed_seats` is the quantity-weighted sum over exactly the holds `lapsed_holds` yields.
pub async fn check_lapsed_seats<S: AsyncStore>(store: &S) {
    let k = occ("conf-lapsed-seats");
    commit_ok(store, configure(&k, config(100, 600)), ATOMIC, "configure").await;
    let a = hold(&k, "a", "r", 2, T0 - secs(10));
    let b = hold(&k, "b", "r", 3, T0);
    let live = hold(&k, "live", "r", 4, T0 + secs(1));
    let conf = hold(&k, "conf", "r", 5, T0 - secs(20));
    let rel = hold(&k, "rel", "r", 7, T0 - secs(20));
    for h in [&a, &b, &live, &conf, &rel] {
        commit_ok(store, place(h), ATOMIC, "place").await;
    }
    commit_ok(
        store,
        write(&ended(&conf, HoldState::Confirmed, T0), Some(1), ending(&conf, HoldState::Confirmed)),
        ATOMIC,
        "confirm",
    )
    .await;
    commit_ok(
        store,
        write(&ended(&rel, HoldState::Released, T0), Some(1), ending(&rel, HoldState::Released)),
        ATOMIC,
        "release",
    )
    .await;
    assert_eq!(lapsed_seats(store, &k, T0 - secs(11)).await, 0, "{EXPIRY}: nothing lapsed yet");
    assert_eq!(lapsed_seats(store, &k, T0 - secs(10)).await, 2, "{EXPIRY}: a lapses at its expires_at");
    assert_eq!(lapsed_seats(store, &k, T0).await, 5, "{EXPIRY}: a and b (2 + 3 seats)");
    assert_eq!(lapsed_seats(store, &k, T0 + secs(1)).await, 9, "{EXPIRY}: a, b and the formerly live hold");
    commit_ok(
        store,
        write(&ended(&a, HoldState::Expired, a.expires_at), Some(1), ending(&a, HoldState::Expired)),
        ATOMIC,
        "expire a",
    )
    .await;
    assert_eq!(lapsed_seats(store, &k, T0).await, 3, "{EXPIRY}: an expired hold no longer counts");
    let mut b2 = b.clone();
    b2.expires_at = T0 + secs(600);
    commit_ok(store, write(&b2, Some(1), SeatDelta::default()), ATOMIC, "renew b").await;
    assert_eq!(lapsed_seats(store, &k, T0).await, 0, "{EXPIRY}: a renewed hold no longer counts");
    assert_eq!(lapsed_seats(store, &occ("conf-lapsed-seats-unknown"), T0).await, 0, "{EXPIRY}: unknown occurrence");
}

/// Events get unique ids, increasing within an occurrence in commit order; `pending_events`
/// yields them oldest first (commit order), does not consume them, and respects `limit`.
pub async fn check_outbox_order<S: AsyncStore>(store: &S) {
    let x = occ("conf-outbox-x");
    let y = occ("conf-outbox-y");
    commit_ok(store, configure(&x, config(100, 600)), ATOMIC, "configure x").await;
    commit_ok(store, configure(&y, config(100, 600)), ATOMIC, "configure y").await;
    assert!(pending(store, 100).await.is_empty(), "{OUTBOX}: configuring emits no events");

    let mut committed: Vec<DomainEvent> = Vec::new();
    let mut n = 0;
    let mut next = |k: &OccKey| {
        n += 1;
        hold(k, &format!("actor-{n}"), &format!("ref-{n}"), 1, T0 + secs(n))
    };
    let plan: [(&OccKey, usize); 6] = [(&x, 2), (&y, 1), (&x, 1), (&y, 3), (&x, 0), (&x, 1)];
    for (k, count) in plan {
        let mut c = Commit::new(k.clone());
        for _ in 0..count {
            let h = next(k);
            c.events.push(placed_event(&h));
        }
        if count == 0 {
            c.configure = Some(config(100, 600));
        }
        committed.extend(c.events.iter().cloned());
        commit_ok(store, c, OUTBOX, "a commit of events").await;
    }
    let all = pending(store, 100).await;
    let got: Vec<DomainEvent> = all.iter().map(|e| e.event.clone()).collect();
    assert_eq!(got, committed, "{OUTBOX}: pending_events must yield every committed event, oldest first");
    let unique: BTreeSet<EventId> = all.iter().map(|e| e.id).collect();
    assert_eq!(unique.len(), all.len(), "{OUTBOX}: event ids must be unique");
    let mut per_occ: BTreeMap<&str, Vec<EventId>> = BTreeMap::new();
    for e in &all {
        per_occ.entry(e.event.occ_key.as_str()).or_default().push(e.id);
    }
    for (k, ids) in per_occ {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{OUTBOX}: ids of {k} must increase in commit order: {ids:?}");
    }
    assert_eq!(pending(store, 3).await, all[..3], "{OUTBOX}: pending_events(3) must give the 3 oldest");
    assert_eq!(pending(store, 1).await, all[..1], "{OUTBOX}: pending_events(1) must give the oldest");
    assert!(pending(store, 0).await.is_empty(), "{OUTBOX}: pending_events(0) must give nothing");
    assert_eq!(pending(store, 100).await, all, "{OUTBOX}: pending_events must not consume events");
}

/// `ack_events` removes exactly the acknowledged events (in any order), ignores unknown ids,
/// and an acknowledged event is never yielded again; later events get new ids.
pub async fn check_outbox_ack<S: AsyncStore>(store: &S) {
    let x = occ("conf-ack-x");
    let y = occ("conf-ack-y");
    for k in [&x, &y] {
        commit_ok(store, configure(k, config(100, 600)), ATOMIC, "configure").await;
    }
    for i in 0..6 {
        let k = if i % 3 == 1 { &y } else { &x };
        let mut c = Commit::new(k.clone());
        c.events.push(placed_event(&hold(k, &format!("a{i}"), "r", 1, T0)));
        commit_ok(store, c, OUTBOX, "an event").await;
    }
    let all = pending(store, 100).await;
    assert_eq!(all.len(), 6, "{OUTBOX}: six committed events must be pending");
    let id = |i: usize| all[i].id;
    let without = |gone: &[usize]| -> Vec<OutboxEvent> {
        all.iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, e)| e.clone()).collect()
    };

    ack(store, &[]).await;
    assert_eq!(pending(store, 100).await, all, "{ACK}: acking nothing removes nothing");
    ack(store, &[id(4), id(1)]).await;
    assert_eq!(pending(store, 100).await, without(&[1, 4]), "{ACK}: acking out of order must remove exactly those");
    let unknown = EventId(all.iter().map(|e| e.id.0).max().unwrap_or(0).saturating_add(1_000_000));
    ack(store, &[unknown, id(1)]).await;
    assert_eq!(pending(store, 100).await, without(&[1, 4]), "{ACK}: unknown or already acked ids must be ignored");
    ack(store, &[id(0)]).await;
    assert_eq!(pending(store, 100).await, without(&[0, 1, 4]), "{ACK}: acking the oldest must remove it");
    assert_eq!(pending(store, 1).await, without(&[0, 1, 4])[..1], "{ACK}: pending_events(1) after acks");
    ack(store, &[id(5), unknown, id(3), id(2)]).await;
    assert!(pending(store, 100).await.is_empty(), "{ACK}: acking every id must empty the outbox");

    let mut c = Commit::new(x.clone());
    c.events.push(placed_event(&hold(&x, "later", "r", 1, T0)));
    commit_ok(store, c, OUTBOX, "an event after the acks").await;
    let later = pending(store, 100).await;
    assert_eq!(later.len(), 1, "{ACK}: acknowledged events must never be yielded again");
    assert!(!ids(&all).contains(&later[0].id), "{OUTBOX}: event ids must never repeat, even after an ack");
    let last_x = all.iter().filter(|e| e.event.occ_key == x).map(|e| e.id).max();
    assert!(Some(later[0].id) > last_x, "{OUTBOX}: ids of one occurrence must keep increasing after acks");
}

// ---------------------------------------------------------------------------------------------
// Engine-level checks
// ---------------------------------------------------------------------------------------------

/// Lends a store to an [`AsyncEngine`] without giving it away.
struct ByRef<'a, S>(&'a S);

impl<S: AsyncStore> AsyncStore for ByRef<'_, S> {
    fn load(&self, req: LoadRequest<'_>) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        self.0.load(req)
    }
    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Hold>>, StoreError>> + Send {
        self.0.lapsed_holds(occ_key, now, limit)
    }
    fn lapsed_seats(
        &self,
        occ_key: &OccKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.lapsed_seats(occ_key, now)
    }
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), CommitError>> + Send {
        self.0.commit(commit)
    }
    fn pending_events(&self, limit: usize) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send {
        self.0.pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.ack_events(ids)
    }
}

type TestEngine<'a, S> = AsyncEngine<ByRef<'a, S>, &'a ManualClock>;

fn engine<'a, S: AsyncStore>(store: &'a S, clock: &'a ManualClock) -> TestEngine<'a, S> {
    AsyncEngine::with_clock(ByRef(store), clock)
}

fn request_for(k: &OccKey, who: &str, r: &str, quantity: u32) -> HoldRequest {
    HoldRequest::new(k.clone(), actor(who), rf(r), price()).with_quantity(quantity)
}

async fn request<S: AsyncStore>(e: &TestEngine<'_, S>, k: &OccKey, who: &str, r: &str, n: u32) -> RequestOutcome {
    e.request(&request_for(k, who, r, n))
        .await
        .unwrap_or_else(|err| panic!("{ENGINE}: request by {who} under {r} failed: {err}"))
}

async fn settle<S: AsyncStore>(e: &TestEngine<'_, S>, result: PaymentResult) -> Settlement {
    e.settle(&result).await.unwrap_or_else(|err| panic!("{ENGINE}: settle {result:?} failed: {err}"))
}

fn paid(k: &OccKey, who: &str, r: &str) -> PaymentResult {
    PaymentResult::paid(k.clone(), actor(who), rf(r))
}

fn failed(k: &OccKey, who: &str, r: &str) -> PaymentResult {
    PaymentResult::failed(k.clone(), actor(who), rf(r))
}

async fn avail<S: AsyncStore>(e: &TestEngine<'_, S>, k: &OccKey) -> (u32, u64, u64, u64) {
    let a = e.availability(k).await.unwrap_or_else(|err| panic!("{ENGINE}: availability failed: {err}"));
    (a.capacity, a.held, a.confirmed, a.available)
}

/// Drain the outbox as (type, actor) pairs.
async fn drained<S: AsyncStore>(e: &TestEngine<'_, S>) -> Vec<(String, String)> {
    let events = e.drain_events(10_000).await.unwrap_or_else(|err| panic!("{ACK}: drain failed: {err}"));
    events.iter().map(|o| (o.event.kind.type_str().to_owned(), o.event.actor.to_string())).collect()
}

fn evs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(t, a)| ((*t).to_owned(), (*a).to_owned())).collect()
}

fn is_new_hold(o: &RequestOutcome) -> bool {
    matches!(o, RequestOutcome::AwaitingPayment { replayed: false, .. })
}

fn refund_reason(s: &Settlement) -> Option<NoHoldReason> {
    match s {
        Settlement::PaidButNoHold { refund, .. } => Some(refund.reason),
        _ => None,
    }
}

/// Through [`AsyncEngine`]: holds up to the capacity and no further, settlement moves seats,
/// and lowering the capacity revokes nothing.
pub async fn check_engine_capacity<S: AsyncStore>(store: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let k = occ("conf-engine-capacity");
    e.open(&k, config(3, 600)).await.unwrap_or_else(|err| panic!("{ENGINE}: open failed: {err}"));
    assert!(is_new_hold(&request(&e, &k, "a", "ra", 2).await), "{ENGINE}: 2 of 3 seats must be held");
    assert!(is_new_hold(&request(&e, &k, "b", "rb", 1).await), "{ENGINE}: the last seat must be held");
    assert_eq!(
        request(&e, &k, "c", "rc", 1).await,
        RequestOutcome::Full { capacity: 3 },
        "{CAPACITY}: a request when full must answer Full"
    );
    assert_eq!(avail(&e, &k).await, (3, 3, 0, 0), "{ENGINE}: availability when full");
    assert_eq!(
        settle(&e, paid(&k, "a", "ra")).await,
        Settlement::Confirmed { replayed: false },
        "{ENGINE}: paying a live hold confirms it"
    );
    assert_eq!(settle(&e, failed(&k, "b", "rb")).await, Settlement::Released, "{ENGINE}: a failed payment releases");
    assert_eq!(avail(&e, &k).await, (3, 0, 2, 1), "{ENGINE}: availability after confirm and release");
    assert!(is_new_hold(&request(&e, &k, "c", "rc", 1).await), "{ENGINE}: the released seat must be free again");
    assert_eq!(request(&e, &k, "d", "rd", 1).await, RequestOutcome::Full { capacity: 3 }, "{CAPACITY}: full again");

    e.open(&k, config(1, 600)).await.unwrap_or_else(|err| panic!("{ENGINE}: lowering the capacity failed: {err}"));
    assert_eq!(avail(&e, &k).await, (1, 1, 2, 0), "{CAPACITY}: lowering the capacity revokes nothing");
    assert_eq!(
        settle(&e, paid(&k, "c", "rc")).await,
        Settlement::Confirmed { replayed: false },
        "{CAPACITY}: a hold placed before the capacity was lowered must still confirm (net change 0)"
    );
    assert_eq!(avail(&e, &k).await, (1, 0, 3, 0), "{CAPACITY}: sold over a lowered capacity");
    assert_eq!(request(&e, &k, "d", "rd", 1).await, RequestOutcome::Full { capacity: 1 }, "{CAPACITY}: still full");
    assert_eq!(
        drained(&e).await,
        evs(&[
            ("hold_placed", "a"),
            ("hold_placed", "b"),
            ("hold_confirmed", "a"),
            ("hold_released", "b"),
            ("hold_placed", "c"),
            ("hold_confirmed", "c"),
        ]),
        "{OUTBOX}: the engine's events must come out in commit order"
    );
    assert!(drained(&e).await.is_empty(), "{ACK}: drained events must not come back");
}

/// Through [`AsyncEngine`]: a lapsed hold blocks nothing and shows nowhere before any sweep;
/// it is expired exactly once (by the first writer that meets it, or by the sweep).
pub async fn check_engine_lapse_and_sweep<S: AsyncStore>(store: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let k = occ("conf-engine-lapse");
    e.open(&k, config(1, 60)).await.unwrap_or_else(|err| panic!("{ENGINE}: open failed: {err}"));
    assert!(is_new_hold(&request(&e, &k, "a", "ra", 1).await), "{ENGINE}: a holds the only seat");
    assert_eq!(request(&e, &k, "b", "rb", 1).await, RequestOutcome::Full { capacity: 1 }, "{CAPACITY}: full");
    clock.advance(secs(60));
    assert_eq!(avail(&e, &k).await, (1, 0, 0, 1), "{EXPIRY}: a lapsed hold must not show in availability");
    let due = lapsed(store, Some(&k), clock_now(&clock), 10).await;
    assert_eq!(who(&due), vec!["conf-engine-lapse/a"], "{EXPIRY}: the engine's lapsed hold must be in the index");
    assert!(is_new_hold(&request(&e, &k, "b", "rb", 1).await), "{EXPIRY}: a lapsed hold must not block a new one");
    assert_eq!(e.expire_due(10).await.ok(), Some(0), "{EXPIRY}: the request already expired a; the sweep finds none");
    clock.advance(secs(60));
    assert_eq!(e.expire_due(10).await.ok(), Some(1), "{EXPIRY}: the sweep must expire b");
    assert_eq!(e.expire_due(10).await.ok(), Some(0), "{EXPIRY}: a second sweep must find nothing");
    assert_eq!(
        hold_of(store, &k, "b").await.map(|h| (h.version, h.value.state)),
        Some((2, HoldState::Expired)),
        "{HOLD_VERSION}: the swept hold is Expired at version 2"
    );
    assert_eq!(avail(&e, &k).await, (1, 0, 0, 1), "{ENGINE}: availability after the sweep");
    assert_eq!(
        refund_reason(&settle(&e, paid(&k, "a", "ra")).await),
        Some(NoHoldReason::Expired),
        "{ENGINE}: a payment for an expired hold is refunded (expired)"
    );
    assert_eq!(
        drained(&e).await,
        evs(&[
            ("hold_placed", "a"),
            ("hold_expired", "a"),
            ("hold_placed", "b"),
            ("hold_expired", "b"),
            ("refund_required", "a"),
        ]),
        "{OUTBOX}: every hold ends in exactly one terminal event, in commit order"
    );
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    crate::clock::Clock::now(clock)
}

/// A retried operation (after a lost acknowledgement the caller retries the whole operation)
/// observes the committed state and answers the same outcome, writing nothing new.
pub async fn check_engine_retry_after_lost_ack<S: AsyncStore>(store: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(store, &clock);
    let k = occ("conf-engine-retry");
    e.open(&k, config(2, 600)).await.unwrap_or_else(|err| panic!("{ENGINE}: open failed: {err}"));
    e.open(&k, config(2, 600)).await.unwrap_or_else(|err| panic!("{LOST_ACK}: re-opening failed: {err}"));
    let first = request(&e, &k, "a", "ra", 1).await;
    let RequestOutcome::AwaitingPayment { checkout, replayed: false } = first else {
        panic!("{ENGINE}: the first request must place a hold, got {first:?}");
    };
    assert_eq!(
        request(&e, &k, "a", "ra", 1).await,
        RequestOutcome::AwaitingPayment { checkout, replayed: true },
        "{LOST_ACK}: a retried request answers the same checkout"
    );
    assert_eq!(settle(&e, paid(&k, "a", "ra")).await, Settlement::Confirmed { replayed: false }, "{ENGINE}: confirm");
    assert_eq!(
        settle(&e, paid(&k, "a", "ra")).await,
        Settlement::Confirmed { replayed: true },
        "{LOST_ACK}: a retried paid answers Confirmed (replayed)"
    );
    let refund = settle(&e, paid(&k, "b", "rb")).await;
    let Settlement::PaidButNoHold { refund, replayed: false } = refund else {
        panic!("{ENGINE}: a payment without a hold must be refunded, got {refund:?}");
    };
    assert_eq!(
        settle(&e, paid(&k, "b", "rb")).await,
        Settlement::PaidButNoHold { refund, replayed: true },
        "{LOST_ACK}: a retried paid answers the same refund signal (replayed)"
    );
    assert_eq!(settle(&e, failed(&k, "a", "ra")).await, Settlement::Noop, "{ENGINE}: a late failure never unpays");
    assert_eq!(avail(&e, &k).await, (2, 0, 1, 1), "{LOST_ACK}: retries must not move seats twice");
    assert_eq!(
        drained(&e).await,
        evs(&[("hold_placed", "a"), ("hold_confirmed", "a"), ("refund_required", "b")]),
        "{LOST_ACK}: retries must emit no new event"
    );
    assert_eq!(
        hold_of(store, &k, "a").await.map(|h| h.version),
        Some(2),
        "{LOST_ACK}: retries must write no hold record"
    );
}
