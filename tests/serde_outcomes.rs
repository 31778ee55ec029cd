//! Stable serde for every value that crosses a service boundary: outcomes, availability,
//! refunds, money, tickets, the ledger. Frozen by snapshots (a change is a new version), and
//! each reads back what it wrote.

use std::sync::Arc;

use seathold::catalogue::{Line, OccurrenceConfig, Pool, Tier};
use seathold::contract::{ActorId, Money, OccKey, PaymentResult, PoolName, ProviderRef, Ref, TierName};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::tickets::{CheckIn, TicketKey};
use seathold::{Engine, ManualClock, MemoryStore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::macros::datetime;

fn id<T: TryFrom<&'static str>>(s: &'static str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).expect("id")
}

fn eur(a: &str) -> Money {
    Money::parse(a, "EUR").expect("money")
}

/// Serialize, snapshot, and check it reads back to the same value.
fn frozen<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, v: &T) {
    let json = serde_json::to_string(v).expect("serialize");
    insta::assert_snapshot!(name, json);
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
    assert_eq!(&back, v, "{name} reads back");
}

#[test]
fn outcomes_serialize_stably_and_read_back() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 19:00 UTC)));
    let engine = Engine::with_clock(MemoryStore::new(), clock.clone())
        .with_ticket_key(TicketKey::new(vec![5u8; 32]).expect("key"));
    let show: OccKey = id("show");
    let config = OccurrenceConfig::new(4, 600)
        .expect("config")
        .with_tiers(vec![
            Tier::new(id::<TierName>("adult"), eur("30.00")).with_pools(vec![id::<PoolName>("front")]),
            Tier::new(id::<TierName>("crew"), eur("0")),
        ])
        .with_pools(vec![Pool { pool: id("front"), capacity: 2 }])
        .with_tickets(true);
    engine.open(&show, config).expect("open");
    let lines = |t: &'static str, q| vec![Line { tier: id(t), quantity: q }];
    let req = |who: &'static str, r: &'static str, l| HoldRequest::lines(show.clone(), id(who), id(r), l);

    let placed = engine.request(&req("ann", "a1", lines("adult", 2))).expect("request");
    frozen("request_awaiting_payment", &placed);
    frozen("request_already", &engine.request(&req("ann", "a2", lines("adult", 1))).expect("request"));
    frozen("request_full", &engine.request(&req("bob", "b1", lines("adult", 1))).expect("request"));
    frozen(
        "request_price_changed",
        &engine.request(&req("cat", "c1", lines("crew", 1)).expecting(eur("5.00"))).expect("request"),
    );
    frozen("request_confirmed_free", &engine.request(&req("cat", "c2", lines("crew", 1))).expect("request"));
    frozen("availability_tiers", &engine.availability(&show).expect("availability"));

    let paid = PaymentResult::paid(show.clone(), id("ann"), id("a1")).with_provider_ref(id::<ProviderRef>("pi_1"));
    frozen("settle_confirmed", &engine.settle(&paid).expect("settle"));
    frozen("settle_confirmed_replay", &engine.settle(&paid).expect("settle"));
    let late =
        PaymentResult::paid(show.clone(), id("zed"), id("z1")).with_money(eur("9.99").amount, eur("9.99").currency);
    let refund = engine.settle(&late).expect("settle");
    frozen("settle_paid_but_no_hold", &refund);
    if let Settlement::PaidButNoHold { refund, .. } = &refund {
        frozen("refund", refund);
    }
    frozen("settle_noop", &engine.settle(&PaymentResult::failed(show.clone(), id("ann"), id("a1"))).expect("settle"));

    let tickets = engine.tickets(&show, &id::<Ref>("a1")).expect("tickets");
    assert_eq!(tickets.len(), 2);
    insta::assert_snapshot!("ticket", serde_json::to_string(&tickets[0]).expect("ticket"));
    frozen("check_in_admitted", &engine.check_in(&show, &tickets[0].credential).expect("scan"));
    clock.advance(time::Duration::seconds(1));
    frozen("check_in_already", &engine.check_in(&show, &tickets[0].credential).expect("scan"));
    frozen("check_in_wrong_occurrence", &engine.check_in(&id("other-show"), &tickets[0].credential).expect("scan"));
    frozen("check_in_invalid", &CheckIn::Invalid);
    frozen("cancel_checked_in", &engine.cancel(&show, &id("a1"), None).expect("cancel"));
    frozen("cancel_cancelled", &engine.cancel(&show, &id("a1"), Some(&[1])).expect("cancel"));
    frozen("cancel_noop", &engine.cancel(&show, &id("a1"), Some(&[1])).expect("cancel"));
    frozen("ledger", &serde_json::to_value(engine.ledger(&show).expect("ledger")).expect("ledger"));
    frozen(
        "waitlist_joined",
        &engine.join_waitlist(&show, &id::<ActorId>("dan"), Some(&id("adult")), 1).expect("join"),
    );
    frozen("money", &eur("25.00"));
    frozen("limit", &RequestOutcome::LimitReached { max_per_actor: 4 });
}

/// The occurrence as a store keeps it (configuration, config version, counters): a store
/// written outside the crate may keep this JSON as a document, so it is frozen too.
#[test]
fn the_stored_occurrence_serializes_stably_and_reads_back() {
    let engine = Engine::new(MemoryStore::new());
    let occ: OccKey = id("gig");
    let config = OccurrenceConfig::new(100, 600)
        .expect("config")
        .with_tiers(vec![Tier::new(id("std"), eur("20.00")).with_capacity(60).with_pools(vec![id("floor")])])
        .with_pools(vec![Pool { pool: id("floor"), capacity: 80 }]);
    engine.open(&occ, config).expect("open");
    let req = HoldRequest::lines(occ.clone(), id("ann"), id("r1"), vec![Line { tier: id("std"), quantity: 2 }])
        .expecting(eur("40.00"));
    assert!(matches!(engine.request(&req).expect("request"), RequestOutcome::AwaitingPayment { .. }));
    frozen("stored_occurrence", &engine.occurrence(&occ).expect("occurrence"));
}
