//! A capacity lowered while a request is between its load and its commit.
//!
//! A request that takes over a lapsed hold's seat commits "expire the lapsed hold, place the
//! new one": a net seat change of zero. Found in review: the capacity guard once applied only
//! to a positive net change, so if another caller lowered the capacity in between, the new
//! hold went in over it (invariant 1). The engine's commit must not go in over the lowered
//! capacity (the occurrence guard sees the reconfiguration), and the store must apply the
//! capacity guard to every commit that admits seats, whatever its net change.
//!
//! Also here, the same kind of race on one hold: two decisions made off one load (a `paid`
//! and a `failed` result for the same checkout). The loser's commit must be a retryable
//! conflict — decided again on what the winner wrote — never an internal error, even when
//! its seat deltas no longer fit the counters the winner left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use seathold::catalogue::{Block, Dim, OccurrenceConfig};
use seathold::contract::{ActorId, BlockName, EventId, Money, OccKey, OutboxEvent, Ref};
use seathold::holds::{HoldRequest, HoldState, RequestOutcome};
use seathold::store::{
    Commit, CommitError, Conflict, Due, OccurrenceGuard, Record, RecordKey, RecordKind, RecordWrite, Snapshot,
    StoreError, UsageDelta, Versioned, WriteOp,
};
use seathold::{Engine, ManualClock, MemoryStore, Store};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A MemoryStore where, once armed, another caller lowers the capacity to 1 right before the
/// next commit that places a hold.
struct LowerCapacityBeforePlacing {
    inner: MemoryStore,
    armed: AtomicBool,
    occ: OccKey,
}

/// Whether `commit` places a new hold (puts a booking in state `Held` that did not exist).
fn places_a_hold(commit: &Commit) -> bool {
    commit.records.iter().any(|w| {
        w.expected.is_none() && matches!(&w.op, WriteOp::Put(Record::Booking(h)) if h.state == HoldState::Held)
    })
}

impl Store for LowerCapacityBeforePlacing {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        self.inner.load(occ_key, keys)
    }
    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.inner.due(occ_key, now, limit)
    }
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        self.inner.scan(occ_key, kind, after, limit)
    }
    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        self.inner.occurrences(after, limit)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        if places_a_hold(&commit) && self.armed.swap(false, Ordering::SeqCst) {
            let occ = self.inner.load(&self.occ, &[])?.occurrence.expect("the occurrence exists");
            let mut lower = Commit::new(self.occ.clone());
            lower.occurrence = OccurrenceGuard::Update {
                expected: occ.config_version,
                config: OccurrenceConfig::new(1, 60).expect("config"),
            };
            self.inner.commit(lower)?;
        }
        self.inner.commit(commit)
    }
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.inner.pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        self.inner.ack_events(ids)
    }
}

#[test]
fn capacity_lowered_while_a_request_replaces_a_lapsed_hold_is_never_oversold() {
    let occ = OccKey::new("gig").expect("key");
    let store =
        LowerCapacityBeforePlacing { inner: MemoryStore::new(), armed: AtomicBool::new(false), occ: occ.clone() };
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let engine = Engine::with_clock(store, clock.clone());
    engine.open(&occ, OccurrenceConfig::new(3, 60).expect("config")).expect("open");
    let price = Money::parse("10.00", "EUR").expect("price");
    let req = |who: &str, r: &str| {
        HoldRequest::new(occ.clone(), ActorId::new(who).expect("actor"), Ref::new(r).expect("ref"), price)
    };
    // a holds first and lapses; b and c hold later and stay live: the counters say 3 of 3.
    assert!(matches!(engine.request(&req("a", "ra")), Ok(RequestOutcome::AwaitingPayment { .. })));
    clock.advance(Duration::seconds(30));
    assert!(matches!(engine.request(&req("b", "rb")), Ok(RequestOutcome::AwaitingPayment { .. })));
    assert!(matches!(engine.request(&req("c", "rc")), Ok(RequestOutcome::AwaitingPayment { .. })));
    clock.advance(Duration::seconds(31));

    // d would take a's lapsed seat, but the capacity drops to 1 between d's load and commit.
    engine.store().armed.store(true, Ordering::SeqCst);
    let outcome = engine.request(&req("d", "rd")).expect("request");
    assert_eq!(outcome, RequestOutcome::Full { capacity: 1, tier: None }, "the retry sees the lowered capacity");
    assert!(!engine.store().armed.load(Ordering::SeqCst), "the capacity was lowered mid-request");
    let a = engine.availability(&occ).expect("availability");
    // Lowering the capacity revokes nothing (b and c keep their seats) and admits nothing: d
    // holds no seat. Before the fix this read held 3 (b, c and d) against a capacity of 1.
    assert_eq!((a.capacity, a.held, a.confirmed), (1, 2, 0), "b and c keep their seats; d holds nothing");
    assert_eq!(engine.booking(&occ, &Ref::new("rd").expect("ref")).expect("read"), None, "d placed nothing");
    // The stored counters never went over what was taken before the change either.
    let stored = engine.store().inner.load(&occ, &[]).expect("load").occurrence.expect("occurrence");
    assert!(stored.counters.get(&Dim::Total).total() <= 3, "{stored:?}");
}

/// The store side of the same guard, with nothing else to catch it: a commit that admits
/// seats with a net change of zero (here a waiting-list offer taken as a hold: one offered
/// seat out, one held seat in) on an occurrence already over its lowered capacity is a
/// capacity conflict, and nothing of it is written. The same change without `admits` goes
/// in: lowering a capacity revokes nothing.
#[test]
fn the_store_guards_a_net_zero_commit_that_admits_seats() {
    let store = MemoryStore::new();
    let occ = OccKey::new("gig").expect("key");
    let mut create = Commit::new(occ.clone());
    create.occurrence = OccurrenceGuard::Create(OccurrenceConfig::new(3, 60).expect("config"));
    store.commit(create).expect("create");
    let mut fill = Commit::new(occ.clone());
    fill.occurrence = OccurrenceGuard::At(1);
    fill.deltas = vec![(Dim::Total, UsageDelta { held: 2, offered: 1, ..UsageDelta::default() })];
    fill.admits = vec![Dim::Total];
    store.commit(fill).expect("two seats held, one offered");
    let mut lower = Commit::new(occ.clone());
    lower.occurrence = OccurrenceGuard::Update { expected: 1, config: OccurrenceConfig::new(1, 60).expect("config") };
    store.commit(lower).expect("lowering revokes nothing");

    let marker = RecordKey::Block(BlockName::new("marker").expect("name"));
    let swap = |admits: bool| {
        let mut c = Commit::new(occ.clone());
        c.occurrence = OccurrenceGuard::At(2);
        c.deltas = vec![(Dim::Total, UsageDelta { held: 1, offered: -1, ..UsageDelta::default() })];
        c.admits = if admits { vec![Dim::Total] } else { Vec::new() };
        c.records = vec![RecordWrite {
            key: marker.clone(),
            expected: None,
            op: WriteOp::Put(Record::Block(Block {
                block: BlockName::new("marker").expect("name"),
                seats: 1,
                tier: None,
                at: datetime!(2026-01-01 00:00 UTC),
            })),
        }];
        c
    };
    match store.commit(swap(true)) {
        Err(CommitError::Conflict(Conflict::Capacity { dim })) => assert_eq!(dim, Dim::Total),
        other => panic!("a net-zero commit admitting seats over the cap must be a capacity conflict, got {other:?}"),
    }
    let after = store.load(&occ, std::slice::from_ref(&marker)).expect("load");
    assert_eq!(after.records, vec![None], "nothing of the refused commit was written");
    let usage = after.occurrence.expect("occurrence").counters.get(&Dim::Total);
    assert_eq!((usage.held, usage.offered), (2, 1), "counters untouched");

    // Not admitting (a change that only moves seats already counted): it goes in.
    store.commit(swap(false)).expect("a commit that admits nothing is never refused for capacity");
    let after = store.load(&occ, std::slice::from_ref(&marker)).expect("load");
    assert!(after.records[0].is_some());
    let usage = after.occurrence.expect("occurrence").counters.get(&Dim::Total);
    assert_eq!((usage.held, usage.offered), (3, 0));
}

// ---------------------------------------------------------------------------------------------
// Two decisions on the same hold, made off the same load: the loser must be a conflict
// (reloaded and decided again), never an internal error.

/// A store over a shared MemoryStore where, once armed, another engine settles a payment
/// result on the same store right before the next commit goes in.
struct SettleBeforeCommit {
    inner: Arc<MemoryStore>,
    other: Engine<Arc<MemoryStore>, Arc<ManualClock>>,
    armed: std::sync::Mutex<Option<seathold::contract::PaymentResult>>,
}

impl Store for SettleBeforeCommit {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        self.inner.load(occ_key, keys)
    }
    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.inner.due(occ_key, now, limit)
    }
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        self.inner.scan(occ_key, kind, after, limit)
    }
    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        self.inner.occurrences(after, limit)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let racing = self.armed.lock().expect("lock").take();
        if let Some(result) = racing {
            let answer = self.other.settle(&result).expect("the racing settlement");
            assert_eq!(answer, seathold::settlement::Settlement::Confirmed { replayed: false });
        }
        self.inner.commit(commit)
    }
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.inner.pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        self.inner.ack_events(ids)
    }
}

/// A `failed` result decided on a live hold loses the race to its `paid` result: the retry
/// sees the confirmed booking and answers `Noop` (truth table: Confirmed row, failed). Found
/// by tests/stress.rs, where it surfaced as `Store(Internal("counter total would go
/// negative"))` from settle and request alike.
#[test]
fn a_result_that_loses_the_race_for_its_hold_is_decided_again_not_an_internal_error() {
    use seathold::contract::PaymentResult;
    use seathold::settlement::Settlement;

    let occ = OccKey::new("gig").expect("key");
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let inner = Arc::new(MemoryStore::new());
    let store = SettleBeforeCommit {
        inner: inner.clone(),
        other: Engine::with_clock(inner.clone(), clock.clone()),
        armed: std::sync::Mutex::new(None),
    };
    let engine = Engine::with_clock(store, clock.clone());
    engine.open(&occ, OccurrenceConfig::new(10, 60).expect("config")).expect("open");
    let (ann, r1) = (ActorId::new("ann").expect("actor"), Ref::new("r1").expect("ref"));
    let price = Money::parse("10.00", "EUR").expect("price");
    let placed = engine.request(&HoldRequest::new(occ.clone(), ann.clone(), r1.clone(), price)).expect("request");
    assert!(matches!(placed, RequestOutcome::AwaitingPayment { replayed: false, .. }));

    *engine.store().armed.lock().expect("lock") = Some(PaymentResult::paid(occ.clone(), ann.clone(), r1.clone()));
    let failed = engine.settle(&PaymentResult::failed(occ.clone(), ann.clone(), r1.clone()));
    assert!(engine.store().armed.lock().expect("lock").is_none(), "the paid result went in first");
    assert!(matches!(failed, Ok(Settlement::Noop)), "the failure, decided again, finds the hold paid: {failed:?}");
    let a = engine.availability(&occ).expect("availability");
    assert_eq!((a.held, a.confirmed), (0, 1), "sold once, released never");
}

/// The store side: two commits decided off one snapshot of a hold (a confirmation and a
/// release, each guarded on the hold's version). The second must be a record conflict —
/// retryable — although its seat deltas no longer fit the counters the first left.
#[test]
fn the_store_reports_a_stale_guard_as_a_conflict_even_when_its_deltas_no_longer_fit() {
    let store = MemoryStore::new();
    let occ = OccKey::new("gig").expect("key");
    let mut create = Commit::new(occ.clone());
    create.occurrence = OccurrenceGuard::Create(OccurrenceConfig::new(3, 60).expect("config"));
    store.commit(create).expect("create");
    let marker = RecordKey::Block(BlockName::new("hold").expect("name"));
    let put = |seats: u32, expected: Option<u64>, deltas: UsageDelta, admits: bool| {
        let mut c = Commit::new(occ.clone());
        c.occurrence = OccurrenceGuard::At(1);
        c.deltas = vec![(Dim::Total, deltas)];
        c.admits = if admits { vec![Dim::Total] } else { Vec::new() };
        c.records = vec![RecordWrite {
            key: marker.clone(),
            expected,
            op: WriteOp::Put(Record::Block(Block {
                block: BlockName::new("hold").expect("name"),
                seats,
                tier: None,
                at: datetime!(2026-01-01 00:00 UTC),
            })),
        }];
        c
    };
    store.commit(put(1, None, UsageDelta::held(1), true)).expect("one seat held, record at version 1");
    let confirm = UsageDelta { held: -1, confirmed: 1, ..UsageDelta::default() };
    store.commit(put(2, Some(1), confirm, false)).expect("the first decision wins");
    match store.commit(put(3, Some(1), UsageDelta::held(1).negated(), false)) {
        Err(CommitError::Conflict(Conflict::Record { key })) => assert_eq!(key, marker),
        other => panic!("a commit guarded on a stale version must be a record conflict, got {other:?}"),
    }
}
