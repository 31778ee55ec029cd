//! DESIGN.md's settlement truth table, one test per cell (6 hold states x 4 result columns),
//! and one test per extra rule around it. Everything goes through
//! `Engine::with_clock(MemoryStore::new(), Arc<ManualClock>)`; every test checks the outcome
//! and its side effects: the availability counters, the drained outbox, the hold record.
//!
//! Test names read `<hold state>__<result>__<expected outcome and effects>`.
#![allow(non_snake_case)] // the double underscores separate the cell's row, column and answer

use std::sync::Arc;

use seathold::contract::{ActorId, Amount, Currency, Money, NoHoldReason, OccKey, PaymentResult, PaymentStatus, Ref};
use seathold::holds::{Hold, HoldRequest, HoldState, OccurrenceConfig, RequestOutcome};
use seathold::settlement::{RejectReason, Settlement};
use seathold::store::{LoadRequest, Versioned};
use seathold::{Engine, ManualClock, MemoryStore, RequestError, Store};
use time::Duration;
use time::macros::datetime;

const TTL: i64 = 600;
const CAPACITY: u32 = 10;

struct Fx {
    engine: Engine<MemoryStore, Arc<ManualClock>>,
    clock: Arc<ManualClock>,
    occ: OccKey,
}

fn occ(s: &str) -> OccKey {
    OccKey::new(s).unwrap()
}

fn actor(s: &str) -> ActorId {
    ActorId::new(s).unwrap()
}

fn rf(s: &str) -> Ref {
    Ref::new(s).unwrap()
}

fn price() -> Money {
    Money::parse("25.00", "EUR").unwrap()
}

/// One outbox event as (type, actor, ref).
type Ev = (String, String, String);

fn ev(kind: &str, who: &str, r: &str) -> Ev {
    (kind.to_owned(), who.to_owned(), r.to_owned())
}

impl Fx {
    fn new(capacity: u32) -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 10:00:00 UTC)));
        let engine = Engine::with_clock(MemoryStore::new(), clock.clone());
        let occ = occ("gig-2026-12-01");
        engine.open(&occ, OccurrenceConfig::new(capacity, TTL as u64).unwrap()).unwrap();
        Self { engine, clock, occ }
    }

    fn request_n(&self, who: &str, r: &str, quantity: u32) -> Result<RequestOutcome, RequestError> {
        let req = HoldRequest::new(self.occ.clone(), actor(who), rf(r), price()).with_quantity(quantity);
        self.engine.request(&req)
    }

    fn request(&self, who: &str, r: &str) -> Result<RequestOutcome, RequestError> {
        self.request_n(who, r, 1)
    }

    /// Place a hold and insist it is new.
    fn hold(&self, who: &str, r: &str) {
        self.hold_n(who, r, 1);
    }

    fn hold_n(&self, who: &str, r: &str, quantity: u32) {
        let out = self.request_n(who, r, quantity).unwrap();
        assert!(matches!(out, RequestOutcome::AwaitingPayment { replayed: false, .. }), "setup: {out:?}");
    }

    fn result(&self, who: &str, r: &str, status: PaymentStatus) -> PaymentResult {
        PaymentResult::new(self.occ.clone(), actor(who), rf(r), status)
    }

    fn settle(&self, who: &str, r: &str, status: PaymentStatus) -> Settlement {
        self.engine.settle(&self.result(who, r, status)).unwrap()
    }

    fn paid(&self, who: &str, r: &str) -> Settlement {
        self.settle(who, r, PaymentStatus::Paid)
    }

    fn failed(&self, who: &str, r: &str) -> Settlement {
        self.settle(who, r, PaymentStatus::Failed)
    }

    /// Move the clock to exactly the expiry of holds placed at the last clock reading.
    fn lapse(&self) {
        self.clock.advance(Duration::seconds(TTL));
    }

    fn sweep(&self) -> usize {
        self.engine.expire_due(1000).unwrap()
    }

    /// (held, confirmed, available).
    fn avail(&self) -> (u64, u64, u64) {
        let a = self.engine.availability(&self.occ).unwrap();
        (a.held, a.confirmed, a.available)
    }

    fn drain(&self) -> Vec<Ev> {
        let events = self.engine.drain_events(10_000).unwrap();
        events.iter().map(|o| ev(o.event.kind.type_str(), o.event.actor.as_str(), o.event.hold_ref.as_str())).collect()
    }

    fn record(&self, who: &str) -> Option<Versioned<Hold>> {
        let a = actor(who);
        let req = LoadRequest { occ_key: &self.occ, actor: Some(&a), settlement_ref: None };
        Store::load(self.engine.store(), req).unwrap().hold
    }

    fn state(&self, who: &str) -> Option<(String, HoldState)> {
        self.record(who).map(|h| (h.value.hold_ref.to_string(), h.value.state))
    }
}

fn refund(s: &Settlement) -> (NoHoldReason, bool) {
    match s {
        Settlement::PaidButNoHold { refund, replayed } => (refund.reason, *replayed),
        other => panic!("expected PaidButNoHold, got {other:?}"),
    }
}

const FAILURES: [PaymentStatus; 2] = [PaymentStatus::Failed, PaymentStatus::Expired];

// ---------------------------------------------------------------------------------------------
// Row fixtures: actor "a" with a hold requested under ref "r1", in each state. The outbox is
// drained, so a test sees only what the result under test emits.
// ---------------------------------------------------------------------------------------------

fn with_no_hold() -> Fx {
    let f = Fx::new(CAPACITY);
    // Another actor holds under the same ref string: holds are found by (occ_key, actor).
    f.hold("b", "r1");
    f.drain();
    f
}

fn with_held_live() -> Fx {
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    f.drain();
    f
}

fn with_held_lapsed() -> Fx {
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    f.lapse();
    f.drain();
    assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Held)), "setup: lapsed but not yet expired");
    f
}

fn with_confirmed() -> Fx {
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false });
    f.drain();
    f
}

fn with_released() -> Fx {
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    assert_eq!(f.failed("a", "r1"), Settlement::Released);
    f.drain();
    f
}

fn with_expired() -> Fx {
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    f.lapse();
    assert_eq!(f.sweep(), 1);
    f.drain();
    assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Expired)), "setup: swept");
    f
}

/// Settle, then sweep, then drain: for a hold met lapsed, its `hold_expired` may come from the
/// settlement or from the sweep, but exactly once either way (invariant 7).
fn settle_then_sweep(f: &Fx, status: PaymentStatus, r: &str) -> (Settlement, Vec<Ev>) {
    let out = f.settle("a", r, status);
    f.sweep();
    (out, f.drain())
}

fn count(events: &[Ev], kind: &str) -> usize {
    events.iter().filter(|e| e.0 == kind).count()
}

// ---------------------------------------------------------------------------------------------
// Row: none / unknown occurrence
// ---------------------------------------------------------------------------------------------

#[test]
fn none__paid_same_ref__is_refund_no_hold() {
    let f = with_no_hold();
    let before = f.record("b");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.avail(), (1, 0, 9), "b's hold is untouched");
    assert_eq!(f.record("b"), before);
    assert_eq!(f.record("a"), None, "no hold is created for a");

    // Unknown occurrence: the same row.
    let unknown = PaymentResult::paid(occ("never-opened"), actor("a"), rf("r1"));
    let out = f.engine.settle(&unknown).unwrap();
    assert_eq!(refund(&out), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(refund(&f.engine.settle(&unknown).unwrap()), (NoHoldReason::NoHold, true), "redelivery replays");
    assert_eq!(f.drain(), vec![], "a redelivery emits nothing");
}

#[test]
fn none__paid_other_ref__is_refund_no_hold() {
    let f = with_no_hold();
    assert_eq!(refund(&f.paid("a", "r-other")), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.record("a"), None);

    let unknown = PaymentResult::paid(occ("never-opened"), actor("a"), rf("r-other"));
    assert_eq!(refund(&f.engine.settle(&unknown).unwrap()), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
}

#[test]
fn none__failed_same_ref__is_noop_and_writes_nothing() {
    for status in FAILURES {
        let f = with_no_hold();
        let before = f.record("b");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (1, 0, 9), "{status}: b's hold with the same ref string is untouched");
        assert_eq!(f.record("b"), before, "{status}");
        let unknown = PaymentResult::new(occ("never-opened"), actor("a"), rf("r1"), status);
        assert_eq!(f.engine.settle(&unknown).unwrap(), Settlement::Noop, "{status}: unknown occurrence");
        assert_eq!(f.drain(), vec![], "{status}");
    }
}

#[test]
fn none__failed_other_ref__is_noop_and_writes_nothing() {
    for status in FAILURES {
        let f = with_no_hold();
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (1, 0, 9), "{status}");
        assert_eq!(f.record("a"), None, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Held, live
// ---------------------------------------------------------------------------------------------

#[test]
fn held_live__paid_same_ref__is_confirmed_and_seat_sold() {
    let f = with_held_live();
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false });
    assert_eq!(f.drain(), vec![ev("hold_confirmed", "a", "r1")]);
    assert_eq!(f.avail(), (0, 1, 9));
    assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Confirmed)));
}

#[test]
fn held_live__paid_other_ref__is_refund_ref_mismatch_and_hold_unchanged() {
    let f = with_held_live();
    let before = f.record("a");
    assert_eq!(refund(&f.paid("a", "r-other")), (NoHoldReason::RefMismatch, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (1, 0, 9), "the live hold keeps its seat");
    assert_eq!(f.record("a"), before, "the hold record is not written at all");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false }, "and can still be paid");
}

#[test]
fn held_live__failed_same_ref__is_released_and_seat_freed() {
    for status in FAILURES {
        let f = with_held_live();
        assert_eq!(f.settle("a", "r1", status), Settlement::Released, "{status}");
        assert_eq!(f.drain(), vec![ev("hold_released", "a", "r1")], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Released)), "{status}");
    }
}

#[test]
fn held_live__failed_other_ref__is_noop_and_hold_unchanged() {
    for status in FAILURES {
        let f = with_held_live();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (1, 0, 9), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Held, lapsed (expires_at <= now, not yet swept)
// ---------------------------------------------------------------------------------------------

#[test]
fn held_lapsed__paid_same_ref__is_refund_expired_and_hold_expired_once() {
    let f = with_held_lapsed();
    assert_eq!(f.avail(), (0, 0, 10), "a lapsed hold shows nowhere");
    let (out, events) = settle_then_sweep(&f, PaymentStatus::Paid, "r1");
    assert_eq!(refund(&out), (NoHoldReason::Expired, false));
    assert_eq!(count(&events, "refund_required"), 1, "{events:?}");
    assert_eq!(count(&events, "hold_expired"), 1, "{events:?}");
    assert_eq!(count(&events, "hold_confirmed"), 0, "{events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(f.avail(), (0, 0, 10), "the lapsed seat is not sold");
    assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Expired)));
}

#[test]
fn held_lapsed__paid_other_ref__is_refund_ref_mismatch_and_hold_expired_once() {
    let f = with_held_lapsed();
    let (out, events) = settle_then_sweep(&f, PaymentStatus::Paid, "r-other");
    assert_eq!(refund(&out), (NoHoldReason::RefMismatch, false));
    assert_eq!(events.iter().filter(|e| e.0 == "refund_required" && e.2 == "r-other").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| e.0 == "hold_expired" && e.2 == "r1").count(), 1, "{events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Expired)));
}

#[test]
fn held_lapsed__failed_same_ref__is_noop_and_hold_expired_once_not_released() {
    for status in FAILURES {
        let f = with_held_lapsed();
        let (out, events) = settle_then_sweep(&f, status, "r1");
        assert_eq!(out, Settlement::Noop, "{status}: it lapsed");
        assert_eq!(events, vec![ev("hold_expired", "a", "r1")], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Expired)), "{status}");
    }
}

#[test]
fn held_lapsed__failed_other_ref__is_noop_and_hold_expired_once() {
    for status in FAILURES {
        let f = with_held_lapsed();
        let (out, events) = settle_then_sweep(&f, status, "r-other");
        assert_eq!(out, Settlement::Noop, "{status}");
        assert_eq!(events, vec![ev("hold_expired", "a", "r1")], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.state("a"), Some(("r1".into(), HoldState::Expired)), "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Confirmed under R
// ---------------------------------------------------------------------------------------------

#[test]
fn confirmed__paid_same_ref__is_confirmed_replayed_with_no_new_event() {
    let f = with_confirmed();
    let before = f.record("a");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: true });
    assert_eq!(f.drain(), vec![], "a replay emits nothing");
    assert_eq!(f.avail(), (0, 1, 9), "the seat is sold once");
    assert_eq!(f.record("a"), before, "a replay writes nothing");
}

#[test]
fn confirmed__paid_other_ref__is_refund_already_paid_and_seat_kept() {
    let f = with_confirmed();
    let before = f.record("a");
    assert_eq!(refund(&f.paid("a", "r-other")), (NoHoldReason::AlreadyPaid, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 1, 9));
    assert_eq!(f.record("a"), before);
}

#[test]
fn confirmed__failed_same_ref__is_noop_and_seat_kept() {
    for status in FAILURES {
        let f = with_confirmed();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 1, 9), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

#[test]
fn confirmed__failed_other_ref__is_noop_and_seat_kept() {
    for status in FAILURES {
        let f = with_confirmed();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 1, 9), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Released
// ---------------------------------------------------------------------------------------------

#[test]
fn released__paid_same_ref__is_refund_released() {
    let f = with_released();
    let before = f.record("a");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::Released, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.avail(), (0, 0, 10), "the released seat is not sold");
    assert_eq!(f.record("a"), before);
}

#[test]
fn released__paid_other_ref__is_refund_no_hold_or_ref_mismatch() {
    let f = with_released();
    let before = f.record("a");
    let (reason, replayed) = refund(&f.paid("a", "r-other"));
    assert!(matches!(reason, NoHoldReason::NoHold | NoHoldReason::RefMismatch), "{reason:?}");
    assert!(!replayed);
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.record("a"), before);
}

#[test]
fn released__failed_same_ref__is_noop_with_no_new_event() {
    for status in FAILURES {
        let f = with_released();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}: seats are not freed twice");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

#[test]
fn released__failed_other_ref__is_noop() {
    for status in FAILURES {
        let f = with_released();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Expired (swept)
// ---------------------------------------------------------------------------------------------

#[test]
fn expired__paid_same_ref__is_refund_expired() {
    let f = with_expired();
    let before = f.record("a");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::Expired, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")], "no second hold_expired");
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.record("a"), before);
}

#[test]
fn expired__paid_other_ref__is_refund_no_hold_or_ref_mismatch() {
    let f = with_expired();
    let before = f.record("a");
    let (reason, replayed) = refund(&f.paid("a", "r-other"));
    assert!(matches!(reason, NoHoldReason::NoHold | NoHoldReason::RefMismatch), "{reason:?}");
    assert!(!replayed);
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.record("a"), before);
}

#[test]
fn expired__failed_same_ref__is_noop() {
    for status in FAILURES {
        let f = with_expired();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

#[test]
fn expired__failed_other_ref__is_noop() {
    for status in FAILURES {
        let f = with_expired();
        let before = f.record("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.record("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------

fn paid_with(f: &Fx, amount: &str, currency: &str) -> Settlement {
    let result = f
        .result("a", "r1", PaymentStatus::Paid)
        .with_money(Amount::parse(amount).unwrap(), Currency::parse(currency).unwrap());
    f.engine.settle(&result).unwrap()
}

#[test]
fn held_live__paid_other_amount__is_rejected_amount_mismatch_and_nothing_changes() {
    let f = with_held_live();
    let before = f.record("a");
    let out = paid_with(&f, "24.99", "EUR");
    assert!(matches!(out, Settlement::Rejected { reason: RejectReason::AmountMismatch { .. } }), "{out:?}");
    assert_eq!(f.drain(), vec![], "nothing is emitted");
    assert_eq!(f.avail(), (1, 0, 9), "the hold keeps its seat, unsold");
    assert_eq!(f.record("a"), before, "the hold is not written");
    let again = paid_with(&f, "24.99", "EUR");
    assert!(matches!(again, Settlement::Rejected { .. }), "a redelivery is rejected again (nothing was recorded)");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false }, "a matching result still confirms");
}

#[test]
fn held_live__paid_other_currency__is_rejected_currency_mismatch_and_nothing_changes() {
    let f = with_held_live();
    let before = f.record("a");
    let out = paid_with(&f, "25.00", "USD");
    assert!(matches!(out, Settlement::Rejected { reason: RejectReason::CurrencyMismatch { .. } }), "{out:?}");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.record("a"), before);
}

#[test]
fn held_live__paid_amount_25_0_equals_price_25_00__is_confirmed() {
    let f = with_held_live();
    let body = br#"{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"a","ref":"r1","status":"paid","amount":"25.0","currency":"EUR"}"#;
    assert_eq!(f.engine.settle_json(body).unwrap(), Settlement::Confirmed { replayed: false });
    assert_eq!(f.drain(), vec![ev("hold_confirmed", "a", "r1")]);
    assert_eq!(f.avail(), (0, 1, 9));
    let f = with_held_live();
    assert_eq!(paid_with(&f, "25.000000", "EUR"), Settlement::Confirmed { replayed: false });
}

// ---------------------------------------------------------------------------------------------
// Redelivery, fencing, late results
// ---------------------------------------------------------------------------------------------

#[test]
fn redelivered_paid__answers_the_first_outcome_marked_replayed_and_emits_nothing() {
    // First outcome: Confirmed.
    let f = with_held_live();
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false });
    f.drain();
    for _ in 0..3 {
        assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: true });
    }
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));

    // First outcome: a refund signal; the redelivery answers the same signal.
    let f = with_held_live();
    let first = f.paid("a", "r-other");
    let Settlement::PaidButNoHold { refund: first_refund, replayed: false } = first else { panic!("{first:?}") };
    f.drain();
    for _ in 0..3 {
        assert_eq!(f.paid("a", "r-other"), Settlement::PaidButNoHold { refund: first_refund.clone(), replayed: true });
    }
    assert_eq!(f.drain(), vec![], "never a second refund_required");
    assert_eq!(f.avail(), (1, 0, 9));

    // The first outcome stands even after the hold changed: a refund for a lapsed hold stays
    // `expired`, after the actor held again and paid under a new ref.
    let f = with_held_lapsed();
    let first = f.paid("a", "r1");
    assert_eq!(refund(&first), (NoHoldReason::Expired, false));
    f.hold("a", "r2");
    assert_eq!(f.paid("a", "r2"), Settlement::Confirmed { replayed: false });
    f.drain();
    let again = f.paid("a", "r1");
    assert_eq!(refund(&again), (NoHoldReason::Expired, true), "{again:?}");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));
}

#[test]
fn redelivered_failed__answers_noop_and_emits_nothing() {
    for status in FAILURES {
        let f = with_held_live();
        assert_eq!(f.settle("a", "r1", status), Settlement::Released, "{status}");
        assert_eq!(f.drain(), vec![ev("hold_released", "a", "r1")], "{status}");
        for _ in 0..3 {
            assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        }
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}: the seat is freed once");
    }
}

#[test]
fn stale_ref__never_changes_a_newer_hold_of_the_same_actor() {
    // Newer hold live.
    let f = Fx::new(CAPACITY);
    f.hold("a", "r1");
    assert_eq!(f.failed("a", "r1"), Settlement::Released);
    f.hold("a", "r2");
    f.drain();
    let before = f.record("a");
    for status in FAILURES {
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
    }
    let (reason, _) = refund(&f.paid("a", "r1"));
    assert!(matches!(reason, NoHoldReason::RefMismatch | NoHoldReason::Released), "{reason:?}");
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.record("a"), before, "the newer hold is untouched");
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.paid("a", "r2"), Settlement::Confirmed { replayed: false }, "the newer hold still settles");

    // Newer hold confirmed: an old attempt's failure does not unsell it.
    f.drain();
    let before = f.record("a");
    for status in FAILURES {
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
    }
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.record("a"), before);
    assert_eq!(f.avail(), (0, 1, 9));
}

#[test]
fn late_failed__never_undoes_a_paid_seat() {
    let f = with_confirmed();
    let before = f.record("a");
    for status in FAILURES {
        for r in ["r1", "r-other"] {
            assert_eq!(f.settle("a", r, status), Settlement::Noop, "{status} {r}");
        }
    }
    f.clock.advance(Duration::days(365));
    assert_eq!(f.sweep(), 0, "a sweep never touches a confirmed hold");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));
    assert_eq!(f.record("a"), before);
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn request_while_holding_or_paid__is_already_with_the_existing_ref() {
    let f = with_held_live();
    assert_eq!(f.request("a", "r2").unwrap(), RequestOutcome::Already { hold_ref: rf("r1"), confirmed: false });
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (1, 0, 9), "no second hold");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false });
    f.drain();
    assert_eq!(f.request("a", "r3").unwrap(), RequestOutcome::Already { hold_ref: rf("r1"), confirmed: true });
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));
}

#[test]
fn request_that_does_not_fit__is_full_with_the_capacity() {
    let f = Fx::new(2);
    f.hold_n("a", "ra", 2);
    f.drain();
    assert_eq!(f.request("b", "rb").unwrap(), RequestOutcome::Full { capacity: 2 });
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (2, 0, 0));
    assert_eq!(f.record("b"), None);
    let g = Fx::new(2);
    assert_eq!(g.request_n("b", "rb", 3).unwrap(), RequestOutcome::Full { capacity: 2 }, "more than the capacity");
    assert_eq!(g.drain(), vec![]);
}

#[test]
fn request_repeated_with_the_same_ref__replays_the_same_checkout() {
    let f = Fx::new(CAPACITY);
    let first = f.request("a", "r1").unwrap();
    let RequestOutcome::AwaitingPayment { checkout, replayed: false } = first else { panic!("{first:?}") };
    assert_eq!(f.drain(), vec![ev("hold_placed", "a", "r1")]);
    f.clock.advance(Duration::seconds(5));
    for _ in 0..3 {
        assert_eq!(
            f.request("a", "r1").unwrap(),
            RequestOutcome::AwaitingPayment { checkout: checkout.clone(), replayed: true }
        );
    }
    assert_eq!(f.drain(), vec![], "a replay places nothing");
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.record("a").map(|h| h.version), Some(1), "a replay writes nothing");
}

#[test]
fn request_reusing_the_ref_of_an_ended_hold__is_ref_reused() {
    let released = with_released();
    let expired = with_expired();
    let lapsed = with_held_lapsed();
    for (name, f) in [("released", &released), ("expired", &expired), ("lapsed", &lapsed)] {
        let before = f.record("a");
        let avail = f.avail();
        let err = f.request("a", "r1").unwrap_err();
        assert!(matches!(&err, RequestError::RefReused { hold_ref } if *hold_ref == rf("r1")), "{name}: {err:?}");
        assert_eq!(f.drain(), vec![], "{name}");
        assert_eq!(f.record("a"), before, "{name}");
        assert_eq!(f.avail(), avail, "{name}");
        assert!(matches!(f.request("a", "r2").unwrap(), RequestOutcome::AwaitingPayment { replayed: false, .. }));
    }
}

#[test]
fn lowering_the_capacity__revokes_nothing() {
    let f = Fx::new(3);
    f.hold_n("a", "ra", 2);
    f.hold("b", "rb");
    assert_eq!(f.paid("b", "rb"), Settlement::Confirmed { replayed: false });
    f.drain();
    f.engine.open(&f.occ, OccurrenceConfig::new(1, TTL as u64).unwrap()).unwrap();
    let a = f.engine.availability(&f.occ).unwrap();
    assert_eq!((a.capacity, a.held, a.confirmed, a.available), (1, 2, 1, 0));
    assert_eq!(f.drain(), vec![], "nothing is released or refunded");
    assert_eq!(f.state("a"), Some(("ra".into(), HoldState::Held)));
    assert_eq!(f.request("c", "rc").unwrap(), RequestOutcome::Full { capacity: 1 });
    assert_eq!(f.paid("a", "ra"), Settlement::Confirmed { replayed: false }, "a hold from before still sells");
    assert_eq!(f.drain(), vec![ev("hold_confirmed", "a", "ra")]);
    assert_eq!(f.avail(), (0, 3, 0));
}

#[test]
fn lapsed_hold__neither_blocks_nor_shows_before_any_sweep() {
    let f = Fx::new(1);
    f.hold("a", "ra");
    f.drain();
    assert_eq!(f.request("b", "rb").unwrap(), RequestOutcome::Full { capacity: 1 }, "live: it blocks");
    f.clock.advance(Duration::seconds(TTL - 1));
    assert_eq!(f.avail(), (1, 0, 0), "one second before expiry it still shows");
    f.clock.advance(Duration::seconds(1));
    assert_eq!(f.avail(), (0, 0, 1), "at expires_at it shows nowhere, with no sweep run");
    assert!(matches!(f.request("b", "rb").unwrap(), RequestOutcome::AwaitingPayment { replayed: false, .. }));
    assert_eq!(f.drain(), vec![ev("hold_expired", "a", "ra"), ev("hold_placed", "b", "rb")]);
    assert_eq!(f.avail(), (1, 0, 0));
    assert_eq!(f.sweep(), 0, "nothing left for the sweep");
    assert_eq!(f.drain(), vec![]);
}

#[test]
fn every_hold__ends_in_exactly_one_terminal_event() {
    let f = Fx::new(4);
    // confirmed, then redelivered and contradicted
    f.hold("a", "ra");
    assert_eq!(f.paid("a", "ra"), Settlement::Confirmed { replayed: false });
    assert_eq!(f.paid("a", "ra"), Settlement::Confirmed { replayed: true });
    assert_eq!(f.failed("a", "ra"), Settlement::Noop);
    // released, then failed again and paid late
    f.hold("b", "rb");
    assert_eq!(f.failed("b", "rb"), Settlement::Released);
    assert_eq!(f.failed("b", "rb"), Settlement::Noop);
    assert_eq!(refund(&f.paid("b", "rb")).0, NoHoldReason::Released);
    // lapsed: met by another actor's request, by the actor's own new request, by the sweep
    f.hold("c", "rc");
    f.hold("d", "rd1");
    f.hold("g", "rg");
    f.lapse();
    f.hold("e", "re"); // full by the counters: reclaims one lapsed hold
    f.hold("d", "rd2"); // the actor's own lapsed hold ends with its new one
    assert_eq!(f.sweep(), 1, "the one hold left lapsed is swept, once");
    assert_eq!(f.sweep(), 0);
    // lapsed and met by a settlement
    f.lapse();
    assert_eq!(refund(&f.paid("e", "re")).0, NoHoldReason::Expired);
    assert_eq!(f.settle("d", "rd2", PaymentStatus::Expired), Settlement::Noop);
    f.lapse();
    assert_eq!(f.sweep(), 0);

    let events = f.drain();
    let placed: Vec<&Ev> = events.iter().filter(|e| e.0 == "hold_placed").collect();
    assert_eq!(placed.len(), 7, "{events:?}");
    for p in placed {
        let terminal: Vec<&str> = events
            .iter()
            .filter(|e| e.1 == p.1 && e.2 == p.2)
            .map(|e| e.0.as_str())
            .filter(|t| matches!(*t, "hold_confirmed" | "hold_released" | "hold_expired"))
            .collect();
        assert_eq!(terminal.len(), 1, "hold {}/{} ended {:?}; all events {events:?}", p.1, p.2, terminal);
    }
    let terminal_total = events.iter().filter(|e| e.0 != "hold_placed" && e.0 != "refund_required").count();
    assert_eq!(terminal_total, 7, "no terminal event without a placed hold: {events:?}");
    assert_eq!(f.avail(), (0, 1, 3));
}

#[test]
fn request__with_a_ref_that_already_has_money_behind_it__is_refused_ref_reused() {
    // r1 is paid after it lapsed (refund), r2 is then placed and released. Reusing r1 must be
    // refused: a redelivery of r1's payment would be answered as a replay of its refund while
    // a new r1 hold waited unpaid.
    let f = with_no_hold();
    f.hold("ann", "r1");
    f.lapse();
    let (reason, replayed) = refund(&f.paid("ann", "r1"));
    assert_eq!((reason, replayed), (NoHoldReason::Expired, false));
    f.hold("ann", "r2");
    assert_eq!(f.failed("ann", "r2"), Settlement::Released);
    let before = f.avail();
    let err = f.request("ann", "r1").expect_err("a settled ref is refused");
    assert!(matches!(&err, RequestError::RefReused { hold_ref } if *hold_ref == rf("r1")), "{err:?}");
    assert_eq!(f.avail(), before, "a refused request changes nothing");
    assert_eq!(f.state("ann"), Some(("r2".to_string(), HoldState::Released)));
}
