//! A box office: two performances of one play, each with price tiers, a shared ground-floor
//! quota, a free crew tier, a per-customer limit; sales, a price change, and a cart across
//! both shows paid once.
//!
//! ```text
//! cargo run --example box_office
//! ```
//!
//! Exits non-zero if anything it shows does not happen (it asserts as it goes); CI runs it
//! (`tests/examples_run.rs`).

use std::sync::Arc;

use seathold::catalogue::{BlockOutcome, Dim, Line, OccurrenceConfig, Pool, Tier};
use seathold::contract::{ActorId, BlockName, Money, OccKey, PaymentResult, PoolName, ProviderRef, Ref, TierName};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::{Basket, Engine, ManualClock, MemoryStore};
use time::macros::datetime;

type BoxOffice = Engine<MemoryStore, Arc<ManualClock>>;

fn tn(s: &str) -> TierName {
    TierName::new(s).expect("a tier name")
}
fn key(s: &str) -> OccKey {
    OccKey::new(s).expect("an occurrence key")
}
fn eur(s: &str) -> Money {
    Money::parse(s, "EUR").unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn tier(name: &str, price: &str) -> Tier {
    Tier::new(tn(name), eur(price))
}
fn lines(l: &[(&str, u32)]) -> Vec<Line> {
    l.iter().map(|(t, q)| Line { tier: tn(t), quantity: *q }).collect()
}
fn order(show: &OccKey, who: &str, r: &str, l: &[(&str, u32)]) -> HoldRequest {
    HoldRequest::lines(show.clone(), ActorId::new(who).expect("an actor"), Ref::new(r).expect("a ref"), lines(l))
}

/// The house: 100 seats; stalls and concessions share the 60 ground-floor seats; 10
/// concessions at most; crew comps are free (4 per show); at most 6 seats per customer.
fn house() -> OccurrenceConfig {
    let ground = PoolName::new("ground").expect("a pool name");
    OccurrenceConfig::new(100, 15 * 60)
        .expect("a 15-minute hold")
        .with_tiers(vec![
            tier("stalls", "45.00").with_pools(vec![ground.clone()]),
            tier("circle", "30.00"),
            tier("concession", "20.00").with_capacity(10).with_pools(vec![ground.clone()]),
            tier("crew", "0.00").with_capacity(4),
        ])
        .with_pools(vec![Pool { pool: ground, capacity: 60 }])
        .with_max_per_actor(6)
}

fn print_availability(office: &BoxOffice, show: &OccKey) {
    let a = office.availability(show).expect("availability");
    println!(
        "  {show}: {} of {} seats free ({} held, {} sold, {} blocked)",
        a.available, a.capacity, a.held, a.confirmed, a.blocked
    );
    for (t, ta) in &a.tiers {
        println!("    {:<11} {:>3} available  {:>3} held  {:>3} sold", t.as_str(), ta.available, ta.held, ta.confirmed);
    }
}

/// Place an order, expecting a checkout; answers its amount.
fn checkout(office: &BoxOffice, req: &HoldRequest) -> Money {
    match office.request(req).expect("request") {
        RequestOutcome::AwaitingPayment { checkout, .. } => {
            let detail: Vec<String> =
                checkout.lines.iter().map(|l| format!("{} x {} @ {}", l.quantity, l.tier, l.unit_price)).collect();
            println!(
                "  {} {}: checkout {} {} for {}",
                req.actor,
                req.hold_ref,
                checkout.amount,
                checkout.currency,
                detail.join(", ")
            );
            checkout.price()
        }
        other => panic!("{req:?}: expected a checkout, got {other:?}"),
    }
}

fn pay(office: &BoxOffice, req: &HoldRequest) {
    let result = PaymentResult::paid(req.occ_key.clone(), req.actor.clone(), req.hold_ref.clone());
    assert_eq!(office.settle(&result).expect("settle"), Settlement::Confirmed { replayed: false });
    println!("  {} {}: paid, booking confirmed", req.actor, req.hold_ref);
}

fn main() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-06 10:00 UTC)));
    let office: BoxOffice = Engine::with_clock(MemoryStore::new(), clock.clone());
    let fri = key("hamlet-2026-03-13");
    let sat = key("hamlet-2026-03-14");
    for show in [&fri, &sat] {
        office.open(show, house()).expect("open");
    }

    println!("== Catalogue (both performances)");
    for t in house().tiers() {
        let cap = t.capacity.map_or("-".to_owned(), |c| c.to_string());
        let pools: Vec<&str> = t.pools.iter().map(|p| p.as_str()).collect();
        println!(
            "  {:<11} {:>7} EUR  own cap {:>3}  pools {:?}",
            t.tier.as_str(),
            t.price.amount.to_string(),
            cap,
            pools
        );
    }
    println!("  shared pool: ground = 60 seats; capacity 100; max 6 seats per customer");

    println!("\n== Friday: counter sales");
    let alice = order(&fri, "alice", "fri-001", &[("stalls", 2), ("concession", 1)]);
    assert_eq!(checkout(&office, &alice), eur("110.00"));
    pay(&office, &alice);

    // A crew comp: free, so it confirms at once, without a payment.
    let crew = order(&fri, "stage-manager", "fri-002", &[("crew", 1)]);
    let comp = office.request(&crew).expect("request");
    assert!(matches!(comp, RequestOutcome::Confirmed { .. }), "{comp:?}");
    println!("  stage-manager fri-002: crew comp confirmed at once (no checkout)");

    // The per-customer limit, and a repeat purchase under it.
    let too_many = order(&fri, "bob", "fri-003", &[("circle", 7)]);
    let limit = office.request(&too_many).expect("request");
    assert_eq!(limit, RequestOutcome::LimitReached { max_per_actor: 6 });
    println!("  bob fri-003: 7 circle seats refused: limit of 6 per customer");
    let bob = order(&fri, "bob", "fri-003", &[("circle", 4)]);
    assert_eq!(checkout(&office, &bob), eur("120.00"));
    pay(&office, &bob);
    let more = order(&fri, "bob", "fri-004", &[("circle", 3)]);
    assert_eq!(office.request(&more).expect("request"), RequestOutcome::LimitReached { max_per_actor: 6 });
    let bob2 = order(&fri, "bob", "fri-004", &[("circle", 2)]);
    assert_eq!(checkout(&office, &bob2), eur("60.00"));
    pay(&office, &bob2);
    println!("  bob came back for 2 more: 6 seats in two bookings, the limit");

    // The concession quota: 10 at most, and they count against the ground floor too.
    let club = order(&fri, "uni-club", "fri-005", &[("concession", 5)]);
    assert_eq!(checkout(&office, &club), eur("100.00"));
    pay(&office, &club);
    let school = order(&fri, "school", "fri-006", &[("concession", 4), ("stalls", 1)]);
    assert_eq!(checkout(&office, &school), eur("125.00"));
    pay(&office, &school);
    let late = order(&fri, "dora", "fri-007", &[("stalls", 1), ("concession", 1)]);
    let full = office.request(&late).expect("request");
    let quota = Dim::Tier(tn("concession"));
    assert_eq!(full, RequestOutcome::Full { capacity: 10, tier: Some(tn("concession")), short: quota });
    println!("  dora fri-007: concessions sold out (the quota of 10) - the whole order is refused");
    print_availability(&office, &fri);
    let a = office.availability(&fri).expect("availability");
    let ground_left = 60 - (2 + 1 + 5 + 4 + 1);
    assert_eq!(a.tiers[&tn("stalls")].available, ground_left);
    assert_eq!(a.tiers[&tn("concession")].available, 0);
    assert_eq!(a.tiers[&tn("crew")].available, 3);

    println!("\n== Price change: stalls from 45.00 to 50.00");
    office.set_price(&fri, &tn("stalls"), eur("50.00")).expect("set_price");
    let erin = order(&fri, "erin", "fri-008", &[("stalls", 1)]).expecting(eur("45.00"));
    let changed = office.request(&erin).expect("request");
    assert_eq!(changed, RequestOutcome::PriceChanged { price: eur("50.00") });
    println!("  erin saw 45.00 on an old page: told the price is now 50.00, nothing held");
    let held = office.booking(&fri, &alice.hold_ref).expect("booking").expect("alice's booking");
    assert_eq!(held.price, eur("110.00"));
    println!("  alice's booking keeps what she paid: {}", held.price.amount);

    println!("\n== A cart across both performances, paid once");
    let cart =
        [order(&fri, "carol", "cart-9-fri", &[("circle", 2)]), order(&sat, "carol", "cart-9-sat", &[("stalls", 2)])];
    let Basket::Placed { parts } = office.request_basket(&cart).expect("basket") else { panic!("cart not placed") };
    let total: Vec<String> = parts
        .iter()
        .map(|p| match p {
            RequestOutcome::AwaitingPayment { checkout, .. } => format!("{} {}", checkout.occ_key, checkout.amount),
            other => panic!("{other:?}"),
        })
        .collect();
    println!("  carol's cart placed: {}", total.join(" + "));
    let pi = ProviderRef::new("pi_cart_9").expect("a provider ref");
    let payment: Vec<PaymentResult> = cart
        .iter()
        .zip([eur("60.00"), eur("90.00")])
        .map(|(p, m)| {
            PaymentResult::paid(p.occ_key.clone(), p.actor.clone(), p.hold_ref.clone())
                .with_money(m.amount, m.currency)
                .with_provider_ref(pi.clone())
        })
        .collect();
    let settled = office.settle_basket(&payment).expect("settle the cart");
    assert!(settled.iter().all(|s| *s == Settlement::Confirmed { replayed: false }), "{settled:?}");
    println!("  one payment (pi_cart_9, 150.00 EUR) settled part by part: both confirmed");

    // Saturday's ground floor is taken by a house block: a cart needing it is not placed, and
    // its Friday part is given back.
    let house_seats = BlockName::new("house-seats").expect("a block name");
    let blocked = office.block(&sat, &house_seats, 58, Some(&tn("stalls"))).expect("block");
    assert_eq!(blocked, BlockOutcome::Blocked);
    let fri_before = office.availability(&fri).expect("availability");
    let cart2 =
        [order(&fri, "dan", "cart-10-fri", &[("circle", 1)]), order(&sat, "dan", "cart-10-sat", &[("stalls", 1)])];
    let not = office.request_basket(&cart2).expect("basket");
    assert!(matches!(not, Basket::NotPlaced { part: 1, .. }), "{not:?}");
    assert_eq!(office.availability(&fri).expect("availability"), fri_before);
    println!("  dan's cart: Saturday stalls blocked for the house, so nothing is held on either night");

    println!("\n== End of day");
    print_availability(&office, &fri);
    print_availability(&office, &sat);
    let eur_ = eur("0").currency;
    let takings = |show: &OccKey| office.ledger(show).expect("ledger").net(eur_).expect("net");
    let (f, s) = (takings(&fri), takings(&sat));
    println!("  takings: Friday {f} EUR, Saturday {s} EUR");
    assert_eq!(f.to_string(), "575.00");
    assert_eq!(s.to_string(), "90.00");
    let sold = office.availability(&fri).expect("availability").confirmed;
    assert_eq!(sold, 3 + 1 + 4 + 2 + 5 + 5 + 2);
    println!("box office: ok");
}
