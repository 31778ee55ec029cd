//! The settlement truth table (`seathold::settlement`), one test per cell (6 hold states x 4
//! result columns), and one test per extra rule around it. Everything goes through
//! `Engine::with_clock(MemoryStore::new(), Arc<ManualClock>)`; every test checks the outcome
//! and its side effects: the availability counters, the drained outbox, the hold record.
//!
//! Test names read `<hold state>__<result>__<expected outcome and effects>`.
#![allow(non_snake_case)] // the double underscores separate the cell's row, column and answer

use std::sync::Arc;

use seathold::catalogue::{Dim, OccurrenceConfig};
use seathold::contract::{
    ActorId, Amount, Currency, Money, NoHoldReason, OccKey, PaymentResult, PaymentStatus, ProviderRef, Ref,
};
use seathold::holds::{Hold, HoldRequest, HoldState, RequestOutcome, RequestRefusal};
use seathold::ledger::EntryKind;
use seathold::settlement::{RejectReason, Settlement};
use seathold::store::{Record, RecordKey, Versioned};
use seathold::{Engine, ManualClock, MemoryStore, OpError, RequestError, Store};
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
        events
            .iter()
            .map(|o| {
                let r = o.event.hold_ref.as_ref().map_or("", |r| r.as_str());
                ev(o.event.kind.type_str(), o.event.actor.as_str(), r)
            })
            .collect()
    }

    /// The actor's summary record and its current (latest) hold, with their versions: what a
    /// result that must change nothing must leave exactly as it was.
    fn footprint(&self, who: &str) -> (Option<Versioned<Record>>, Option<Versioned<Record>>) {
        let store = self.engine.store();
        let summary = Store::load(store, &self.occ, &[RecordKey::Actor(actor(who))]).unwrap().records.remove(0);
        let current = match summary.as_ref().map(|v| &v.value) {
            Some(Record::Actor(a)) => a.current.clone(),
            _ => None,
        };
        let hold =
            current.and_then(|r| Store::load(store, &self.occ, &[RecordKey::Booking(r)]).unwrap().records.remove(0));
        (summary, hold)
    }

    /// The actor's current (latest) hold, with its version.
    fn record(&self, who: &str) -> Option<Versioned<Hold>> {
        match self.footprint(who).1 {
            Some(Versioned { version, value: Record::Booking(h) }) => Some(Versioned { version, value: h }),
            Some(other) => panic!("a booking key holds {other:?}"),
            None => None,
        }
    }

    /// The hold under `r`, whoever's.
    fn booking(&self, r: &str) -> Option<Hold> {
        self.engine.booking(&self.occ, &rf(r)).unwrap()
    }

    /// How many payment records (accountings) the occurrence has.
    fn payments(&self) -> usize {
        self.engine.ledger(&self.occ).unwrap().entries.iter().filter(|e| e.kind == EntryKind::Payment).count()
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
    // Another actor holds under the ref: a result of "a" under it names no hold of a's.
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
    let before = f.footprint("b");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.avail(), (1, 0, 9), "b's hold is untouched");
    assert_eq!(f.payments(), 1, "the refund is accounted");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::NoHold, true), "redelivery replays");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.footprint("b"), before);
    assert_eq!(f.footprint("a"), (None, None), "no hold is created for a");

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
    assert_eq!(f.footprint("a"), (None, None));

    let unknown = PaymentResult::paid(occ("never-opened"), actor("a"), rf("r-other"));
    assert_eq!(refund(&f.engine.settle(&unknown).unwrap()), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
}

#[test]
fn none__failed_same_ref__is_noop_and_writes_nothing() {
    for status in FAILURES {
        let f = with_no_hold();
        let before = f.footprint("b");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (1, 0, 9), "{status}: b's hold with the same ref string is untouched");
        assert_eq!(f.footprint("b"), before, "{status}");
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
        assert_eq!(f.footprint("a"), (None, None), "{status}");
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
    let before = f.footprint("a");
    assert_eq!(refund(&f.paid("a", "r-other")), (NoHoldReason::RefMismatch, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (1, 0, 9), "the live hold keeps its seat");
    assert_eq!(f.footprint("a"), before, "the hold record is not written at all");
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
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (1, 0, 9), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
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
fn held_lapsed__paid_other_ref__is_refund_ref_mismatch_and_hold_expired_once_by_the_settlement() {
    let f = with_held_lapsed();
    let (out, events) = settle_then_sweep(&f, PaymentStatus::Paid, "r-other");
    assert_eq!(refund(&out), (NoHoldReason::RefMismatch, false));
    // The settlement writes (a refund) and met the lapsed hold: it expires it, before the
    // sweep that follows could (invariant 7: the first writing operation that meets it).
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], ev("hold_expired", "a", "r1"), "{events:?}");
    assert_eq!((events[1].0.as_str(), events[1].2.as_str()), ("refund_required", "r-other"), "{events:?}");
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
    let before = f.footprint("a");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: true });
    assert_eq!(f.drain(), vec![], "a replay emits nothing");
    assert_eq!(f.avail(), (0, 1, 9), "the seat is sold once");
    assert_eq!(f.footprint("a"), before, "a replay writes nothing");
}

#[test]
fn confirmed__paid_other_ref__is_refund_already_paid_and_seat_kept() {
    let f = with_confirmed();
    let before = f.footprint("a");
    assert_eq!(refund(&f.paid("a", "r-other")), (NoHoldReason::AlreadyPaid, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 1, 9));
    assert_eq!(f.footprint("a"), before);
}

#[test]
fn confirmed__failed_same_ref__is_noop_and_seat_kept() {
    for status in FAILURES {
        let f = with_confirmed();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 1, 9), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
    }
}

#[test]
fn confirmed__failed_other_ref__is_noop_and_seat_kept() {
    for status in FAILURES {
        let f = with_confirmed();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 1, 9), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Released
// ---------------------------------------------------------------------------------------------

#[test]
fn released__paid_same_ref__is_refund_released() {
    let f = with_released();
    let before = f.footprint("a");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::Released, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.avail(), (0, 0, 10), "the released seat is not sold");
    assert_eq!(f.footprint("a"), before);
}

#[test]
fn released__paid_other_ref__is_refund_no_hold_or_ref_mismatch() {
    let f = with_released();
    let before = f.footprint("a");
    let (reason, replayed) = refund(&f.paid("a", "r-other"));
    assert!(matches!(reason, NoHoldReason::NoHold | NoHoldReason::RefMismatch), "{reason:?}");
    assert!(!replayed);
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.footprint("a"), before);
}

#[test]
fn released__failed_same_ref__is_noop_with_no_new_event() {
    for status in FAILURES {
        let f = with_released();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}: seats are not freed twice");
        assert_eq!(f.footprint("a"), before, "{status}");
    }
}

#[test]
fn released__failed_other_ref__is_noop() {
    for status in FAILURES {
        let f = with_released();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row: Expired (swept)
// ---------------------------------------------------------------------------------------------

#[test]
fn expired__paid_same_ref__is_refund_expired() {
    let f = with_expired();
    let before = f.footprint("a");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::Expired, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")], "no second hold_expired");
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.footprint("a"), before);
}

#[test]
fn expired__paid_other_ref__is_refund_no_hold_or_ref_mismatch() {
    let f = with_expired();
    let before = f.footprint("a");
    let (reason, replayed) = refund(&f.paid("a", "r-other"));
    assert!(matches!(reason, NoHoldReason::NoHold | NoHoldReason::RefMismatch), "{reason:?}");
    assert!(!replayed);
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r-other")]);
    assert_eq!(f.avail(), (0, 0, 10));
    assert_eq!(f.footprint("a"), before);
}

#[test]
fn expired__failed_same_ref__is_noop() {
    for status in FAILURES {
        let f = with_expired();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
    }
}

#[test]
fn expired__failed_other_ref__is_noop() {
    for status in FAILURES {
        let f = with_expired();
        let before = f.footprint("a");
        assert_eq!(f.settle("a", "r-other", status), Settlement::Noop, "{status}");
        assert_eq!(f.drain(), vec![], "{status}");
        assert_eq!(f.avail(), (0, 0, 10), "{status}");
        assert_eq!(f.footprint("a"), before, "{status}");
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
    let before = f.footprint("a");
    let out = paid_with(&f, "24.99", "EUR");
    assert!(matches!(out, Settlement::Rejected { reason: RejectReason::AmountMismatch { .. } }), "{out:?}");
    assert_eq!(f.drain(), vec![], "nothing changes, the outbox neither");
    assert_eq!(f.avail(), (1, 0, 9), "the hold keeps its seat, unsold");
    assert_eq!(f.footprint("a"), before, "the hold is not written");
    let again = paid_with(&f, "24.99", "EUR");
    assert!(matches!(again, Settlement::Rejected { .. }), "a redelivery is rejected again (nothing accounted)");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false }, "a matching result still confirms");
}

/// Opted in (`with_rejection_alarm`), the refusal raises `payment_rejected` in the outbox,
/// once per payment; the seat is untouched as without it.
#[test]
fn held_live__paid_other_amount__with_the_alarm__raises_payment_rejected_once() {
    let f = with_held_live();
    let config = OccurrenceConfig::new(CAPACITY, TTL as u64).unwrap().with_rejection_alarm(true);
    f.engine.open(&f.occ, config).unwrap();
    let out = paid_with(&f, "24.99", "EUR");
    assert!(matches!(out, Settlement::Rejected { reason: RejectReason::AmountMismatch { .. } }), "{out:?}");
    assert_eq!(f.drain(), vec![ev("payment_rejected", "a", "r1")], "the alarm is raised in the outbox");
    assert_eq!(f.avail(), (1, 0, 9), "the hold keeps its seat, unsold");
    assert!(matches!(paid_with(&f, "24.99", "EUR"), Settlement::Rejected { .. }));
    assert_eq!(f.drain(), vec![], "a redelivery raises no second alarm");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false }, "a matching result still confirms");
}

#[test]
fn held_live__paid_other_currency__is_rejected_currency_mismatch_and_nothing_changes() {
    let f = with_held_live();
    let before = f.footprint("a");
    let out = paid_with(&f, "25.00", "USD");
    assert!(matches!(out, Settlement::Rejected { reason: RejectReason::CurrencyMismatch { .. } }), "{out:?}");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.footprint("a"), before);
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
    let before = f.footprint("a");
    for status in FAILURES {
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
    }
    // Judged against the actor's current hold (r2, live): the R' != R column.
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::RefMismatch, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.footprint("a"), before, "the newer hold is untouched");
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.paid("a", "r2"), Settlement::Confirmed { replayed: false }, "the newer hold still settles");

    // Newer hold confirmed: an old attempt's failure does not unsell it.
    f.drain();
    let before = f.footprint("a");
    for status in FAILURES {
        assert_eq!(f.settle("a", "r1", status), Settlement::Noop, "{status}");
    }
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.footprint("a"), before);
    assert_eq!(f.avail(), (0, 1, 9));
}

#[test]
fn late_failed__never_undoes_a_paid_seat() {
    let f = with_confirmed();
    let before = f.footprint("a");
    for status in FAILURES {
        for r in ["r1", "r-other"] {
            assert_eq!(f.settle("a", r, status), Settlement::Noop, "{status} {r}");
        }
    }
    f.clock.advance(Duration::days(365));
    assert_eq!(f.sweep(), 0, "a sweep never touches a confirmed hold");
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));
    assert_eq!(f.footprint("a"), before);
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn request_while_holding_or_paid__is_already_with_the_existing_ref() {
    let f = with_held_live();
    let held = f.booking("r1").unwrap();
    assert_eq!(
        f.request("a", "r2").unwrap(),
        RequestOutcome::Already { hold_ref: rf("r1"), confirmed: false, checkout: Some(held.checkout_request()) },
        "a live hold answers with its checkout, to resume"
    );
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (1, 0, 9), "no second hold");
    assert_eq!(f.paid("a", "r1"), Settlement::Confirmed { replayed: false });
    f.drain();
    assert_eq!(
        f.request("a", "r3").unwrap(),
        RequestOutcome::Already { hold_ref: rf("r1"), confirmed: true, checkout: None }
    );
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (0, 1, 9));
}

#[test]
fn request_that_does_not_fit__is_full_with_the_capacity() {
    let f = Fx::new(2);
    f.hold_n("a", "ra", 2);
    f.drain();
    assert_eq!(f.request("b", "rb").unwrap(), RequestOutcome::Full { capacity: 2, tier: None, short: Dim::Total });
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.avail(), (2, 0, 0));
    assert_eq!(f.footprint("b"), (None, None));
    let g = Fx::new(2);
    assert_eq!(
        g.request_n("b", "rb", 3).unwrap(),
        RequestOutcome::Full { capacity: 2, tier: None, short: Dim::Total },
        "more than the capacity"
    );
    assert_eq!(g.drain(), vec![]);
}

#[test]
fn request_repeated_with_the_same_ref__replays_the_same_checkout() {
    let f = Fx::new(CAPACITY);
    let first = f.request("a", "r1").unwrap();
    let RequestOutcome::AwaitingPayment { checkout, replayed: false, .. } = first else { panic!("{first:?}") };
    assert_eq!(f.drain(), vec![ev("hold_placed", "a", "r1")]);
    f.clock.advance(Duration::seconds(5));
    for _ in 0..3 {
        assert_eq!(
            f.request("a", "r1").unwrap(),
            RequestOutcome::AwaitingPayment { checkout: checkout.clone(), replayed: true, seat_ids: Vec::new() }
        );
    }
    assert_eq!(f.drain(), vec![], "a replay places nothing");
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.record("a").map(|h| h.version), Some(1), "a replay writes nothing");
}

#[test]
fn request_reusing_the_ref_of_an_ended_hold__is_ref_used() {
    let released = with_released();
    let expired = with_expired();
    let lapsed = with_held_lapsed();
    for (name, f) in [("released", &released), ("expired", &expired), ("lapsed", &lapsed)] {
        let before = f.footprint("a");
        let avail = f.avail();
        let err = f.request("a", "r1").unwrap_err();
        assert!(matches!(&err, OpError::Refused(RequestRefusal::RefUsed)), "{name}: {err:?}");
        assert_eq!(f.drain(), vec![], "{name}");
        assert_eq!(f.footprint("a"), before, "{name}");
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
    assert_eq!(f.request("c", "rc").unwrap(), RequestOutcome::Full { capacity: 1, tier: None, short: Dim::Total });
    assert_eq!(f.paid("a", "ra"), Settlement::Confirmed { replayed: false }, "a hold from before still sells");
    assert_eq!(f.drain(), vec![ev("hold_confirmed", "a", "ra")]);
    assert_eq!(f.avail(), (0, 3, 0));
}

#[test]
fn lapsed_hold__neither_blocks_nor_shows_before_any_sweep() {
    let f = Fx::new(1);
    f.hold("a", "ra");
    f.drain();
    assert_eq!(
        f.request("b", "rb").unwrap(),
        RequestOutcome::Full { capacity: 1, tier: None, short: Dim::Total },
        "live: it blocks"
    );
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
fn request__with_a_ref_that_already_has_money_behind_it__is_refused_ref_used() {
    // r1 is paid after it lapsed (refund), r2 is then placed and released. Reusing r1 must be
    // refused: a redelivery of r1's payment would be answered as a replay of its refund while
    // a new r1 hold waited unpaid.
    let f = Fx::new(CAPACITY);
    f.hold("ann", "r1");
    f.lapse();
    let (reason, replayed) = refund(&f.paid("ann", "r1"));
    assert_eq!((reason, replayed), (NoHoldReason::Expired, false));
    f.hold("ann", "r2");
    assert_eq!(f.failed("ann", "r2"), Settlement::Released);
    let before = f.avail();
    let err = f.request("ann", "r1").expect_err("a settled ref is refused");
    assert!(matches!(&err, OpError::Refused(RequestRefusal::RefUsed)), "{err:?}");
    assert_eq!(f.avail(), before, "a refused request changes nothing");
    assert_eq!(f.state("ann"), Some(("r2".to_string(), HoldState::Released)));
}

// ---------------------------------------------------------------------------------------------
// Refs are single-use per occurrence, whoever used them
// ---------------------------------------------------------------------------------------------

fn is_ref_used(r: &Result<RequestOutcome, RequestError>) -> bool {
    matches!(r, Err(OpError::Refused(RequestRefusal::RefUsed)))
}

#[test]
fn request__with_the_ref_of_another_actors_hold__is_ref_used_in_every_state() {
    // b's hold under r1: live, lapsed, confirmed, released, expired.
    let live = with_no_hold();
    let lapsed = with_no_hold();
    lapsed.lapse();
    let confirmed = with_no_hold();
    assert_eq!(confirmed.paid("b", "r1"), Settlement::Confirmed { replayed: false });
    let released = with_no_hold();
    assert_eq!(released.failed("b", "r1"), Settlement::Released);
    let expired = with_no_hold();
    expired.lapse();
    assert_eq!(expired.sweep(), 1);
    for (name, f) in [
        ("live", &live),
        ("lapsed", &lapsed),
        ("confirmed", &confirmed),
        ("released", &released),
        ("expired", &expired),
    ] {
        f.drain();
        let (avail, b_before) = (f.avail(), f.footprint("b"));
        let out = f.request("a", "r1");
        assert!(is_ref_used(&out), "{name}: {out:?}");
        assert_eq!(f.drain(), vec![], "{name}: nothing emitted");
        assert_eq!(f.avail(), avail, "{name}");
        assert_eq!(f.footprint("b"), b_before, "{name}: b's hold untouched");
        assert_eq!(f.footprint("a"), (None, None), "{name}: nothing written for a");
        // The same request with the same order as b's: still not a replay, it is not a's.
        let same_order = f.request("a", "r1");
        assert!(is_ref_used(&same_order), "{name}: {same_order:?}");
        assert!(matches!(f.request("a", "r2").unwrap(), RequestOutcome::AwaitingPayment { replayed: false, .. }));
    }
}

#[test]
fn request__same_ref_other_order_while_live__is_request_changed_and_changes_nothing() {
    let f = with_held_live();
    let before = (f.footprint("a"), f.avail());
    let err = f.request_n("a", "r1", 2).unwrap_err();
    assert!(matches!(err, OpError::Refused(RequestRefusal::RequestChanged)), "{err:?}");
    let other_price = HoldRequest::new(f.occ.clone(), actor("a"), rf("r1"), Money::parse("30.00", "EUR").unwrap());
    let err = f.engine.request(&other_price).unwrap_err();
    assert!(matches!(err, OpError::Refused(RequestRefusal::RequestChanged)), "{err:?}");
    assert_eq!((f.footprint("a"), f.avail()), before);
    assert_eq!(f.drain(), vec![]);
    // The identical request is still the replay.
    assert!(matches!(f.request("a", "r1").unwrap(), RequestOutcome::AwaitingPayment { replayed: true, .. }));
}

#[test]
fn request__precedence_malformed_then_replay_then_already_then_used_ref_then_full() {
    let f = Fx::new(2);
    f.hold("b", "rb");
    f.hold("a", "ra");
    f.drain();
    // Malformed input first, even with the ref of a live hold of the actor's.
    let err = f.request_n("a", "ra", 0).unwrap_err();
    assert!(matches!(err, OpError::Refused(RequestRefusal::BadQuantity { .. })), "{err:?}");
    // Replay of the live hold's own request, though the occurrence is full.
    assert!(matches!(f.request("a", "ra").unwrap(), RequestOutcome::AwaitingPayment { replayed: true, .. }));
    // Already (a live hold under another ref) beats a used ref (b's).
    assert!(
        matches!(f.request("a", "rb").unwrap(), RequestOutcome::Already { hold_ref, confirmed: false, .. } if hold_ref == rf("ra"))
    );
    // A used ref beats Full: c has no hold, the occurrence is full, the ref is b's.
    assert!(is_ref_used(&f.request("c", "rb")));
    assert_eq!(f.request("c", "rc").unwrap(), RequestOutcome::Full { capacity: 2, tier: None, short: Dim::Total });
    // Paid: without max_per_actor the booking answers Already, before the used ref.
    assert_eq!(f.paid("a", "ra"), Settlement::Confirmed { replayed: false });
    assert_eq!(
        f.request("a", "rb").unwrap(),
        RequestOutcome::Already { hold_ref: rf("ra"), confirmed: true, checkout: None }
    );
    // Unknown occurrence is refused as such.
    let nowhere = HoldRequest::new(occ("nowhere"), actor("a"), rf("rx"), price());
    assert!(matches!(f.engine.request(&nowhere), Err(OpError::Refused(RequestRefusal::UnknownOccurrence))));
    assert_eq!(f.drain(), vec![ev("hold_confirmed", "a", "ra")], "only the payment wrote anything");
}

#[test]
fn paid_before_its_request__is_refund_no_hold_and_the_leaked_ref_is_used_for_that_actor() {
    let f = Fx::new(CAPACITY);
    // The payment side leaks r9 before the booking side placed anything.
    assert_eq!(refund(&f.paid("a", "r9")), (NoHoldReason::NoHold, false));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r9")]);
    // a's request under r9 would have its payment answered by that refund's replay: refused.
    assert!(is_ref_used(&f.request("a", "r9")));
    assert_eq!(f.avail(), (0, 0, 10));
    // Another actor's payment record does not name a hold: b may still hold under r9.
    assert!(matches!(f.request("b", "r9").unwrap(), RequestOutcome::AwaitingPayment { replayed: false, .. }));
    // a's payment redelivered: still a's refund, never b's hold.
    assert_eq!(refund(&f.paid("a", "r9")), (NoHoldReason::NoHold, true));
    assert_eq!(f.avail(), (1, 0, 9));
    assert_eq!(f.paid("b", "r9"), Settlement::Confirmed { replayed: false });
    assert_eq!(f.drain(), vec![ev("hold_placed", "b", "r9"), ev("hold_confirmed", "b", "r9")]);
    assert_eq!(f.payments(), 2, "one accounting each for a's and b's payments");
}

// ---------------------------------------------------------------------------------------------
// Where the money is checked, and where it is not
// ---------------------------------------------------------------------------------------------

fn paid_money(f: &Fx, who: &str, r: &str, amount: &str, currency: &str) -> Settlement {
    let result = f
        .result(who, r, PaymentStatus::Paid)
        .with_money(Amount::parse(amount).unwrap(), Currency::parse(currency).unwrap());
    f.engine.settle(&result).unwrap()
}

#[test]
fn wrong_money_for_a_hold_that_cannot_be_confirmed__is_a_refund_of_the_money_received() {
    for (name, f, reason) in [
        ("lapsed", with_held_lapsed(), NoHoldReason::Expired),
        ("expired", with_expired(), NoHoldReason::Expired),
        ("released", with_released(), NoHoldReason::Released),
    ] {
        let out = paid_money(&f, "a", "r1", "24.99", "USD");
        let Settlement::PaidButNoHold { refund, replayed: false } = &out else { panic!("{name}: {out:?}") };
        assert_eq!(refund.reason, reason, "{name}");
        assert_eq!(
            (refund.amount, refund.currency),
            (Some(Amount::parse("24.99").unwrap()), Some(Currency::parse("USD").unwrap())),
            "{name}: the refund carries what was received"
        );
        f.sweep();
        let events = f.drain();
        assert_eq!(count(&events, "refund_required"), 1, "{name}: {events:?}");
        assert_eq!(f.avail(), (0, 0, 10), "{name}");
        // Its redelivery replays it, whatever the body says now.
        let again = paid_money(&f, "a", "r1", "25.00", "EUR");
        assert_eq!(again, Settlement::PaidButNoHold { refund: refund.clone(), replayed: true }, "{name}");
        assert_eq!(f.drain(), vec![], "{name}");
    }
    // Without money on the result, the refund carries the hold's price.
    let f = with_expired();
    let out = f.paid("a", "r1");
    let Settlement::PaidButNoHold { refund, .. } = &out else { panic!("{out:?}") };
    assert_eq!((refund.amount, refund.currency), (Some(price().amount), Some(price().currency)));
}

#[test]
fn redelivered_paid_with_other_money__replays_and_is_never_rejected() {
    let f = with_confirmed();
    let before = f.footprint("a");
    assert_eq!(paid_money(&f, "a", "r1", "1.00", "USD"), Settlement::Confirmed { replayed: true });
    assert_eq!(f.drain(), vec![]);
    assert_eq!(f.footprint("a"), before);
    assert_eq!(f.avail(), (0, 1, 9));
}

// ---------------------------------------------------------------------------------------------
// Which deliveries are the same payment
// ---------------------------------------------------------------------------------------------

fn paid_by(f: &Fx, who: &str, r: &str, provider: Option<&str>) -> Settlement {
    let mut result = f.result(who, r, PaymentStatus::Paid);
    if let Some(p) = provider {
        result = result.with_provider_ref(ProviderRef::new(p).unwrap());
    }
    f.engine.settle(&result).unwrap()
}

#[test]
fn second_payment_with_another_provider_ref__is_refund_duplicate_payment_accounted_on_its_own() {
    let f = with_held_live();
    assert_eq!(paid_by(&f, "a", "r1", Some("pi_1")), Settlement::Confirmed { replayed: false });
    f.drain();
    let before = f.footprint("a");

    // The customer was charged twice: refund the second charge, confirm nothing again.
    let out = paid_by(&f, "a", "r1", Some("pi_2"));
    let Settlement::PaidButNoHold { refund: dup, replayed: false } = &out else { panic!("{out:?}") };
    assert_eq!(dup.reason, NoHoldReason::DuplicatePayment);
    assert_eq!(dup.provider_ref, Some(ProviderRef::new("pi_2").unwrap()), "the charge to refund");
    assert_eq!((dup.amount, dup.currency), (Some(price().amount), Some(price().currency)));
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.footprint("a"), before, "the booking and the actor are untouched");
    assert_eq!(f.avail(), (0, 1, 9));

    // Each payment's redeliveries replay its own answer.
    for _ in 0..2 {
        assert_eq!(
            paid_by(&f, "a", "r1", Some("pi_2")),
            Settlement::PaidButNoHold { refund: dup.clone(), replayed: true }
        );
        assert_eq!(paid_by(&f, "a", "r1", Some("pi_1")), Settlement::Confirmed { replayed: true });
        // Without a provider ref, a delivery is the first payment's.
        assert_eq!(paid_by(&f, "a", "r1", None), Settlement::Confirmed { replayed: true });
    }
    // A third charge is a refund of its own.
    let third = paid_by(&f, "a", "r1", Some("pi_3"));
    assert!(
        matches!(&third, Settlement::PaidButNoHold { refund, replayed: false } if refund.reason == NoHoldReason::DuplicatePayment),
        "{third:?}"
    );
    assert_eq!(f.drain(), vec![ev("refund_required", "a", "r1")]);
    assert_eq!(f.avail(), (0, 1, 9));

    // The ledger: three payments received, two refunded, one booking's worth kept.
    let ledger = f.engine.ledger(&f.occ).unwrap();
    assert_eq!(f.payments(), 3, "{ledger:?}");
    let refunds = ledger.entries.iter().filter(|e| e.kind == EntryKind::Refund).count();
    assert_eq!(refunds, 2, "{ledger:?}");
    assert_eq!(ledger.net(price().currency), Some(price().amount), "{ledger:?}");
}

#[test]
fn second_payment_after_a_refund__is_refund_duplicate_payment_and_the_first_refund_stands() {
    let f = with_held_lapsed();
    let first = paid_by(&f, "a", "r1", Some("pi_1"));
    assert_eq!(refund(&first), (NoHoldReason::Expired, false));
    let second = paid_by(&f, "a", "r1", Some("pi_2"));
    assert_eq!(refund(&second), (NoHoldReason::DuplicatePayment, false));
    assert_eq!(refund(&paid_by(&f, "a", "r1", Some("pi_1"))), (NoHoldReason::Expired, true));
    assert_eq!(refund(&paid_by(&f, "a", "r1", Some("pi_2"))), (NoHoldReason::DuplicatePayment, true));
    let events = f.drain();
    assert_eq!(count(&events, "refund_required"), 2, "{events:?}");
    assert_eq!(count(&events, "hold_expired"), 1, "{events:?}");
    assert_eq!(f.payments(), 2);
}

#[test]
fn first_payment_without_provider_ref__is_named_by_its_first_redelivery_and_another_is_a_second_charge() {
    // The first provider ref seen on a redelivery is recorded (the same payment, now named); a
    // different one after it is a second charge, refunded `duplicate_payment`.
    let f = with_held_live();
    assert_eq!(paid_by(&f, "a", "r1", None), Settlement::Confirmed { replayed: false });
    assert_eq!(paid_by(&f, "a", "r1", Some("pi_1")), Settlement::Confirmed { replayed: true });
    assert_eq!(refund(&paid_by(&f, "a", "r1", Some("pi_2"))), (NoHoldReason::DuplicatePayment, false));
    assert_eq!(paid_by(&f, "a", "r1", Some("pi_1")), Settlement::Confirmed { replayed: true });
    assert_eq!(paid_by(&f, "a", "r1", None), Settlement::Confirmed { replayed: true });
    assert_eq!(refund(&paid_by(&f, "a", "r1", Some("pi_2"))), (NoHoldReason::DuplicatePayment, true));
    let events = f.drain();
    assert_eq!(count(&events, "hold_confirmed"), 1, "{events:?}");
    assert_eq!(count(&events, "refund_required"), 1, "{events:?}");
    assert_eq!(f.payments(), 2, "the payment and the second charge, each accounted once");
}

// ---------------------------------------------------------------------------------------------
// Part 1 location: a result is judged against the actor's current (latest) hold
// ---------------------------------------------------------------------------------------------

#[test]
fn paid_for_an_older_hold__is_judged_against_the_current_hold() {
    // r1 lapsed, then r2 placed (ending r1): a payment for r1 is the R' != R column of r2's
    // row, not r1's own `expired`.
    let f = with_held_lapsed();
    f.hold("a", "r2");
    f.drain();
    let before = f.footprint("a");
    assert_eq!(refund(&f.paid("a", "r1")), (NoHoldReason::RefMismatch, false), "current hold r2 is live");
    assert_eq!(f.footprint("a"), before, "r2 untouched");
    assert_eq!(f.paid("a", "r2"), Settlement::Confirmed { replayed: false });
    f.drain();
    // A further old attempt's payment after the current hold is paid: already_paid.
    assert!(matches!(f.request("a", "r3").unwrap(), RequestOutcome::Already { confirmed: true, .. }));
    let g = with_released();
    g.hold("a", "r2");
    assert_eq!(g.paid("a", "r2"), Settlement::Confirmed { replayed: false });
    assert_eq!(refund(&g.paid("a", "r1")), (NoHoldReason::AlreadyPaid, false), "current hold r2 is confirmed");
    assert_eq!(g.avail(), (0, 1, 9));
    // Current hold released, older one expired: R' != R in the released row.
    let h = with_expired();
    h.hold("a", "r2");
    assert_eq!(h.failed("a", "r2"), Settlement::Released);
    let (reason, _) = refund(&h.paid("a", "r1"));
    assert!(matches!(reason, NoHoldReason::RefMismatch | NoHoldReason::NoHold), "{reason:?}");
    assert_eq!(h.avail(), (0, 0, 10));
}
