//! Catalogue and orders (Part 2; `seathold::catalogue`, `seathold::holds`; issue "Catalogue and
//! orders"): tiers, caps and pools, multi-line orders, server-side prices, free orders,
//! per-actor limits and repeat purchases, price changes and locks, blocks, reconfiguration,
//! metadata, refund signals with their money, baskets across occurrences (with a crash
//! between parts), bad input, and races over overlapping pools.
//!
//! Every generic body runs on MemoryStore and, with `SEATHOLD_PG_URL` (feature `postgres`),
//! on PostgreSQL (`on_both_stores!`). The fault-injection and thread-race tests run on
//! memory; the two-process race runs on PostgreSQL (`examples/postgres_tiered_worker.rs`).

use crate::part2_support;
#[cfg(feature = "postgres")]
use crate::postgres_support;
#[cfg(feature = "postgres")]
use crate::tiered;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use part2_support::*;
use seathold::catalogue::{
    BlockOutcome, BlockRefusal, ConfigError, Dim, LatePayment, OccurrenceConfig, PricingError, SetPriceError, Tier,
};
use seathold::contract::{
    Amount, CheckoutLine, EventKind, MAX_LINES, MAX_METADATA_BYTES, MAX_QUANTITY, Metadata, Money, MoneyError,
    NoHoldReason, OutboxEvent, ParseError,
};
use seathold::holds::{HoldRequest, HoldState, RequestOutcome, RequestRefusal};
use seathold::records::Usage;
use seathold::settlement::{Refund, Settlement};
use seathold::store::{AsyncStore, Record};
use seathold::{Basket, MemoryStore, OpError, OpenRefusal, PriceRefusal};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Configurations

/// capacity 10; pools floor 6, front 2; adult 30 [floor]; child 15, cap 3 [floor];
/// vip 80 [front]; crew free [front].
fn show() -> OccurrenceConfig {
    cfg(10, 600)
        .with_tiers(vec![
            tier("adult", "30.00").with_pools(vec![p("floor")]),
            tier("child", "15.00").with_capacity(3).with_pools(vec![p("floor")]),
            tier("vip", "80.00").with_pools(vec![p("front")]),
            tier("crew", "0").with_pools(vec![p("front")]),
        ])
        .with_pools(vec![pool("floor", 6), pool("front", 2)])
}

/// One tier `std` at `price`, on `capacity` seats.
fn std_tier(capacity: u32, ttl: u64, price: &str) -> OccurrenceConfig {
    cfg(capacity, ttl).with_tiers(vec![tier("std", price)])
}

fn tiers(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

/// `Full` on `tier`'s line, `short` (a dimension's key) being the capacity that was short.
fn full(capacity: u32, tier: &str, short: &str) -> RequestOutcome {
    RequestOutcome::Full { capacity, tier: Some(t(tier)), short: Dim::from_key(short).unwrap() }
}

/// `res` is refused with exactly `want`.
fn refused<T: Debug, R: Debug + PartialEq>(res: Result<T, OpError<R>>, want: R) {
    match res {
        Err(OpError::Refused(got)) => assert_eq!(got, want),
        other => panic!("expected the refusal {want:?}, got {other:?}"),
    }
}

fn usage(held: u64, confirmed: u64) -> Usage {
    Usage { held, confirmed, ..Usage::default() }
}

// ---------------------------------------------------------------------------------------
// Tiers, caps and pools

/// Availability per tier is the minimum over the capacity, the tier's cap and every pool it
/// names; a seat counts against all of them; lapsed holds count nowhere.
async fn availability_per_tier_is_the_minimum_over_its_dimensions<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 6), ("child", 3), ("crew", 2), ("vip", 2)]));

    assert_eq!(h.hold(&order("show", "ann", "a1", &[("adult", 2), ("child", 2)])).await, eur("90.00"));
    // adult: min(total 6, floor 2); child: min(6, own cap 1, floor 2); vip/crew: front 2.
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 2), ("child", 1), ("crew", 2), ("vip", 2)]));

    assert_eq!(h.hold(&order("show", "bob", "b1", &[("vip", 2)])).await, eur("160.00"));
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 2), ("child", 1), ("crew", 0), ("vip", 0)]));
    let av = h.avail("show").await;
    assert_eq!((av.capacity, av.held, av.confirmed, av.available), (10, 6, 0, 4));
    assert_eq!((av.tiers[&t("adult")].held, av.tiers[&t("child")].held, av.tiers[&t("vip")].held), (2, 2, 2));

    let c = h.counters("show").await;
    assert_eq!(c[&Dim::Total], usage(6, 0));
    assert_eq!(c[&Dim::Tier(t("adult"))], usage(2, 0));
    assert_eq!(c[&Dim::Tier(t("child"))], usage(2, 0));
    assert_eq!(c[&Dim::Tier(t("vip"))], usage(2, 0));
    assert_eq!(c[&Dim::Tier(t("crew"))], usage(0, 0));
    assert_eq!(c[&Dim::Pool(p("floor"))], usage(4, 0));
    assert_eq!(c[&Dim::Pool(p("front"))], usage(2, 0));
    h.check_dims("show").await;

    // Paying moves the seats from held to sold on every dimension.
    h.pay("show", "ann", "a1").await;
    let c = h.counters("show").await;
    assert_eq!(c[&Dim::Pool(p("floor"))], usage(0, 4));
    assert_eq!(c[&Dim::Tier(t("child"))], usage(0, 2));
    assert_eq!(c[&Dim::Total], usage(2, 4));
    h.check_dims("show").await;

    // Bob's hold lapses: his seats show nowhere, per tier too, with no sweep run.
    h.advance(600);
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 2), ("child", 1), ("crew", 2), ("vip", 2)]));
    let av = h.avail("show").await;
    assert_eq!((av.held, av.confirmed, av.available), (0, 4, 6));
    // ... and never block: a new vip order takes them (expiring bob's hold in its commit).
    assert_eq!(h.hold(&order("show", "cat", "c1", &[("vip", 2)])).await, eur("160.00"));
    h.check_dims("show").await;
}

/// All lines or none; `Full` names the first line (in order) that does not fit, given the
/// lines before it; a refused order changes nothing and leaves its ref unused.
async fn multi_line_orders_are_all_or_nothing<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    h.hold(&order("show", "ann", "a1", &[("adult", 2), ("child", 2)])).await;
    let before = h.fingerprint().await;

    // (lines, the tier named, the capacity that was short and its key)
    type Case = (&'static [(&'static str, u32)], &'static str, u32, &'static str);
    let cases: [Case; 5] = [
        (&[("adult", 1), ("child", 2)], "child", 3, "tier:child"), // child's own cap (2 + 2 > 3)
        (&[("child", 1), ("adult", 2)], "adult", 6, "pool:floor"), // floor after the child line (5 + 2 > 6)
        (&[("adult", 2), ("child", 1)], "child", 6, "pool:floor"), // floor: the adults fit, the child does not
        (&[("vip", 1), ("crew", 1), ("adult", 3)], "adult", 6, "pool:floor"), // the third does not fit
        (&[("vip", 3)], "vip", 2, "pool:front"),                   // front (3 > 2)
    ];
    for (lines, tier, capacity, short) in cases {
        assert_eq!(h.request(&order("show", "cat", "c1", lines)).await, full(capacity, tier, short), "{lines:?}");
    }
    assert_eq!(h.fingerprint().await, before, "a refused order changes nothing");
    assert!(h.e.booking(&k("show"), &r("c1")).await.unwrap().is_none());

    // The ref was not used: the same ref with an order that fits is placed.
    assert_eq!(h.hold(&order("show", "cat", "c1", &[("child", 1), ("adult", 1), ("vip", 2)])).await, eur("205.00"));
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 0), ("child", 0), ("crew", 0), ("vip", 0)]));
    assert_eq!(h.avail("show").await.available, 2);

    // The total capacity binds too.
    h.open("small", cfg(3, 600).with_tiers(vec![tier("x", "1.00"), tier("y", "2.00")])).await;
    assert_eq!(h.request(&order("small", "ann", "s1", &[("x", 2), ("y", 2)])).await, full(3, "y", "total"));
    assert_eq!(h.hold(&order("small", "ann", "s1", &[("x", 2), ("y", 1)])).await, eur("4.00"));
    h.check_dims("show").await;
    h.check_dims("small").await;
}

/// The amount is computed by the library from the tier prices; a request carrying the
/// amount the buyer saw is checked (as decimals) and a different one answers
/// `PriceChanged { amount }` and changes nothing; `PriceChanged` comes before `Full`.
async fn prices_are_server_side<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    let req = order("show", "ann", "a1", &[("adult", 2), ("child", 1)]);
    let RequestOutcome::AwaitingPayment { checkout, replayed: false, .. } = h.request(&req).await else { panic!() };
    assert_eq!(checkout.price(), eur("75.00"));
    assert_eq!(checkout.quantity, 3);
    assert_eq!(
        checkout.lines,
        vec![
            CheckoutLine { tier: t("adult"), quantity: 2, unit_price: amt("30.00") },
            CheckoutLine { tier: t("child"), quantity: 1, unit_price: amt("15.00") },
        ]
        .into()
    );
    assert_eq!(h.booking("show", "a1").await.price, eur("75.00"));
    // The same request again is its replay.
    assert_eq!(
        h.request(&req).await,
        RequestOutcome::AwaitingPayment { checkout: checkout.clone(), replayed: true, seat_ids: Vec::new() }
    );
    // The same ref with another order is refused.
    refused(h.e.request(&order("show", "ann", "a1", &[("adult", 1)])).await, RequestRefusal::RequestChanged);

    let before = h.fingerprint().await;
    let shown = |m: Money| order("show", "bob", "b1", &[("adult", 1)]).expecting(m);
    assert_eq!(h.request(&shown(eur("25.00"))).await, RequestOutcome::PriceChanged { price: eur("30.00") });
    assert_eq!(h.request(&shown(usd("30.00"))).await, RequestOutcome::PriceChanged { price: eur("30.00") });
    // PriceChanged before Full: 3 vip do not fit, but the buyer must first see the price.
    let vip3 = order("show", "bob", "b1", &[("vip", 3)]).expecting(eur("1.00"));
    assert_eq!(h.request(&vip3).await, RequestOutcome::PriceChanged { price: eur("240.00") });
    assert_eq!(h.fingerprint().await, before, "PriceChanged changes nothing");

    // Compared as decimals.
    assert_eq!(h.hold(&shown(Money::parse("30.0", "EUR").unwrap())).await, eur("30.00"));
    // A plain occurrence takes the caller's price.
    h.open("plain", cfg(5, 600)).await;
    assert_eq!(h.hold(&plain("plain", "ann", "p1", "12.34", 2)).await, eur("12.34"));
}

/// An order of free tiers only confirms at once (events `hold_placed` + `hold_confirmed`,
/// no checkout), and obeys every capacity and the per-actor limit.
async fn free_orders_confirm_at_once<S: AsyncStore>(h: H<S>) {
    h.open("show", show().with_max_per_actor(2)).await;
    h.drain().await;
    let req = order("show", "cat", "c1", &[("crew", 1)]);
    assert_eq!(
        h.request(&req).await,
        RequestOutcome::Confirmed { hold_ref: r("c1"), replayed: false, seat_ids: Vec::new() }
    );
    let events = h.drain().await;
    let types: Vec<&str> = events.iter().map(|e| e.event.kind.type_str()).collect();
    assert_eq!(types, ["hold_placed", "hold_confirmed"]);
    assert!(events.iter().all(|e| e.event.hold_ref == Some(r("c1"))));
    let EventKind::HoldPlaced { price, quantity: 1, .. } = &events[0].event.kind else { panic!("{events:?}") };
    assert!(price.amount.is_zero());
    assert_eq!(h.booking("show", "c1").await.state, HoldState::Confirmed);
    let av = h.avail("show").await;
    assert_eq!((av.held, av.confirmed), (0, 1));

    // Its repeat is a replay and writes nothing.
    let before = h.fingerprint().await;
    assert_eq!(
        h.request(&req).await,
        RequestOutcome::Confirmed { hold_ref: r("c1"), replayed: true, seat_ids: Vec::new() }
    );
    assert_eq!(h.fingerprint().await, before);
    // Money sent for a free booking goes back (documented: `already_paid`).
    let Settlement::PaidButNoHold { refund, .. } =
        h.settle(&paid("show", "cat", "c1").with_money(amt("5.00"), cur("EUR"))).await
    else {
        panic!("a payment for a free booking is refunded")
    };
    assert_eq!((refund.reason, refund.amount), (NoHoldReason::AlreadyPaid, Some(amt("5.00"))));
    assert_eq!(h.booking("show", "c1").await.state, HoldState::Confirmed);

    // The per-actor limit: 1 + 2 > 2.
    let over = order("show", "cat", "c2", &[("crew", 2)]);
    assert_eq!(h.request(&over).await, RequestOutcome::LimitReached { max_per_actor: 2 });
    // Capacity: one seat left in front.
    assert_eq!(h.request(&order("show", "dan", "d1", &[("crew", 2)])).await, full(2, "crew", "pool:front"));
    assert_eq!(
        h.request(&order("show", "dan", "d1", &[("crew", 1)])).await,
        RequestOutcome::Confirmed { hold_ref: r("d1"), replayed: false, seat_ids: Vec::new() }
    );
    assert_eq!(h.request(&order("show", "eve", "e1", &[("crew", 1)])).await, full(2, "crew", "pool:front"));
    assert_eq!(h.request(&order("show", "eve", "e1", &[("vip", 1)])).await, full(2, "vip", "pool:front"));
    assert_eq!(h.avail("show").await.tiers[&t("crew")].confirmed, 2);

    // A free line beside a paid one: a paid order, for the paid part.
    h.open("mixed", cfg(5, 600).with_tiers(vec![tier("adult", "30.00"), tier("crew", "0.00")])).await;
    assert_eq!(h.hold(&order("mixed", "ann", "m1", &[("adult", 1), ("crew", 2)])).await, eur("30.00"));
    h.check_dims("show").await;
    h.check_dims("mixed").await;
}

/// With `max_per_actor` an actor buys again under new refs up to the limit (only a live hold
/// answers `Already`); over it, `LimitReached`, which comes before `Full`. Without it, Part 1's
/// one booking per actor stands.
async fn max_per_actor_allows_repeat_purchases_up_to_the_limit<S: AsyncStore>(h: H<S>) {
    h.open("gig", std_tier(20, 600, "10.00").with_max_per_actor(4)).await;
    assert_eq!(h.hold(&order("gig", "ann", "r1", &[("std", 2)])).await, eur("20.00"));
    let RequestOutcome::Already { hold_ref, confirmed: false, checkout: Some(c) } =
        h.request(&order("gig", "ann", "r2", &[("std", 1)])).await
    else {
        panic!("a live hold answers Already")
    };
    assert_eq!((hold_ref.as_str(), c.hold_ref.as_str()), ("r1", "r1"));
    h.pay("gig", "ann", "r1").await;

    let before = h.fingerprint().await;
    let limit = RequestOutcome::LimitReached { max_per_actor: 4 };
    assert_eq!(h.request(&order("gig", "ann", "r2", &[("std", 3)])).await, limit);
    assert_eq!(h.fingerprint().await, before, "LimitReached changes nothing");
    h.buy(&order("gig", "ann", "r2", &[("std", 2)])).await;
    assert_eq!(h.request(&order("gig", "ann", "r3", &[("std", 1)])).await, limit);
    let mine = h.e.bookings_of(&k("gig"), &a("ann")).await.unwrap();
    let mine: Vec<(&str, HoldState, u32)> = mine.iter().map(|b| (b.hold_ref.as_str(), b.state, b.quantity)).collect();
    assert_eq!(mine, [("r1", HoldState::Confirmed, 2), ("r2", HoldState::Confirmed, 2)]);
    // The limit is per actor.
    h.buy(&order("gig", "bob", "b1", &[("std", 4)])).await;
    assert_eq!(h.avail("gig").await.confirmed, 8);

    // A lapsed hold counts for nothing: ann's limit is reached by what she owns only.
    h.open("gig2", std_tier(20, 60, "10.00").with_max_per_actor(3)).await;
    h.buy(&order("gig2", "ann", "x1", &[("std", 2)])).await;
    h.hold(&order("gig2", "ann", "x2", &[("std", 1)])).await;
    h.advance(60);
    h.hold(&order("gig2", "ann", "x3", &[("std", 1)])).await;

    // LimitReached before Full.
    h.open("tight", std_tier(2, 600, "10.00").with_max_per_actor(2)).await;
    assert_eq!(
        h.request(&order("tight", "ann", "t1", &[("std", 3)])).await,
        RequestOutcome::LimitReached { max_per_actor: 2 }
    );

    // Without max_per_actor: one booking per actor (Part 1).
    h.open("one", std_tier(20, 600, "10.00")).await;
    h.buy(&order("one", "ann", "o1", &[("std", 1)])).await;
    assert_eq!(
        h.request(&order("one", "ann", "o2", &[("std", 1)])).await,
        RequestOutcome::Already { hold_ref: r("o1"), confirmed: true, checkout: None }
    );
    for occ in ["gig", "gig2", "tight", "one"] {
        h.check_dims(occ).await;
    }
}

/// With repeat purchases, a result names its booking by (occ_key, ref): a stale result for
/// an earlier booking never touches the live one, a late payment for a released booking is
/// refunded with that booking's amount, a ref naming another actor's booking is `no_hold`.
async fn settlement_locates_the_booking_by_ref<S: AsyncStore>(h: H<S>) {
    h.open("gig", std_tier(20, 600, "10.00").with_max_per_actor(6)).await;
    h.buy(&order("gig", "ann", "r1", &[("std", 1)])).await;
    h.hold(&order("gig", "ann", "r2", &[("std", 2)])).await;

    assert_eq!(h.settle(&failed("gig", "ann", "r1")).await, Settlement::Noop, "a failure for a paid booking");
    assert_eq!(h.booking("gig", "r2").await.state, HoldState::Held, "the live booking is untouched");
    assert_eq!(h.settle(&paid("gig", "ann", "r1")).await, Settlement::Confirmed { replayed: true });
    let money = |s: &str| paid("gig", "ann", "r2").with_money(amt(s), cur("EUR"));
    assert_eq!(h.settle(&money("20.00")).await, Settlement::Confirmed { replayed: false });

    h.hold(&order("gig", "ann", "r3", &[("std", 1)])).await;
    assert_eq!(h.settle(&failed("gig", "ann", "r3")).await, Settlement::Released);
    h.hold(&order("gig", "ann", "r4", &[("std", 3)])).await;
    let Settlement::PaidButNoHold { refund, replayed: false } = h.settle(&paid("gig", "ann", "r3")).await else {
        panic!("a late payment for a released booking is refunded")
    };
    assert_eq!(
        (refund.reason, refund.amount, refund.currency),
        (NoHoldReason::Released, Some(amt("10.00")), Some(cur("EUR"))),
        "refunded with r3's amount, not the live booking's"
    );
    assert_eq!(h.booking("gig", "r4").await.state, HoldState::Held);

    // Bob pays under ann's ref: no_hold, ann's booking untouched.
    let stray = paid("gig", "bob", "r4").with_money(amt("30.00"), cur("EUR"));
    let Settlement::PaidButNoHold { refund, .. } = h.settle(&stray).await else { panic!() };
    assert_eq!((refund.reason, refund.amount), (NoHoldReason::NoHold, Some(amt("30.00"))));
    assert_eq!(h.booking("gig", "r4").await.state, HoldState::Held);
    h.pay("gig", "ann", "r4").await;
    // A ref naming no booking at all; without money in the result there is no amount to
    // know (documented: the result's amount, else the named booking's, else none).
    let Settlement::PaidButNoHold { refund, .. } = h.settle(&paid("gig", "ann", "r9")).await else { panic!() };
    assert_eq!((refund.reason, refund.amount, refund.currency), (NoHoldReason::NoHold, None, None));
    assert_eq!(h.avail("gig").await.confirmed, 6);
    h.check_dims("gig").await;
}

// ---------------------------------------------------------------------------------------
// Price changes, blocks, reconfiguration

/// `set_price` never changes an existing hold's amount; a tier with `lock_price_while_held`
/// refuses a change (`Locked`, nothing changed) only while a *live* hold has seats of it.
async fn set_price_keeps_holds_and_locks_only_while_live<S: AsyncStore>(h: H<S>) {
    let config = cfg(10, 600).with_tiers(vec![tier("std", "10.00"), tier("seat", "50.00").locking_price_while_held()]);
    h.open("resale", config).await;
    let ann = order("resale", "ann", "s1", &[("std", 2)]);
    assert_eq!(h.hold(&ann).await, eur("20.00"));
    h.e.set_price(&k("resale"), &t("std"), eur("12.00")).await.unwrap();
    assert_eq!(h.booking("resale", "s1").await.price, eur("20.00"));
    let RequestOutcome::AwaitingPayment { checkout, replayed: true, .. } = h.request(&ann).await else { panic!() };
    assert_eq!(checkout.price(), eur("20.00"), "the replayed checkout keeps the hold's amount");
    assert_eq!(h.hold(&order("resale", "bob", "s2", &[("std", 1)])).await, eur("12.00"));
    let pay20 = paid("resale", "ann", "s1").with_money(amt("20.00"), cur("EUR"));
    assert_eq!(h.settle(&pay20).await, Settlement::Confirmed { replayed: false });

    // Nobody holds `seat`: its price may change.
    h.e.set_price(&k("resale"), &t("seat"), eur("55.00")).await.unwrap();
    assert_eq!(h.hold(&order("resale", "cat", "s3", &[("seat", 1)])).await, eur("55.00"));
    let before = h.fingerprint().await;
    refused(
        h.e.set_price(&k("resale"), &t("seat"), eur("60.00")).await,
        PriceRefusal::Price(SetPriceError::Locked(t("seat"))),
    );
    assert_eq!(h.fingerprint().await, before, "Locked changes nothing");
    // The lock is per tier.
    h.e.set_price(&k("resale"), &t("std"), eur("13.00")).await.unwrap();
    // Cat's hold lapses (no sweep): only a live hold locks.
    h.advance(600);
    h.e.set_price(&k("resale"), &t("seat"), eur("60.00")).await.unwrap();
    // A confirmed booking does not lock either.
    h.buy(&order("resale", "dan", "s4", &[("seat", 1)])).await;
    h.e.set_price(&k("resale"), &t("seat"), eur("65.00")).await.unwrap();
    assert_eq!(h.booking("resale", "s4").await.price, eur("60.00"));

    refused(
        h.e.set_price(&k("resale"), &t("nope"), eur("1.00")).await,
        PriceRefusal::Price(SetPriceError::UnknownTier(t("nope"))),
    );
    refused(h.e.set_price(&k("nowhere"), &t("seat"), eur("1.00")).await, PriceRefusal::UnknownOccurrence);
    h.check_dims("resale").await;
}

/// Blocks count like sold seats on every dimension they touch and never expire; the same
/// block again is a no-op; a block that does not fit is `Full` and changes nothing.
async fn blocks_take_seats_out_of_sale<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    let blk = |name: &str, seats: u32, tier: Option<&str>| {
        let tier = tier.map(t);
        let name = b(name);
        let e = &h.e;
        async move { e.block(&k("show"), &name, seats, tier.as_ref()).await }
    };
    assert_eq!(blk("press", 5, None).await.unwrap(), BlockOutcome::Blocked);
    let av = h.avail("show").await;
    assert_eq!((av.blocked, av.available), (5, 5));
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 5), ("child", 3), ("crew", 2), ("vip", 2)]));

    assert_eq!(blk("vipbox", 2, Some("vip")).await.unwrap(), BlockOutcome::Blocked);
    assert_eq!(h.tiers_avail("show").await, tiers(&[("adult", 3), ("child", 3), ("crew", 0), ("vip", 0)]));
    let c = h.counters("show").await;
    assert_eq!((c[&Dim::Total].blocked, c[&Dim::Tier(t("vip"))].blocked, c[&Dim::Pool(p("front"))].blocked), (7, 2, 2));

    let before = h.fingerprint().await;
    assert_eq!(blk("vipbox", 2, Some("vip")).await.unwrap(), BlockOutcome::Blocked, "the same block again");
    assert_eq!(h.fingerprint().await, before);
    refused(blk("vipbox", 1, Some("vip")).await, BlockRefusal::Exists(b("vipbox")));
    refused(blk("vipbox", 2, None).await, BlockRefusal::Exists(b("vipbox")));
    assert_eq!(blk("more", 4, None).await.unwrap(), BlockOutcome::Full);
    assert_eq!(h.fingerprint().await, before, "refused blocks change nothing");

    assert_eq!(h.request(&order("show", "ann", "a1", &[("adult", 4)])).await, full(10, "adult", "total"));
    h.hold(&order("show", "ann", "a1", &[("adult", 3)])).await;

    // Blocks never expire.
    h.advance(10 * 24 * 3600);
    assert_eq!(h.e.expire_due(usize::MAX).await.unwrap(), 1, "ann's hold, not a block");
    assert_eq!(h.avail("show").await.blocked, 7);

    assert_eq!(h.e.unblock(&k("show"), &b("press")).await.unwrap(), BlockOutcome::Unblocked);
    assert_eq!(h.avail("show").await.available, 8);
    refused(h.e.unblock(&k("show"), &b("press")).await, BlockRefusal::Unknown(b("press")));

    let before = h.fingerprint().await;
    refused(blk("x", 1, Some("nope")).await, BlockRefusal::UnknownTier(t("nope")));
    refused(blk("x", 0, None).await, BlockRefusal::BadSeats { max: MAX_QUANTITY });
    refused(blk("x", MAX_QUANTITY + 1, None).await, BlockRefusal::BadSeats { max: MAX_QUANTITY });
    refused(h.e.block(&k("nowhere"), &b("x"), 1, None).await, BlockRefusal::UnknownOccurrence);
    assert_eq!(h.fingerprint().await, before);
    h.check_dims("show").await;
}

fn show_without(tier: &str) -> OccurrenceConfig {
    let base = show();
    let kept: Vec<Tier> = base.tiers().iter().filter(|x| x.tier.as_str() != tier).cloned().collect();
    base.with_tiers(kept)
}

/// Removing a tier a live hold, a booking or a block uses (or moving it to other pools), or
/// a pool a tier still names, is a typed error and changes nothing; removing an unused tier
/// and lowering a capacity below what is sold are allowed.
async fn reconfiguration_that_would_strand_seats_is_refused<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    h.hold(&order("show", "ann", "a1", &[("vip", 1)])).await;
    let before = h.fingerprint().await;
    let vip_in_use = OpenRefusal::Config(ConfigError::TierInUse(t("vip")));
    refused(h.e.open(&k("show"), show_without("vip")).await, vip_in_use.clone());
    let moved: Vec<Tier> = show()
        .tiers()
        .iter()
        .map(|x| if x.tier == t("vip") { x.clone().with_pools(vec![]) } else { x.clone() })
        .collect();
    refused(h.e.open(&k("show"), show().with_tiers(moved)).await, vip_in_use.clone());
    refused(
        h.e.open(&k("show"), show().with_pools(vec![pool("floor", 6)])).await,
        OpenRefusal::Config(ConfigError::UnknownPool { tier: t("vip"), pool: p("front") }),
    );
    assert_eq!(h.fingerprint().await, before, "refused reconfigurations change nothing");

    // A confirmed booking holds the tier too; so does a block.
    h.pay("show", "ann", "a1").await;
    refused(h.e.open(&k("show"), show_without("vip")).await, vip_in_use);
    h.e.block(&k("show"), &b("crewbox"), 1, Some(&t("crew"))).await.unwrap();
    refused(h.e.open(&k("show"), show_without("crew")).await, OpenRefusal::Config(ConfigError::TierInUse(t("crew"))));

    // An unused tier may go; a used tier may change its price and cap.
    h.open("show", show_without("child")).await;
    assert!(!h.avail("show").await.tiers.contains_key(&t("child")));
    let repriced: Vec<Tier> =
        show_without("child")
            .tiers()
            .iter()
            .map(|x| {
                if x.tier == t("vip") {
                    Tier { price: eur("90.00"), capacity: Some(1), ..x.clone() }
                } else {
                    x.clone()
                }
            })
            .collect();
    h.open("show", show_without("child").with_tiers(repriced.clone())).await;
    assert_eq!(h.booking("show", "a1").await.price, eur("80.00"), "a booking keeps its amount");
    // Lowering the capacity below what is taken revokes nothing.
    let lowered =
        OccurrenceConfig::new(1, 600).unwrap().with_tiers(repriced.clone()).with_pools(show().pools().to_vec());
    h.open("show", lowered).await;
    let av = h.avail("show").await;
    assert_eq!((av.confirmed, av.blocked, av.available), (1, 1, 0));
    assert_eq!(h.booking("show", "a1").await.state, HoldState::Confirmed);
    // So is lowering a pool below what it counts: its tiers show nothing available.
    let front1 = OccurrenceConfig::new(10, 600)
        .unwrap()
        .with_tiers(repriced.clone())
        .with_pools(vec![pool("floor", 6), pool("front", 1)]);
    h.open("show", front1).await;
    assert_eq!((h.tier_avail("show", "vip").await, h.tier_avail("show", "crew").await), (0, 0));
    assert_eq!(h.request(&order("show", "bob", "b1", &[("crew", 1)])).await, full(1, "crew", "pool:front"));
    // The unused pool `floor` may go with the unused tier that names it.
    let no_floor: Vec<Tier> = repriced.into_iter().filter(|x| x.tier != t("adult")).collect();
    h.open("show", cfg(10, 600).with_tiers(no_floor).with_pools(vec![pool("front", 2)])).await;
    h.check_dims("show").await;
}

/// Removing a tier that a live hold or a confirmed booking uses is a typed error
/// (`seathold::catalogue::ConfigError::TierInUse`). A hold that lapsed is neither (invariant 2:
/// it blocks nothing), so removing the only tier it used is allowed — whether or not a sweep
/// has run — and what remains stays consistent.
async fn a_lapsed_hold_does_not_keep_its_tier_from_being_removed<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    h.hold(&order("show", "bob", "b1", &[("child", 1)])).await;
    h.advance(600);
    h.e.open(&k("show"), show_without("child")).await.expect("a lapsed hold does not keep its tier in use");
    h.e.expire_due(usize::MAX).await.unwrap();
    let av = h.avail("show").await;
    assert_eq!((av.held, av.available), (0, 10));
    h.check_dims("show").await;
}

// ---------------------------------------------------------------------------------------
// Metadata and refund signals

/// Metadata is a snapshot kept with the booking and carried on every event of it; it is
/// bounded by `MAX_METADATA_BYTES` of compact JSON.
async fn metadata_is_kept_with_the_booking_and_on_hold_placed<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    h.drain().await;
    let answers = json!({"answers": {"diet": "vegan", "shirt": "L"}, "source": "newsletter", "n": 3});
    let md = Metadata::from_value(&answers).unwrap();
    h.hold(&order("show", "ann", "a1", &[("adult", 1)]).with_metadata(md.clone())).await;
    assert_eq!(h.booking("show", "a1").await.metadata, Some(md.clone()));
    let events = h.drain().await;
    let placed = events.iter().find(|e| e.event.kind.type_str() == "hold_placed").unwrap();
    assert_eq!(placed.event.metadata.as_ref(), Some(&md));
    let wire: serde_json::Value = serde_json::from_str(&placed.to_json()).unwrap();
    assert_eq!(wire["metadata"], answers);
    h.pay("show", "ann", "a1").await;
    let confirmed = h.drain().await;
    assert!(
        confirmed.iter().filter(|e| e.event.hold_ref.as_ref().is_some_and(|r| r.as_str() == "a1")).all(|e| e
            .event
            .metadata
            .as_ref()
            == Some(&md)),
        "every event of the booking carries its metadata"
    );
    assert_eq!(h.e.bookings_of(&k("show"), &a("ann")).await.unwrap()[0].metadata, Some(md));

    // The bound: compact JSON of exactly MAX_METADATA_BYTES is accepted, one byte more is not.
    let of_len = |n: usize| {
        let overhead = r#"{"x":""}"#.len();
        json!({"x": "a".repeat(n - overhead)})
    };
    assert_eq!(serde_json::to_string(&of_len(MAX_METADATA_BYTES)).unwrap().len(), MAX_METADATA_BYTES);
    let big = Metadata::from_value(&of_len(MAX_METADATA_BYTES)).unwrap();
    h.hold(&order("show", "bob", "b1", &[("adult", 1)]).with_metadata(big.clone())).await;
    assert_eq!(h.booking("show", "b1").await.metadata, Some(big));
    assert_eq!(
        Metadata::from_value(&of_len(MAX_METADATA_BYTES + 1)),
        Err(ParseError::TooLarge { len: MAX_METADATA_BYTES + 1, max: MAX_METADATA_BYTES })
    );
    assert!(matches!(Metadata::from_value(&json!(["not", "an", "object"])), Err(ParseError::WrongType { .. })));
    assert!(matches!(Metadata::from_value(&json!("text")), Err(ParseError::WrongType { .. })));
}

/// Every refund signal — the answer and its `refund_required` event — carries the amount
/// and currency to refund: the booking's, or what the result says was taken.
async fn every_refund_signal_carries_amount_and_currency<S: AsyncStore>(h: H<S>) {
    h.open("t", std_tier(10, 60, "10.00")).await;
    let eur_ = Some(cur("EUR"));
    let mut signals: Vec<Refund> = Vec::new();
    let mut refund = |s: Settlement, reason: NoHoldReason, amount: &str| {
        let Settlement::PaidButNoHold { refund, replayed: false } = s else { panic!("{s:?}") };
        assert_eq!((refund.reason, refund.amount, refund.currency), (reason, Some(amt(amount)), eur_), "{refund:?}");
        signals.push(refund);
    };
    // expired
    h.hold(&order("t", "ann", "r1", &[("std", 2)])).await;
    h.advance(60);
    refund(h.settle(&paid("t", "ann", "r1")).await, NoHoldReason::Expired, "20.00");
    // released
    h.hold(&order("t", "bob", "r2", &[("std", 1)])).await;
    assert_eq!(h.settle(&failed("t", "bob", "r2")).await, Settlement::Released);
    refund(h.settle(&paid("t", "bob", "r2")).await, NoHoldReason::Released, "10.00");
    // ref_mismatch: cat's earlier attempt, while a newer one is live
    h.hold(&order("t", "cat", "r3", &[("std", 1)])).await;
    h.advance(60);
    h.hold(&order("t", "cat", "r4", &[("std", 3)])).await;
    refund(h.settle(&paid("t", "cat", "r3")).await, NoHoldReason::RefMismatch, "10.00");
    // duplicate_payment: a second charge for r4
    let first = paid("t", "cat", "r4").with_provider_ref(pr("pi_1"));
    assert_eq!(h.settle(&first).await, Settlement::Confirmed { replayed: false });
    refund(
        h.settle(&paid("t", "cat", "r4").with_provider_ref(pr("pi_2"))).await,
        NoHoldReason::DuplicatePayment,
        "30.00",
    );
    // already_paid and no_hold, with the money the result reports
    let m = |res: seathold::contract::PaymentResult, a: &str| res.with_money(amt(a), cur("EUR"));
    refund(h.settle(&m(paid("t", "cat", "r8"), "30.00")).await, NoHoldReason::AlreadyPaid, "30.00");
    refund(h.settle(&m(paid("t", "dan", "r9"), "10.00")).await, NoHoldReason::NoHold, "10.00");
    // What the result says was taken is what goes back.
    h.hold(&order("t", "eve", "r5", &[("std", 2)])).await;
    h.advance(60);
    refund(h.settle(&m(paid("t", "eve", "r5"), "25.00")).await, NoHoldReason::Expired, "25.00");

    let events = h.drain().await;
    let got = refunds(&events);
    assert_eq!(got.len(), signals.len());
    for (sig, (rf, reason, amount, currency)) in signals.iter().zip(&got) {
        assert_eq!((sig.hold_ref.as_str(), sig.reason.as_str()), (rf.as_str(), reason.as_str()));
        assert_eq!((sig.amount, sig.currency), (*amount, *currency), "the event carries the signal's money");
    }
    h.check_dims("t").await;
}

// ---------------------------------------------------------------------------------------
// Baskets

async fn open_weekend<S: AsyncStore>(h: &H<S>) {
    h.open("fri", cfg(10, 600).with_tiers(vec![tier("std", "20.00"), tier("crew", "0")])).await;
    h.open("sat", std_tier(1, 600, "25.00")).await;
    h.open("sun", std_tier(10, 60, "30.00")).await;
}

fn placed(b: &Basket) -> Vec<(Money, bool)> {
    let Basket::Placed { parts } = b else { panic!("not placed: {b:?}") };
    parts
        .iter()
        .map(|p| match p {
            RequestOutcome::AwaitingPayment { checkout, replayed, .. } => (checkout.price(), *replayed),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// One hold per occurrence, all placed or the placed ones released; one payment settled part
/// by part, each accounted on its own: a lapsed part is refunded with its own amount.
async fn baskets_place_all_or_none_and_settle_part_by_part<S: AsyncStore>(h: H<S>) {
    open_weekend(&h).await;
    let basket = [order("fri", "ann", "bf1", &[("std", 2)]), order("sat", "ann", "bs1", &[("std", 1)])];
    let placed1 = h.e.request_basket(&basket).await.unwrap();
    assert_eq!(placed(&placed1), [(eur("40.00"), false), (eur("25.00"), false)]);
    let pay =
        [paid_with("fri", "ann", "bf1", eur("40.00"), "pi_b1"), paid_with("sat", "ann", "bs1", eur("25.00"), "pi_b1")];
    let conf = Settlement::Confirmed { replayed: false };
    assert_eq!(h.e.settle_basket(&pay).await.unwrap(), [conf.clone(), conf.clone()]);
    assert_eq!(h.e.ledger(&k("fri")).await.unwrap().net(cur("EUR")), Some(amt("40.00")));
    assert_eq!(h.e.ledger(&k("sat")).await.unwrap().net(cur("EUR")), Some(amt("25.00")));

    // Sat is sold out: bob's basket is not placed, and his fri part is released.
    h.drain().await;
    let fri_before = h.avail("fri").await;
    let basket2 = [order("fri", "bob", "bf2", &[("std", 1)]), order("sat", "bob", "bs2", &[("std", 1)])];
    assert_eq!(
        h.e.request_basket(&basket2).await.unwrap(),
        Basket::NotPlaced { part: 1, outcome: full(1, "std", "total") }
    );
    assert_eq!(h.avail("fri").await, fri_before, "the placed part was released");
    assert_eq!(h.booking("fri", "bf2").await.state, HoldState::Released);
    let types: Vec<&str> = h.drain().await.iter().map(|e| e.event.kind.type_str()).collect();
    assert_eq!(types, ["hold_placed", "hold_released"]);
    // A free part placed before the failing one is given back too.
    let basket3 = [order("fri", "dan", "bf4", &[("crew", 1)]), order("sat", "dan", "bs4", &[("std", 1)])];
    assert!(matches!(h.e.request_basket(&basket3).await.unwrap(), Basket::NotPlaced { part: 1, .. }));
    assert_eq!(h.avail("fri").await.confirmed, fri_before.confirmed);

    // Cat's sun part lapses before the payment arrives: that part alone is refunded.
    let basket4 = [order("fri", "cat", "bf3", &[("std", 1)]), order("sun", "cat", "bu3", &[("std", 2)])];
    assert_eq!(placed(&h.e.request_basket(&basket4).await.unwrap()), [(eur("20.00"), false), (eur("60.00"), false)]);
    h.advance(60);
    let pay4 =
        [paid_with("fri", "cat", "bf3", eur("20.00"), "pi_b4"), paid_with("sun", "cat", "bu3", eur("60.00"), "pi_b4")];
    let got = h.e.settle_basket(&pay4).await.unwrap();
    assert_eq!(got[0], conf);
    let Settlement::PaidButNoHold { refund, replayed: false } = &got[1] else { panic!("{got:?}") };
    assert_eq!(
        (refund.reason, refund.amount, refund.currency, refund.provider_ref.clone()),
        (NoHoldReason::Expired, Some(amt("60.00")), Some(cur("EUR")), Some(pr("pi_b4")))
    );
    // Redelivered: every part replays.
    let again = h.e.settle_basket(&pay4).await.unwrap();
    assert_eq!(again[0], Settlement::Confirmed { replayed: true });
    assert!(matches!(&again[1], Settlement::PaidButNoHold { replayed: true, refund: r2 } if r2 == refund));
    let sun = h.e.ledger(&k("sun")).await.unwrap();
    assert_eq!((sun.received[&cur("EUR")], sun.refunded[&cur("EUR")]), (amt("60.00"), amt("60.00")));
    for occ in ["fri", "sat", "sun"] {
        h.check_dims(occ).await;
    }
}

/// A basket retried after one of its parts was paid (the buyer paid that part while the
/// retry was in flight): the paid part counts as placed, and the other, still live, part
/// is replayed, not released.
async fn a_basket_retried_after_a_part_was_paid_keeps_every_part<S: AsyncStore>(h: H<S>) {
    open_weekend(&h).await;
    let basket = [order("fri", "ann", "bf1", &[("std", 2)]), order("sat", "ann", "bs1", &[("std", 1)])];
    assert_eq!(placed(&h.e.request_basket(&basket).await.unwrap()), [(eur("40.00"), false), (eur("25.00"), false)]);
    let conf = Settlement::Confirmed { replayed: false };
    assert_eq!(h.e.settle(&paid_with("sat", "ann", "bs1", eur("25.00"), "pi_s")).await.unwrap(), conf);
    let Basket::Placed { parts } = h.e.request_basket(&basket).await.unwrap() else { panic!("the retry is placed") };
    assert!(matches!(&parts[0], RequestOutcome::AwaitingPayment { replayed: true, .. }), "{parts:?}");
    assert!(matches!(&parts[1], RequestOutcome::Already { confirmed: true, .. }), "{parts:?}");
    assert_eq!(h.booking("fri", "bf1").await.state, HoldState::Held, "the live part was not released");
    assert_eq!(h.booking("sat", "bs1").await.state, HoldState::Confirmed);
    for occ in ["fri", "sat"] {
        h.check_dims(occ).await;
    }
}

/// "A helper that places them all or releases those it placed": a basket whose later part
/// is refused outright (bad input: here an unknown tier) places nothing — the parts placed
/// before it are released, not left holding seats until they lapse.
async fn a_basket_refused_for_bad_input_releases_the_parts_it_placed<S: AsyncStore>(h: H<S>) {
    open_weekend(&h).await;
    let fri_before = h.avail("fri").await;
    let basket = [order("fri", "ann", "bf1", &[("std", 2)]), order("sat", "ann", "bs1", &[("nope", 1)])];
    refused(h.e.request_basket(&basket).await, RequestRefusal::Pricing(PricingError::UnknownTier(t("nope"))));
    assert_eq!(h.avail("fri").await, fri_before, "the fri part placed before the refused part is released");
    h.check_dims("fri").await;
}

/// A crash between the parts of a basket (a commit applied, its acknowledgement lost, or a
/// commit not applied) is made safe by retrying the whole basket: nothing placed twice,
/// every part paid exactly once.
#[test]
fn a_crash_between_basket_parts_is_safe_to_retry() {
    on_memory_faulty(|h| async move {
        open_weekend(&h).await;
        h.drain().await;
        let store = h.store();
        let basket = [order("fri", "ann", "bf1", &[("std", 2)]), order("sun", "ann", "bu1", &[("std", 1)])];

        // The second part's hold is committed, the caller sees an error; the retry replays both.
        store.hook.plan(&[Fault::None, Fault::After]);
        let err = h.e.request_basket(&basket).await.unwrap_err();
        assert!(is_unavailable(&err), "{err:?}");
        assert_eq!(placed(&h.e.request_basket(&basket).await.unwrap()), [(eur("40.00"), true), (eur("30.00"), true)]);
        assert_eq!(h.drain_types().await, ["hold_placed", "hold_placed"], "each part placed once");

        // The first part's hold fails before it is written; the retry places both.
        let basket2 = [order("fri", "bob", "bf2", &[("std", 1)]), order("sun", "bob", "bu2", &[("std", 1)])];
        store.hook.plan(&[Fault::Before]);
        assert!(is_unavailable(&h.e.request_basket(&basket2).await.unwrap_err()));
        assert_eq!(
            placed(&h.e.request_basket(&basket2).await.unwrap()),
            [(eur("20.00"), false), (eur("30.00"), false)]
        );

        let conf = |replayed| Settlement::Confirmed { replayed };
        let pay = [
            paid_with("fri", "ann", "bf1", eur("40.00"), "pi_1"),
            paid_with("sun", "ann", "bu1", eur("30.00"), "pi_1"),
        ];
        // Crash right after the first part's confirmation.
        store.hook.plan(&[Fault::After]);
        assert!(is_unavailable(&h.e.settle_basket(&pay).await.unwrap_err()));
        assert_eq!(h.e.settle_basket(&pay).await.unwrap(), [conf(true), conf(false)]);

        let pay2 = [
            paid_with("fri", "bob", "bf2", eur("20.00"), "pi_2"),
            paid_with("sun", "bob", "bu2", eur("30.00"), "pi_2"),
        ];
        // Crash right after the second part's confirmation; then the first part of a retry
        // fails before it is written; then a clean retry.
        store.hook.plan(&[Fault::None, Fault::After]);
        assert!(is_unavailable(&h.e.settle_basket(&pay2).await.unwrap_err()));
        assert_eq!(h.e.settle_basket(&pay2).await.unwrap(), [conf(true), conf(true)]);
        assert!(store.hook.plan_used());
        assert!(store.hook.lost_acks.load(std::sync::atomic::Ordering::Relaxed) >= 3);

        // Exactly once: one payment record, one hold_confirmed per part; nothing refunded.
        let events = h.drain().await;
        for (occ, rf) in [("fri", "bf1"), ("sun", "bu1"), ("fri", "bf2"), ("sun", "bu2")] {
            let confirmed = events
                .iter()
                .filter(|e| e.event.occ_key == k(occ) && e.event.hold_ref == Some(r(rf)))
                .filter(|e| e.event.kind.type_str() == "hold_confirmed")
                .count();
            assert_eq!(confirmed, 1, "{occ}/{rf}");
            let ledger = h.e.ledger(&k(occ)).await.unwrap();
            assert_eq!(ledger.entries.iter().filter(|e| e.hold_ref == r(rf)).count(), 1, "{occ}/{rf}: {ledger:?}");
        }
        assert!(refunds(&events).is_empty());
        assert_eq!(h.e.ledger(&k("fri")).await.unwrap().net(cur("EUR")), Some(amt("60.00")));
        assert_eq!(h.e.ledger(&k("sun")).await.unwrap().net(cur("EUR")), Some(amt("60.00")));
        for occ in ["fri", "sun"] {
            h.check_dims(occ).await;
        }
    });
}

fn on_memory_faulty<F, Fut>(body: F)
where
    F: FnOnce(H<FaultyStore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    seathold::conformance::block_on(body(H::new(FaultyStore::default())));
}

// ---------------------------------------------------------------------------------------
// Bad input

/// Each bad request or configuration is a typed error and changes nothing.
async fn bad_input_is_a_typed_error_and_changes_nothing<S: AsyncStore>(h: H<S>) {
    h.open("show", show()).await;
    h.open("plain", cfg(5, 600)).await;
    let mixed = cfg(5, 600).with_tiers(vec![tier("eur", "10.00"), Tier::new(t("usd"), usd("10.00"))]);
    h.open("mixed", mixed).await;
    h.hold(&order("show", "ann", "a1", &[("adult", 1)])).await;
    let before = h.fingerprint().await;

    let bad_q = RequestRefusal::BadQuantity { max: MAX_QUANTITY };
    let cases: Vec<(HoldRequest, RequestRefusal)> = vec![
        (order("show", "bob", "b1", &[("nope", 1)]), RequestRefusal::Pricing(PricingError::UnknownTier(t("nope")))),
        (order("show", "bob", "b1", &[]), RequestRefusal::NoLines),
        (order("show", "bob", "b1", &[("adult", 0)]), bad_q.clone()),
        (order("show", "bob", "b1", &[("adult", 1), ("child", 0)]), bad_q.clone()),
        (order("show", "bob", "b1", &[("adult", MAX_QUANTITY + 1)]), bad_q.clone()),
        (order("show", "bob", "b1", &[("adult", u32::MAX)]), bad_q.clone()),
        (order("show", "bob", "b1", &[("adult", 6_000), ("child", 6_000)]), bad_q.clone()),
        (order("show", "bob", "b1", &[("adult", u32::MAX), ("child", u32::MAX)]), bad_q.clone()),
        (
            HoldRequest::lines(k("show"), a("bob"), r("b1"), vec![line("adult", 1); MAX_LINES + 1]),
            RequestRefusal::TooManyLines { max: MAX_LINES },
        ),
        (
            order("mixed", "bob", "b1", &[("eur", 1), ("usd", 1)]),
            RequestRefusal::Pricing(PricingError::MixedCurrencies(cur("EUR"), cur("USD"))),
        ),
        (order("plain", "bob", "b1", &[("adult", 1)]), RequestRefusal::LinesNeedTiers),
        (plain("show", "bob", "b1", "10.00", 1), RequestRefusal::TiersNeedLines),
        (plain("plain", "bob", "b1", "10.00", 0), bad_q.clone()),
        (plain("plain", "bob", "b1", "10.00", MAX_QUANTITY + 1), bad_q.clone()),
        (order("nowhere", "bob", "b1", &[("adult", 1)]), RequestRefusal::UnknownOccurrence),
        // Malformed input comes before Already: ann's live hold does not answer it.
        (order("show", "ann", "a2", &[("nope", 1)]), RequestRefusal::Pricing(PricingError::UnknownTier(t("nope")))),
    ];
    for (req, want) in cases {
        refused(h.e.request(&req).await, want);
        assert_eq!(h.fingerprint().await, before, "{req:?} changed something");
    }

    // MAX_LINES lines are accepted (64 tiers, one line each).
    let many: Vec<Tier> = (0..MAX_LINES).map(|i| tier(&format!("t{i}"), "1.00")).collect();
    h.open("many", cfg(100, 600).with_tiers(many)).await;
    let lines: Vec<_> = (0..MAX_LINES).map(|i| line(&format!("t{i}"), 1)).collect();
    let req = HoldRequest::lines(k("many"), a("bob"), r("m1"), lines);
    assert_eq!(h.hold(&req).await, eur("64.00"));
    let before = h.fingerprint().await;

    // Prices: negative or malformed amounts never make a Money, so never a tier.
    assert_eq!(Money::parse("-1.00", "EUR"), Err(MoneyError::Negative));
    for bad in ["", "1,00", "1e3", "abc", " 1.00", "1.", ".5", "+1"] {
        assert!(matches!(Money::parse(bad, "EUR"), Err(MoneyError::Malformed(_))), "{bad:?}");
    }
    assert!(matches!(Money::parse("1.001", "EUR"), Err(MoneyError::TooPrecise { .. })));
    assert!(Money::parse("10.00", "eur").is_err());

    // Configurations.
    let config_err = |c: ConfigError| OpenRefusal::Config(c);
    let unknown_pool = cfg(5, 600).with_tiers(vec![tier("vip", "1.00").with_pools(vec![p("ghost")])]);
    let dup_tier = cfg(5, 600).with_tiers(vec![tier("a", "1.00"), tier("a", "2.00")]);
    let dup_pool = cfg(5, 600).with_pools(vec![pool("x", 1), pool("x", 2)]);
    let too_many = cfg(5, 600).with_tiers((0..65).map(|i| tier(&format!("t{i}"), "1.00")).collect());
    let zero_limit = cfg(5, 600).with_max_per_actor(0);
    let cases: Vec<(OccurrenceConfig, OpenRefusal)> = vec![
        (unknown_pool, config_err(ConfigError::UnknownPool { tier: t("vip"), pool: p("ghost") })),
        (dup_tier, config_err(ConfigError::DuplicateTier(t("a")))),
        (dup_pool, config_err(ConfigError::DuplicatePool(p("x")))),
        (too_many, config_err(ConfigError::TooMany { max_tiers: 64, max_pools: 64 })),
        (zero_limit, config_err(ConfigError::BadMaxPerActor)),
    ];
    for (config, want) in cases {
        // On a new occurrence (not created) and on an existing one (not changed).
        refused(h.e.open(&k("fresh"), config.clone()).await, want.clone());
        refused(h.e.open(&k("show"), config).await, want);
        assert_eq!(h.fingerprint().await, before);
    }
    assert!(h.e.occurrence(&k("fresh")).await.is_err(), "a refused open creates nothing");
    assert!(OccurrenceConfig::new(5, 0).is_err());
}

on_both_stores!(
    availability_per_tier_is_the_minimum_over_its_dimensions,
    multi_line_orders_are_all_or_nothing,
    prices_are_server_side,
    free_orders_confirm_at_once,
    max_per_actor_allows_repeat_purchases_up_to_the_limit,
    settlement_locates_the_booking_by_ref,
    set_price_keeps_holds_and_locks_only_while_live,
    blocks_take_seats_out_of_sale,
    reconfiguration_that_would_strand_seats_is_refused,
    a_lapsed_hold_does_not_keep_its_tier_from_being_removed,
    metadata_is_kept_with_the_booking_and_on_hold_placed,
    every_refund_signal_carries_amount_and_currency,
    baskets_place_all_or_none_and_settle_part_by_part,
    a_basket_refused_for_bad_input_releases_the_parts_it_placed,
    a_basket_retried_after_a_part_was_paid_keeps_every_part,
    bad_input_is_a_typed_error_and_changes_nothing,
);

// ---------------------------------------------------------------------------------------
// Races on memory: 8 threads, random multi-line orders over overlapping pools

/// The race's occurrences: overlapping pools, tier caps, a free tier, a per-actor limit; one
/// refunds late payments, one revives them.
fn race_config(late: LatePayment) -> OccurrenceConfig {
    cfg(30, 5)
        .with_tiers(vec![
            tier("a", "10.00").with_pools(vec![p("p1")]),
            tier("b", "15.00").with_capacity(8).with_pools(vec![p("p1"), p("p2")]),
            tier("c", "20.00").with_pools(vec![p("p2")]),
            tier("d", "25.00").with_capacity(6),
            tier("f", "0").with_capacity(3).with_pools(vec![p("p2")]),
        ])
        .with_pools(vec![pool("p1", 16), pool("p2", 14)])
        .with_max_per_actor(6)
        .with_late_payment(late)
}

const RACE_OCCS: [&str; 2] = ["race-refund", "race-revive"];
const RACE_TIERS: [&str; 5] = ["a", "b", "c", "d", "f"];

type PaidKey = (String, String, String);

#[derive(Default)]
struct RaceLog {
    /// Every paid (occ, actor, ref) sent, with every answer it got.
    answers: Mutex<BTreeMap<PaidKey, Vec<Settlement>>>,
    /// Free bookings confirmed at once.
    free: Mutex<BTreeSet<(String, String)>>,
    ops: std::sync::atomic::AtomicU64,
}

type Shared = Arc<H<MemoryStore>>;

fn run<F: std::future::Future>(f: F) -> F::Output {
    seathold::conformance::block_on(f)
}

/// Every capped dimension within its cap, by the counters, now.
fn caps_hold(h: &Shared) {
    for occ in RACE_OCCS {
        let o = run(h.e.occurrence(&k(occ))).unwrap();
        for (dim, cap) in o.config.dims() {
            if let Some(cap) = cap {
                let used = o.counters.get(&dim);
                assert!(used.total() <= cap, "{occ}: {dim} oversold: {used:?} > {cap}");
            }
        }
    }
}

fn race_thread(h: Shared, log: Arc<RaceLog>, seed: u64, iterations: u32) {
    let mut rng = Rng::new(seed);
    let mut mine: Vec<(String, String)> = Vec::new();
    let send = |rng: &mut Rng, occ: &str, actor: &str, rf: &str| {
        let copies = 1 + rng.below(3);
        for _ in 0..copies {
            let s = run(h.e.settle(&paid(occ, actor, rf))).unwrap();
            let key = (occ.to_owned(), actor.to_owned(), rf.to_owned());
            log.answers.lock().unwrap().entry(key).or_default().push(s);
        }
    };
    for i in 0..iterations {
        let occ = RACE_OCCS[rng.below(2) as usize];
        let actor = format!("u{}", rng.below(24));
        let rf = format!("s{seed}-{i}");
        let n = 1 + rng.below(3);
        let lines: Vec<(&str, u32)> =
            (0..n).map(|_| (RACE_TIERS[rng.below(5) as usize], 1 + rng.below(3) as u32)).collect();
        let fate = rng.below(100);
        match run(h.e.request(&order(occ, &actor, &rf, &lines))).unwrap() {
            RequestOutcome::AwaitingPayment { .. } => match fate {
                0..50 => {
                    send(&mut rng, occ, &actor, &rf);
                    mine.push((occ.to_owned(), rf.clone()));
                }
                50..65 => {
                    let s = run(h.e.settle(&failed(occ, &actor, &rf))).unwrap();
                    assert!(matches!(s, Settlement::Released | Settlement::Noop), "{s:?}");
                }
                65..75 => {
                    run(h.e.abandon(&k(occ), &a(&actor), &r(&rf))).unwrap();
                }
                75..85 => {
                    // Paid late: the clock moves past the hold's expiry first.
                    h.advance(6);
                    send(&mut rng, occ, &actor, &rf);
                }
                _ => {} // left to lapse
            },
            RequestOutcome::Already { hold_ref, confirmed: false, .. } if fate < 30 => {
                // The owner's payment, delivered from here too.
                send(&mut rng, occ, &actor, hold_ref.as_str());
            }
            RequestOutcome::Confirmed { hold_ref, replayed: false, .. } => {
                log.free.lock().unwrap().insert((occ.to_owned(), hold_ref.to_string()));
                mine.push((occ.to_owned(), hold_ref.to_string()));
            }
            _ => {}
        }
        if rng.percent(8) && !mine.is_empty() {
            let (occ, rf) = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            match run(h.e.cancel(&k(&occ), &r(&rf), None)) {
                Ok(_) | Err(OpError::Refused(seathold::holds::CancelRefusal::NotConfirmed)) => {}
                Err(e) => panic!("cancel {occ}/{rf}: {e}"),
            }
        }
        if rng.percent(10) {
            h.advance(1);
        }
        if rng.percent(5) {
            run(h.e.expire_due(50)).unwrap();
        }
        caps_hold(&h);
        log.ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// 8 threads buy random multi-line orders over overlapping pools, pay (some several times,
/// some late), fail, abandon, cancel and sweep. No dimension is ever oversold (checked after
/// every operation and at the end), the counters equal the sums over the records, every paid
/// result is accounted exactly once, and the ledger's net is what was kept.
#[test]
fn eight_threads_never_oversell_a_dimension_and_account_every_payment_once() {
    let h: Shared = Arc::new(H::new(MemoryStore::new()));
    run(async {
        for (occ, late) in RACE_OCCS.iter().zip([LatePayment::Refund, LatePayment::Revive]) {
            h.open(occ, race_config(late)).await;
        }
    });
    let log = Arc::new(RaceLog::default());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (h, log) = (h.clone(), log.clone());
            std::thread::spawn(move || race_thread(h, log, 100 + i, 300))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Everything lapses; the sweep ends it.
    h.advance(60);
    run(h.e.expire_due(usize::MAX)).unwrap();
    caps_hold(&h);

    run(async {
        let records = h.all_records().await;
        let events: Vec<OutboxEvent> = h.drain().await;
        let answers = log.answers.lock().unwrap().clone();
        let free = log.free.lock().unwrap().clone();
        let mut confirmed_payments = 0;
        let mut refunded_payments = 0;
        for occ in RACE_OCCS {
            h.check_dims(occ).await;
            let o = h.e.occurrence(&k(occ)).await.unwrap();
            assert_eq!(o.counters.get(&Dim::Total).held, 0, "{occ}: nothing held after the sweep");
        }
        // Payment records by (occ, actor, ref); every one was sent by someone.
        let mut payments: BTreeMap<PaidKey, &seathold::settlement::PaymentRecord> = BTreeMap::new();
        for (occ, rec) in &records {
            if let Record::Payment(pm) = &rec.value {
                assert!(!pm.duplicate);
                let key = (occ.to_string(), pm.actor.to_string(), pm.hold_ref.to_string());
                assert!(payments.insert(key.clone(), pm).is_none());
                assert!(answers.contains_key(&key), "{key:?}: accounted, but nobody paid it");
            }
        }
        let count = |occ: &str, rf: &str, ty: &str| {
            events
                .iter()
                .filter(|e| {
                    e.event.occ_key.as_str() == occ && e.event.hold_ref.as_ref().map(|x| x.as_str()) == Some(rf)
                })
                .filter(|e| e.event.kind.type_str() == ty)
                .filter(|e| !matches!(e.event.kind, EventKind::RefundRequired { reason: NoHoldReason::Cancelled, .. }))
                .count()
        };
        for (key, got) in answers.iter() {
            let (occ, actor, rf) = key;
            let pm = payments.get(key).unwrap_or_else(|| panic!("{key:?}: paid, but never accounted"));
            assert!(got.iter().filter(|s| !s.is_replay()).count() <= 1, "{key:?}: answered as new twice: {got:?}");
            let statuses: BTreeSet<&str> = got.iter().map(|s| s.status_str()).collect();
            assert_eq!(statuses.len(), 1, "{key:?}: different answers: {got:?}");
            let booking = records.iter().find_map(|(o, rec)| match &rec.value {
                Record::Booking(b) if o.as_str() == occ && b.hold_ref.as_str() == rf => Some(b),
                _ => None,
            });
            match &pm.outcome {
                seathold::settlement::PaidOutcome::Confirmed { .. } => {
                    confirmed_payments += 1;
                    assert_eq!(got[0].status_str(), "confirmed");
                    let b = booking.unwrap_or_else(|| panic!("{key:?}: confirmed, but no booking"));
                    assert_eq!(b.actor.as_str(), actor);
                    assert!(matches!(b.state, HoldState::Confirmed | HoldState::Cancelled), "{key:?}: {b:?}");
                    assert_eq!(count(occ, rf, "hold_confirmed"), 1, "{key:?}: one hold_confirmed");
                    assert_eq!(count(occ, rf, "refund_required"), 0, "{key:?}: confirmed and refunded");
                }
                seathold::settlement::PaidOutcome::Refund(refund) => {
                    refunded_payments += 1;
                    assert_eq!(got[0].status_str(), "paid_but_no_hold");
                    assert_eq!(count(occ, rf, "refund_required"), 1, "{key:?}: one refund signal");
                    assert_eq!(count(occ, rf, "hold_confirmed"), 0, "{key:?}: refunded and confirmed");
                    if booking.is_some_and(|b| b.actor.as_str() == actor) {
                        assert!(refund.amount.is_some() && refund.currency.is_some(), "{refund:?}");
                    }
                }
            }
        }
        // Every sold booking was paid, or free.
        for (occ, rec) in &records {
            if let Record::Booking(bk) = &rec.value {
                let sold = matches!(bk.state, HoldState::Confirmed | HoldState::Cancelled);
                let key = (occ.to_string(), bk.actor.to_string(), bk.hold_ref.to_string());
                let paid_for = payments
                    .get(&key)
                    .is_some_and(|pm| matches!(pm.outcome, seathold::settlement::PaidOutcome::Confirmed { .. }));
                let is_free = free.contains(&(occ.to_string(), bk.hold_ref.to_string()));
                assert_eq!(sold, paid_for || is_free, "{key:?}: {bk:?}");
                // One hold_placed; one terminal event — or, for a late payment revived after
                // the hold had ended, its `hold_expired`/`hold_released` and then the
                // `hold_confirmed { revived: true }` (documented on `EventKind::HoldConfirmed`).
                assert_eq!(count(occ.as_str(), bk.hold_ref.as_str(), "hold_placed"), 1);
                let terminal: Vec<&EventKind> = events
                    .iter()
                    .filter(|e| e.event.occ_key == *occ && e.event.hold_ref.as_ref() == Some(&bk.hold_ref))
                    .filter(|e| e.event.kind.is_terminal())
                    .map(|e| &e.event.kind)
                    .collect();
                let revived =
                    terminal.iter().filter(|e| matches!(e, EventKind::HoldConfirmed { revived: true, .. })).count();
                let ok = match (terminal.len(), revived) {
                    (1, _) => true,
                    (2, 1) => matches!(terminal[0], EventKind::HoldExpired { .. } | EventKind::HoldReleased { .. }),
                    _ => false,
                };
                assert!(ok, "{key:?}: terminal events {terminal:?} of {bk:?}");
                assert_eq!(revived == 1, bk.revived, "{key:?}");
            }
        }
        // The ledger: net = confirmed payments - cancellation refunds.
        for occ in RACE_OCCS {
            let ledger = h.e.ledger(&k(occ)).await.unwrap();
            let mut kept = Amount::ZERO;
            for (o, rec) in &records {
                if let Record::Payment(pm) = &rec.value {
                    if o.as_str() == occ && matches!(pm.outcome, seathold::settlement::PaidOutcome::Confirmed { .. }) {
                        kept = kept.checked_add(pm.amount.unwrap()).unwrap();
                    }
                }
            }
            for (o, rec) in &records {
                if let Record::Cancellation(c) = &rec.value {
                    if o.as_str() == occ {
                        kept = kept.checked_sub(c.refund.amount).unwrap();
                    }
                }
            }
            assert_eq!(ledger.net(cur("EUR")).unwrap_or(Amount::ZERO), kept, "{occ}");
        }
        let ops = log.ops.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "race: {ops} operations, {} payments ({confirmed_payments} confirmed, {refunded_payments} refunded), \
             {} free bookings, {} events",
            answers.len(),
            free.len(),
            events.len()
        );
        assert!(confirmed_payments > 50 && refunded_payments > 5, "the race exercised too little");
    });
}

// ---------------------------------------------------------------------------------------
// Races on PostgreSQL: two processes x 16 connections

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_of_sixteen_connections_race_tiered_orders_on_postgres() {
    let Some(url) = postgres_support::pg_url("two_processes_of_sixteen_connections_race_tiered_orders_on_postgres")
    else {
        return;
    };
    tiered::race_two_processes(&url).await;
}
