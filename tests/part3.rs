//! Part 3 of the README, "At the door and at the counter": each thing seen from outside, as a
//! named regression test, on MemoryStore and (with `SEATHOLD_PG_URL`, feature `postgres`)
//! on PostgreSQL.
//!
//! 1. a stale `unblock` over a re-created block oversold (a version named two states);
//! 2. a ticket opened any show's door, and its answer did not say which ticket;
//! 3. a retried write answered differently from the first (a scan, a cancel, an unblock);
//! 4. the buyer could set the price of an occurrence without tiers;
//! 5. refunds could not follow a shop's policy, the waiting list could not be read, and `Full`
//!    named the total capacity instead of the one that was short;
//! 6. two charges were answered as one when the first delivery named no provider ref;
//! 7. a walk-in (or a block) took seats the waiting list was owed when no sweep had run.

use crate::part2_support;
#[cfg(feature = "postgres")]
use crate::postgres_support;

use std::sync::Arc;

use part2_support::*;
use seathold::catalogue::{BlockOutcome, Dim, OccurrenceConfig};
use seathold::contract::{EventKind, NoHoldReason, OpKey, PaymentResult};
use seathold::holds::{CancelOutcome, CancelRefusal, HoldRequest, RequestOutcome, RequestRefusal};
use seathold::ledger::EntryKind;
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::tickets::{CheckIn, TicketRef};
use seathold::{AsyncEngine, ManualClock, MemoryStore, OpError};

fn key(s: &str) -> OpKey {
    OpKey::new(s).unwrap()
}

/// 10 EUR a seat, no tiers, tickets issued.
fn priced(capacity: u32) -> OccurrenceConfig {
    cfg(capacity, 600).with_seat_price(eur("10.00")).with_tickets(true)
}

// ---------------------------------------------------------------------------------------
// 1. A stale unblock over a re-created block

/// Capacity 5: blocks `stage` (3) and `press` (2). Engine 2 reads `press` (2 seats) into its
/// read cache; engine 1 unblocks `press` and blocks it again with 1 seat; engine 2's unblock,
/// decided on its cached copy, must not delete the new block while taking 2 seats off the
/// counters. Before versions came from a sequence, the new block was at version 1 again, the
/// stale guard passed, the counters said 2 blocked while the records held 4, and a 3-seat
/// request was then admitted: 3 held + 4 blocked > 5.
async fn stale_unblock_over_a_recreated_block<S: AsyncStore>(e1: &Eng<S>, e2: &Eng<S>) {
    let show = k("show");
    e1.open(&show, cfg(5, 600)).await.unwrap();
    assert_eq!(e1.block(&show, &b("stage"), 3, None).await.unwrap(), BlockOutcome::Blocked);
    assert_eq!(e2.block(&show, &b("press"), 2, None).await.unwrap(), BlockOutcome::Blocked);
    // Engine 2 has `press` (2 seats) cached: repeating the same block reads it, writes nothing.
    assert_eq!(e2.block(&show, &b("press"), 2, None).await.unwrap(), BlockOutcome::Blocked);
    assert_eq!(e1.unblock(&show, &b("press")).await.unwrap(), BlockOutcome::Unblocked);
    assert_eq!(e1.block(&show, &b("press"), 1, None).await.unwrap(), BlockOutcome::Blocked);

    // The stale unblock: its guard fails, it reloads, and it lifts the 1-seat block it finds.
    assert_eq!(e2.unblock(&show, &b("press")).await.unwrap(), BlockOutcome::Unblocked);
    let o = e1.occurrence(&show).await.unwrap();
    assert_eq!(o.counters.get(&Dim::Total).blocked, 3, "only `stage` is left blocked");
    let a = e1.availability(&show).await.unwrap();
    assert_eq!((a.blocked, a.available), (3, 2));
    let three = HoldRequest::new(show.clone(), a_("walk-in"), r("w1"), eur("30.00")).with_quantity(3);
    assert!(matches!(e1.request(&three).await.unwrap(), RequestOutcome::Full { .. }), "3 + 3 blocked > 5");
    let two = HoldRequest::new(show.clone(), a_("walk-in"), r("w1"), eur("20.00")).with_quantity(2);
    assert!(matches!(e1.request(&two).await.unwrap(), RequestOutcome::AwaitingPayment { .. }));
    let o = e1.occurrence(&show).await.unwrap();
    assert_eq!(o.counters.get(&Dim::Total).total(), 5, "held 2 + blocked 3");
}

fn a_(s: &str) -> seathold::contract::ActorId {
    a(s)
}

fn cached_engine<S: AsyncStore>(store: S) -> Eng<S> {
    AsyncEngine::with_clock(store, Arc::new(ManualClock::new(START))).with_read_cache(1_000)
}

#[test]
fn stale_unblock_over_a_recreated_block_is_refused_on_memory() {
    let store = Arc::new(MemoryStore::new());
    let (e1, e2) = (cached_engine(store.clone()), cached_engine(store));
    seathold::conformance::block_on(stale_unblock_over_a_recreated_block(&e1, &e2));
}

#[cfg(feature = "postgres")]
#[test]
fn stale_unblock_over_a_recreated_block_is_refused_on_postgres() {
    let Some(url) = postgres_support::pg_url("stale_unblock_over_a_recreated_block_is_refused_on_postgres") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let store = postgres_support::fresh_store(&url, "part3", 4).await;
        let (e1, e2) = (cached_engine(store.clone()), cached_engine(store.clone()));
        stale_unblock_over_a_recreated_block(&e1, &e2).await;
        store.drop_schema().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// 2. The door admits to one occurrence

/// Tuesday's genuine ticket at Wednesday's door: `WrongOccurrence` naming Tuesday, nothing
/// admitted, nothing changed (the ticket still admits at Tuesday's door). Every answer but
/// `Invalid` names the ticket: id, seat index, tier.
async fn a_ticket_opens_only_its_own_occurrences_door<S: AsyncStore>(h: H<S>) {
    let tiers = || cfg(4, 600).with_tiers(vec![tier("std", "10.00")]).with_tickets(true);
    h.open("tue", tiers()).await;
    h.open("wed", tiers()).await;
    h.buy(&order("tue", "ann", "a1", &[("std", 2)])).await;
    let creds: Vec<String> =
        h.e.tickets(&k("tue"), &r("a1")).await.unwrap().into_iter().map(|t| t.credential).collect();
    h.drain().await;
    let before = h.fingerprint().await;
    let at_wed = h.e.check_in(&k("wed"), &creds[1]).await.unwrap();
    let named = TicketRef { id: "a1#1".into(), index: 1, tier: None };
    assert_eq!(at_wed, CheckIn::WrongOccurrence { occ_key: k("tue"), ticket: named });
    // Under an operation key too: not admitted, not recorded.
    let keyed = h.e.with_op_key(&key("wed-door-1")).check_in(&k("wed"), &creds[1]).await.unwrap();
    assert!(matches!(keyed.answer, CheckIn::WrongOccurrence { .. }) && !keyed.replayed);
    assert_eq!(h.fingerprint().await, before, "a wrong door changes nothing");
    let seat = |i: u32| TicketRef { id: format!("a1#{i}"), index: i, tier: Some(t("std")) };
    assert_eq!(h.e.check_in(&k("tue"), &creds[1]).await.unwrap(), CheckIn::Admitted { ticket: seat(1) });
    let again = h.e.check_in(&k("tue"), &creds[1]).await.unwrap();
    assert!(matches!(again, CheckIn::AlreadyCheckedIn { ticket, .. } if ticket == seat(1)));
    assert_eq!(h.e.check_in(&k("tue"), "forged.credential").await.unwrap(), CheckIn::Invalid);
}

// ---------------------------------------------------------------------------------------
// 3. Every write is safe to retry

/// A door scanner whose first answer was lost retries under its operation key: `Admitted`
/// again (replayed), never `AlreadyCheckedIn`; a retried cancellation answers the same
/// refund; a retried unblock `Unblocked`, not `Unknown`; a retried join the same place.
/// Nothing happens twice. The same key for another command is a typed error and changes
/// nothing; a refusal is not recorded.
async fn a_retried_write_answers_its_first_answer<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(6)).await;
    h.buy(&HoldRequest::seats(k("gig"), a("ann"), r("a1"), 3)).await;
    let creds: Vec<String> =
        h.e.tickets(&k("gig"), &r("a1")).await.unwrap().into_iter().map(|t| t.credential).collect();

    let scan = key("scanner-1/e-17");
    let first = h.e.with_op_key(&scan).check_in(&k("gig"), &creds[0]).await.unwrap();
    assert!(matches!(first.answer, CheckIn::Admitted { .. }) && !first.replayed);
    h.drain().await;
    let before = h.fingerprint().await;
    let retry = h.e.with_op_key(&scan).check_in(&k("gig"), &creds[0]).await.unwrap();
    assert_eq!((retry.answer, retry.replayed), (first.answer.clone(), true), "the rightful holder gets in");
    assert_eq!(h.fingerprint().await, before, "a replay changes nothing and emits nothing");
    // The same key for another ticket: refused, nothing changed.
    match h.e.with_op_key(&scan).check_in(&k("gig"), &creds[1]).await {
        Err(OpError::OpKeyReused { op_key, .. }) => assert_eq!(op_key, scan),
        other => panic!("a key used for another command: {other:?}"),
    }
    assert_eq!(h.fingerprint().await, before);

    let c = key("desk/cancel-1");
    let cancelled = h.e.with_op_key(&c).cancel(&k("gig"), &r("a1"), Some(&[2])).await.unwrap();
    assert_eq!(cancelled.answer, CancelOutcome::Cancelled { refund: eur("10.00"), seats: 1, provider_ref: None });
    let again = h.e.with_op_key(&c).cancel(&k("gig"), &r("a1"), Some(&[2])).await.unwrap();
    assert_eq!((again.answer, again.replayed), (cancelled.answer, true), "the same refund, not Noop");
    assert_eq!(h.e.cancel(&k("gig"), &r("a1"), Some(&[2])).await.unwrap(), CancelOutcome::Noop, "without a key");
    assert!(matches!(
        h.e.with_op_key(&c).cancel(&k("gig"), &r("a1"), Some(&[1])).await,
        Err(OpError::OpKeyReused { .. })
    ));
    // A refusal is not recorded: the key stays free.
    let refused = key("desk/cancel-2");
    assert!(matches!(
        h.e.with_op_key(&refused).cancel(&k("gig"), &r("a1"), Some(&[9])).await,
        Err(OpError::Refused(CancelRefusal::BadTicket { index: 9 }))
    ));
    let ok = h.e.with_op_key(&refused).cancel(&k("gig"), &r("a1"), Some(&[1])).await.unwrap();
    assert!(matches!(ok.answer, CancelOutcome::Cancelled { seats: 1, .. }) && !ok.replayed);

    let (blk, unblk) = (key("ops/block-1"), key("ops/unblock-1"));
    assert_eq!(
        h.e.with_op_key(&blk).block(&k("gig"), &b("press"), 2, None).await.unwrap().answer,
        BlockOutcome::Blocked
    );
    let lifted = h.e.with_op_key(&unblk).unblock(&k("gig"), &b("press")).await.unwrap();
    assert_eq!((lifted.answer, lifted.replayed), (BlockOutcome::Unblocked, false));
    let retried = h.e.with_op_key(&unblk).unblock(&k("gig"), &b("press")).await.unwrap();
    assert_eq!((retried.answer, retried.replayed), (BlockOutcome::Unblocked, true), "not `Unknown`");

    let join = key("web/join-1");
    h.buy(&HoldRequest::seats(k("gig"), a("bob"), r("b1"), 4)).await; // sold out: 2 + 4
    let joined = h.e.with_op_key(&join).join_waitlist(&k("gig"), &a("cat"), None, 1).await.unwrap();
    let rejoined = h.e.with_op_key(&join).join_waitlist(&k("gig"), &a("cat"), None, 1).await.unwrap();
    assert_eq!((rejoined.answer, rejoined.replayed), (joined.answer, true));
    h.check_dims("gig").await;
}

// ---------------------------------------------------------------------------------------
// 4. Prices are the seller's, also without tiers

/// An occurrence without tiers opened with a seat price: the amount is `price × quantity`;
/// a request may omit it; one that carries another amount or currency answers
/// `PriceChanged` and changes nothing (the HTTP example's buyer at 0.01 gets no seat).
async fn a_buyer_cannot_set_the_price<S: AsyncStore>(h: H<S>) {
    h.open("eve", priced(4)).await;
    h.drain().await;
    let before = h.fingerprint().await;
    for shown in [eur("0.01"), usd("20.00")] {
        let cheap = HoldRequest::new(k("eve"), a("bob"), r("b1"), shown).with_quantity(2);
        assert_eq!(h.request(&cheap).await, RequestOutcome::PriceChanged { price: eur("20.00") });
        let seats = HoldRequest::seats(k("eve"), a("bob"), r("b1"), 2).expecting(shown);
        assert_eq!(h.request(&seats).await, RequestOutcome::PriceChanged { price: eur("20.00") });
    }
    assert_eq!(h.fingerprint().await, before, "a price_changed answer changes nothing");
    assert_eq!(h.hold(&HoldRequest::seats(k("eve"), a("bob"), r("b1"), 2)).await, eur("20.00"));
    assert_eq!(h.hold(&HoldRequest::new(k("eve"), a("cat"), r("c1"), eur("10.00"))).await, eur("10.00"));
    // Without a seat price a request must carry its amount (Part 1 unchanged).
    h.open("plain", cfg(4, 600)).await;
    let seats = HoldRequest::seats(k("plain"), a("bob"), r("p1"), 1);
    assert!(matches!(h.e.request(&seats).await, Err(OpError::Refused(RequestRefusal::PriceRequired))));
    assert_eq!(h.hold(&HoldRequest::new(k("plain"), a("bob"), r("p1"), eur("3.00"))).await, eur("3.00"));
    // A seat price is for an occurrence without tiers.
    let both = cfg(4, 600).with_tiers(vec![tier("std", "1.00")]).with_seat_price(eur("1.00"));
    assert!(h.e.open(&k("both"), both).await.is_err());
}

// ---------------------------------------------------------------------------------------
// 5. The shop decides the refund; the waiting list can be read; Full names what was short

/// `cancel` with the shop's refund (50% of a ticket's share): the answer, the
/// `refund_required` event and the ledger carry the refund given, with the provider ref; a
/// refund over the share or in another currency is a typed error and changes nothing; the
/// last cancellation's share is the rest of what was paid, whatever was refunded before.
async fn the_shop_decides_the_refund<S: AsyncStore>(h: H<S>) {
    h.open("eve", priced(4)).await;
    h.hold(&HoldRequest::seats(k("eve"), a("ann"), r("a1"), 2)).await;
    assert_eq!(
        h.settle(&paid_with("eve", "ann", "a1", eur("20.00"), "pi_a1")).await,
        Settlement::Confirmed { replayed: false }
    );
    h.drain().await;
    let before = h.fingerprint().await;
    let too_much = h.e.cancel_refunding(&k("eve"), &r("a1"), Some(&[1]), eur("10.01")).await;
    assert!(matches!(too_much, Err(OpError::Refused(CancelRefusal::RefundTooLarge { max })) if max == eur("10.00")));
    let dollars = h.e.cancel_refunding(&k("eve"), &r("a1"), Some(&[1]), usd("5.00")).await;
    assert!(matches!(dollars, Err(OpError::Refused(CancelRefusal::RefundCurrency { .. }))));
    assert_eq!(h.fingerprint().await, before, "a refused refund changes nothing");

    let half = h.e.cancel_refunding(&k("eve"), &r("a1"), Some(&[1]), eur("5.00")).await.unwrap();
    assert_eq!(half, CancelOutcome::Cancelled { refund: eur("5.00"), seats: 1, provider_ref: Some(pr("pi_a1")) });
    let events = h.drain().await;
    let refunds: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::RefundRequired { reason: NoHoldReason::Cancelled, amount, provider_ref, .. } => {
                Some((*amount, provider_ref.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(refunds, [(Some(amt("5.00")), Some(pr("pi_a1")))]);
    // The last seat's share is the rest of what was paid (10.00), not of what was refunded.
    let rest = h.e.cancel(&k("eve"), &r("a1"), Some(&[0])).await.unwrap();
    assert_eq!(rest, CancelOutcome::Cancelled { refund: eur("10.00"), seats: 1, provider_ref: Some(pr("pi_a1")) });
    let ledger = h.e.ledger(&k("eve")).await.unwrap();
    let given: Vec<_> = ledger.entries.iter().filter(|e| e.kind == EntryKind::Refund).map(|e| e.amount).collect();
    assert_eq!(given, [Some(amt("5.00")), Some(amt("10.00"))]);
    assert_eq!(ledger.net(cur("EUR")), Some(amt("5.00")), "20 paid, 15 given back: the shop keeps 5");
}

/// `waitlist_of` lists the entries waiting, in order, with their place on their tier's
/// list, and the live offers with their expiry; `Full` names the capacity that was short:
/// the tier's cap (20 of a total of 100), a pool's, or the total.
async fn the_waiting_list_can_be_read_and_full_names_what_was_short<S: AsyncStore>(h: H<S>) {
    let config = cfg(100, 600).with_tiers(vec![tier("std", "10.00").with_capacity(20), tier("vip", "50.00")]);
    h.open("show", config).await;
    h.hold(&order("show", "ann", "a1", &[("std", 20)])).await;
    let full = h.request(&order("show", "bob", "b1", &[("std", 1)])).await;
    assert_eq!(full, RequestOutcome::Full { capacity: 20, tier: Some(t("std")), short: Dim::Tier(t("std")) });
    h.e.join_waitlist(&k("show"), &a("bob"), Some(&t("std")), 2).await.unwrap();
    h.e.join_waitlist(&k("show"), &a("cat"), Some(&t("std")), 1).await.unwrap();
    h.e.join_waitlist(&k("show"), &a("dan"), Some(&t("vip")), 1).await.unwrap();
    let wl = h.e.waitlist_of(&k("show")).await.unwrap();
    let names: Vec<(&str, Option<&str>, u32, usize)> = wl
        .entries
        .iter()
        .map(|e| (e.actor.as_str(), e.tier.as_ref().map(|t| t.as_str()), e.seats, e.position))
        .collect();
    // dan waits for vip, which has room: he was offered seats at once.
    assert_eq!(names, [("bob", Some("std"), 2, 1), ("cat", Some("std"), 1, 2)]);
    assert_eq!(wl.offers.len(), 1);
    assert_eq!((wl.offers[0].actor.as_str(), wl.offers[0].seats), ("dan", 1));
    // ann's hold fails: 20 std seats free up, bob then cat are offered theirs.
    assert_eq!(h.settle(&failed("show", "ann", "a1")).await, Settlement::Released);
    let wl = h.e.waitlist_of(&k("show")).await.unwrap();
    assert!(wl.entries.is_empty(), "{wl:?}");
    let offered: Vec<(&str, u32)> = wl.offers.iter().map(|o| (o.actor.as_str(), o.seats)).collect();
    assert_eq!(offered, [("bob", 2), ("cat", 1), ("dan", 1)]);
    assert!(wl.offers.iter().all(|o| o.expires_at == h.now() + time::Duration::seconds(600)));
    assert!(h.e.waitlist_of(&k("nowhere")).await.is_err());
}

// ---------------------------------------------------------------------------------------
// 6. Two charges answered as one

/// `paid` (no provider ref) confirms; `paid` with `p1` is its redelivery (and names it); `paid`
/// with `p2` is a second charge: `duplicate_payment`, refunded once, replayed after.
async fn two_charges_are_two_payments<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(2)).await;
    h.hold(&HoldRequest::seats(k("gig"), a("ann"), r("r1"), 1)).await;
    let p = |provider: Option<&str>| {
        let res = PaymentResult::paid(k("gig"), a("ann"), r("r1"));
        match provider {
            Some(x) => res.with_provider_ref(pr(x)),
            None => res,
        }
    };
    assert_eq!(h.settle(&p(None)).await, Settlement::Confirmed { replayed: false });
    assert_eq!(h.settle(&p(Some("p1"))).await, Settlement::Confirmed { replayed: true });
    let second = h.settle(&p(Some("p2"))).await;
    assert!(
        matches!(&second, Settlement::PaidButNoHold { refund, replayed: false }
            if refund.reason == NoHoldReason::DuplicatePayment && refund.amount == Some(amt("10.00"))),
        "{second:?}"
    );
    assert!(matches!(h.settle(&p(Some("p2"))).await, Settlement::PaidButNoHold { replayed: true, .. }));
    assert_eq!(h.settle(&p(Some("p1"))).await, Settlement::Confirmed { replayed: true });
    let ledger = h.e.ledger(&k("gig")).await.unwrap();
    assert_eq!(ledger.net(cur("EUR")), Some(amt("10.00")), "two charges in, one refunded");
}

// ---------------------------------------------------------------------------------------
// 7. The waiting list's seats when no sweep has run

/// Capacity 2; ann holds 1; bob waits for 2; ann's hold lapses and no sweep runs: cat's
/// walk-in is `Full` and bob is offered both seats in its commit.
async fn a_walk_in_does_not_take_seats_owed_to_the_list<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(2)).await;
    h.hold(&HoldRequest::seats(k("gig"), a("ann"), r("a1"), 1)).await;
    assert!(h.e.join_waitlist(&k("gig"), &a("bob"), None, 2).await.unwrap().position == 1);
    h.advance(601);
    let av = h.avail("gig").await;
    assert_eq!((av.available, av.offered), (0, 2));
    let cat = h.request(&HoldRequest::seats(k("gig"), a("cat"), r("c1"), 1)).await;
    assert!(matches!(cat, RequestOutcome::Full { .. }), "{cat:?}");
    let wl = h.e.waitlist_of(&k("gig")).await.unwrap();
    assert_eq!(wl.offers.iter().map(|o| (o.actor.as_str(), o.seats)).collect::<Vec<_>>(), [("bob", 2)]);
    // bob's request takes his offer.
    h.hold(&HoldRequest::seats(k("gig"), a("bob"), r("b1"), 2)).await;
    h.check_dims("gig").await;
}

/// Capacity 1; ann holds; bob waits; the hold lapses, no sweep: ann's own new request is
/// `Full` (bob is owed the seat), bob's takes it.
async fn the_lapsed_holder_does_not_jump_the_queue<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(1)).await;
    h.hold(&HoldRequest::seats(k("gig"), a("ann"), r("a1"), 1)).await;
    h.e.join_waitlist(&k("gig"), &a("bob"), None, 1).await.unwrap();
    h.advance(601);
    let again = h.request(&HoldRequest::seats(k("gig"), a("ann"), r("a2"), 1)).await;
    assert!(matches!(again, RequestOutcome::Full { .. }), "{again:?}");
    h.hold(&HoldRequest::seats(k("gig"), a("bob"), r("b1"), 1)).await;
    h.check_dims("gig").await;
}

/// The same for a block: capacity 2, ann holds 1, bob waits for 2, the hold lapses, no
/// sweep: a 1-seat block is `Full` and bob is offered both seats in its commit.
async fn a_block_does_not_take_seats_owed_to_the_list<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(2)).await;
    h.hold(&HoldRequest::seats(k("gig"), a("ann"), r("a1"), 1)).await;
    h.e.join_waitlist(&k("gig"), &a("bob"), None, 2).await.unwrap();
    h.advance(601);
    assert_eq!(h.e.block(&k("gig"), &b("desk"), 1, None).await.unwrap(), BlockOutcome::Full);
    let wl = h.e.waitlist_of(&k("gig")).await.unwrap();
    assert_eq!(wl.offers.iter().map(|o| (o.actor.as_str(), o.seats)).collect::<Vec<_>>(), [("bob", 2)]);
    h.check_dims("gig").await;
}

/// Offering first reads one batch of the oldest due records, not all of them: with 100
/// lapsed holds and bob waiting, cat's walk-in offers bob his 2 seats (from the oldest
/// lapsed holds) and is then served; the holds not read still count until the sweep frees
/// them, and the counters stay exact.
async fn offering_first_behind_many_lapsed_holds<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(100)).await;
    for i in 0..100 {
        h.hold(&HoldRequest::seats(k("gig"), a(&format!("fan-{i}")), r(&format!("f{i}")), 1)).await;
    }
    h.e.join_waitlist(&k("gig"), &a("bob"), None, 2).await.unwrap();
    h.advance(601);
    assert!(matches!(
        h.request(&HoldRequest::seats(k("gig"), a("cat"), r("c1"), 1)).await,
        RequestOutcome::AwaitingPayment { .. }
    ));
    let wl = h.e.waitlist_of(&k("gig")).await.unwrap();
    assert_eq!(wl.offers.iter().map(|o| (o.actor.as_str(), o.seats)).collect::<Vec<_>>(), [("bob", 2)]);
    h.check_dims("gig").await;
    h.e.expire_due(usize::MAX).await.unwrap();
    let av = h.avail("gig").await;
    assert_eq!((av.held, av.offered, av.available), (1, 2, 97));
    h.check_dims("gig").await;
}

/// A waiting actor first in line whose request takes the freed seats (no sweep ran, so no
/// offer was made yet) leaves the list: when it then fails, the seat is not offered to it
/// again.
async fn a_placed_request_leaves_the_waiting_list<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(1)).await;
    h.hold(&HoldRequest::seats(k("gig"), a("ann"), r("a1"), 1)).await;
    h.e.join_waitlist(&k("gig"), &a("bob"), None, 1).await.unwrap();
    h.advance(601);
    h.hold(&HoldRequest::seats(k("gig"), a("bob"), r("b1"), 1)).await;
    let wl = h.e.waitlist_of(&k("gig")).await.unwrap();
    assert!(wl.entries.is_empty() && wl.offers.is_empty(), "{wl:?}");
    h.drain().await;
    assert_eq!(h.settle(&failed("gig", "bob", "b1")).await, Settlement::Released);
    let offered = h.drain().await.iter().filter(|e| matches!(e.event.kind, EventKind::WaitlistOffered { .. })).count();
    assert_eq!(offered, 0, "bob had his turn");
    assert_eq!(h.avail("gig").await.available, 1);
}

/// Operation keys are retention-bound like payment records: `prune` forgets those first
/// used before its horizon, and a retry after that is carried out afresh.
async fn operation_keys_are_pruned_with_the_horizon<S: AsyncStore>(h: H<S>) {
    h.open("gig", priced(3)).await;
    let key = key("ops/block");
    h.e.with_op_key(&key).block(&k("gig"), &b("desk"), 1, None).await.unwrap();
    h.advance(3_600);
    let pruned = h.e.prune(&k("gig"), h.now() - time::Duration::seconds(60)).await.unwrap();
    assert_eq!(pruned.op_keys, 1);
    let again = h.e.with_op_key(&key).unblock(&k("gig"), &b("desk")).await.unwrap();
    assert_eq!((again.answer, again.replayed), (BlockOutcome::Unblocked, false), "a pruned key is free again");
}

on_both_stores!(
    a_ticket_opens_only_its_own_occurrences_door,
    a_retried_write_answers_its_first_answer,
    a_buyer_cannot_set_the_price,
    the_shop_decides_the_refund,
    the_waiting_list_can_be_read_and_full_names_what_was_short,
    two_charges_are_two_payments,
    a_walk_in_does_not_take_seats_owed_to_the_list,
    a_block_does_not_take_seats_owed_to_the_list,
    offering_first_behind_many_lapsed_holds,
    the_lapsed_holder_does_not_jump_the_queue,
    a_placed_request_leaves_the_waiting_list,
    operation_keys_are_pruned_with_the_horizon,
);
