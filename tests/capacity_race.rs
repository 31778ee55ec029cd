//! A capacity lowered while a request is between its load and its commit.
//!
//! A request that takes over a lapsed hold's seat commits "expire the lapsed hold, place the
//! new one": a net seat change of zero. Found in review: the capacity guard once applied only
//! to a positive net change, so if another caller lowered the capacity in between, the new
//! hold went in over it (invariant 1). The store must guard every commit that places a hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use seathold::contract::{ActorId, EventId, Money, OccKey, OutboxEvent, Ref};
use seathold::holds::{Hold, HoldRequest, HoldState, OccurrenceConfig, RequestOutcome};
use seathold::store::{Commit, CommitError, LoadRequest, Snapshot, Store, StoreError, Versioned};
use seathold::{Engine, ManualClock, MemoryStore};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A MemoryStore where, once armed, another caller lowers the capacity to 1 right before the
/// next commit that places a hold.
struct LowerCapacityBeforePlacing {
    inner: MemoryStore,
    armed: AtomicBool,
    occ: OccKey,
}

impl Store for LowerCapacityBeforePlacing {
    fn load(&self, req: LoadRequest<'_>) -> Result<Snapshot, StoreError> {
        self.inner.load(req)
    }
    fn lapsed_holds(
        &self,
        occ: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Versioned<Hold>>, StoreError> {
        self.inner.lapsed_holds(occ, now, limit)
    }
    fn lapsed_seats(&self, occ: &OccKey, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.lapsed_seats(occ, now)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let places = commit.holds.iter().any(|w| w.hold.state == HoldState::Held);
        if places && self.armed.swap(false, Ordering::SeqCst) {
            let mut lower = Commit::new(self.occ.clone());
            lower.configure = Some(OccurrenceConfig::new(1, 60).expect("config"));
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
    assert_eq!(outcome, RequestOutcome::Full { capacity: 1 }, "the retry sees the lowered capacity");
    let a = engine.availability(&occ).expect("availability");
    // Lowering the capacity revokes nothing (b and c keep their seats) and admits nothing: d
    // holds no seat. Before the fix this read held 3 (b, c and d) against a capacity of 1.
    assert_eq!((a.capacity, a.held, a.confirmed), (1, 2, 0), "b and c keep their seats; d holds nothing");
    assert!(!engine.store().armed.load(Ordering::SeqCst), "the capacity was lowered mid-request");
}
