//! Assigned seating (`seathold::seating`; issue "Assigned seating"): seat maps, chosen seats
//! (all or none), best available (adjacent, rows in quality order, nearest the middle, first
//! without stranding a single seat, never split), `no_single_gaps`, tickets naming their
//! seats, every path that ends a claim freeing exactly its seats, blocks of named seats,
//! revival only onto a hold's own seats, the seat map read, typed refusals that change
//! nothing, and an operation reading and writing only the rows it touches.
//!
//! Every generic body runs on MemoryStore and, with `SEATHOLD_PG_URL` (feature `postgres`),
//! on PostgreSQL. The concurrent cases (two buyers on one seat, best available against a
//! chosen seat, a cancellation or a lapse against a request) are explored ordering by ordering
//! in `seathold::conformance::interleave` (tests/store_conformance.rs and the PostgreSQL and
//! SQLite suites).

use crate::part2_support;

use part2_support::*;
use seathold::catalogue::{BlockOutcome, BlockRefusal, ConfigError, LatePayment, OccurrenceConfig};
use seathold::contract::{RowName, SectionName};
use seathold::holds::{CancelOutcome, HoldRequest, HoldState, RequestOutcome, RequestRefusal};
use seathold::seating::{RowSpec, SeatChoice, SeatError, SeatId, SeatMap, Section};
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::tickets::TicketStatus;
use seathold::waitlist::WaitlistRefusal;
use seathold::{OpError, OpenRefusal};

// ---------------------------------------------------------------------------------------
// Helpers

const O: &str = "hall";

/// Section `A` (tier `a`, 10.00) with rows `1` and `2` of `seats` seats each, better first;
/// section `B` (tier `b`, 5.00) with one row `1` of 4; and an unseated tier `standing`.
fn map(seats: u16, no_single_gaps: bool) -> SeatMap {
    let row = |name: &str, seats: u16| RowSpec { row: RowName::new(name).unwrap(), seats };
    SeatMap {
        sections: vec![
            Section {
                section: SectionName::new("A").unwrap(),
                tier: t("a"),
                rows: vec![row("1", seats), row("2", seats)],
            },
            Section { section: SectionName::new("B").unwrap(), tier: t("b"), rows: vec![row("1", 4)] },
        ],
        no_single_gaps,
    }
}

fn hall_with(map: SeatMap) -> OccurrenceConfig {
    cfg(100, 600)
        .with_tiers(vec![tier("a", "10.00"), tier("b", "5.00"), tier("standing", "3.00")])
        .with_seating(map)
        .with_tickets(true)
}

fn hall() -> OccurrenceConfig {
    hall_with(map(6, false))
}

fn sid(s: &str) -> SeatId {
    SeatId::parse(s).unwrap()
}

fn sids(ids: &[&str]) -> Vec<SeatId> {
    ids.iter().map(|s| sid(s)).collect()
}

fn chosen(actor: &str, hold_ref: &str, seats: &[&str]) -> HoldRequest {
    HoldRequest::seated(k(O), a(actor), r(hold_ref), SeatChoice::Chosen(sids(seats)))
}

fn best(actor: &str, hold_ref: &str, tier: &str, quantity: u32) -> HoldRequest {
    HoldRequest::seated(k(O), a(actor), r(hold_ref), SeatChoice::Best { tier: t(tier), quantity })
}

impl<S: AsyncStore> H<S> {
    /// Request and expect a fresh hold; answers its seats.
    async fn seats_of(&self, req: &HoldRequest) -> Vec<String> {
        match self.request(req).await {
            RequestOutcome::AwaitingPayment { replayed: false, seat_ids, .. } => {
                seat_ids.iter().map(ToString::to_string).collect()
            }
            other => panic!("{req:?}: expected a fresh hold, got {other:?}"),
        }
    }

    /// The map read as `SECTION-ROW: chars` lines.
    async fn map_text(&self) -> Vec<String> {
        let view = self.e.seat_map(&k(O)).await.unwrap().expect("a seated occurrence");
        view.sections
            .iter()
            .flat_map(|(s, rows)| rows.iter().map(move |(r, chars)| format!("{s}-{r}: {chars}")))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Chosen seats

/// Two buyers name overlapping seats: the first gets all of hers, the second is told which
/// seat is taken and nothing of his is held; seats count against the total and the tier.
async fn chosen_seats_are_all_or_none<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    assert_eq!(h.seats_of(&chosen("ann", "r1", &["A-1-3", "A-1-4"])).await, ["A-1-3", "A-1-4"]);
    let before = h.fingerprint().await;
    let out = h.request(&chosen("bob", "r2", &["A-1-5", "A-1-4"])).await;
    assert_eq!(out, RequestOutcome::SeatTaken { seat: sid("A-1-4") });
    assert_eq!(h.fingerprint().await, before, "a refused seated request changed something");
    assert_eq!(h.seats_of(&chosen("bob", "r2", &["A-1-5"])).await, ["A-1-5"]);
    assert_eq!(h.map_text().await, ["A-1: ..HHH.", "A-2: ......", "B-1: ...."]);
    assert_eq!(h.tier_avail(O, "a").await, 12 - 3);
    assert_eq!(h.avail(O).await.held, 3);
    // A retried request answers the same seats, writing nothing.
    let before = h.fingerprint().await;
    match h.request(&chosen("ann", "r1", &["A-1-3", "A-1-4"])).await {
        RequestOutcome::AwaitingPayment { replayed: true, seat_ids, .. } => {
            assert_eq!(seat_ids, sids(&["A-1-3", "A-1-4"]))
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(h.fingerprint().await, before);
    h.check_dims(O).await;
}

/// With `no_single_gaps`, a choice that would leave one free seat alone between taken seats
/// (or a wall) is refused naming that seat; one that leaves none alone is taken.
async fn no_single_gaps_refuses_a_stranding_choice<S: AsyncStore>(h: H<S>) {
    h.open(O, hall_with(map(6, true))).await;
    let before = h.fingerprint().await;
    assert_eq!(
        h.request(&chosen("ann", "r1", &["A-1-2", "A-1-3"])).await,
        RequestOutcome::SingleGap { seat: sid("A-1-1") }
    );
    assert_eq!(h.fingerprint().await, before);
    assert_eq!(h.seats_of(&chosen("ann", "r1", &["A-1-1", "A-1-2", "A-1-3"])).await, ["A-1-1", "A-1-2", "A-1-3"]);
    // 4-5 would strand 6.
    assert_eq!(
        h.request(&chosen("bob", "r2", &["A-1-4", "A-1-5"])).await,
        RequestOutcome::SingleGap { seat: sid("A-1-6") }
    );
    // Without the option the same choice is fine.
    h.e.open(&k("free"), hall()).await.unwrap();
    let mut req = chosen("ann", "r1", &["A-1-2", "A-1-3"]);
    req.occ_key = k("free");
    assert!(matches!(h.request(&req).await, RequestOutcome::AwaitingPayment { .. }));
    h.check_dims(O).await;
}

// ---------------------------------------------------------------------------------------
// Best available

/// Best available takes adjacent seats in the best row, nearest its middle, first without
/// stranding a single seat; only when every block would strand one does it take the nearest
/// block anyway; a group is never split over rows or gaps.
async fn best_available_is_adjacent_central_and_never_splits<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    assert_eq!(h.seats_of(&best("ann", "r1", "a", 2)).await, ["A-1-3", "A-1-4"]);
    // 1-2 and 5-6 are equally central: the lower wins.
    assert_eq!(h.seats_of(&best("bob", "r2", "a", 2)).await, ["A-1-1", "A-1-2"]);
    // Row 1 has only 5-6 left, so three seats go to row 2: the central 2-4 would strand
    // seat 1, so the nearest block that strands nothing (1-3 and 4-6 tie: the lower).
    assert_eq!(h.seats_of(&best("cat", "r3", "a", 3)).await, ["A-2-1", "A-2-2", "A-2-3"]);
    // One seat: either seat of row 1 would strand the other; row 2's 4 strands nothing.
    assert_eq!(h.seats_of(&best("dan", "r4", "a", 1)).await, ["A-2-4"]);
    // Four seats of tier a are free (A-1-5..6, A-2-5..6), but no three side by side: full,
    // and nothing changed (a group is never split).
    let before = h.fingerprint().await;
    match h.request(&best("eve", "r5", "a", 3)).await {
        RequestOutcome::Full { tier, .. } => assert_eq!(tier, Some(t("a"))),
        other => panic!("expected full, got {other:?}"),
    }
    assert_eq!(h.fingerprint().await, before);
    assert_eq!(h.seats_of(&best("eve", "r5", "a", 2)).await, ["A-1-5", "A-1-6"]);
    // Only A-2-5..6 left: either single seat strands the other, so the second pass takes
    // the one nearer the middle.
    assert_eq!(h.seats_of(&best("fay", "r6", "a", 1)).await, ["A-2-5"]);
    assert_eq!(h.map_text().await, ["A-1: HHHHHH", "A-2: HHHHH.", "B-1: ...."]);
    // Section B is its own tier.
    assert_eq!(h.seats_of(&best("gus", "r7", "b", 4)).await, ["B-1-1", "B-1-2", "B-1-3", "B-1-4"]);
    // A best-available request retried after a lost answer answers the seats it got, though
    // the map has changed since (its own seats are now taken), and writes nothing.
    let before = h.fingerprint().await;
    match h.request(&best("ann", "r1", "a", 2)).await {
        RequestOutcome::AwaitingPayment { replayed: true, seat_ids, .. } => {
            assert_eq!(seat_ids, sids(&["A-1-3", "A-1-4"]));
        }
        other => panic!("a retried best-available request: expected its first seats, got {other:?}"),
    }
    assert_eq!(h.fingerprint().await, before, "a replayed best-available request changed something");
    h.check_dims(O).await;
}

/// Under `no_single_gaps`, best available never strands a seat: when every block would, the
/// answer is full.
async fn best_available_under_no_single_gaps_never_strands<S: AsyncStore>(h: H<S>) {
    h.open(O, hall_with(map(3, true))).await;
    // Row of 3: two seats would strand the third; three fit exactly.
    match h.request(&best("ann", "r1", "a", 2)).await {
        RequestOutcome::Full { .. } => {}
        other => panic!("expected full (every pair strands a seat), got {other:?}"),
    }
    assert_eq!(h.seats_of(&best("ann", "r1", "a", 3)).await, ["A-1-1", "A-1-2", "A-1-3"]);
    // One seat of a free row of 3: the middle would strand both ends; 1 and 3 tie.
    assert_eq!(h.seats_of(&best("bob", "r2", "a", 1)).await, ["A-2-1"]);
}

// ---------------------------------------------------------------------------------------
// After the sale

/// Tickets name their seats; cancelling one ticket frees exactly its seat; cancelling the
/// rest frees theirs; a failed payment and an expiry free exactly their holds' seats.
async fn every_end_frees_exactly_its_seats<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-1", "A-1-2", "A-1-3"])).await;
    h.pay(O, "ann", "r1").await;
    let tickets = h.e.tickets(&k(O), &r("r1")).await.unwrap();
    let seats: Vec<String> = tickets.iter().map(|t| t.seat.as_ref().unwrap().to_string()).collect();
    assert_eq!(seats, ["A-1-1", "A-1-2", "A-1-3"], "tickets name their seats, in order");
    assert_eq!(h.map_text().await[0], "A-1: SSS...");

    // Cancel the middle ticket: its seat, and only it, is free.
    match h.e.cancel(&k(O), &r("r1"), Some(&[1])).await.unwrap() {
        CancelOutcome::Cancelled { seats: 1, .. } => {}
        other => panic!("expected one seat cancelled, got {other:?}"),
    }
    assert_eq!(h.map_text().await[0], "A-1: S.S...");
    let tickets = h.e.tickets(&k(O), &r("r1")).await.unwrap();
    assert_eq!(tickets[1].status, TicketStatus::Cancelled);
    assert_eq!(h.seats_of(&chosen("bob", "r2", &["A-1-2"])).await, ["A-1-2"]);

    // A failed payment frees bob's seat; an expiry frees cat's.
    assert!(matches!(h.settle(&failed(O, "bob", "r2")).await, Settlement::Released));
    h.seats_of(&chosen("cat", "r3", &["A-2-1", "A-2-2"])).await;
    assert_eq!(h.map_text().await[..2], ["A-1: S.S...", "A-2: HH...."]);
    h.advance(601);
    assert_eq!(h.map_text().await[1], "A-2: ......", "a lapsed hold's seats read free before any sweep");
    assert_eq!(h.e.expire_due(100).await.unwrap(), 1);
    assert_eq!(h.booking(O, "r3").await.state, HoldState::Expired);
    assert_eq!(h.seats_of(&chosen("dan", "r4", &["A-2-1"])).await, ["A-2-1"]);

    // Cancel the rest of ann's booking.
    assert!(matches!(h.e.cancel(&k(O), &r("r1"), None).await.unwrap(), CancelOutcome::Cancelled { seats: 2, .. }));
    assert_eq!(h.map_text().await[..2], ["A-1: ......", "A-2: H....."]);
    h.check_dims(O).await;
}

/// A lapsed hold's seat can be taken before any sweep, and the taker is never undone by the
/// sweep that expires the lapsed hold afterwards.
async fn a_lapsed_seat_is_free_to_take_and_the_sweep_respects_the_taker<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-1", "A-1-2"])).await;
    h.advance(601);
    assert_eq!(h.seats_of(&chosen("bob", "r2", &["A-1-2", "A-1-3"])).await, ["A-1-2", "A-1-3"]);
    h.e.expire_due(100).await.unwrap();
    assert_eq!(h.booking(O, "r1").await.state, HoldState::Expired);
    assert_eq!(h.map_text().await[0], "A-1: .HH...", "the sweep freed ann's seat, not bob's");
    h.check_dims(O).await;
}

/// Under `late_payment: revive`, a late payment revives a hold onto its own seats when they
/// are all still free, and is a refund signal when any was taken.
async fn revival_is_only_onto_the_holds_own_seats<S: AsyncStore>(h: H<S>) {
    h.open(O, hall().with_late_payment(LatePayment::Revive)).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-1", "A-1-2"])).await;
    h.seats_of(&chosen("bob", "r2", &["A-2-1"])).await;
    h.advance(601);
    h.e.expire_due(100).await.unwrap();
    // Cat takes one of ann's seats; bob's are untouched.
    h.seats_of(&chosen("cat", "r3", &["A-1-2"])).await;
    match h.settle(&paid(O, "ann", "r1")).await {
        Settlement::PaidButNoHold { .. } => {}
        other => panic!("ann's seat was taken: expected a refund signal, got {other:?}"),
    }
    assert_eq!(h.booking(O, "r1").await.state, HoldState::Expired);
    assert_eq!(h.settle(&paid(O, "bob", "r2")).await, Settlement::Confirmed { replayed: false });
    assert_eq!(h.booking(O, "r2").await.seat_ids, sids(&["A-2-1"]));
    assert_eq!(h.map_text().await[..2], ["A-1: .H....", "A-2: S....."]);
    h.check_dims(O).await;
}

/// Blocks of named seats take exactly those seats (all or none); unblocking frees them; a
/// counted block on a seated tier is refused, typed.
async fn blocks_of_named_seats<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-1"])).await;
    let before = h.fingerprint().await;
    assert_eq!(
        h.e.block_seats(&k(O), &b("desk"), &sids(&["A-1-2", "A-1-1"])).await.unwrap(),
        BlockOutcome::SeatTaken { seat: sid("A-1-1") }
    );
    assert_eq!(h.fingerprint().await, before);
    assert_eq!(h.e.block_seats(&k(O), &b("desk"), &sids(&["A-1-5", "A-1-6"])).await.unwrap(), BlockOutcome::Blocked);
    assert_eq!(h.map_text().await[0], "A-1: H...BB");
    assert_eq!(h.avail(O).await.blocked, 2);
    assert_eq!(h.request(&chosen("bob", "r2", &["A-1-6"])).await, RequestOutcome::SeatTaken { seat: sid("A-1-6") });
    match h.e.block(&k(O), &b("crew"), 2, Some(&t("a"))).await {
        Err(OpError::Refused(BlockRefusal::Seat(SeatError::SeatedTier(tier)))) => assert_eq!(tier, t("a")),
        other => panic!("a counted block on a seated tier: expected SeatedTier, got {other:?}"),
    }
    assert_eq!(h.e.unblock(&k(O), &b("desk")).await.unwrap(), BlockOutcome::Unblocked);
    assert_eq!(h.map_text().await[0], "A-1: H.....");
    assert_eq!(h.seats_of(&chosen("bob", "r2", &["A-1-6"])).await, ["A-1-6"]);
    h.check_dims(O).await;
}

// ---------------------------------------------------------------------------------------
// Refusals

/// Bad seated input is a typed refusal and changes nothing.
async fn bad_seated_input_is_typed_and_changes_nothing<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    h.e.open(&k("plain"), cfg(10, 600).with_tiers(vec![tier("a", "10.00")])).await.unwrap();
    let before = h.fingerprint().await;
    let refused = |e: Result<RequestOutcome, seathold::RequestError>| match e {
        Err(OpError::Refused(RequestRefusal::Seat(s))) => s,
        other => panic!("expected a seat refusal, got {other:?}"),
    };
    assert_eq!(refused(h.e.request(&chosen("ann", "r1", &["A-1-7"])).await), SeatError::UnknownSeat(sid("A-1-7")));
    assert_eq!(refused(h.e.request(&chosen("ann", "r1", &["C-1-1"])).await), SeatError::UnknownSeat(sid("C-1-1")));
    assert_eq!(
        refused(h.e.request(&chosen("ann", "r1", &["A-1-1", "A-1-1"])).await),
        SeatError::DuplicateSeat(sid("A-1-1"))
    );
    assert_eq!(refused(h.e.request(&chosen("ann", "r1", &[])).await), SeatError::NoSeats);
    // A seat id built by hand, bypassing `SeatId::parse`: seat 0 and a dashed name are
    // simply seats the map does not have.
    let zero = SeatId { section: SectionName::new("A").unwrap(), row: RowName::new("1").unwrap(), n: 0 };
    let by_hand = |s: &SeatId| HoldRequest::seated(k(O), a("ann"), r("r1"), SeatChoice::Chosen(vec![s.clone()]));
    assert_eq!(refused(h.e.request(&by_hand(&zero)).await), SeatError::UnknownSeat(zero.clone()));
    let dashed = SeatId { section: SectionName::new("A-1").unwrap(), row: RowName::new("1").unwrap(), n: 1 };
    assert_eq!(refused(h.e.request(&by_hand(&dashed)).await), SeatError::UnknownSeat(dashed.clone()));
    match h.e.block_seats(&k(O), &b("desk"), &[zero]).await {
        Err(OpError::Refused(BlockRefusal::Seat(SeatError::UnknownSeat(_)))) => {}
        other => panic!("blocking seat 0: expected an unknown seat, got {other:?}"),
    }
    assert_eq!(refused(h.e.request(&best("ann", "r1", "standing", 2)).await), SeatError::UnseatedTier(t("standing")));
    assert_eq!(refused(h.e.request(&order(O, "ann", "r1", &[("a", 1)])).await), SeatError::SeatedTier(t("a")));
    let mut elsewhere = chosen("ann", "r1", &["A-1-1"]);
    elsewhere.occ_key = k("plain");
    assert_eq!(refused(h.e.request(&elsewhere).await), SeatError::NotSeated);
    match h.e.request(&best("ann", "r1", "a", 0)).await {
        Err(OpError::Refused(RequestRefusal::BadQuantity { .. })) => {}
        other => panic!("best of 0: expected BadQuantity, got {other:?}"),
    }
    match h.e.block_seats(&k(O), &b("desk"), &sids(&["A-9-1"])).await {
        Err(OpError::Refused(BlockRefusal::Seat(SeatError::UnknownSeat(_)))) => {}
        other => panic!("expected an unknown seat, got {other:?}"),
    }
    match h.e.join_waitlist(&k(O), &a("ann"), Some(&t("a")), 2).await {
        Err(OpError::Refused(WaitlistRefusal::SeatedTier(tier))) => assert_eq!(tier, t("a")),
        other => panic!("a waiting list on a seated tier: expected SeatedTier, got {other:?}"),
    }
    // Lines of the unseated tier are still sold by count at a seated occurrence.
    assert_eq!(h.fingerprint().await, before, "a refusal changed something");
    assert!(matches!(
        h.request(&order(O, "ann", "r1", &[("standing", 2)])).await,
        RequestOutcome::AwaitingPayment { .. }
    ));
}

/// A seat map is checked when opened, and cannot change while a seated tier has holds,
/// sales or blocks.
async fn seat_maps_are_checked_and_frozen_while_in_use<S: AsyncStore>(h: H<S>) {
    let mut dashed = map(4, false);
    dashed.sections[1].section = SectionName::new("B-1").unwrap();
    match h.e.open(&k(O), hall_with(dashed)).await {
        Err(OpError::Refused(OpenRefusal::Config(ConfigError::Seating(_)))) => {}
        other => panic!("a section named with '-': expected a seating error, got {other:?}"),
    }
    let mut dup = map(4, false);
    dup.sections[1].section = SectionName::new("A").unwrap();
    match h.e.open(&k(O), hall_with(dup)).await {
        Err(OpError::Refused(OpenRefusal::Config(ConfigError::Seating(_)))) => {}
        other => panic!("a map with a section twice: expected a seating error, got {other:?}"),
    }
    let mut unknown = map(4, false);
    unknown.sections[1].tier = t("nope");
    assert!(matches!(
        h.e.open(&k(O), hall_with(unknown)).await,
        Err(OpError::Refused(OpenRefusal::Config(ConfigError::Seating(_))))
    ));
    h.open(O, hall_with(map(4, false))).await;
    // Unused: the map may change (a row more).
    h.open(O, hall_with(map(5, false))).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-5"])).await;
    let before = h.fingerprint().await;
    match h.e.open(&k(O), hall_with(map(4, false))).await {
        Err(OpError::Refused(OpenRefusal::Config(ConfigError::SeatingInUse))) => {}
        other => panic!("changing the map under a hold: expected SeatingInUse, got {other:?}"),
    }
    assert_eq!(h.fingerprint().await, before);
    // The same map again is no change.
    h.open(O, hall_with(map(5, false))).await;
}

/// Once every seat of its tiers is given back, a map may change: the rows and the sold-out
/// index hold nothing of the old one (no claim outlives its hold or block, no row stays
/// marked sold out), so the new map sells from scratch.
async fn a_map_changes_once_its_seats_are_all_given_back<S: AsyncStore>(h: H<S>) {
    h.open(O, hall_with(map(4, false))).await;
    h.seats_of(&chosen("ann", "r1", &["A-1-1", "A-1-2", "A-1-3", "A-1-4"])).await;
    h.pay(O, "ann", "r1").await;
    h.e.block_seats(&k(O), &b("desk"), &sids(&["B-1-2"])).await.unwrap();
    assert!(matches!(
        h.e.open(&k(O), hall_with(map(3, false))).await,
        Err(OpError::Refused(OpenRefusal::Config(ConfigError::SeatingInUse)))
    ));
    // Row A-1 is sold out: best available goes to row 2.
    assert_eq!(h.seats_of(&best("bob", "r2", "a", 4)).await, ["A-2-1", "A-2-2", "A-2-3", "A-2-4"]);
    assert_eq!(h.settle(&failed(O, "bob", "r2")).await, Settlement::Released);
    h.e.cancel(&k(O), &r("r1"), None).await.unwrap();
    h.e.unblock(&k(O), &b("desk")).await.unwrap();
    let index = h.store().scan(&k(O), seathold::records::RecordKind::SoldOutRows, None, 10).await.unwrap();
    assert!(
        index.iter().all(|r| matches!(&r.value, seathold::records::Record::SoldOutRows(d) if d.rows.is_empty())),
        "no row is sold out any more: {index:?}"
    );
    // Rows of 3 seats now; nothing of the old map is claimed.
    h.open(O, hall_with(map(3, false))).await;
    assert_eq!(h.map_text().await, ["A-1: ...", "A-2: ...", "B-1: ...."]);
    assert_eq!(h.seats_of(&best("cat", "r3", "a", 3)).await, ["A-1-1", "A-1-2", "A-1-3"]);
    h.check_dims(O).await;
}

/// A block of named seats retried under its operation key answers its first answer and
/// changes nothing, even after the seats went to someone else; the key under other seats is
/// refused.
async fn a_retried_seat_block_answers_its_first_answer<S: AsyncStore>(h: H<S>) {
    h.open(O, hall()).await;
    let key = seathold::contract::OpKey::new("desk-1").unwrap();
    let first = h.e.with_op_key(&key).block_seats(&k(O), &b("desk"), &sids(&["A-1-2"])).await.unwrap();
    assert_eq!((first.answer.clone(), first.replayed), (BlockOutcome::Blocked, false));
    h.e.unblock(&k(O), &b("desk")).await.unwrap();
    h.seats_of(&chosen("bob", "r2", &["A-1-2"])).await;
    let before = h.fingerprint().await;
    let retry = h.e.with_op_key(&key).block_seats(&k(O), &b("desk"), &sids(&["A-1-2"])).await.unwrap();
    assert_eq!((retry.answer, retry.replayed), (BlockOutcome::Blocked, true));
    assert_eq!(h.fingerprint().await, before, "a replayed block changed something");
    assert_eq!(h.map_text().await[0], "A-1: .H....", "bob keeps his seat");
    match h.e.with_op_key(&key).block_seats(&k(O), &b("desk"), &sids(&["A-1-3"])).await {
        Err(OpError::OpKeyReused { .. }) => {}
        other => panic!("the key under other seats: expected OpKeyReused, got {other:?}"),
    }
    h.check_dims(O).await;
}

on_both_stores!(
    a_map_changes_once_its_seats_are_all_given_back,
    a_retried_seat_block_answers_its_first_answer,
    chosen_seats_are_all_or_none,
    no_single_gaps_refuses_a_stranding_choice,
    best_available_is_adjacent_central_and_never_splits,
    best_available_under_no_single_gaps_never_strands,
    every_end_frees_exactly_its_seats,
    a_lapsed_seat_is_free_to_take_and_the_sweep_respects_the_taker,
    revival_is_only_onto_the_holds_own_seats,
    blocks_of_named_seats,
    bad_seated_input_is_typed_and_changes_nothing,
    seat_maps_are_checked_and_frozen_while_in_use,
);

// ---------------------------------------------------------------------------------------
// What an operation reads and writes

/// Section `A` (tier `a`) of 200 rows `1`..`200` of `seats` seats each, with tickets.
fn long_hall(seats: u16) -> OccurrenceConfig {
    let rows: Vec<RowSpec> = (1..=200).map(|i| RowSpec { row: RowName::new(i.to_string()).unwrap(), seats }).collect();
    let long = SeatMap {
        sections: vec![Section { section: SectionName::new("A").unwrap(), tier: t("a"), rows }],
        no_single_gaps: false,
    };
    cfg(10_000, 600).with_tiers(vec![tier("a", "10.00")]).with_seating(long).with_tickets(true)
}

/// A map of 200 rows: a chosen request reads and writes only its row; best available on an
/// empty map reads one batch of rows and writes one; a cancellation writes only its row; the
/// seat map read is the only operation that reads every row.
#[test]
fn an_operation_reads_and_writes_only_the_rows_it_touches() {
    seathold::conformance::block_on(async {
        let h = H::new(FaultyStore::default());
        let store = h.store();
        h.open(O, long_hall(20)).await;
        let take = |s: &FaultyStore| -> (Vec<String>, Vec<String>) {
            let keys = |m: &std::sync::Mutex<Vec<seathold::store::RecordKey>>| {
                std::mem::take(&mut *m.lock().unwrap()).iter().map(ToString::to_string).collect::<Vec<_>>()
            };
            (keys(&s.hook.rows_read), keys(&s.hook.rows_written))
        };
        take(store);

        h.seats_of(&chosen("ann", "r1", &["A-150-3", "A-150-4"])).await;
        let (read, written) = take(store);
        let row150 = seathold::store::RecordKey::SeatRow {
            section: SectionName::new("A").unwrap(),
            row: RowName::new("150").unwrap(),
        }
        .to_string();
        assert!(read.iter().all(|k| *k == row150) && !read.is_empty(), "a chosen request read {read:?}");
        assert_eq!(written, std::slice::from_ref(&row150));

        h.seats_of(&best("bob", "r2", "a", 4)).await;
        let (read, written) = take(store);
        assert!(read.len() <= 8, "best available on an empty map read {} rows", read.len());
        assert_eq!(written.len(), 1);

        h.pay(O, "ann", "r1").await;
        let (_, written) = take(store);
        assert_eq!(written, std::slice::from_ref(&row150), "a payment rewrites its own row (held -> sold)");
        h.e.cancel(&k(O), &r("r1"), None).await.unwrap();
        let (read, written) = take(store);
        assert_eq!(written, std::slice::from_ref(&row150));
        assert!(read.iter().all(|k| *k == row150), "a cancellation read {read:?}");

        h.e.seat_map(&k(O)).await.unwrap();
        let (read, written) = take(store);
        assert_eq!(read.len(), 200, "the map read reads every row");
        assert!(written.is_empty());
    });
}

/// Best available skips sold-out rows (every seat sold or blocked) without reading them: the
/// tier's sold-out index says which they are. A row of holds is read (a hold may lapse); a
/// cancellation in a sold-out row puts it back in the running, and best available takes it.
#[test]
fn best_available_skips_sold_out_rows_without_reading_them() {
    seathold::conformance::block_on(async {
        let h = H::new(FaultyStore::default());
        let store = h.store();
        h.open(O, long_hall(4)).await;
        let row_seats = |row: u32| -> Vec<String> { (1..=4).map(|n| format!("A-{row}-{n}")).collect() };
        for row in 1..=150 {
            let ids = row_seats(row);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            h.seats_of(&chosen(&format!("u{row}"), &format!("r{row}"), &ids)).await;
            h.pay(O, &format!("u{row}"), &format!("r{row}")).await;
        }
        // Row 151 is full of a hold (not sold out: it may lapse).
        h.seats_of(&chosen("held", "h151", &["A-151-1", "A-151-2", "A-151-3", "A-151-4"])).await;
        let read_rows = |s: &FaultyStore| -> Vec<u32> {
            std::mem::take(&mut *s.hook.rows_read.lock().unwrap())
                .iter()
                .filter_map(|k| match k {
                    seathold::store::RecordKey::SeatRow { row, .. } => row.as_str().parse().ok(),
                    _ => None,
                })
                .collect()
        };
        read_rows(store);

        assert_eq!(h.seats_of(&best("bob", "b1", "a", 2)).await, ["A-152-1", "A-152-2"]);
        let read = read_rows(store);
        // The first round reads the index and the first 8 rows; then only rows with room.
        assert!(read.iter().all(|r| *r <= 8 || *r >= 151), "best available read sold-out rows {read:?}");
        assert!(read.len() <= 16, "best available read {} rows: {read:?}", read.len());

        // A ticket cancelled in row 10 frees a seat there: the row is back in the running.
        h.e.cancel(&k(O), &r("r10"), Some(&[1, 2])).await.unwrap();
        assert_eq!(h.seats_of(&best("cat", "c1", "a", 2)).await, ["A-10-2", "A-10-3"]);
        h.check_dims(O).await;
    });
}
