//! The settlement truth table as a table: one row per (hold state, result) cell, run by one
//! function through the pure test seam (`seathold::given`) — the decisions alone, without
//! an engine, a store or a clock. `tests/truth_table.rs` runs the same table end to end
//! through the engine on both stores.

use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, NoHoldReason, OccKey, PaymentResult, ProviderRef, Ref};
use seathold::given::Given;
use seathold::holds::{HoldRequest, RequestOutcome, decide_expiry, decide_request};
use seathold::records::RecordKey;
use seathold::settlement::{Settlement, decide_settlement};
use seathold::time::macros::datetime;
use seathold::time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-12-01 19:00 UTC);
const TTL: i64 = 600;

/// The state the hold is in when the result arrives.
#[derive(Debug, Clone, Copy)]
enum State {
    /// No booking (and no occurrence).
    NoHold,
    HeldLive,
    HeldLapsed,
    /// Confirmed under R.
    Paid,
    /// Released by a failed payment.
    Freed,
    /// Expired by the sweep.
    Swept,
}

/// The result that arrives: under the hold's ref R, or another.
#[derive(Debug, Clone, Copy)]
enum Arrives {
    PaidR,
    PaidOther,
    FailedR,
    FailedOther,
}

/// What the cell says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Confirmed { replayed: bool },
    Released,
    Noop,
    Refund(NoHoldReason),
}

use Arrives::*;
use Expect::*;
use State::*;

const TABLE: &[(State, Arrives, Expect)] = &[
    (NoHold, PaidR, Refund(NoHoldReason::NoHold)),
    (NoHold, PaidOther, Refund(NoHoldReason::NoHold)),
    (NoHold, FailedR, Noop),
    (NoHold, FailedOther, Noop),
    (HeldLive, PaidR, Confirmed { replayed: false }),
    (HeldLive, PaidOther, Refund(NoHoldReason::RefMismatch)),
    (HeldLive, FailedR, Released),
    (HeldLive, FailedOther, Noop),
    (HeldLapsed, PaidR, Refund(NoHoldReason::Expired)),
    (HeldLapsed, PaidOther, Refund(NoHoldReason::RefMismatch)),
    (HeldLapsed, FailedR, Noop),
    (HeldLapsed, FailedOther, Noop),
    (Paid, PaidR, Confirmed { replayed: true }),
    (Paid, PaidOther, Refund(NoHoldReason::AlreadyPaid)),
    (Paid, FailedR, Noop),
    (Paid, FailedOther, Noop),
    (Freed, PaidR, Refund(NoHoldReason::Released)),
    (Freed, PaidOther, Refund(NoHoldReason::RefMismatch)),
    (Freed, FailedR, Noop),
    (Freed, FailedOther, Noop),
    (Swept, PaidR, Refund(NoHoldReason::Expired)),
    (Swept, PaidOther, Refund(NoHoldReason::RefMismatch)),
    (Swept, FailedR, Noop),
    (Swept, FailedOther, Noop),
];

fn gig() -> OccKey {
    OccKey::new("gig").expect("occ")
}

fn ann() -> ActorId {
    ActorId::new("ann").expect("actor")
}

fn r(s: &str) -> Ref {
    Ref::new(s).expect("ref")
}

fn paid(hold_ref: &str) -> PaymentResult {
    PaymentResult::paid(gig(), ann(), r(hold_ref)).with_provider_ref(ProviderRef::new("pi_1").expect("provider ref"))
}

/// The hold in `state`, reached by running the decisions themselves; and the instant the
/// result arrives at.
fn given(state: State) -> (Given, OffsetDateTime) {
    if matches!(state, NoHold) {
        return (Given::nothing(gig()), T0);
    }
    let config = OccurrenceConfig::new(2, TTL as u64).expect("config");
    let mut g = Given::occurrence(gig(), config);
    let req = HoldRequest::new(gig(), ann(), r("r1"), Money::parse("20.00", "EUR").expect("money"));
    let placed = g.try_when(|v| decide_request(v, &req, T0)).expect("request decided");
    assert!(matches!(placed.answer, RequestOutcome::AwaitingPayment { .. }), "setup: {:?}", placed.answer);
    let lapsed = T0 + Duration::seconds(TTL + 1);
    let settle = |g: &mut Given, result: &PaymentResult| {
        let then = g.when(|v| decide_settlement(v, result, T0)).expect("settlement decided");
        assert_eq!(then.applied, Ok(()), "setup: a store would refuse this change");
    };
    match state {
        NoHold | HeldLive => (g, T0),
        HeldLapsed => (g, lapsed),
        Paid => {
            settle(&mut g, &paid("r1"));
            (g, T0)
        }
        Freed => {
            settle(&mut g, &PaymentResult::failed(gig(), ann(), r("r1")));
            (g, T0)
        }
        Swept => {
            let key = RecordKey::Booking(r("r1"));
            let expired = g.when(|v| decide_expiry(v, &key, lapsed)).expect("expiry decided");
            assert_eq!(expired.event_types(), ["hold_expired"], "setup: the sweep expires the lapsed hold");
            (g, lapsed)
        }
    }
}

fn result(of: Arrives) -> PaymentResult {
    match of {
        PaidR => paid("r1"),
        PaidOther => paid("r9"),
        FailedR => PaymentResult::failed(gig(), ann(), r("r1")),
        FailedOther => PaymentResult::failed(gig(), ann(), r("r9")),
    }
}

/// The one function every row runs through: given the state, when the result, then the
/// cell's answer, the events that answer implies and no others that matter, and a change a
/// store would apply.
fn run_row(state: State, of: Arrives, expect: Expect) -> Result<(), String> {
    let (mut g, at) = given(state);
    let res = result(of);
    let then = g.when(|v| decide_settlement(v, &res, at)).map_err(|e| e.to_string())?;
    let got = match &then.answer {
        Settlement::Confirmed { replayed } => Confirmed { replayed: *replayed },
        Settlement::Released => Released,
        Settlement::Noop => Noop,
        Settlement::PaidButNoHold { refund, .. } => Refund(refund.reason),
        other => return Err(format!("answered {other:?}")),
    };
    if got != expect {
        return Err(format!("answered {got:?}, the table says {expect:?}"));
    }
    let events = then.event_types();
    let has = |t: &str| events.contains(&t);
    let want = |t: &str, yes: bool| if has(t) == yes { Ok(()) } else { Err(format!("events {events:?}: {t} {yes}")) };
    want("hold_confirmed", expect == Confirmed { replayed: false })?;
    want("hold_released", expect == Released)?;
    want("refund_required", matches!(expect, Refund(_)))?;
    then.applied.map_err(|e| format!("a store would refuse the change: {e}"))
}

#[test]
fn every_cell_of_the_settlement_truth_table_decides_as_the_table_says() {
    assert_eq!(TABLE.len(), 24, "six states by four results");
    let failures: Vec<String> = TABLE
        .iter()
        .filter_map(|(s, r, e)| run_row(*s, *r, *e).err().map(|why| format!("{s:?} x {r:?}: {why}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The seam keeps the state a decision leaves: after one hold of one seat at a two-seat
/// occurrence, a request for two is `Full` and writes nothing.
#[test]
fn the_seam_keeps_what_each_decision_wrote() {
    let (mut g, _) = given(HeldLive);
    let before = g.current().cloned();
    let second = HoldRequest::new(
        gig(),
        ActorId::new("bob").expect("actor"),
        r("b1"),
        Money::parse("40.00", "EUR").expect("money"),
    )
    .with_quantity(2);
    let full = g.try_when(|v| decide_request(v, &second, T0)).expect("decided");
    assert!(matches!(full.answer, RequestOutcome::Full { .. }), "one of two seats held: {:?}", full.answer);
    assert!(full.change.is_none() && g.current().cloned() == before, "a Full answer writes nothing");
}

/// The waiting list's claim on freed seats is one rule, applied after every decision (by
/// the engine's step, and by the seam alike): `decide_unblock` never mentions the list, yet
/// the seats it frees go to the one waiting, in the same change, with their event.
#[test]
fn a_seat_freeing_decision_serves_the_waiting_list_without_mentioning_it() {
    use seathold::catalogue::{BlockOutcome, decide_block, decide_unblock};
    use seathold::contract::BlockName;
    use seathold::waitlist::decide_join;

    let config = OccurrenceConfig::new(2, TTL as u64).expect("config").with_offer_ttl_secs(300).expect("ttl");
    let mut g = Given::occurrence(gig(), config).at(T0);
    let desk = BlockName::new("desk").expect("block");
    let blocked = g.try_when(|v| decide_block(v, &desk, 2, None, T0)).expect("blocked");
    assert_eq!(blocked.answer, BlockOutcome::Blocked);
    let joined = g.try_when(|v| decide_join(v, &ann(), None, 2, T0)).expect("joined");
    assert!(!joined.answer.offered, "nothing free yet: {:?}", joined.answer);

    let freed = g.try_when(|v| decide_unblock(v, &desk, T0)).expect("unblocked");
    assert_eq!(freed.answer, BlockOutcome::Unblocked);
    assert_eq!(freed.applied, Ok(()));
    assert_eq!(freed.event_types(), ["waitlist_offered"], "the freed seats went to the one waiting");
    let counters = g.current().expect("occurrence").counters.get(&seathold::catalogue::Dim::Total);
    assert_eq!((counters.blocked, counters.offered), (0, 2), "{counters:?}");
    assert!(g.record(&RecordKey::Waitlist).is_some(), "the waiting list was written");
}

/// An operation, the unit the engine runs, decides on a `Given` as through the engine: the
/// same answer, the same events, the same seats (and an operation key replays its first
/// answer there too). The engine here is only the yardstick.
#[test]
fn an_operation_decides_on_given_records_as_it_does_through_the_engine() {
    use seathold::catalogue::{BlockCount, Configure};
    use seathold::contract::{BlockName, OpKey};
    use seathold::opkeys::{Keyed, Replayed};
    use seathold::{Engine, ManualClock, MemoryStore};

    let config = OccurrenceConfig::new(3, TTL as u64).expect("config");
    let engine = Engine::with_clock(MemoryStore::new(), ManualClock::new(T0));
    let mut g = Given::nothing(gig());

    let open = Configure { occ_key: &gig(), config: &config, create_only: true };
    assert!(g.run(&open, T0).expect("opened on the given").answer);
    engine.run(&open).expect("opened on the engine");
    let again = g.run(&open, T0).expect_err("created twice");
    assert!(matches!(again, seathold::given::WhenError::Refused(seathold::OpenRefusal::Exists)), "{again:?}");

    let req = HoldRequest::new(gig(), ann(), r("r1"), Money::parse("20.00", "EUR").expect("money"));
    let placed = g.run(&seathold::holds::Request(&req), T0).expect("request decided");
    let through = engine.run(&seathold::holds::Request(&req)).expect("request on the engine");
    assert_eq!(placed.answer, through);
    assert_eq!(placed.event_types(), ["hold_placed"]);

    let press = BlockName::new("press").expect("block");
    let key = OpKey::new("desk-1").expect("op key");
    let block = BlockCount { occ_key: &gig(), block: &press, seats: 2, tier: None };
    let first = g.run(&Keyed { op: &block, op_key: &key }, T0).expect("keyed block");
    let retry = g.run(&Keyed { op: &block, op_key: &key }, T0).expect("keyed retry");
    assert_eq!(retry.answer, Replayed { answer: first.answer.answer.clone(), replayed: true });
    assert!(retry.change.is_none(), "a replay writes nothing");
    let engine_first = engine.with_op_key(&key).run(&block).expect("keyed block on the engine");
    assert_eq!(engine_first, first.answer);

    let occ = g.current().expect("occurrence");
    let on_engine = engine.occurrence(&gig()).expect("occurrence on the engine");
    assert_eq!(occ.counters, on_engine.counters, "the same seats held and blocked");

    let other = OccKey::new("other").expect("occ");
    let elsewhere = Configure { occ_key: &other, config: &config, create_only: true };
    assert!(matches!(g.run(&elsewhere, T0), Err(seathold::given::WhenError::OtherOccurrence(k)) if k == other));
}
