//! Systematic interleavings: a few operations race through any store, and every ordering of
//! their store calls is tried, with the invariants checked after each.
//!
//! Each racer is an engine operation (a request, a payment result, a sweep, a capacity
//! change, a cancellation, a scan at the door, a block, a price change…) over a store proxy that holds every store call — every load and every commit — at
//! a gate. The scheduler lets one racer's call through at a time and runs it to its next gate
//! or its answer, so each call is one atomic step; a depth-first search over the choice
//! points enumerates **every** ordering of the steps (retries after a lost race included,
//! since they are more steps). No runtime is assumed: on a blocking store the futures are
//! polled directly; an async store (PostgreSQL) runs under the caller's runtime.
//!
//! After each ordering (and after redelivering every payment once more) it checks:
//! - **exactly once** (invariants 3, 5): every payment identity was answered non-replayed
//!   exactly once, every other delivery replayed the same outcome; one payment record per
//!   identity, and a confirmation or a refund event to match — never both;
//! - **capacity** (invariant 1): every dimension's counters (the total, each tier, each
//!   pool; held, sold, blocked, offered) equal what the records put on it under the
//!   configuration in force — bookings, blocks, waiting-list offers — and the total never
//!   passes the largest capacity the occurrence had;
//! - **fencing** (invariants 4, 6): every `hold_released` is for a ref a failure or an
//!   abandonment named; no booking ends twice;
//! - **replays write nothing**: the redeliveries add no event;
//! - **the door**: a ticket is admitted at most once, with one `checked_in` event, and never
//!   on a booking that was cancelled;
//! - **locked prices**: a live hold of a tier locked while held is at the tier's price;
//! - **the waiting list is served**: no entry without an offer fits the seats left free;
//! - and each scenario's `never`: answers that no ordering may give (a walk-in taking a seat
//!   the waiting list is owed).
//!
//! Each ordering runs on its own occurrence (`NAME-EXPLORATION-RUN`, the exploration named
//! at random), so one store serves any number of explorations one after another, also
//! from separate processes, without one meeting another's bookings. While one runs, nothing
//! else should use the store's outbox: the checks drain it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use time::Duration;

use super::engine::{engine, paid, req};
use super::fixtures::*;
use super::proxy::{AtGate, Gate, Proxy};
use crate::AsyncEngine;
use crate::catalogue::{BlockOutcome, Dim, OccurrenceConfig};
use crate::clock::ManualClock;
use crate::contract::{EventKind, OccKey, OutboxEvent, PaymentResult};
use crate::holds::{HoldState, RequestOutcome};
use crate::records::{Record, RecordKind};
use crate::settlement::Settlement;
use crate::store::AsyncStore;

/// One operation of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `actor` requests `quantity` seats under `hold_ref`.
    Request {
        /// Who.
        actor: &'static str,
        /// Under which ref.
        hold_ref: &'static str,
        /// How many seats.
        quantity: u32,
    },
    /// A `paid` result for (`actor`, `hold_ref`) with provider id `provider_ref`.
    Paid {
        /// Who paid.
        actor: &'static str,
        /// For which ref.
        hold_ref: &'static str,
        /// The provider's payment id.
        provider_ref: &'static str,
    },
    /// A `failed` result.
    Failed {
        /// Whose.
        actor: &'static str,
        /// For which ref.
        hold_ref: &'static str,
    },
    /// The buyer abandons the checkout.
    Abandon {
        /// Whose.
        actor: &'static str,
        /// Which ref.
        hold_ref: &'static str,
    },
    /// The sweep runs.
    Sweep,
    /// The occurrence is reconfigured to this capacity.
    Capacity(u32),
    /// `actor` requests one seat of `tier` (an occurrence with tiers).
    RequestTier {
        /// Who.
        actor: &'static str,
        /// Under which ref.
        hold_ref: &'static str,
        /// Which tier.
        tier: &'static str,
    },
    /// The organiser cancels the whole of booking `hold_ref`.
    Cancel {
        /// Which booking.
        hold_ref: &'static str,
    },
    /// Ticket `index` of booking `hold_ref` is scanned at the door.
    CheckIn {
        /// Which booking.
        hold_ref: &'static str,
        /// Which of its tickets.
        index: u32,
    },
    /// `actor` joins the waiting list for `seats` seats of any tier.
    Join {
        /// Who.
        actor: &'static str,
        /// How many seats.
        seats: u32,
    },
    /// The organiser blocks `n` seats (block `b`).
    Block(u32),
    /// The organiser lifts block `b`.
    Unblock,
    /// The organiser blocks `seats` seats under the name `block`.
    BlockAs {
        /// The block's name.
        block: &'static str,
        /// How many seats.
        seats: u32,
    },
    /// The organiser lifts block `block`, then blocks `seats` seats under the same name again
    /// (one racer, two operations: the record is deleted and re-created).
    Reblock {
        /// The block's name.
        block: &'static str,
        /// How many seats the new block has.
        seats: u32,
    },
    /// The organiser lifts block `block`.
    UnblockAs(&'static str),
    /// Retention: `prune` at the racer's instant (records that ended before it go).
    Prune,
    /// `actor` leaves the waiting list, then joins it again for `seats` seats (one racer, two
    /// operations).
    Rejoin {
        /// Who.
        actor: &'static str,
        /// How many seats the new entry waits for.
        seats: u32,
    },
    /// Tier `tier`'s price becomes `cents` euro cents.
    SetPrice {
        /// Which tier.
        tier: &'static str,
        /// The new price, in cents.
        cents: u64,
    },
    /// The occurrence is reconfigured to this configuration.
    Configure(OccurrenceConfig),
    /// `actor` requests the named seats (a seated occurrence), all or none.
    RequestSeats {
        /// Who.
        actor: &'static str,
        /// Under which ref.
        hold_ref: &'static str,
        /// Which seats (`SECTION-ROW-N`).
        seats: &'static [&'static str],
    },
    /// `actor` requests the best `quantity` adjacent seats of `tier`.
    RequestBest {
        /// Who.
        actor: &'static str,
        /// Under which ref.
        hold_ref: &'static str,
        /// Which tier.
        tier: &'static str,
        /// How many seats.
        quantity: u32,
    },
    /// The organiser blocks the named seats under the name `block`.
    BlockSeats {
        /// The block's name.
        block: &'static str,
        /// Which seats.
        seats: &'static [&'static str],
    },
    /// The organiser lifts block `block`, then blocks the named seats under the same name
    /// again (one racer, two operations: the block is deleted and re-created on other seats).
    ReblockSeats {
        /// The block's name.
        block: &'static str,
        /// Which seats the new block has.
        seats: &'static [&'static str],
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request { actor, hold_ref, quantity } => write!(f, "request({actor},{hold_ref},x{quantity})"),
            Self::Paid { actor, hold_ref, provider_ref } => write!(f, "paid({actor},{hold_ref},{provider_ref})"),
            Self::Failed { actor, hold_ref } => write!(f, "failed({actor},{hold_ref})"),
            Self::Abandon { actor, hold_ref } => write!(f, "abandon({actor},{hold_ref})"),
            Self::Sweep => f.write_str("sweep"),
            Self::Capacity(n) => write!(f, "capacity({n})"),
            Self::RequestTier { actor, hold_ref, tier } => write!(f, "request({actor},{hold_ref},{tier})"),
            Self::Cancel { hold_ref } => write!(f, "cancel({hold_ref})"),
            Self::CheckIn { hold_ref, index } => write!(f, "check_in({hold_ref}#{index})"),
            Self::Join { actor, seats } => write!(f, "join({actor},x{seats})"),
            Self::Block(n) => write!(f, "block({n})"),
            Self::Unblock => f.write_str("unblock"),
            Self::BlockAs { block, seats } => write!(f, "block({block},x{seats})"),
            Self::Reblock { block, seats } => write!(f, "unblock+block({block},x{seats})"),
            Self::UnblockAs(block) => write!(f, "unblock({block})"),
            Self::Rejoin { actor, seats } => write!(f, "leave+join({actor},x{seats})"),
            Self::Prune => f.write_str("prune"),
            Self::SetPrice { tier, cents } => write!(f, "set_price({tier},{cents})"),
            Self::Configure(_) => f.write_str("configure"),
            Self::RequestSeats { actor, hold_ref, seats } => {
                write!(f, "request({actor},{hold_ref},{})", seats.join("+"))
            }
            Self::RequestBest { actor, hold_ref, tier, quantity } => {
                write!(f, "request({actor},{hold_ref},best {tier} x{quantity})")
            }
            Self::BlockSeats { block, seats } => write!(f, "block({block},{})", seats.join("+")),
            Self::ReblockSeats { block, seats } => write!(f, "unblock+block({block},{})", seats.join("+")),
        }
    }
}

/// A race: an occurrence set up by `setup` (run in order), the clock moved by `advance`, then
/// `racers` run concurrently in every ordering of their store calls. (The sweep racer sweeps
/// the scenario's occurrence only, so earlier orderings on the same store cannot change its
/// steps.)
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (also the prefix of its occurrences' keys).
    pub name: &'static str,
    /// The occurrence's configuration.
    pub config: OccurrenceConfig,
    /// What happens first, one at a time.
    pub setup: Vec<Action>,
    /// How far the clock moves before the race.
    pub advance: Duration,
    /// The racers.
    pub racers: Vec<Action>,
    /// Answers that must never be given: (racer, text the answer's `Debug` starts with).
    pub never: Vec<(usize, &'static str)>,
}

fn request(actor: &'static str, hold_ref: &'static str) -> Action {
    Action::Request { actor, hold_ref, quantity: 1 }
}

fn pay(actor: &'static str, hold_ref: &'static str, provider_ref: &'static str) -> Action {
    Action::Paid { actor, hold_ref, provider_ref }
}

fn fail(actor: &'static str, hold_ref: &'static str) -> Action {
    Action::Failed { actor, hold_ref }
}

/// The standard races: the exactly-once holes found in seathold 0.1 and their neighbours.
pub fn scenarios() -> Vec<Scenario> {
    let cap = |n| config(n);
    vec![
        Scenario {
            name: "leaked-ref",
            config: cap(5),
            setup: vec![],
            advance: Duration::ZERO,
            // The ref reached the payment side before its request committed; the payment is
            // redelivered.
            racers: vec![request("ann", "r1"), pay("ann", "r1", "pi_1"), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "aba-reuse",
            config: cap(5),
            setup: vec![request("ann", "r1"), fail("ann", "r1"), request("ann", "r2"), fail("ann", "r2")],
            advance: Duration::ZERO,
            racers: vec![request("ann", "r1"), fail("ann", "r1"), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "pay-pay-fail",
            config: cap(5),
            setup: vec![request("ann", "r1")],
            advance: Duration::ZERO,
            racers: vec![pay("ann", "r1", "pi_1"), pay("ann", "r1", "pi_1"), fail("ann", "r1")],
            never: vec![],
        },
        Scenario {
            name: "second-charge",
            config: cap(5),
            setup: vec![request("ann", "r1")],
            advance: Duration::ZERO,
            racers: vec![pay("ann", "r1", "pi_1"), pay("ann", "r1", "pi_2"), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "lapse-pay-sweep",
            config: cap(1),
            setup: vec![request("ann", "r1")],
            advance: Duration::seconds(600),
            racers: vec![pay("ann", "r1", "pi_1"), Action::Sweep, request("bob", "r2")],
            never: vec![],
        },
        Scenario {
            name: "last-seat",
            config: cap(1),
            setup: vec![],
            advance: Duration::ZERO,
            racers: vec![request("ann", "r1"), request("bob", "r2"), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "capacity-cut",
            config: cap(2),
            setup: vec![request("ann", "r1")],
            advance: Duration::ZERO,
            racers: vec![request("bob", "r2"), Action::Capacity(1), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "abandon-pay",
            config: cap(2),
            setup: vec![request("ann", "r1")],
            advance: Duration::ZERO,
            racers: vec![
                Action::Abandon { actor: "ann", hold_ref: "r1" },
                pay("ann", "r1", "pi_1"),
                request("ann", "r2"),
            ],
            never: vec![],
        },
        // Part 2: after the sale, the catalogue.
        Scenario {
            name: "cancel-offer-walkin",
            config: cap(1),
            setup: vec![request("ann", "r1"), pay("ann", "r1", "pi_1"), Action::Join { actor: "bob", seats: 1 }],
            advance: Duration::ZERO,
            // The cancelled seat is the waiting list's: a walk-in never gets it, and a late
            // failure of the cancelled booking changes nothing.
            racers: vec![Action::Cancel { hold_ref: "r1" }, request("cat", "r3"), fail("ann", "r1")],
            never: vec![(1, "AwaitingPayment")],
        },
        Scenario {
            name: "scan-scan-cancel",
            config: cap(2).with_tickets(true),
            setup: vec![request("ann", "r1"), pay("ann", "r1", "pi_1")],
            advance: Duration::ZERO,
            // One ticket scanned twice while the booking is cancelled: admitted at most once,
            // and never both admitted and cancelled.
            racers: vec![
                Action::CheckIn { hold_ref: "r1", index: 0 },
                Action::CheckIn { hold_ref: "r1", index: 0 },
                Action::Cancel { hold_ref: "r1" },
            ],
            never: vec![],
        },
        Scenario {
            name: "price-lock",
            config: locked_listing(),
            setup: vec![],
            advance: Duration::ZERO,
            // A held listing's price never changes.
            racers: vec![
                Action::SetPrice { tier: "listing", cents: 8_000 },
                Action::RequestTier { actor: "bob", hold_ref: "r1", tier: "listing" },
                Action::SetPrice { tier: "listing", cents: 6_000 },
            ],
            never: vec![],
        },
        Scenario {
            name: "price-lock-lapsed",
            config: locked_listing(),
            setup: vec![Action::RequestTier { actor: "ann", hold_ref: "r0", tier: "listing" }],
            advance: Duration::seconds(600),
            // Ann's hold lapsed, unswept: it locks nothing. Bob's request expires it and takes
            // the seat in one commit, leaving the tier's counters as they were (one held):
            // the price change, decided on ann's lapsed hold, must still notice.
            racers: vec![
                Action::SetPrice { tier: "listing", cents: 8_000 },
                Action::RequestTier { actor: "bob", hold_ref: "r1", tier: "listing" },
            ],
            never: vec![],
        },
        Scenario {
            name: "pool-move",
            config: tiered(),
            setup: vec![],
            advance: Duration::ZERO,
            // Tier a leaves pool p while seats of it are taken: every counter must still
            // equal what the records put on it under the configuration in force.
            racers: vec![
                Action::Configure(tier_a_out_of_its_pool()),
                Action::RequestTier { actor: "bob", hold_ref: "r1", tier: "a" },
                Action::Block(1),
            ],
            never: vec![],
        },
        Scenario {
            name: "two-releases-one-waiter",
            config: cap(2),
            setup: vec![request("ann", "r1"), request("dan", "r2"), Action::Join { actor: "bob", seats: 2 }],
            advance: Duration::ZERO,
            // Each release alone frees too little for bob; together they free enough, and he
            // must be offered the seats whatever the order.
            racers: vec![fail("ann", "r1"), fail("dan", "r2"), request("cat", "r3")],
            never: vec![],
        },
        Scenario {
            name: "join-release",
            config: cap(1),
            setup: vec![request("ann", "r1")],
            advance: Duration::ZERO,
            // Joining finds no room; the release frees the seat with nobody waiting yet.
            racers: vec![Action::Join { actor: "bob", seats: 1 }, fail("ann", "r1"), request("cat", "r3")],
            never: vec![],
        },
        Scenario {
            name: "unblock-offer",
            config: cap(1),
            setup: vec![Action::Block(1), Action::Join { actor: "bob", seats: 1 }],
            advance: Duration::ZERO,
            racers: vec![Action::Unblock, request("cat", "r3"), Action::Capacity(2)],
            never: vec![],
        },
        Scenario {
            name: "stale-unblock",
            config: cap(5),
            setup: vec![Action::BlockAs { block: "stage", seats: 3 }, Action::BlockAs { block: "press", seats: 2 }],
            advance: Duration::ZERO,
            // The ABA of versions: one unblock of `press` reads the 2-seat block and stalls;
            // meanwhile `press` is lifted and blocked again with 1 seat. The stale unblock must
            // not delete the new block while taking the old one's 2 seats off the counters
            // (counters 2 blocked, records 4: a 3-seat walk-in then oversells). The counters
            // are checked against the records after every ordering.
            racers: vec![Action::UnblockAs("press"), Action::Reblock { block: "press", seats: 1 }],
            never: vec![],
        },
        Scenario {
            name: "prune-late-pay",
            config: cap(1),
            setup: vec![request("ann", "r1"), fail("ann", "r1")],
            advance: Duration::seconds(1),
            // Retention deletes the released booking while a late payment for it settles:
            // whichever reads it, the payment is one refund, recorded, and a redelivery
            // (checked after every ordering) replays it — the refund is younger than the
            // horizon, so it is kept.
            racers: vec![Action::Prune, pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "leave-rejoin",
            config: cap(2),
            setup: vec![request("ann", "r1"), request("dan", "r2"), Action::Join { actor: "bob", seats: 2 }],
            advance: Duration::ZERO,
            // bob's entry is deleted from the list and created again (for one seat) while a
            // release frees a seat: whichever entry the release read, the one that stands
            // afterwards must be offered what is free, never twice and never a stale size.
            racers: vec![Action::Rejoin { actor: "bob", seats: 1 }, fail("ann", "r1")],
            never: vec![],
        },
        // Part 4: places. After every ordering no seat is in two live claims, and every row
        // agrees with the holds and blocks that claim its seats.
        Scenario {
            name: "seats-overlap",
            config: seated(),
            setup: vec![],
            advance: Duration::ZERO,
            // Two buyers want A-1-2: exactly one gets it, and the other changes nothing.
            racers: vec![seats("ann", "r1", &["A-1-1", "A-1-2"]), seats("bob", "r2", &["A-1-2", "A-1-3"])],
            never: vec![],
        },
        Scenario {
            name: "best-vs-chosen",
            config: seated(),
            setup: vec![],
            advance: Duration::ZERO,
            // Best available races a chosen seat in the row's middle.
            racers: vec![
                Action::RequestBest { actor: "ann", hold_ref: "r1", tier: "a", quantity: 2 },
                seats("bob", "r2", &["A-1-2"]),
            ],
            never: vec![],
        },
        Scenario {
            name: "desk-vs-best",
            config: seated(),
            setup: vec![seats("ann", "r1", &["A-1-1"])],
            advance: Duration::ZERO,
            // The sound desk blocks a seat while best available picks from the same row.
            racers: vec![
                Action::BlockSeats { block: "desk", seats: &["A-1-3"] },
                Action::RequestBest { actor: "bob", hold_ref: "r2", tier: "a", quantity: 2 },
            ],
            never: vec![],
        },
        Scenario {
            name: "cancel-vs-best",
            config: seated(),
            setup: vec![seats("ann", "r1", &["A-1-1", "A-1-2", "A-1-3", "A-1-4"]), pay("ann", "r1", "pi_1")],
            advance: Duration::ZERO,
            // The row is sold out until the cancellation frees it: best available either
            // finds it full or takes freed seats, never a seat still sold.
            racers: vec![
                Action::Cancel { hold_ref: "r1" },
                Action::RequestBest { actor: "bob", hold_ref: "r2", tier: "a", quantity: 2 },
            ],
            never: vec![],
        },
        Scenario {
            name: "sell-out-vs-best",
            config: seated(),
            setup: vec![
                seats("ann", "r1", &["A-1-1", "A-1-2"]),
                pay("ann", "r1", "pi_1"),
                seats("bob", "r2", &["A-1-3", "A-1-4"]),
            ],
            advance: Duration::ZERO,
            // Bob's payment sells the row out (its tier's index says so from that commit on)
            // while best available looks for a seat: it finds none whatever the order, and
            // the index names exactly the sold-out rows.
            racers: vec![
                pay("bob", "r2", "pi_2"),
                Action::RequestBest { actor: "cat", hold_ref: "r3", tier: "a", quantity: 1 },
            ],
            never: vec![(1, "AwaitingPayment")],
        },
        Scenario {
            name: "lapse-vs-chosen",
            config: seated(),
            setup: vec![seats("ann", "r1", &["A-1-1", "A-1-2"])],
            advance: Duration::seconds(600),
            // Ann's hold lapsed: bob may take its seat; ann's late payment revives her hold
            // only onto her own seats, all still free — otherwise it is refunded.
            racers: vec![seats("bob", "r2", &["A-1-2"]), pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "lapse-sweep-revive",
            config: seated(),
            setup: vec![seats("ann", "r1", &["A-1-1", "A-1-2"])],
            advance: Duration::seconds(600),
            // The sweep frees the lapsed hold's seats while its late payment revives it: the
            // seats end claimed by the revived booking or by nobody, never half of each.
            racers: vec![Action::Sweep, pay("ann", "r1", "pi_1")],
            never: vec![],
        },
        Scenario {
            name: "lapse-sweep-chosen",
            config: seated(),
            setup: vec![seats("ann", "r1", &["A-1-1", "A-1-2"])],
            advance: Duration::seconds(600),
            // The sweep and a buyer both end the lapsed hold: the seat is bob's whichever
            // ends it, and the sweep never frees a seat bob took.
            racers: vec![Action::Sweep, seats("bob", "r2", &["A-1-2"])],
            never: vec![],
        },
        Scenario {
            name: "stale-seat-unblock",
            config: seated(),
            setup: vec![Action::BlockSeats { block: "press", seats: &["A-1-2", "A-1-3"] }],
            advance: Duration::ZERO,
            // The ABA of a seat block: one unblock of `press` reads the block on A-1-2 and
            // A-1-3 and stalls; meanwhile `press` is lifted and blocked again on A-1-1. The
            // stale unblock must not free A-1-1 nor leave the row naming seats no block has.
            racers: vec![Action::UnblockAs("press"), Action::ReblockSeats { block: "press", seats: &["A-1-1"] }],
            never: vec![],
        },
        Scenario {
            name: "reblock-vs-chosen",
            config: seated(),
            setup: vec![Action::BlockSeats { block: "press", seats: &["A-1-2"] }],
            advance: Duration::ZERO,
            // The press block moves from A-1-2 to A-1-3 while bob asks for both: he gets them
            // only between the two operations, and never a seat the block holds.
            racers: vec![
                Action::ReblockSeats { block: "press", seats: &["A-1-3"] },
                seats("bob", "r2", &["A-1-2", "A-1-3"]),
            ],
            never: vec![],
        },
    ]
}

fn seats(actor: &'static str, hold_ref: &'static str, seats: &'static [&'static str]) -> Action {
    Action::RequestSeats { actor, hold_ref, seats }
}

/// One section `A` of tier `a` (10.00) with one row of four seats; late payments revive.
fn seated() -> OccurrenceConfig {
    let map = crate::seating::SeatMap {
        sections: vec![crate::seating::Section {
            section: crate::contract::SectionName::new("A").unwrap_or_else(|e| panic!("{e}")),
            tier: tier("a"),
            rows: vec![crate::seating::RowSpec {
                row: crate::contract::RowName::new("1").unwrap_or_else(|e| panic!("{e}")),
                seats: 4,
            }],
        }],
        no_single_gaps: false,
    };
    config(10)
        .with_tiers(vec![crate::catalogue::Tier::new(tier("a"), eur("10.00"))])
        .with_seating(map)
        .with_late_payment(crate::catalogue::LatePayment::Revive)
}

fn seat_list(ids: &[&str]) -> Vec<crate::seating::SeatId> {
    ids.iter().map(|s| crate::seating::SeatId::parse(s).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// One seat listed for resale at 50.00, its price locked while someone pays for it.
fn locked_listing() -> OccurrenceConfig {
    let listing = crate::catalogue::Tier::new(tier("listing"), eur("50.00")).locking_price_while_held();
    config(1).with_tiers(vec![listing])
}

/// [`tiered`], with tier `a` in no pool.
fn tier_a_out_of_its_pool() -> OccurrenceConfig {
    let base = tiered();
    let tiers =
        base.tiers().iter().cloned().map(|t| if t.tier == tier("a") { t.with_pools(Vec::new()) } else { t }).collect();
    base.with_tiers(tiers)
}

/// What an exploration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The scenario.
    pub scenario: &'static str,
    /// Orderings run (all of them, unless a bound cut the search).
    pub schedules: usize,
    /// Whether every ordering was run.
    pub exhaustive: bool,
    /// The most store calls one ordering took.
    pub longest: usize,
    /// With read caches: the racers' first attempts that decided on the cache and
    /// committed, and those that fell back to a load, over every ordering.
    pub read_cache: crate::ReadCacheStats,
}

/// An answer, as the checks compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Request(Result<RequestOutcome, String>),
    Settle(Result<Settlement, String>),
    Other(Result<String, String>),
}

type Racer<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

async fn perform<S: AsyncStore, H: super::proxy::Hook>(
    e: &AsyncEngine<Proxy<'_, S, H>, &ManualClock>,
    a: &Action,
    o: &OccKey,
) -> Answer {
    match a {
        Action::Request { actor: who, hold_ref, quantity } => {
            Answer::Request(e.request(&req(o, who, hold_ref, *quantity)).await.map_err(|err| err.to_string()))
        }
        Action::Paid { actor: who, hold_ref, provider_ref } => {
            Answer::Settle(e.settle(&paid(o, who, hold_ref, provider_ref)).await.map_err(|err| err.to_string()))
        }
        Action::Failed { actor: who, hold_ref } => Answer::Settle(
            e.settle(&PaymentResult::failed(o.clone(), actor(who), r(hold_ref))).await.map_err(|err| err.to_string()),
        ),
        Action::Abandon { actor: who, hold_ref } => Answer::Other(
            e.abandon(o, &actor(who), &r(hold_ref)).await.map(|x| format!("{x:?}")).map_err(|err| err.to_string()),
        ),
        Action::Sweep => {
            Answer::Other(e.expire_due_of(o, 100).await.map(|n| format!("expired {n}")).map_err(|err| err.to_string()))
        }
        Action::Capacity(n) => {
            Answer::Other(e.open(o, config(*n)).await.map(|()| "configured".to_owned()).map_err(|err| err.to_string()))
        }
        Action::Configure(cfg) => {
            Answer::Other(e.open(o, cfg.clone()).await.map(|()| "configured".to_owned()).map_err(|err| err.to_string()))
        }
        Action::RequestTier { actor: who, hold_ref, tier: t } => {
            let line = crate::catalogue::Line { tier: tier(t), quantity: 1 };
            let request = crate::holds::HoldRequest::lines(o.clone(), actor(who), r(hold_ref), vec![line]);
            Answer::Request(e.request(&request).await.map_err(|err| err.to_string()))
        }
        Action::Cancel { hold_ref } => Answer::Other(debug(e.cancel(o, &r(hold_ref), None).await)),
        Action::CheckIn { hold_ref, index } => {
            Answer::Other(debug(e.check_in(o, &ticket_key().credential(o, &r(hold_ref), *index)).await))
        }
        Action::Join { actor: who, seats } => Answer::Other(debug(e.join_waitlist(o, &actor(who), None, *seats).await)),
        Action::Block(n) => Answer::Other(debug(e.block(o, &block_name(), *n, None).await)),
        Action::Unblock => Answer::Other(debug(e.unblock(o, &block_name()).await)),
        Action::BlockAs { block, seats } => Answer::Other(debug(e.block(o, &named(block), *seats, None).await)),
        Action::UnblockAs(block) => Answer::Other(debug(e.unblock(o, &named(block)).await)),
        Action::Reblock { block, seats } => {
            let first = debug(e.unblock(o, &named(block)).await);
            let then = debug(e.block(o, &named(block), *seats, None).await);
            Answer::Other(first.and_then(|a| then.map(|b| format!("{a}; {b}"))))
        }
        Action::Prune => {
            use crate::clock::Clock;
            Answer::Other(debug(e.prune(o, e.clock().now()).await))
        }
        Action::Rejoin { actor: who, seats } => {
            let first = debug(e.leave_waitlist(o, &actor(who), None).await);
            let then = debug(e.join_waitlist(o, &actor(who), None, *seats).await);
            Answer::Other(first.and_then(|a| then.map(|b| format!("{a}; {b}"))))
        }
        Action::RequestSeats { actor: who, hold_ref, seats } => {
            let choice = crate::seating::SeatChoice::Chosen(seat_list(seats));
            let request = crate::holds::HoldRequest::seated(o.clone(), actor(who), r(hold_ref), choice);
            Answer::Request(e.request(&request).await.map_err(|err| err.to_string()))
        }
        Action::RequestBest { actor: who, hold_ref, tier: t, quantity } => {
            let choice = crate::seating::SeatChoice::Best { tier: tier(t), quantity: *quantity };
            let request = crate::holds::HoldRequest::seated(o.clone(), actor(who), r(hold_ref), choice);
            Answer::Request(e.request(&request).await.map_err(|err| err.to_string()))
        }
        Action::BlockSeats { block, seats } => {
            Answer::Other(debug(e.block_seats(o, &named(block), &seat_list(seats)).await))
        }
        Action::ReblockSeats { block, seats } => {
            let first = debug(e.unblock(o, &named(block)).await);
            let then = debug(e.block_seats(o, &named(block), &seat_list(seats)).await);
            Answer::Other(first.and_then(|a| then.map(|b| format!("{a}; {b}"))))
        }
        Action::SetPrice { tier: t, cents } => {
            let price = crate::contract::Money::parse(&format!("{}.{:02}", cents / 100, cents % 100), "EUR")
                .unwrap_or_else(|err| panic!("a scenario's price: {err}"));
            Answer::Other(
                e.set_price(o, &tier(t), price).await.map(|()| "priced".to_owned()).map_err(|err| err.to_string()),
            )
        }
    }
}

/// An answer as text: the outcome's `Debug`, or the error's `Display`.
fn debug<T: fmt::Debug, E: fmt::Display>(got: Result<T, E>) -> Result<String, String> {
    got.map(|x| format!("{x:?}")).map_err(|err| err.to_string())
}

/// A block named `name`.
fn named(name: &str) -> crate::contract::BlockName {
    crate::contract::BlockName::new(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The block the scenarios place and lift.
fn block_name() -> crate::contract::BlockName {
    crate::contract::BlockName::new("b").unwrap_or_else(|e| panic!("{e}"))
}

/// The key every engine of an exploration issues and checks tickets with.
fn ticket_key() -> crate::tickets::TicketKey {
    crate::tickets::TicketKey::new(vec![7u8; crate::tickets::MIN_TICKET_KEY_BYTES])
        .unwrap_or_else(|e| panic!("the scenarios' ticket key: {e}"))
}

/// Poll racer `i` until it waits at the gate again (`false`) or answers (`true`).
async fn advance(racers: &mut [Option<Racer<'_>>], answers: &mut [Option<Answer>], gate: &Gate, i: usize) {
    let Some(fut) = racers[i].as_mut() else { return };
    let done = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(a) => Poll::Ready(Some(a)),
        Poll::Pending if gate.is_waiting(i) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    if let Some(a) = done {
        answers[i] = Some(a);
        racers[i] = None;
    }
}

/// One ordering's trace: at each step, the racers ready and the one chosen.
type Trace = Vec<(usize, Vec<usize>)>;

/// Run one ordering of `sc`: at each step the racer `order` names (the first ready one once
/// `order` runs out), with every check of [`explore`]. Answers each racer's answer, as text
/// (`Debug` of the outcome or of the error), in racer order. Panics if `order` names a racer
/// that is not waiting at that step.
pub async fn run_ordering<S: AsyncStore>(s: &S, sc: &Scenario, run: usize, order: &[usize]) -> Vec<String> {
    run_schedule(s, sc, &run.to_string(), order, None).await.1
}

/// Whether the racers' engines keep a read cache, warmed before the race.
type Cached = Option<Warmth>;

/// What the racers' read caches know when the race starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmth {
    /// The occurrence only: every record the setup wrote is guessed absent, and each first
    /// attempt that touches one loses its guard and falls back.
    Occurrence,
    /// The occurrence and the setup's records: first attempts decide on them, right where no
    /// other racer changed them first, stale where one did.
    Setup,
}

async fn run_schedule<S: AsyncStore>(
    s: &S,
    sc: &Scenario,
    run: &str,
    prefix: &[usize],
    cached: Cached,
) -> (Trace, Vec<String>, crate::ReadCacheStats) {
    let clock = ManualClock::new(T0);
    let o = occ(&format!("{}-{run}", sc.name));
    let plain = engine(s, &clock).with_ticket_key(ticket_key());
    plain.open(&o, sc.config.clone()).await.unwrap_or_else(|e| panic!("{}: open: {e}", sc.name));
    let mut history: Vec<(Action, Answer)> = Vec::new();
    for a in &sc.setup {
        history.push((a.clone(), perform(&plain, a, &o).await));
    }
    clock.advance(sc.advance);
    let gate = Gate::new(sc.racers.len());
    let engines: Vec<_> = (0..sc.racers.len())
        .map(|i| {
            let e = AsyncEngine::with_clock(Proxy { inner: s, hook: AtGate { gate: &gate, racer: i } }, &clock)
                .with_ticket_key(ticket_key());
            if cached.is_some() { e.with_read_cache(1_000) } else { e }
        })
        .collect();
    if let Some(warmth) = cached {
        // Each racer's engine reads the occurrence and the setup's records through no-op
        // operations (a `failed` for a ref nobody holds reads the actor's summary; an
        // extension by nothing reads the booking and is refused), so its first attempt in
        // the race decides on the cache: right where no other racer got there first, stale
        // where one did.
        gate.set_open(true);
        let mut who: Vec<(&'static str, Option<&'static str>)> = vec![("warm-up", None)];
        // Blocks are read by repeating them (answered `Blocked`, nothing written).
        let mut blocks: Vec<(&'static str, u32)> = Vec::new();
        for a in sc.setup.iter().filter(|_| warmth == Warmth::Setup) {
            match a {
                Action::Request { actor: w, hold_ref, .. }
                | Action::Paid { actor: w, hold_ref, .. }
                | Action::Failed { actor: w, hold_ref }
                | Action::Abandon { actor: w, hold_ref }
                | Action::RequestTier { actor: w, hold_ref, .. }
                | Action::RequestSeats { actor: w, hold_ref, .. }
                | Action::RequestBest { actor: w, hold_ref, .. } => who.push((w, Some(hold_ref))),
                Action::Cancel { hold_ref } | Action::CheckIn { hold_ref, .. } => who.push(("warm-up", Some(hold_ref))),
                Action::Join { actor: w, .. } | Action::Rejoin { actor: w, .. } => who.push((w, None)),
                Action::BlockAs { block, seats } => blocks.push((block, *seats)),
                Action::Sweep
                | Action::Capacity(_)
                | Action::Configure(_)
                | Action::Block(_)
                | Action::Unblock
                | Action::Reblock { .. }
                | Action::UnblockAs(_)
                | Action::Prune
                | Action::BlockSeats { .. }
                | Action::ReblockSeats { .. }
                | Action::SetPrice { .. } => {}
            }
        }
        for e in &engines {
            for (w, hold_ref) in &who {
                let warm = PaymentResult::failed(o.clone(), actor(w), r("warm-up"));
                let got = e.settle(&warm).await.unwrap_or_else(|err| panic!("{}: warming a cache: {err}", sc.name));
                assert_eq!(got, Settlement::Noop, "{}: a warm-up changed something", sc.name);
                if let Some(hr) = hold_ref {
                    let _ = e.extend(&o, &r(hr), Duration::ZERO).await;
                }
            }
            for (b, seats) in &blocks {
                let got = e.block(&o, &named(b), *seats, None).await;
                assert!(matches!(got, Ok(BlockOutcome::Blocked)), "{}: warming a block: {got:?}", sc.name);
            }
        }
        gate.set_open(false);
    }
    let mut racers: Vec<Option<Racer<'_>>> =
        sc.racers.iter().zip(&engines).map(|(a, e)| Some(Box::pin(perform(e, a, &o)) as Racer<'_>)).collect();
    let mut answers: Vec<Option<Answer>> = vec![None; sc.racers.len()];
    for i in 0..racers.len() {
        advance(&mut racers, &mut answers, &gate, i).await;
    }
    let mut trace: Trace = Vec::new();
    loop {
        let ready: Vec<usize> = (0..racers.len()).filter(|&i| racers[i].is_some() && gate.is_waiting(i)).collect();
        if ready.is_empty() {
            break;
        }
        let step = trace.len();
        let chosen = prefix.get(step).copied().unwrap_or(ready[0]);
        assert!(
            ready.contains(&chosen),
            "{}: the same ordering took another path (nondeterminism in the engine or the store) at step {step}",
            sc.name
        );
        trace.push((chosen, ready));
        gate.grant(chosen);
        advance(&mut racers, &mut answers, &gate, chosen).await;
    }
    drop(racers);
    let mut stats = crate::ReadCacheStats::default();
    for e in &engines {
        if let Some(st) = e.read_cache_stats() {
            stats.hits += st.hits;
            stats.misses += st.misses;
        }
    }
    let mut texts = Vec::with_capacity(answers.len());
    for (a, ans) in sc.racers.iter().zip(answers) {
        let ans = ans.unwrap_or_else(|| panic!("{}: racer {a} never answered", sc.name));
        texts.push(match &ans {
            Answer::Request(Ok(x)) => format!("{x:?}"),
            Answer::Settle(Ok(x)) => format!("{x:?}"),
            Answer::Other(Ok(x)) => x.clone(),
            Answer::Request(Err(e)) | Answer::Settle(Err(e)) | Answer::Other(Err(e)) => format!("error: {e}"),
        });
        history.push((a.clone(), ans));
    }
    let order: Vec<String> = trace.iter().map(|(c, _)| sc.racers[*c].to_string()).collect();
    for (i, banned) in &sc.never {
        if texts.get(*i).is_some_and(|t| t.starts_with(banned)) {
            panic!("interleaving {} [{}]: {} answered {}", sc.name, order.join(" > "), sc.racers[*i], texts[*i]);
        }
    }
    check(s, &plain, &o, sc, &history, &order.join(" > "), crate::clock::Clock::now(&clock)).await;
    (trace, texts, stats)
}

/// Explore every ordering of `sc` on `s` (at most `bound` of them, if given). Panics with the
/// ordering and what broke at the first violated invariant.
pub async fn explore<S: AsyncStore>(s: &S, sc: &Scenario, bound: Option<usize>) -> Report {
    explore_as(s, sc, bound, None).await
}

/// [`explore`], with every racer's engine keeping a read cache
/// ([`AsyncEngine::with_read_cache`]) warmed before the race as `warmth` says: every
/// ordering of speculative decisions, stale guesses and fallbacks, under the same checks.
pub async fn explore_with_read_cache<S: AsyncStore>(
    s: &S,
    sc: &Scenario,
    bound: Option<usize>,
    warmth: Warmth,
) -> Report {
    explore_as(s, sc, bound, Some(warmth)).await
}

async fn explore_as<S: AsyncStore>(s: &S, sc: &Scenario, bound: Option<usize>, cached: Cached) -> Report {
    let mut stack: Vec<Vec<usize>> = vec![Vec::new()];
    let mut schedules = 0;
    let mut longest = 0;
    let mut read_cache = crate::ReadCacheStats::default();
    // Every exploration names its occurrences apart, so explorations sharing a store (one
    // after another, or a database kept between test runs) never meet one another's bookings.
    let exploration = uuid::Uuid::new_v4().simple().to_string();
    let exploration = &exploration[..12];
    while let Some(prefix) = stack.pop() {
        if bound.is_some_and(|b| schedules >= b) {
            return Report { scenario: sc.name, schedules, exhaustive: false, longest, read_cache };
        }
        let (trace, _, stats) = run_schedule(s, sc, &format!("{exploration}-{schedules}"), &prefix, cached).await;
        read_cache.hits += stats.hits;
        read_cache.misses += stats.misses;
        schedules += 1;
        longest = longest.max(trace.len());
        // Branch at every choice point past the prefix, to every other ready racer.
        for k in (prefix.len()..trace.len()).rev() {
            let (chosen, ready) = &trace[k];
            for &alt in ready.iter().rev().filter(|&&a| a != *chosen) {
                let mut next: Vec<usize> = trace[..k].iter().map(|(c, _)| *c).collect();
                next.push(alt);
                stack.push(next);
            }
        }
    }
    Report { scenario: sc.name, schedules, exhaustive: true, longest, read_cache }
}

/// [`explore`] every scenario of [`scenarios`].
pub async fn explore_all<S: AsyncStore>(s: &S, bound: Option<usize>) -> Vec<Report> {
    let mut out = Vec::new();
    for sc in scenarios() {
        out.push(explore(s, &sc, bound).await);
    }
    out
}

/// The identity of a payment, as exactly-once counts it: actor, ref, provider ref.
type PaymentId = (String, String, String);

async fn check<S: AsyncStore>(
    s: &S,
    plain: &super::engine::TestEngine<'_, S, super::proxy::Plain>,
    o: &OccKey,
    sc: &Scenario,
    history: &[(Action, Answer)],
    order: &str,
    now: time::OffsetDateTime,
) {
    let fail = |what: String| -> ! { panic!("interleaving {} [{order}]: {what}", sc.name) };
    let mut events = drain(plain, o).await;

    // Redeliver every payment once more: each must replay, and write nothing.
    let mut answers: BTreeMap<PaymentId, Vec<Settlement>> = BTreeMap::new();
    for (a, ans) in history {
        if let (Action::Paid { actor: who, hold_ref, provider_ref }, Answer::Settle(res)) = (a, ans) {
            let settled = res.clone().unwrap_or_else(|e| fail(format!("{a} failed: {e}")));
            answers.entry(((*who).into(), (*hold_ref).into(), (*provider_ref).into())).or_default().push(settled);
        }
    }
    for (id, list) in &mut answers {
        let again = plain
            .settle(&paid(o, &id.0, &id.1, &id.2))
            .await
            .unwrap_or_else(|e| fail(format!("redelivery of {id:?} failed: {e}")));
        if !again.is_replay() {
            fail(format!("a redelivery of an accounted payment {id:?} was not a replay: {again:?}"));
        }
        list.push(again);
    }
    let after = drain(plain, o).await;
    if !after.is_empty() {
        fail(format!(
            "redeliveries wrote events: {:?}",
            after.iter().map(|e| e.event.kind.type_str()).collect::<Vec<_>>()
        ));
    }

    // Exactly once, per payment identity.
    let payments: Vec<crate::settlement::PaymentRecord> = scan(s, o, RecordKind::Payment)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Payment(p) => Some(p),
            _ => None,
        })
        .collect();
    for (id, list) in &answers {
        let firsts: Vec<&Settlement> = list.iter().filter(|x| !x.is_replay()).collect();
        if firsts.len() != 1 {
            fail(format!("payment {id:?} was accounted {} times: {list:?}", firsts.len()));
        }
        let first = firsts[0];
        for x in list {
            let same = match (first, x) {
                (Settlement::Confirmed { .. }, Settlement::Confirmed { .. }) => true,
                (Settlement::PaidButNoHold { refund: a, .. }, Settlement::PaidButNoHold { refund: b, .. }) => {
                    a.reason == b.reason
                }
                _ => false,
            };
            if !same {
                fail(format!("payment {id:?} answered differently: {list:?}"));
            }
        }
        let records = payments
            .iter()
            .filter(|p| {
                p.actor.as_str() == id.0
                    && p.hold_ref.as_str() == id.1
                    && p.provider_ref.as_ref().is_some_and(|x| x.as_str() == id.2)
            })
            .count();
        if records != 1 {
            fail(format!("payment {id:?} has {records} payment records"));
        }
        let refund_events = events
            .iter()
            .filter(|e| {
                e.event.actor.as_str() == id.0
                    && e.event.hold_ref.as_ref().is_some_and(|x| x.as_str() == id.1)
                    && matches!(&e.event.kind, EventKind::RefundRequired { provider_ref: Some(p), reason, .. }
                        if p.as_str() == id.2 && *reason != crate::contract::NoHoldReason::Cancelled)
            })
            .count();
        let want = usize::from(matches!(first, Settlement::PaidButNoHold { .. }));
        if refund_events != want {
            fail(format!("payment {id:?} answered {first:?} but has {refund_events} refund events"));
        }
    }
    let confirmations: BTreeMap<String, usize> = events
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::HoldConfirmed { .. }))
        .fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.event.hold_ref.as_ref().map(|r| r.to_string()).unwrap_or_default()).or_insert(0) += 1;
            m
        });
    let confirmed_answers: BTreeSet<String> = answers
        .iter()
        .filter(|(_, l)| l.contains(&Settlement::Confirmed { replayed: false }))
        .map(|(id, _)| id.1.clone())
        .collect();
    let confirmed_refs: BTreeSet<String> = confirmations.keys().cloned().collect();
    if confirmations.values().any(|&n| n > 1) || confirmed_refs != confirmed_answers {
        fail(format!(
            "confirmations {confirmations:?} do not match the payments answered Confirmed {confirmed_answers:?}"
        ));
    }

    // Capacity: every dimension's counters equal what the records put on it under the
    // configuration in force (held and sold bookings, blocks, waiting-list offers), and the
    // total never passes the largest capacity the occurrence had.
    let bookings: Vec<crate::holds::Hold> = scan(s, o, RecordKind::Booking)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Booking(h) => Some(h),
            _ => None,
        })
        .collect();
    let occ = plain.occurrence(o).await.unwrap_or_else(|e| fail(format!("occurrence: {e}")));
    let cfg = &occ.config;
    let mut want: Vec<(Dim, [u64; 4])> = Vec::new();
    let mut add = |tier: Option<&crate::contract::TierName>, n: u32, field: usize| {
        for d in cfg.dims_of(tier) {
            match want.iter_mut().find(|(x, _)| *x == d) {
                Some((_, u)) => u[field] += u64::from(n),
                None => {
                    let mut u = [0; 4];
                    u[field] = u64::from(n);
                    want.push((d, u));
                }
            }
        }
    };
    // A booking partly cancelled does not say which lines the seats came off: then only
    // the total is compared.
    let mut totals_only = false;
    for h in &bookings {
        let field = match h.state {
            HoldState::Held => 0,
            HoldState::Confirmed => 1,
            _ => continue,
        };
        if h.lines.is_empty() || h.cancelled_seats > 0 {
            totals_only |= !h.lines.is_empty();
            add(None, h.standing_seats(), field);
        } else {
            for l in h.lines.iter() {
                add(Some(&l.tier), l.quantity, field);
            }
        }
    }
    let blocks: Vec<crate::catalogue::Block> = scan(s, o, RecordKind::Block)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Block(b) => Some(b),
            _ => None,
        })
        .collect();
    for b in &blocks {
        if b.seat_ids.is_empty() {
            add(b.tier.as_ref(), b.seats, 2);
        } else {
            for seat in &b.seat_ids {
                add(cfg.seating().and_then(|m| m.tier_of(seat)), 1, 2);
            }
        }
    }
    if let Some(map) = cfg.seating() {
        let rows = scan(s, o, RecordKind::SeatRow).await;
        check_seats(map, &bookings, &blocks, &rows, now).unwrap_or_else(|e| fail(e));
        check_sold_out(map, &rows, &scan(s, o, RecordKind::SoldOutRows).await).unwrap_or_else(|e| fail(e));
    }
    for rec in scan(s, o, RecordKind::Waitlist).await {
        if let Record::Waitlist(w) = rec {
            for e in w.entries.iter() {
                if let Some(offer) = &e.offer {
                    add(e.tier.as_ref(), offer.seats, 3);
                }
            }
        }
    }
    let dims = std::iter::once(Dim::Total)
        .chain(cfg.tiers().iter().map(|t| Dim::Tier(t.tier.clone())))
        .chain(cfg.pools().iter().map(|p| Dim::Pool(p.pool.clone())));
    for d in dims.filter(|d| !totals_only || *d == Dim::Total) {
        let u = occ.counters.get(&d);
        let got = [u.held, u.confirmed, u.blocked, u.offered];
        let expected = want.iter().find(|(x, _)| *x == d).map_or([0; 4], |(_, u)| *u);
        if got != expected {
            fail(format!(
                "counters of {d} (held, confirmed, blocked, offered) are {got:?}, but the records put {expected:?} on it"
            ));
        }
    }
    // Every capacity (the total, each tier's cap, each pool) holds at most the largest value
    // any configuration of the race gave it (lowering one revokes nothing).
    let configs: Vec<OccurrenceConfig> = sc
        .racers
        .iter()
        .chain(&sc.setup)
        .filter_map(|a| match a {
            Action::Capacity(n) => Some(config(*n)),
            Action::Configure(c) => Some(c.clone()),
            _ => None,
        })
        .chain([sc.config.clone()])
        .collect();
    for (d, u) in occ.counters.iter() {
        let max_cap = configs.iter().filter_map(|c| c.capacity_of(d).flatten()).max();
        if let Some(cap) = max_cap.filter(|cap| u.total() > *cap) {
            fail(format!("{} seats taken on {d}, capacity at most {cap}", u.total()));
        }
    }

    // Nobody waits for seats that are free: an entry without an offer does not fit what the
    // counters leave on every dimension it needs (the clock does not move during a race).
    for rec in scan(s, o, RecordKind::Waitlist).await {
        if let Record::Waitlist(w) = rec {
            for e in w.entries.iter().filter(|e| e.offer.is_none()) {
                let fits = cfg.dims_of(e.tier.as_ref()).iter().all(|d| match cfg.capacity_of(d) {
                    Some(Some(cap)) => occ.counters.get(d).total() + u64::from(e.seats) <= cap,
                    _ => true,
                });
                if fits {
                    fail(format!("{} waits for {} seats that are free, with no offer", e.actor, e.seats));
                }
            }
        }
    }

    // A live hold on a tier locked while held is at the tier's price: its price never
    // changed under it.
    for h in bookings.iter().filter(|h| h.view(now) == crate::holds::HoldView::Live) {
        for l in h.lines.iter() {
            if let Some(t) = cfg.tier(&l.tier).filter(|t| t.lock_price_while_held) {
                if l.unit_price != t.price.amount {
                    fail(format!(
                        "{} holds {} at {}, but its price changed to {}",
                        h.hold_ref, l.tier, l.unit_price, t.price
                    ));
                }
            }
        }
    }

    // The door: a ticket admits at most once, one `checked_in` event each, and a booking is
    // never both cancelled and admitted on.
    let mut admitted: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    let mut cancelled: BTreeSet<&str> = BTreeSet::new();
    for (a, ans) in history {
        match (a, ans) {
            (Action::CheckIn { hold_ref, index }, Answer::Other(Ok(t))) if t.starts_with("Admitted") => {
                *admitted.entry((*hold_ref, *index)).or_insert(0) += 1;
            }
            (Action::Cancel { hold_ref }, Answer::Other(Ok(t))) if t.starts_with("Cancelled") => {
                cancelled.insert(*hold_ref);
            }
            _ => {}
        }
    }
    if let Some((ticket, n)) = admitted.iter().find(|(_, n)| **n > 1) {
        fail(format!("ticket {ticket:?} was admitted {n} times"));
    }
    if let Some((ticket, _)) = admitted.iter().find(|((hr, _), _)| cancelled.contains(hr)) {
        fail(format!("ticket {ticket:?} was admitted and its booking cancelled"));
    }
    let scans = events.iter().filter(|e| matches!(e.event.kind, EventKind::CheckedIn { .. })).count();
    if scans != admitted.len() {
        fail(format!("{scans} checked_in events for {} admissions", admitted.len()));
    }

    // Fencing: releases only for refs a failure or abandonment named; no booking ends twice.
    let released_for: BTreeSet<&str> = history
        .iter()
        .filter_map(|(a, _)| match a {
            Action::Failed { hold_ref, .. } | Action::Abandon { hold_ref, .. } => Some(*hold_ref),
            _ => None,
        })
        .collect();
    events.extend(after);
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut revivals: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        let hr = e.event.hold_ref.as_ref().map(|r| r.to_string()).unwrap_or_default();
        if matches!(e.event.kind, EventKind::HoldReleased { .. }) && !released_for.contains(hr.as_str()) {
            fail(format!("hold {hr} was released, but no failure or abandonment named it"));
        }
        // A revival (`late_payment: revive`) is the one sanctioned second end: an expired or
        // released hold (or a lapsed one no sweep reached: then it is the only end) confirmed
        // by its late payment. It is counted apart, at most once.
        if matches!(e.event.kind, EventKind::HoldConfirmed { revived: true, .. }) {
            *revivals.entry(hr).or_insert(0) += 1;
        } else if e.event.kind.is_terminal() {
            *ends.entry(hr).or_insert(0) += 1;
        }
    }
    if let Some((hr, n)) = revivals.iter().find(|(_, n)| **n > 1) {
        fail(format!("hold {hr} was revived {n} times"));
    }
    // Setup's events are among them: an ended booking has at most one terminal event.
    for h in bookings.iter().filter(|h| h.state != HoldState::Held) {
        if ends.get(h.hold_ref.as_str()).copied().unwrap_or(0) > 1 {
            fail(format!("hold {} ended twice", h.hold_ref));
        }
    }
}

async fn drain<S: AsyncStore>(
    e: &super::engine::TestEngine<'_, S, super::proxy::Plain>,
    o: &OccKey,
) -> Vec<OutboxEvent> {
    let all = e.drain_events(usize::MAX).await.unwrap_or_else(|err| panic!("drain: {err}"));
    all.into_iter().filter(|ev| &ev.event.occ_key == o).collect()
}

async fn scan<S: AsyncStore>(s: &S, o: &OccKey, kind: RecordKind) -> Vec<Record> {
    s.scan(o, kind, None, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("scan: {e}"))
        .into_iter()
        .map(|r| r.value)
        .collect()
}

/// Every tier's sold-out index names exactly the rows whose every seat is sold or blocked.
fn check_sold_out(map: &crate::seating::SeatMap, rows: &[Record], indexes: &[Record]) -> Result<(), String> {
    use crate::seating::{row_key, sold_out};
    let mut tiers: Vec<&crate::contract::TierName> = Vec::new();
    for s in &map.sections {
        if !tiers.contains(&&s.tier) {
            tiers.push(&s.tier);
        }
    }
    for tier in tiers {
        let index = indexes.iter().find_map(|r| match r {
            Record::SoldOutRows(d) if &d.tier == tier => Some(d),
            _ => None,
        });
        let tier_rows =
            map.sections.iter().filter(|s| &s.tier == tier).flat_map(|s| s.rows.iter().map(move |r| (s, r)));
        for (i, (s, r)) in tier_rows.enumerate() {
            let key = row_key(&s.section, &r.row);
            let row = rows.iter().find_map(|x| match x {
                Record::SeatRow(row) if row.key() == key => Some(row),
                _ => None,
            });
            let want = sold_out(row, r.seats);
            let got = index.is_some_and(|d| d.contains(i));
            if want != got {
                return Err(format!("row {}-{} is sold out: {want}, its tier's index says {got}", s.section, r.row));
            }
        }
    }
    Ok(())
}

/// Places (Part 4): no seat is claimed live by two holds or blocks, and every row says
/// exactly what the holds and blocks claim — a seat the records claim is the row's, for
/// that owner and in that state, and the row claims nothing the records do not.
fn check_seats(
    map: &crate::seating::SeatMap,
    bookings: &[crate::holds::Hold],
    blocks: &[crate::catalogue::Block],
    rows: &[Record],
    now: time::OffsetDateTime,
) -> Result<(), String> {
    use crate::seating::{Owner, SeatId, SeatStatus, statuses};
    let mut claimed: BTreeMap<SeatId, (String, SeatStatus)> = BTreeMap::new();
    let mut claim = |seat: &SeatId, who: String, st: SeatStatus| -> Result<(), String> {
        if map.tier_of(seat).is_none() {
            return Err(format!("{who} claims seat {seat}, which the map does not have"));
        }
        match claimed.insert(seat.clone(), (who.clone(), st)) {
            Some((other, _)) => Err(format!("seat {seat} is claimed by {other} and by {who}")),
            None => Ok(()),
        }
    };
    for h in bookings {
        for (i, seat) in h.seat_ids.iter().enumerate() {
            let st = match h.view(now) {
                crate::holds::HoldView::Live => SeatStatus::Held,
                crate::holds::HoldView::Confirmed => {
                    let cancelled = match h.tickets.get(i) {
                        Some(t) => matches!(t, crate::tickets::TicketState::Cancelled { .. }),
                        None => i >= h.standing_seats() as usize,
                    };
                    if cancelled {
                        continue;
                    }
                    SeatStatus::Sold
                }
                _ => continue,
            };
            claim(&seat, format!("hold {}", h.hold_ref), st)?;
        }
    }
    for b in blocks {
        for seat in &b.seat_ids {
            claim(seat, format!("block {}", b.block), SeatStatus::Blocked)?;
        }
    }
    for rec in rows {
        let Record::SeatRow(row) = rec else { continue };
        let Some(spec) = map.section(&row.section).and_then(|s| s.rows.iter().find(|r| r.row == row.row)) else {
            return Err(format!("a row {}-{} the map does not have", row.section, row.row));
        };
        let st = statuses(Some(row), spec.seats, now);
        let claims = row.claims();
        for (i, status) in st.iter().enumerate() {
            let seat =
                SeatId { section: row.section.clone(), row: row.row.clone(), n: u16::try_from(i + 1).unwrap_or(0) };
            let owner = claims.iter().find(|c| c.seats.contains(&seat.n)).map(|c| match &c.owner {
                Owner::Hold(r) => format!("hold {r}"),
                Owner::Block(b) => format!("block {b}"),
            });
            match (claimed.remove(&seat), *status) {
                (None, SeatStatus::Free) => {}
                (Some((who, want)), got) if want == got && owner.as_deref() == Some(who.as_str()) => {}
                (want, got) => {
                    return Err(format!("row says seat {seat} is {got:?} ({owner:?}), the records say {want:?}"));
                }
            }
        }
    }
    match claimed.into_iter().next() {
        Some((seat, (who, st))) => Err(format!("{who} claims seat {seat} ({st:?}), but no row says so")),
        None => Ok(()),
    }
}
