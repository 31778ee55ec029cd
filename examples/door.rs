//! The door: tickets issued when a booking is paid, scanned at the entrance (admitted, a
//! second scan of the same code, a forged code, a code from someone else's key, a cancelled
//! ticket), and a sold-out show's waiting list receiving the seat a cancellation frees.
//!
//! ```text
//! cargo run --example door
//! ```
//!
//! Exits non-zero if anything it shows does not happen (it asserts as it goes); CI runs it
//! (`tests/examples_run.rs`).

use std::sync::Arc;

use seathold::catalogue::{Line, OccurrenceConfig, Tier};
use seathold::contract::{ActorId, EventKind, Money, OccKey, OpKey, PaymentResult, ProviderRef, Ref, TierName};
use seathold::holds::{CancelOutcome, HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::tickets::{CheckIn, TicketKey};
use seathold::{Clock, Engine, ManualClock, MemoryStore};
use time::Duration;
use time::macros::datetime;

type Door = Engine<MemoryStore, Arc<ManualClock>>;

fn eur(s: &str) -> Money {
    Money::parse(s, "EUR").expect("an amount")
}

/// A ticket key: 32 random bytes. A real service loads it from its secret store; the
/// database never sees it (and never holds a credential).
fn secret_key() -> TicketKey {
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].iter().flat_map(|u| *u.as_bytes()).collect();
    TicketKey::new(bytes).expect("32 bytes")
}

fn buy(door: &Door, show: &OccKey, who: &str, r: &str, ga: u32) -> Ref {
    let r = Ref::new(r).expect("a ref");
    let actor = ActorId::new(who).expect("an actor");
    let lines = vec![Line { tier: TierName::new("ga").expect("a tier"), quantity: ga }];
    let req = HoldRequest::lines(show.clone(), actor.clone(), r.clone(), lines);
    let RequestOutcome::AwaitingPayment { checkout, .. } = door.request(&req).expect("request") else {
        panic!("{who} could not get {ga} seats")
    };
    let paid = PaymentResult::paid(show.clone(), actor, r.clone())
        .with_money(checkout.amount, checkout.currency)
        .with_provider_ref(ProviderRef::new(format!("pi_{r}")).expect("a provider ref"));
    assert_eq!(door.settle(&paid).expect("settle"), Settlement::Confirmed { replayed: false });
    println!("  {who}: {ga} x GA paid ({} {}), booking {r}", checkout.amount, checkout.currency);
    r
}

/// The show this door admits to.
fn the_show() -> OccKey {
    OccKey::new("gig-2026-05-02").expect("a key")
}

fn scan(door: &Door, what: &str, credential: &str) -> CheckIn {
    let answer = door.check_in(&the_show(), credential).expect("check_in");
    let shown = match &answer {
        CheckIn::Admitted { ticket } => format!("ADMIT        {ticket}"),
        CheckIn::AlreadyCheckedIn { ticket, at } => {
            format!("ALREADY IN   {ticket} (first scanned at {:02}:{:02})", at.hour(), at.minute())
        }
        CheckIn::Cancelled { ticket } => format!("CANCELLED    {ticket}"),
        CheckIn::WrongOccurrence { occ_key, ticket } => format!("WRONG SHOW   {ticket} is for {occ_key}"),
        _ => "INVALID".to_owned(),
    };
    println!("  scan {what:<34} -> {shown}");
    answer
}

fn main() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-05-02 19:00 UTC)));
    let key = secret_key();
    let box_office_key = key.clone();
    let door: Door = Engine::with_clock(MemoryStore::new(), clock.clone()).with_ticket_key(key);
    let show = the_show();
    let config = OccurrenceConfig::new(3, 600)
        .expect("a hold TTL")
        .with_tiers(vec![Tier::new(TierName::new("ga").expect("a tier"), eur("25.00"))])
        .with_tickets(true)
        .with_offer_ttl_secs(300)
        .expect("an offer TTL");
    door.open(&show, config).expect("open");

    println!("== Sales (3 standing places, 25.00 EUR)");
    let ann = buy(&door, &show, "ann", "ord-ann", 2);
    let bob = buy(&door, &show, "bob", "ord-bob", 1);
    let cat = ActorId::new("cat").expect("an actor");
    let cat_order = HoldRequest::lines(
        show.clone(),
        cat.clone(),
        Ref::new("ord-cat").expect("a ref"),
        vec![Line { tier: TierName::new("ga").expect("a tier"), quantity: 1 }],
    );
    assert!(matches!(door.request(&cat_order).expect("request"), RequestOutcome::Full { .. }));
    let joined = door.join_waitlist(&show, &cat, Some(&TierName::new("ga").expect("a tier")), 1).expect("join");
    assert_eq!((joined.position, joined.offered), (1, false));
    println!("  cat: sold out, joins the waiting list at position {}", joined.position);

    println!("\n== Tickets");
    let tickets = door.tickets(&show, &ann).expect("tickets");
    assert_eq!(tickets.len(), 2);
    for t in &tickets {
        let c = &t.credential;
        println!(
            "  {:<10} {:<3} QR {}…{} ({} chars, URL-safe)",
            t.id,
            t.tier.as_ref().map_or("", |t| t.as_str()),
            &c[..8],
            &c[c.len() - 6..],
            c.len()
        );
        assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)));
    }
    let bob_ticket = door.tickets(&show, &bob).expect("tickets").remove(0).credential;

    println!("\n== Doors open");
    clock.advance(Duration::minutes(30));
    let first = &tickets[0].credential;
    assert!(matches!(scan(&door, "ann's first ticket", first), CheckIn::Admitted { .. }));
    clock.advance(Duration::minutes(2));
    let again = scan(&door, "ann's first ticket, again", first);
    assert!(matches!(again, CheckIn::AlreadyCheckedIn { .. }), "a second scan must not admit");
    let mut forged = first.clone();
    let last = forged.pop().expect("a credential");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(scan(&door, "a copy with one character off", &forged), CheckIn::Invalid);
    let other = TicketKey::new(b"a-key-this-venue-never-issued-32".to_vec()).expect("32 bytes");
    let counterfeit = other.credential(&show, &ann, 1);
    assert_eq!(scan(&door, "a code from another key", &counterfeit), CheckIn::Invalid);
    // A genuine ticket for tomorrow's show: the door names the show it is for, admits nobody.
    let tomorrow = OccKey::new("gig-2026-05-03").expect("a key");
    let wrong_day = box_office_key.credential(&tomorrow, &ann, 0);
    let answer = scan(&door, "ann's ticket for tomorrow", &wrong_day);
    assert!(matches!(answer, CheckIn::WrongOccurrence { ref occ_key, .. } if *occ_key == tomorrow));
    // A scanner whose answer was lost retries under the same operation key: the rightful
    // holder is told "admit" again, not "already in".
    let scan_key = OpKey::new("scanner-2/event-118").expect("an operation key");
    let second = &tickets[1].credential;
    let first_try = door.with_op_key(&scan_key).check_in(&show, second).expect("check_in");
    let retry = door.with_op_key(&scan_key).check_in(&show, second).expect("check_in");
    assert!(matches!(first_try.answer, CheckIn::Admitted { .. }) && !first_try.replayed);
    assert_eq!((retry.answer, retry.replayed), (first_try.answer, true));
    println!("  scan ann's second ticket, then its lost-answer retry -> ADMIT, ADMIT (replayed)");
    let again = scan(&door, "ann's second ticket, without the key", &tickets[1].credential);
    assert!(matches!(again, CheckIn::AlreadyCheckedIn { .. }));

    println!("\n== Bob cancels; his place goes to the waiting list");
    let outcome = door.cancel(&show, &bob, None).expect("cancel");
    let CancelOutcome::Cancelled { refund, seats: 1, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(refund, eur("25.00"));
    println!("  bob's booking cancelled: refund {} {} to pi_{bob}", refund.amount, refund.currency);
    let events = door.drain_events(usize::MAX).expect("events");
    let offered: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::WaitlistOffered { seats, expires_at, .. } => Some(format!(
                "{} offered {seats} place until {:02}:{:02}",
                e.event.actor,
                expires_at.hour(),
                expires_at.minute()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(offered.len(), 1, "{events:?}");
    assert!(offered[0].starts_with("cat offered 1 place"));
    println!("  {}", offered[0]);
    let cancelled = scan(&door, "bob's cancelled ticket", &bob_ticket);
    assert!(matches!(&cancelled, CheckIn::Cancelled { ticket } if ticket.id == format!("{bob}#0")), "{cancelled:?}");

    // Someone at the box office cannot take cat's place; cat can.
    let walk_in = HoldRequest::lines(
        show.clone(),
        ActorId::new("dave").expect("an actor"),
        Ref::new("ord-dave").expect("a ref"),
        vec![Line { tier: TierName::new("ga").expect("a tier"), quantity: 1 }],
    );
    assert!(matches!(door.request(&walk_in).expect("request"), RequestOutcome::Full { .. }));
    println!("  dave walks up to the box office: sold out (the place is cat's for now)");
    let cat_ref = buy(&door, &show, "cat", "ord-cat", 1);
    let cat_ticket = door.tickets(&show, &cat_ref).expect("tickets").remove(0).credential;
    assert!(matches!(scan(&door, "cat's ticket", &cat_ticket), CheckIn::Admitted { .. }));

    println!("\n== At the end of the night");
    let a = door.availability(&show).expect("availability");
    let ledger = door.ledger(&show).expect("ledger");
    let net = ledger.net(eur("0").currency).expect("net");
    let now = clock.now();
    println!(
        "  {:02}:{:02}: sold {} of {}, takings {net} EUR after refunds ({} ledger entries)",
        now.hour(),
        now.minute(),
        a.confirmed,
        a.capacity,
        ledger.entries.len()
    );
    assert_eq!(a.confirmed, 3);
    assert_eq!(net.to_string(), "75.00");
    let checked_in = door
        .drain_events(usize::MAX)
        .expect("events")
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::CheckedIn { .. }))
        .count();
    assert_eq!(checked_in, 1, "cat's admission (ann's were drained earlier)");
    println!("door: ok");
}
