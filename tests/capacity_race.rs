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
//!
//! And decisions made from what the counters did *not* hold (a price change on a tier locked
//! while held, a tier moved between pools) with a hold landing before their commit: the
//! counter guard must catch it.

use std::sync::Arc;

use seathold::catalogue::{Block, Dim, OccurrenceConfig};
use seathold::contract::{ActorId, BlockName, Money, OccKey, Ref};
use seathold::holds::{HoldRequest, HoldState, RequestOutcome};
use seathold::store::{
    Call, Commit, CommitError, Conflict, Few, Intercept, Intercepted, OccurrenceGuard, Record, RecordKey, RecordWrite,
    StoreError, UsageDelta, WriteOp,
};
use seathold::{Engine, ManualClock, MemoryStore, Store};
use time::Duration;
use time::macros::datetime;

/// Which commits a race waits for.
type When = fn(&Commit) -> bool;

/// Another caller's work, run once.
type Race = Box<dyn FnOnce() + Send>;

/// Once armed, another caller's work (`race`) runs right before the next commit that `when`
/// picks (or the next read of due records): the race every test here stages.
#[derive(Default)]
struct Races {
    armed: std::sync::Mutex<Option<(When, Race)>>,
    /// Run right before the next read of due records instead.
    before_due: std::sync::Mutex<Option<Race>>,
}

impl Races {
    /// Run `race` right before the next commit `when` picks.
    fn arm(&self, when: When, race: impl FnOnce() + Send + 'static) {
        *self.armed.lock().expect("lock") = Some((when, Box::new(race)));
    }

    /// Run `race` right before the next read of due records.
    fn arm_due(&self, race: impl FnOnce() + Send + 'static) {
        *self.before_due.lock().expect("lock") = Some(Box::new(race));
    }

    /// Whether the race ran.
    fn fired(&self) -> bool {
        self.armed.lock().expect("lock").is_none() && self.before_due.lock().expect("lock").is_none()
    }
}

impl Intercept for Races {
    fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        let race = match call {
            Call::Due { .. } => self.before_due.lock().expect("lock").take(),
            Call::Commit(commit) => {
                let mut armed = self.armed.lock().expect("lock");
                match armed.take() {
                    Some((when, race)) if when(commit) => Some(race),
                    other => {
                        *armed = other;
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some(race) = race {
            race();
        }
        Ok(())
    }
}

/// A store over a shared MemoryStore with [`Races`] around its calls.
type RaceBeforeCommit = Intercepted<Arc<MemoryStore>, Races>;

fn racing(inner: Arc<MemoryStore>) -> RaceBeforeCommit {
    Intercepted::new(inner, Races::default())
}

/// Whether `commit` places a new hold (puts a booking in state `Held` that did not exist).
fn places_a_hold(commit: &Commit) -> bool {
    commit.records.iter().any(|w| {
        w.expected.is_none() && matches!(&w.op, WriteOp::Put(Record::Booking(h)) if h.state == HoldState::Held)
    })
}

/// Whether `commit` changes the occurrence's configuration.
fn reconfigures(commit: &Commit) -> bool {
    matches!(commit.occurrence, OccurrenceGuard::Update { .. })
}

#[test]
fn capacity_lowered_while_a_request_replaces_a_lapsed_hold_is_never_oversold() {
    let occ = OccKey::new("gig").expect("key");
    let inner = Arc::new(MemoryStore::new());
    let store = racing(inner.clone());
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
    let lowered = occ.clone();
    engine.store().hook.arm(places_a_hold, move || {
        let occ = inner.load(&lowered, &[]).expect("load").occurrence.expect("the occurrence exists");
        let mut lower = Commit::new(lowered.clone());
        lower.occurrence = OccurrenceGuard::Update {
            expected: occ.config_version,
            config: OccurrenceConfig::new(1, 60).expect("config"),
        };
        inner.commit(lower).expect("the capacity is lowered");
    });
    let outcome = engine.request(&req("d", "rd")).expect("request");
    assert_eq!(
        outcome,
        RequestOutcome::Full { capacity: 1, tier: None, short: Dim::Total },
        "the retry sees the lowered capacity"
    );
    assert!(engine.store().hook.fired(), "the capacity was lowered mid-request");
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
    fill.deltas = vec![(Dim::Total, UsageDelta { held: 2, offered: 1, ..UsageDelta::default() })].into();
    fill.admits = vec![Dim::Total].into();
    store.commit(fill).expect("two seats held, one offered");
    let mut lower = Commit::new(occ.clone());
    lower.occurrence = OccurrenceGuard::Update { expected: 1, config: OccurrenceConfig::new(1, 60).expect("config") };
    store.commit(lower).expect("lowering revokes nothing");

    let marker = RecordKey::Block(BlockName::new("marker").expect("name"));
    let swap = |admits: bool| {
        let mut c = Commit::new(occ.clone());
        c.occurrence = OccurrenceGuard::At(2);
        c.deltas = vec![(Dim::Total, UsageDelta { held: 1, offered: -1, ..UsageDelta::default() })].into();
        c.admits = if admits { vec![Dim::Total].into() } else { Few::new() };
        c.records = vec![RecordWrite {
            key: marker.clone(),
            expected: None,
            op: WriteOp::Put(Record::Block(Block {
                block: BlockName::new("marker").expect("name"),
                seats: 1,
                tier: None,
                at: datetime!(2026-01-01 00:00 UTC),
                seat_ids: Vec::new(),
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
    let other = Engine::with_clock(inner.clone(), clock.clone());
    let store = racing(inner);
    let engine = Engine::with_clock(store, clock.clone());
    engine.open(&occ, OccurrenceConfig::new(10, 60).expect("config")).expect("open");
    let (ann, r1) = (ActorId::new("ann").expect("actor"), Ref::new("r1").expect("ref"));
    let price = Money::parse("10.00", "EUR").expect("price");
    let placed = engine.request(&HoldRequest::new(occ.clone(), ann.clone(), r1.clone(), price)).expect("request");
    assert!(matches!(placed, RequestOutcome::AwaitingPayment { replayed: false, .. }));

    let result = PaymentResult::paid(occ.clone(), ann.clone(), r1.clone());
    engine.store().hook.arm(
        |_| true,
        move || {
            let answer = other.settle(&result).expect("the racing settlement");
            assert_eq!(answer, Settlement::Confirmed { replayed: false });
        },
    );
    let failed = engine.settle(&PaymentResult::failed(occ.clone(), ann.clone(), r1.clone()));
    assert!(engine.store().hook.fired(), "the paid result went in first");
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
        c.deltas = vec![(Dim::Total, deltas)].into();
        c.admits = if admits { vec![Dim::Total].into() } else { Few::new() };
        c.records = vec![RecordWrite {
            key: marker.clone(),
            expected,
            op: WriteOp::Put(Record::Block(Block {
                block: BlockName::new("hold").expect("name"),
                seats,
                tier: None,
                at: datetime!(2026-01-01 00:00 UTC),
                seat_ids: Vec::new(),
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

// ---------------------------------------------------------------------------------------------
// Decisions made from what the counters did *not* hold: a price locked while a tier is held,
// and a tier whose pools change. A configuration change is guarded by the occurrence's
// version, which a new hold does not change — so a hold placed between the decision's load
// and its commit went unnoticed until the commit carried a counter guard. (Found by the model
// test run through a read cache, whose stale views made the window wide.)

/// The engine under test, over the racing store, and a second engine on the same data.
type Racing = (Engine<RaceBeforeCommit, Arc<ManualClock>>, Engine<Arc<MemoryStore>, Arc<ManualClock>>);

/// An engine over the racing store, and a second engine on the same data.
fn racing_engines() -> Racing {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let inner = Arc::new(MemoryStore::new());
    let other = Engine::with_clock(inner.clone(), clock.clone());
    (Engine::with_clock(racing(inner), clock), other)
}

fn tier_name(s: &str) -> seathold::contract::TierName {
    seathold::contract::TierName::new(s).expect("tier")
}

fn one_seat_of(occ: &OccKey, who: &str, hold_ref: &str, tier: &str) -> HoldRequest {
    let line = seathold::catalogue::Line { tier: tier_name(tier), quantity: 1 };
    HoldRequest::lines(occ.clone(), ActorId::new(who).expect("actor"), Ref::new(hold_ref).expect("ref"), vec![line])
}

#[test]
fn a_price_change_decided_before_a_hold_lands_is_refused_as_locked() {
    use seathold::PriceRefusal;
    use seathold::catalogue::{SetPriceError, Tier};

    let occ = OccKey::new("resale").expect("key");
    let (engine, other) = racing_engines();
    let listing =
        Tier::new(tier_name("listing"), Money::parse("50.00", "EUR").expect("price")).locking_price_while_held();
    let config = OccurrenceConfig::new(1, 600).expect("config").with_tiers(vec![listing]);
    engine.open(&occ, config).expect("open");
    // The seller's change reads an unlocked listing; a buyer's hold lands before it commits.
    let buyer = one_seat_of(&occ, "bob", "r1", "listing");
    engine.store().hook.arm(reconfigures, move || {
        let placed = other.request(&buyer).expect("the racing request");
        assert!(matches!(placed, RequestOutcome::AwaitingPayment { replayed: false, .. }), "{placed:?}");
    });
    let got = engine.set_price(&occ, &tier_name("listing"), Money::parse("80.00", "EUR").expect("price"));
    assert!(engine.store().hook.fired(), "the buyer's hold went in first");
    assert!(
        matches!(got, Err(seathold::OpError::Refused(PriceRefusal::Price(SetPriceError::Locked(_))))),
        "the change, decided again, finds the listing held: {got:?}"
    );
    let now = engine.occurrence(&occ).expect("occurrence");
    let price = &now.config.tier(&tier_name("listing")).expect("tier").price;
    assert_eq!(price.to_string(), "50.00 EUR", "the price of a held listing never changes");
}

#[test]
fn a_tier_whose_pools_change_is_refused_when_a_hold_lands_first() {
    use seathold::OpenRefusal;
    use seathold::catalogue::{ConfigError, Pool, Tier};
    use seathold::contract::PoolName;

    let occ = OccKey::new("show").expect("key");
    let (engine, other) = racing_engines();
    let price = Money::parse("20.00", "EUR").expect("price");
    let front = PoolName::new("front").expect("pool");
    let tiered = |pools: Vec<PoolName>| {
        OccurrenceConfig::new(10, 600)
            .expect("config")
            .with_pools(vec![Pool { pool: front.clone(), capacity: 2 }])
            .with_tiers(vec![Tier::new(tier_name("vip"), price).with_pools(pools)])
    };
    engine.open(&occ, tiered(vec![front.clone()])).expect("open");
    // Moving an empty tier out of its pool is allowed; a hold landing meanwhile makes it
    // in use, and its seat must not leave the pool it was counted against.
    let buyer = one_seat_of(&occ, "ann", "r1", "vip");
    engine.store().hook.arm(reconfigures, move || {
        let placed = other.request(&buyer).expect("the racing request");
        assert!(matches!(placed, RequestOutcome::AwaitingPayment { replayed: false, .. }), "{placed:?}");
    });
    let got = engine.open(&occ, tiered(Vec::new()));
    assert!(engine.store().hook.fired(), "the hold went in first");
    assert!(
        matches!(got, Err(seathold::OpError::Refused(OpenRefusal::Config(ConfigError::TierInUse(_))))),
        "the change, decided again, finds the tier in use: {got:?}"
    );
    let now = engine.occurrence(&occ).expect("occurrence");
    assert_eq!(now.config, tiered(vec![front.clone()]), "the configuration is unchanged");
    assert_eq!(now.counters.get(&Dim::Pool(front)).held, 1, "the held seat still counts against its pool");
}

/// A refusal decided over two reads stands only if the occurrence did not move between
/// them: a price change reads one held seat on a locked tier, then — before it loads the
/// due records to see whether that seat's hold lapsed — a sweep expires it. The due records
/// then show no lapsed hold, and the seat would have counted as live (`Locked`, though no
/// live hold existed at any instant). Found in review.
#[test]
fn a_price_change_is_not_refused_on_a_hold_a_sweep_expired_between_its_reads() {
    use seathold::catalogue::Tier;

    let occ = OccKey::new("resale").expect("key");
    let (engine, other) = racing_engines();
    let listing =
        Tier::new(tier_name("listing"), Money::parse("50.00", "EUR").expect("price")).locking_price_while_held();
    engine.open(&occ, OccurrenceConfig::new(1, 60).expect("config").with_tiers(vec![listing])).expect("open");
    let placed = engine.request(&one_seat_of(&occ, "bob", "r1", "listing")).expect("request");
    assert!(matches!(placed, RequestOutcome::AwaitingPayment { .. }), "{placed:?}");
    engine.clock().advance(Duration::seconds(61));
    engine.store().hook.arm_due(move || {
        assert_eq!(other.expire_due(100).expect("the racing sweep"), 1, "the sweep expires bob's lapsed hold");
    });
    let got = engine.set_price(&occ, &tier_name("listing"), Money::parse("80.00", "EUR").expect("price"));
    assert!(engine.store().hook.fired(), "the sweep ran between the price change's reads");
    assert!(got.is_ok(), "no live hold had the listing at any instant: {got:?}");
    let now = engine.occurrence(&occ).expect("occurrence");
    assert_eq!(now.config.tier(&tier_name("listing")).expect("tier").price.to_string(), "80.00 EUR");
}
