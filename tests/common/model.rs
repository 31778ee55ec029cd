//! The model-based property test, shared by `tests/model.rs` (the engine on `MemoryStore`)
//! and `tests/postgres_model.rs` (on `PostgresStore`): random sequences of operations over
//! several occurrences and actors, run against the engine and against a small independent
//! reference model written here from the rules of Parts 1 and 2 (it calls none of seathold's
//! rule modules: `holds`, `settlement`, `catalogue`, `waitlist`, `tickets`). After every step
//! the engine's answer and the exact list of events it committed are compared with the
//! model's, and the invariants are asserted:
//!
//! - capacity, for every dimension (the total, each tier cap, each pool): live holds +
//!   confirmed + blocked + live offers never grow past the cap (lowering a cap revokes
//!   nothing); availability, per tier too, and the store's counters equal the model's;
//! - a paid seat is released only by an explicit cancellation (invariant 4 as amended);
//! - tickets: an occurrence's standing tickets equal its confirmed, uncancelled seats; each
//!   ticket is issued exactly once; check-in admits a ticket at most once;
//! - every paid result is accounted exactly once (one payment record: one confirmation or one
//!   refund signal), whatever the redelivery;
//! - the ledger (`engine.ledger`): one payment entry per accounted payment, one refund entry
//!   per refund signal and per cancellation, and received minus refunded equals, per
//!   currency, the amounts of the bookings still confirmed (the standing seats' share after
//!   partial cancellations). Only payments and cancellations write a ledger, and a step
//!   writes only the occurrence it names: that one is checked after every step, all of them
//!   every 16 steps and at the end of a case;
//! - every `refund_required` carries the amount and currency to refund whenever the payment
//!   or the booking it names says them (checked field by field against the model);
//! - the outbox: exactly the events the model expects, in order, ids increasing, nothing
//!   committed ever changing, and (through `common::Ledger` in Part 2 mode) every hold ending
//!   in one terminal event, every ticket issued once and admitted at most once, every paid
//!   result accounted once. At the end of a case every hold has ended, every offer has been
//!   passed on, and every booking and its tickets (`engine.booking`, `engine.tickets`) are the
//!   model's.
//!
//! Which lapsed holds an operation expires on its way (all of them when someone waits;
//! otherwise those it needs), the order of the sweep among records due at the same instant,
//! and which of them a limited sweep took are the engine's to choose: the model reads them
//! off the committed events, checks they are allowed, and builds its expectation from them.
//!
//! # The model's rules (and, where the rules leave room, the library's documented choice)
//!
//! Part 1 as in the Part 1 model (refs single-use per occurrence; the request precedence;
//! which deliveries are the same payment; the table on the actor's current hold). Part 2:
//! - a request answers, first to last: malformed input (bad quantity, unknown occurrence,
//!   lines at a plain occurrence or a plain order at a tiered one, an unknown tier, mixed
//!   currencies), the replay of the live hold's own request (a free order's own request
//!   replays its confirmation), `Already` (a live hold; at a one-booking occurrence also a
//!   standing booking), a used ref, `PriceChanged`, `LimitReached`, `Full` naming the tier of
//!   the first line that does not fit, then a hold (a free order: a confirmed booking);
//! - room is judged by the counters (lapsed holds and offers included); only if that says no
//!   is every lapsed hold expired (all of them when someone waits) and every lapsed offer
//!   passed on, the waiting list offered the freed seats first, and the answer taken on
//!   what is left (invariant 2: lapsed never blocks). The requester's own live offer is
//!   taken by a request that is placed (any of its tiers: library choice); a `Full` request
//!   takes nothing (nobody else can take offered seats);
//! - availability shows what a walk-in could take: lapsed holds and offers count nowhere, and
//!   the seats they free are owed to the waiting list first (library choice);
//! - settlement at an occurrence with `max_per_actor` locates the booking by (occ, ref): a
//!   ref naming no booking of the actor is `no_hold`. A cancelled free booking refunds
//!   `cancelled`, a free booking `already_paid` (library choices);
//! - `late_payment: revive`: a paid result for a lapsed, expired or released booking with the
//!   hold's money confirms it (`revived`) if the actor's limits and every capacity allow it
//!   once the waiting list has been offered what it is owed; else the refund the table says;
//! - a mismatching payment for a live hold is `Rejected`, nothing accounted; the library's
//!   documented alarm, `payment_rejected`, once per (ref, actor, provider ref) at occurrences
//!   opened `with_rejection_alarm` (none elsewhere: a rejection changes nothing);
//! - cancellation frees the seats in its commit, voids the tickets, refunds the unit prices
//!   (a plain booking: its share, rounded down to its price's decimals, the last taking the
//!   rest; library choice) with the first payment's provider ref; a named checked-in ticket
//!   refuses it whole; cancelling again is `Noop`;
//! - every commit that frees seats (release, abandon, expiry, cancellation, unblock, a
//!   configuration change, joining or leaving, the sweep) passes lapsed offers on and offers
//!   what the counters leave free to the waiting entries that fit, in order;
//! - extensions never go past the hold's first expiry plus `max_extension_secs` (library doc);
//! - a limited sweep takes the oldest due records first, across occurrences (`Store::due`);
//! - a duplicate payment's refund carries the result's money, completed from the first
//!   payment's when that can, else from the booking's price (every refund signal carries
//!   amount and currency).
//!
//! Set `SEATHOLD_MODEL_SEED=<u64>` to explore another deterministic sequence.
#![allow(dead_code, clippy::too_many_arguments, clippy::large_enum_variant, clippy::type_complexity)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use seathold::catalogue::{
    Availability, BlockOutcome, BlockRefusal, Dim, LatePayment, Line, OccurrenceConfig, Pool, PricingError, Tier,
};
use seathold::contract::{
    ActorId, Amount, BlockName, CheckoutRequest, Currency, EventKind, MAX_QUANTITY, Money, NoHoldReason, OccKey, OpKey,
    OutboxEvent, PaymentResult, PaymentStatus, PoolName, ProviderRef, Ref, TierName,
};
use seathold::holds::{
    AbandonOutcome, CancelOutcome, CancelRefusal, ExtendRefusal, HoldRequest, HoldState, RequestOutcome, RequestRefusal,
};
use seathold::ledger::EntryKind;
use seathold::settlement::{RejectReason, Settlement};
use seathold::tickets::{CheckIn, TicketKey, TicketRef, TicketStatus};
use seathold::waitlist::WaitlistRefusal;
use seathold::{AsyncEngine, AsyncStore, ManualClock, OpError, PriceRefusal, TicketRefusal};
use time::{Duration, OffsetDateTime};

use crate::common::{Ledger, PaidKey, fmt_amount, paid_key, start};

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Occurrences 0..OPENABLE can be opened; occurrence OPENABLE is never opened (unknown).
pub(crate) const OPENABLE: usize = 3;
pub(crate) const OCCS: usize = OPENABLE + 1;
pub(crate) const ACTORS: usize = 6;
/// Tier names by slot; slot 4 names no tier of any occurrence.
const TIER_NAMES: [&str; 5] = ["ga", "vip", "free", "usd", "nope"];
const NANOS: u64 = 1_000_000_000;
const CENT: u64 = NANOS / 100;

/// How a test drives the engine's futures: `Blocking` for a blocking store, a runtime for
/// PostgreSQL.
pub(crate) trait Exec {
    fn run<F: Future>(&self, f: F) -> F::Output;
}

/// Drives a blocking store's futures (always ready) on the calling thread.
pub(crate) struct Blocking;

impl Exec for Blocking {
    fn run<F: Future>(&self, f: F) -> F::Output {
        seathold::conformance::block_on(f)
    }
}

/// How much to run.
pub(crate) struct Params {
    pub label: &'static str,
    pub cases: u32,
    /// Ops per case are drawn from 1..=max_ops, so a failure shrinks to a short case.
    pub max_ops: usize,
    pub min_steps: u64,
    /// Assert that the generator reached every outcome in [`MUST_COVER`].
    pub check_coverage: bool,
    /// Run the engine with a read cache of this many records (`AsyncEngine::with_read_cache`).
    pub read_cache: Option<usize>,
}

// ---------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone, Copy)]
enum RefPick {
    /// A never-used ref.
    Fresh,
    /// The ref of the actor's current hold here (fresh if none).
    Current,
    /// One of the refs this actor held under here before (fresh if none).
    Previous(usize),
    /// One of the refs anyone held under here (fresh if none): another actor's, usually.
    Other(usize),
    /// One of the refs a payment result named here before any request used it.
    Leaked(usize),
    /// The ref the next fresh pick will get: a payment that arrives before its request.
    Upcoming,
    /// One of a few refs shared by everyone.
    Shared(u8),
    /// One of the bookings confirmed here (any actor's; fresh if none).
    Booked(usize),
    /// One of the holds held here (any actor's, live or lapsed; fresh if none).
    Holding(usize),
    /// One of the bookings here with tickets (any actor's), else as `Booked`.
    Ticketed(usize),
}

#[derive(Debug, Clone, Copy)]
enum ActorPick {
    Fixed(usize),
    /// One of the actors holding a live offer here (fixed if none).
    Offered(usize, usize),
    /// One of the actors on the waiting list here (fixed if none).
    Waiting(usize, usize),
    /// One of the actors with a standing booking here (fixed if none).
    Buyer(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum TierPick {
    /// At a tiered occurrence one of its tiers, else none.
    Auto(u8),
    NoTier,
    /// A tier by name slot, whether the occurrence sells it or not.
    Slot(u8),
    /// The tier of the entry the actor pick resolved to (else `Auto`).
    Entry(u8),
}

#[derive(Debug, Clone, Copy)]
enum ExpectPick {
    None,
    Exact(u8),
    WrongAmount,
    WrongCurrency,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Plain at a plain occurrence, lines at a tiered one.
    Auto,
    Plain,
    Lines,
    /// The seats of the actor's offer (else `Auto`).
    Offer,
}

#[derive(Debug, Clone)]
struct OrderPick {
    shape: Shape,
    qty: u32,
    unit: usize,
    usd: bool,
    form: u8,
    lines: Vec<(TierPick, u32)>,
    expect: ExpectPick,
}

#[derive(Debug, Clone, Copy)]
enum MoneyPick {
    Absent,
    /// The price of the hold the ref names, written in form `n`.
    Exact(u8),
    WrongAmount,
    WrongCurrency,
    AmountOnly(u8),
    CurrencyOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Paid,
    Failed,
    Expired,
}

#[derive(Debug, Clone, Copy)]
enum Forge {
    /// The ticket's own credential.
    Real,
    /// Its credential under another key.
    OtherKey,
    /// A genuine credential for a seat the booking does not have.
    NoSuchSeat,
    /// Not a credential at all.
    Garbage,
    /// The real credential with its MAC altered.
    Tampered,
    /// The ticket's own credential, scanned at another occurrence's door.
    WrongDoor,
    /// The last keyed scan again, under its operation key (a scanner's retry after a lost
    /// answer): its first answer, replayed, nothing changed.
    Retry,
    /// The ticket's own credential under the last scan's operation key (a key reused for
    /// another command, unless it names the same ticket).
    ReuseKey,
}

/// The last scan made under a fresh operation key: its key, door and credential.
#[derive(Debug, Clone)]
struct LastScan {
    op_key: OpKey,
    door: OccKey,
    credential: String,
}

/// What an operation key recorded at a door: the ticket the scan named (by ref and seat
/// index) and its first answer.
type ScanRecord = (Option<(String, u32)>, CheckIn);

#[derive(Debug, Clone)]
enum Op {
    /// Open the occurrence with `cfg`; if it is open, change its capacity and TTL to `cfg`'s
    /// and move every tier and pool cap by `shift`.
    Open {
        occ: usize,
        cfg: MCfg,
        shift: i32,
    },
    Request {
        occ: usize,
        actor: ActorPick,
        r: RefPick,
        order: OrderPick,
    },
    /// `provider`: none, or the `k`-th of a few provider refs per ref. `owner`: the actor is
    /// the one of the booking the ref names, if any.
    Settle {
        occ: usize,
        actor: usize,
        owner: bool,
        r: RefPick,
        status: Status,
        money: MoneyPick,
        wire: bool,
        provider: Option<u8>,
    },
    Redeliver(usize),
    /// The `i`-th request made before, again (same occurrence, actor, ref and order).
    Repeat(usize),
    Bad(u8),
    Advance(i64),
    Sweep(usize),
    Drain,
    SetPrice {
        occ: usize,
        tier: TierPick,
        cents: u64,
        usd: bool,
    },
    Block {
        occ: usize,
        name: u8,
        seats: u32,
        tier: TierPick,
    },
    Unblock {
        occ: usize,
        name: u8,
    },
    Cancel {
        occ: usize,
        actor: usize,
        r: RefPick,
        tickets: Option<Vec<u32>>,
    },
    CheckIn {
        occ: usize,
        actor: usize,
        r: RefPick,
        index: u32,
        forge: Forge,
    },
    Join {
        occ: usize,
        actor: ActorPick,
        tier: TierPick,
        seats: u32,
    },
    Leave {
        occ: usize,
        actor: ActorPick,
        tier: TierPick,
    },
    Abandon {
        occ: usize,
        actor: usize,
        owner: bool,
        r: RefPick,
    },
    Extend {
        occ: usize,
        actor: usize,
        r: RefPick,
        by: i64,
    },
}

const UNITS: [u64; 3] = [2500, 1999, 0];

fn occ_pick() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..OPENABLE, 1 => Just(OPENABLE)]
}

fn ref_pick(current_weight: u32, booked_weight: u32) -> impl Strategy<Value = RefPick> {
    prop_oneof![
        4 => Just(RefPick::Fresh),
        current_weight => Just(RefPick::Current),
        2 => (0..4usize).prop_map(RefPick::Previous),
        2 => (0..16usize).prop_map(RefPick::Other),
        1 => (0..4usize).prop_map(RefPick::Leaked),
        1 => Just(RefPick::Upcoming),
        1 => (0..3u8).prop_map(RefPick::Shared),
        booked_weight => (0..8usize).prop_map(RefPick::Booked),
        booked_weight => (0..8usize).prop_map(RefPick::Holding),
    ]
}

fn actor_pick(offered: u32, waiting: u32, buyer: u32) -> impl Strategy<Value = ActorPick> {
    prop_oneof![
        8 => (0..ACTORS).prop_map(ActorPick::Fixed),
        offered => (0..4usize, 0..ACTORS).prop_map(|(i, a)| ActorPick::Offered(i, a)),
        waiting => (0..4usize, 0..ACTORS).prop_map(|(i, a)| ActorPick::Waiting(i, a)),
        buyer => (0..4usize, 0..ACTORS).prop_map(|(i, a)| ActorPick::Buyer(i, a)),
    ]
}

fn tier_pick() -> impl Strategy<Value = TierPick> {
    prop_oneof![
        12 => (0..4u8).prop_map(TierPick::Auto),
        1 => Just(TierPick::NoTier),
        1 => (0..5u8).prop_map(TierPick::Slot),
    ]
}

fn qty_pick() -> impl Strategy<Value = u32> {
    prop_oneof![30 => 1..=3u32, 1 => Just(0u32), 1 => Just(MAX_QUANTITY + 1)]
}

fn order_pick() -> impl Strategy<Value = OrderPick> {
    let shape = prop_oneof![
        20 => Just(Shape::Auto),
        1 => Just(Shape::Plain),
        1 => Just(Shape::Lines),
        6 => Just(Shape::Offer),
    ];
    let line =
        (prop_oneof![30 => (0..4u8).prop_map(TierPick::Auto), 1 => (0..5u8).prop_map(TierPick::Slot)], qty_pick());
    let lines = prop::collection::vec(line, 1..=3);
    let expect = prop_oneof![
        4 => Just(ExpectPick::None),
        4 => (0..6u8).prop_map(ExpectPick::Exact),
        1 => Just(ExpectPick::WrongAmount),
        1 => Just(ExpectPick::WrongCurrency),
    ];
    (shape, qty_pick(), 0..UNITS.len(), prop::bool::weighted(0.2), 0..6u8, lines, expect).prop_map(
        |(shape, qty, unit, usd, form, lines, expect)| OrderPick { shape, qty, unit, usd, form, lines, expect },
    )
}

fn money_pick() -> impl Strategy<Value = MoneyPick> {
    prop_oneof![
        4 => Just(MoneyPick::Absent),
        4 => (0..6u8).prop_map(MoneyPick::Exact),
        1 => Just(MoneyPick::WrongAmount),
        1 => Just(MoneyPick::WrongCurrency),
        1 => (0..6u8).prop_map(MoneyPick::AmountOnly),
        1 => Just(MoneyPick::CurrencyOnly),
    ]
}

fn ttl_pick() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![5u32, 10, 30, 60])
}

fn tiers_pick() -> impl Strategy<Value = (Vec<MTier>, Vec<u32>)> {
    (
        (prop::option::weighted(0.5, 1..=6u32), any::<bool>()),
        prop::option::weighted(
            0.8,
            (1..=4u32, any::<bool>(), any::<bool>(), prop::sample::select(vec![4000u64, 1999])),
        ),
        prop::option::weighted(0.6, prop::option::weighted(0.7, 1..=3u32)),
        prop::bool::weighted(0.2),
        2..=6u32,
    )
        .prop_map(|((ga_cap, ga_pool), vip, free, usd, pool_cap)| {
            let mut tiers =
                vec![MTier { slot: 0, cents: 2500, cur: "EUR", cap: ga_cap, pools: Vec::new(), lock: false }];
            let mut pooled = ga_pool;
            if ga_pool {
                tiers[0].pools.push(0);
            }
            if let Some((cap, in_pool, lock, cents)) = vip {
                pooled |= in_pool;
                let pools = if in_pool { vec![0] } else { Vec::new() };
                tiers.push(MTier { slot: 1, cents, cur: "EUR", cap: Some(cap), pools, lock });
            }
            if let Some(cap) = free {
                tiers.push(MTier { slot: 2, cents: 0, cur: "EUR", cap, pools: Vec::new(), lock: false });
            }
            if usd {
                tiers.push(MTier { slot: 3, cents: 1500, cur: "USD", cap: None, pools: Vec::new(), lock: true });
            }
            (tiers, if pooled { vec![pool_cap] } else { Vec::new() })
        })
}

/// An occurrence's configuration: a Part 1 one (capacity and TTL only), a plain one with
/// Part 2 options, or a tiered one.
fn cfg_pick() -> impl Strategy<Value = MCfg> {
    let options = (
        prop::option::weighted(0.6, 2..=6u32),
        any::<bool>(),
        prop::option::weighted(0.5, prop::sample::select(vec![5u32, 20, 60])),
        prop::bool::weighted(0.7),
        prop::sample::select(vec![0u32, 0, 10, 40]),
        any::<bool>(),
    );
    let part1 = (1..=9u32, ttl_pick()).prop_map(|(capacity, ttl)| MCfg::plain(capacity, ttl));
    let plain =
        (1..=9u32, ttl_pick(), options.clone()).prop_map(|(capacity, ttl, o)| MCfg::plain(capacity, ttl).with(o));
    let tiered = (2..=10u32, ttl_pick(), options, tiers_pick()).prop_map(|(capacity, ttl, o, (tiers, pools))| {
        let mut c = MCfg::plain(capacity, ttl).with(o);
        c.tiers = tiers;
        c.pools = pools;
        c
    });
    prop_oneof![2 => part1, 1 => plain, 3 => tiered]
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![6 => Just(Status::Paid), 2 => Just(Status::Failed), 1 => Just(Status::Expired)];
    let provider = prop_oneof![3 => Just(None), 2 => (0..3u8).prop_map(Some)];
    let open = (0..OPENABLE, cfg_pick(), 0..=9u32, -2..=2i32).prop_map(|(occ, mut cfg, capacity, shift)| {
        // A reopen changes the capacity (to any value, 0 included) and the TTL.
        if capacity > 0 || cfg.tiers.is_empty() {
            cfg.capacity = capacity;
        }
        Op::Open { occ, cfg, shift }
    });
    let request = (occ_pick(), actor_pick(3, 0, 2), ref_pick(3, 0), order_pick())
        .prop_map(|(occ, actor, r, order)| Op::Request { occ, actor, r, order });
    let settle = (
        occ_pick(),
        0..ACTORS,
        prop::bool::weighted(0.5),
        ref_pick(8, 3),
        status,
        money_pick(),
        any::<bool>(),
        provider,
    )
        .prop_map(|(occ, actor, owner, r, status, money, wire, provider)| Op::Settle {
            occ,
            actor,
            owner,
            r,
            status,
            money,
            wire,
            provider,
        });
    let tickets = prop_oneof![
        3 => Just(None),
        2 => prop::collection::vec(prop_oneof![8 => 0..3u32, 1 => Just(7u32)], 1..=3).prop_map(Some),
    ];
    let forge = prop_oneof![
        8 => Just(Forge::Real),
        1 => Just(Forge::OtherKey),
        1 => Just(Forge::NoSuchSeat),
        1 => Just(Forge::Garbage),
        1 => Just(Forge::Tampered),
        1 => Just(Forge::WrongDoor),
        2 => Just(Forge::Retry),
        1 => Just(Forge::ReuseKey),
    ];
    let seats = prop_oneof![20 => 1..=3u32, 1 => Just(0u32)];
    let booked = prop_oneof![2 => ref_pick(1, 2), 3 => (0..8usize).prop_map(RefPick::Ticketed)];
    // Boxed: the union's value trees stay small to move around.
    prop_oneof![
        2 => open.boxed(),
        28 => request.boxed(),
        4 => (0..64usize).prop_map(Op::Repeat).boxed(),
        24 => settle.boxed(),
        4 => (0..64usize).prop_map(Op::Redeliver).boxed(),
        1 => (0..BAD_BODIES as u8).prop_map(Op::Bad).boxed(),
        10 => prop_oneof![3 => 1..=5i64, 1 => 20..=120i64].prop_map(Op::Advance).boxed(),
        5 => prop_oneof![Just(0usize), 1..4usize, Just(usize::MAX), Just(usize::MAX)].prop_map(Op::Sweep).boxed(),
        4 => Just(Op::Drain).boxed(),
        3 => (occ_pick(), tier_pick(), prop::sample::select(vec![2500u64, 1999, 4000, 0, 1250]), prop::bool::weighted(0.1))
            .prop_map(|(occ, tier, cents, usd)| Op::SetPrice { occ, tier, cents, usd })
            .boxed(),
        2 => (occ_pick(), 0..3u8, seats.clone(), tier_pick())
            .prop_map(|(occ, name, seats, tier)| Op::Block { occ, name, seats, tier })
            .boxed(),
        2 => (occ_pick(), 0..3u8).prop_map(|(occ, name)| Op::Unblock { occ, name }).boxed(),
        5 => (occ_pick(), 0..ACTORS, booked.clone(), tickets)
            .prop_map(|(occ, actor, r, tickets)| Op::Cancel { occ, actor, r, tickets })
            .boxed(),
        6 => (occ_pick(), 0..ACTORS, booked, prop_oneof![4 => 0..3u32, 1 => 3..8u32], forge)
            .prop_map(|(occ, actor, r, index, forge)| Op::CheckIn { occ, actor, r, index, forge })
            .boxed(),
        6 => (occ_pick(), actor_pick(0, 1, 0), tier_pick(), seats)
            .prop_map(|(occ, actor, tier, seats)| Op::Join { occ, actor, tier, seats })
            .boxed(),
        2 => (occ_pick(), actor_pick(2, 4, 0), prop_oneof![3 => (0..4u8).prop_map(TierPick::Entry), 1 => tier_pick()])
            .prop_map(|(occ, actor, tier)| Op::Leave { occ, actor, tier })
            .boxed(),
        3 => (occ_pick(), 0..ACTORS, prop::bool::weighted(0.7), ref_pick(3, 4))
            .prop_map(|(occ, actor, owner, r)| Op::Abandon { occ, actor, owner, r })
            .boxed(),
        4 => (occ_pick(), 0..ACTORS, ref_pick(2, 6), prop_oneof![8 => 1..=40i64, 1 => -3..=0i64])
            .prop_map(|(occ, actor, r, by)| Op::Extend { occ, actor, r, by })
            .boxed(),
    ]
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    init: Vec<MCfg>,
    ops: Vec<Op>,
}

fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    (prop::collection::vec(cfg_pick(), 2), prop::collection::vec(op(), 1..=max_ops))
        .prop_map(|(init, ops)| Case { init, ops })
}

// ---------------------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone, PartialEq, Eq)]
struct MTier {
    slot: usize,
    cents: u64,
    cur: &'static str,
    cap: Option<u32>,
    /// Indices of the pools it draws on.
    pools: Vec<usize>,
    lock: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MCfg {
    capacity: u32,
    ttl: u32,
    tiers: Vec<MTier>,
    /// Pool caps; pool `i` is named `p{i}`.
    pools: Vec<u32>,
    max_per_actor: Option<u32>,
    revive: bool,
    offer_ttl: Option<u32>,
    tickets: bool,
    max_ext: u32,
    /// `with_rejection_alarm`.
    alarm: bool,
}

impl MCfg {
    fn plain(capacity: u32, ttl: u32) -> Self {
        Self {
            capacity,
            ttl,
            tiers: Vec::new(),
            pools: Vec::new(),
            max_per_actor: None,
            revive: false,
            offer_ttl: None,
            tickets: false,
            max_ext: 0,
            alarm: false,
        }
    }

    fn with(
        mut self,
        (max, revive, offer_ttl, tickets, ext, alarm): (Option<u32>, bool, Option<u32>, bool, u32, bool),
    ) -> Self {
        self.max_per_actor = max;
        self.revive = revive;
        self.offer_ttl = offer_ttl;
        self.tickets = tickets;
        self.max_ext = ext;
        self.alarm = alarm;
        self
    }

    fn tiered(&self) -> bool {
        !self.tiers.is_empty()
    }

    /// The position of the tier named by `slot`.
    fn tier_at(&self, slot: usize) -> Option<usize> {
        self.tiers.iter().position(|t| t.slot == slot)
    }

    /// `d`'s key as the crate writes it (`total`, `tier:NAME`, `pool:NAME`).
    fn dim_key(&self, d: MDim) -> String {
        match d {
            MDim::Total => "total".to_owned(),
            MDim::Tier(t) => format!("tier:{}", self.tier_name(t)),
            MDim::Pool(p) => format!("pool:{}", pool_name(p)),
        }
    }

    fn tier_name(&self, t: usize) -> &'static str {
        TIER_NAMES[self.tiers[t].slot]
    }

    fn offer_ttl(&self) -> i64 {
        i64::from(self.offer_ttl.unwrap_or(self.ttl))
    }

    /// The dimensions a seat of `tier` counts against.
    fn dims_of(&self, tier: Option<usize>) -> Vec<MDim> {
        let mut out = vec![MDim::Total];
        if let Some(t) = tier {
            out.push(MDim::Tier(t));
            out.extend(self.tiers[t].pools.iter().map(|p| MDim::Pool(*p)));
        }
        out
    }

    fn cap(&self, d: MDim) -> Option<u64> {
        match d {
            MDim::Total => Some(u64::from(self.capacity)),
            MDim::Tier(t) => self.tiers[t].cap.map(u64::from),
            MDim::Pool(p) => Some(u64::from(self.pools[p])),
        }
    }

    fn dims(&self) -> Vec<MDim> {
        let mut out = vec![MDim::Total];
        out.extend((0..self.tiers.len()).map(MDim::Tier));
        out.extend((0..self.pools.len()).map(MDim::Pool));
        out
    }

    fn price(&self, t: usize) -> (u64, &'static str) {
        (self.tiers[t].cents * CENT, self.tiers[t].cur)
    }

    fn to_config(&self) -> OccurrenceConfig {
        let mut c = OccurrenceConfig::new(self.capacity, u64::from(self.ttl)).expect("valid ttl");
        if self.tiered() {
            c = c.with_tiers(
                self.tiers
                    .iter()
                    .map(|t| {
                        let price = Money::parse(&fmt_amount(t.cents, 0), t.cur).expect("price");
                        let mut tier = Tier::new(TierName::new(TIER_NAMES[t.slot]).unwrap(), price)
                            .with_pools(t.pools.iter().map(|p| pool_name(*p)).collect());
                        if let Some(cap) = t.cap {
                            tier = tier.with_capacity(cap);
                        }
                        if t.lock { tier.locking_price_while_held() } else { tier }
                    })
                    .collect(),
            );
        }
        if !self.pools.is_empty() {
            c = c.with_pools(
                self.pools.iter().enumerate().map(|(i, cap)| Pool { pool: pool_name(i), capacity: *cap }).collect(),
            );
        }
        if let Some(m) = self.max_per_actor {
            c = c.with_max_per_actor(m);
        }
        if self.revive {
            c = c.with_late_payment(LatePayment::Revive);
        }
        if let Some(t) = self.offer_ttl {
            c = c.with_offer_ttl_secs(u64::from(t)).expect("offer ttl");
        }
        if self.tickets {
            c = c.with_tickets(true);
        }
        if self.alarm {
            c = c.with_rejection_alarm(true);
        }
        if self.max_ext > 0 {
            c = c.with_max_extension_secs(u64::from(self.max_ext)).expect("max extension");
        }
        c
    }

    /// This configuration reopened: `next`'s capacity and TTL, every cap moved by `shift`.
    fn reopened(&self, next: &MCfg, shift: i32) -> MCfg {
        let mv = |c: u32| u32::try_from((i64::from(c) + i64::from(shift)).max(0)).unwrap_or(0);
        let mut c = self.clone();
        c.capacity = next.capacity;
        c.ttl = next.ttl;
        for t in &mut c.tiers {
            t.cap = t.cap.map(mv);
        }
        for p in &mut c.pools {
            *p = mv(*p).max(1);
        }
        c
    }
}

fn pool_name(i: usize) -> PoolName {
    PoolName::new(format!("p{i}")).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum MDim {
    Total,
    Tier(usize),
    Pool(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Held,
    Confirmed,
    Released,
    Expired,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MTicket {
    Valid,
    CheckedIn(i64),
    Cancelled(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MLine {
    tier: usize,
    qty: u32,
    unit: u64,
}

#[derive(Debug, Clone)]
struct MHold {
    actor: usize,
    r: String,
    qty: u32,
    /// The total price, in nanos.
    price: u64,
    cur: &'static str,
    /// Decimals of the price as written (a plain hold's share rounds to them).
    scale: u32,
    /// Empty for a plain hold.
    lines: Vec<MLine>,
    /// Its expiry when placed (extensions are capped from it).
    first_expires: i64,
    expires: i64,
    state: MState,
    tickets: Vec<MTicket>,
    cancelled_seats: u32,
    cancellations: u32,
    refunded: u64,
    /// A tiered order priced zero, confirmed by its own request.
    free: bool,
    revived: bool,
}

impl MHold {
    fn live(&self, now: i64) -> bool {
        self.state == MState::Held && self.expires > now
    }
    /// Held but past its expiry, and not yet seen expired.
    fn lapsed(&self, now: i64) -> bool {
        self.state == MState::Held && self.expires <= now
    }
    fn seat_tier(&self, i: u32) -> Option<usize> {
        let mut seen = 0;
        for l in &self.lines {
            seen += l.qty;
            if i < seen {
                return Some(l.tier);
            }
        }
        None
    }
    fn seat_unit(&self, i: u32) -> u64 {
        let mut seen = 0;
        for l in &self.lines {
            seen += l.qty;
            if i < seen {
                return l.unit;
            }
        }
        0
    }
    /// Whether seat `i` of a confirmed booking still stands.
    fn standing(&self, i: u32) -> bool {
        match self.tickets.get(i as usize) {
            Some(t) => !matches!(t, MTicket::Cancelled(_)),
            None => self.cancelled_seats == 0,
        }
    }
    fn standing_seats(&self) -> u32 {
        if self.state == MState::Confirmed { self.qty - self.cancelled_seats } else { 0 }
    }
    /// The amount the booking keeps: the price less what cancellations refunded.
    fn kept(&self) -> u64 {
        self.price - self.refunded
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MEntry {
    actor: usize,
    tier: Option<usize>,
    seats: u32,
    /// Seats set aside, and until when.
    offer: Option<(u32, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MRefund {
    reason: NoHoldReason,
    amount: Option<u64>,
    currency: Option<&'static str>,
    provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MOutcome {
    Confirmed,
    Refund(MRefund),
}

/// The first payment accounted under (occ, actor, ref).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MRecord {
    outcome: MOutcome,
    provider: Option<String>,
    amount: Option<u64>,
    currency: Option<&'static str>,
}

/// One occurrence of the model.
#[derive(Debug, Clone, Default)]
struct MOcc {
    cfg: Option<MCfg>,
    /// Every hold, by ref: a ref names at most one hold per occurrence, ever.
    holds: BTreeMap<String, MHold>,
    /// Refs in placement order.
    order: Vec<String>,
    /// The ref of each actor's latest hold.
    current: BTreeMap<usize, String>,
    /// First payments, by (actor, ref).
    records: BTreeMap<(usize, String), MRecord>,
    /// Second, different payments, by (actor, ref, provider ref).
    dups: BTreeMap<(usize, String, String), MRefund>,
    /// Payments refused for their money whose alarm was raised, by (actor, ref, provider).
    rejections: BTreeSet<(usize, String, Option<String>)>,
    blocks: BTreeMap<u8, (u32, Option<usize>)>,
    wl: Vec<MEntry>,
    /// Cancellation refunds: (amount, currency).
    cancels: Vec<(u64, &'static str)>,
}

/// Seats one dimension counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct U {
    /// Held, lapsed holds not yet expired included (what the store's counters say).
    held: u64,
    held_live: u64,
    confirmed: u64,
    blocked: u64,
    /// Offered, lapsed offers not yet passed on included.
    offered: u64,
    offered_live: u64,
}

impl U {
    fn counter(&self) -> u64 {
        self.held + self.confirmed + self.blocked + self.offered
    }
    fn live(&self) -> u64 {
        self.held_live + self.confirmed + self.blocked + self.offered_live
    }
}

/// One expected outbox event: (occ, actor, ref, at (seconds from the start), kind).
#[derive(Debug, Clone, PartialEq, Eq)]
struct XEv {
    occ: usize,
    actor: usize,
    r: Option<String>,
    at: i64,
    kind: XKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum XKind {
    Placed { qty: u32, price: u64, cur: &'static str, expires: i64, lines: Vec<(usize, u32, u64)> },
    Confirmed { qty: u32, revived: bool },
    Released { qty: u32 },
    Expired { qty: u32 },
    Extended { expires: i64 },
    Refund { reason: NoHoldReason, amount: Option<u64>, currency: Option<&'static str>, provider: Option<String> },
    Issued { ticket: String, tier: Option<usize> },
    TicketCancelled { ticket: String },
    CheckedIn { ticket: String },
    Offered { tier: Option<usize>, seats: u32, expires: i64 },
    Rejected { reason: &'static str, amount: Option<u64>, currency: Option<&'static str>, provider: Option<String> },
}

type Need = (Vec<MDim>, u64);

impl MOcc {
    fn cfg(&self) -> &MCfg {
        self.cfg.as_ref().expect("an open occurrence")
    }

    fn usage(&self, now: i64) -> BTreeMap<MDim, U> {
        let cfg = self.cfg();
        let mut u: BTreeMap<MDim, U> = cfg.dims().into_iter().map(|d| (d, U::default())).collect();
        let tier_dims: Vec<Vec<MDim>> = (0..cfg.tiers.len()).map(|t| cfg.dims_of(Some(t))).collect();
        let plain = [MDim::Total];
        let dims = |t: Option<usize>| -> &[MDim] { t.map_or(&plain[..], |t| &tier_dims[t][..]) };
        for h in self.holds.values() {
            let mut add = |t: Option<usize>, n: u64, f: &dyn Fn(&mut U, u64)| {
                for d in dims(t) {
                    f(u.get_mut(d).unwrap(), n);
                }
            };
            match h.state {
                MState::Held => {
                    let live = h.live(now);
                    let f = move |x: &mut U, n: u64| {
                        x.held += n;
                        if live {
                            x.held_live += n;
                        }
                    };
                    if h.lines.is_empty() {
                        add(None, u64::from(h.qty), &f);
                    }
                    for l in &h.lines {
                        add(Some(l.tier), u64::from(l.qty), &f);
                    }
                }
                MState::Confirmed => {
                    let f = |x: &mut U, n: u64| x.confirmed += n;
                    if h.cancelled_seats == 0 {
                        if h.lines.is_empty() {
                            add(None, u64::from(h.qty), &f);
                        }
                        for l in &h.lines {
                            add(Some(l.tier), u64::from(l.qty), &f);
                        }
                    } else {
                        for i in (0..h.qty).filter(|i| h.standing(*i)) {
                            add(h.seat_tier(i), 1, &f);
                        }
                    }
                }
                _ => {}
            }
        }
        for (seats, tier) in self.blocks.values() {
            for d in dims(*tier) {
                u.get_mut(d).unwrap().blocked += u64::from(*seats);
            }
        }
        for e in &self.wl {
            if let Some((seats, expires)) = e.offer {
                for d in dims(e.tier) {
                    let x = u.get_mut(d).unwrap();
                    x.offered += u64::from(seats);
                    if expires > now {
                        x.offered_live += u64::from(seats);
                    }
                }
            }
        }
        u
    }

    /// The first need that does not fit by the counters, adding them in order.
    fn first_failing(&self, now: i64, needs: &[Need]) -> Option<usize> {
        self.first_short(now, needs).map(|(i, _)| i)
    }

    /// The first need that does not fit, and the first of its dimensions (in the order
    /// total, tier, pools) without room for it.
    fn first_short(&self, now: i64, needs: &[Need]) -> Option<(usize, MDim)> {
        let cfg = self.cfg();
        let u = self.usage(now);
        let mut pending: BTreeMap<MDim, u64> = BTreeMap::new();
        for (i, (dims, n)) in needs.iter().enumerate() {
            for d in dims {
                *pending.entry(*d).or_default() += n;
            }
            if let Some(d) = dims.iter().find(|d| cfg.cap(**d).is_some_and(|c| u[*d].counter() + pending[*d] > c)) {
                return Some((i, *d));
            }
        }
        None
    }

    fn lapsed(&self, now: i64) -> Vec<String> {
        self.holds.values().filter(|h| h.lapsed(now)).map(|h| h.r.clone()).collect()
    }

    /// With someone waiting, the first step of a request or a block: every lapsed hold
    /// expired (oldest first, as the expiry index yields them; the engine reads one batch of
    /// 64, more than the model ever has) and the free seats offered down the list, nobody
    /// skipped. Returns the holds expired and whether offers were made.
    fn offer_before_deciding(
        &mut self,
        occ: usize,
        now: i64,
        evs: &mut Vec<XEv>,
    ) -> Result<(Vec<String>, bool), String> {
        if !self.waiting() {
            return Ok((Vec::new(), false));
        }
        let mut lapsed = self.lapsed(now);
        lapsed.sort_by_key(|r| (self.holds[r].expires, r.clone()));
        for r in &lapsed {
            self.expire(occ, r, now, evs)?;
        }
        let offered = self.settle_wl(occ, now, None, evs);
        Ok((lapsed, offered))
    }

    fn waiting(&self) -> bool {
        self.wl.iter().any(|e| e.offer.is_none())
    }

    fn expire(&mut self, occ: usize, r: &str, now: i64, evs: &mut Vec<XEv>) -> Result<(), String> {
        let h = self.holds.get_mut(r).ok_or_else(|| format!("hold_expired for {r}, which is no hold of occ {occ}"))?;
        if !h.lapsed(now) {
            return Err(format!("hold_expired for {r} at occ {occ}, which is not lapsed: {h:?} at t={now}"));
        }
        h.state = MState::Expired;
        evs.push(XEv {
            occ,
            actor: h.actor,
            r: Some(r.to_owned()),
            at: h.expires,
            kind: XKind::Expired { qty: h.qty },
        });
        Ok(())
    }

    fn release(&mut self, occ: usize, r: &str, now: i64, evs: &mut Vec<XEv>) {
        let h = self.holds.get_mut(r).expect("a live hold");
        h.state = MState::Released;
        evs.push(XEv { occ, actor: h.actor, r: Some(r.to_owned()), at: now, kind: XKind::Released { qty: h.qty } });
    }

    fn confirm(&mut self, occ: usize, r: &str, now: i64, revived: bool, evs: &mut Vec<XEv>) {
        let tickets = self.cfg().tickets;
        let h = self.holds.get_mut(r).expect("a hold to confirm");
        h.state = MState::Confirmed;
        h.revived = revived;
        evs.push(XEv {
            occ,
            actor: h.actor,
            r: Some(r.to_owned()),
            at: now,
            kind: XKind::Confirmed { qty: h.qty, revived },
        });
        if tickets {
            h.tickets = vec![MTicket::Valid; h.qty as usize];
            for i in 0..h.qty {
                evs.push(XEv {
                    occ,
                    actor: h.actor,
                    r: Some(r.to_owned()),
                    at: now,
                    kind: XKind::Issued { ticket: format!("{r}#{i}"), tier: h.seat_tier(i) },
                });
            }
        }
    }

    /// Offers that lapsed pass on; free seats (by the counters) go to the entries that fit,
    /// in order, skipping `skip`'s. Returns whether any offer was made.
    fn settle_wl(&mut self, occ: usize, now: i64, skip: Option<usize>, evs: &mut Vec<XEv>) -> bool {
        self.wl.retain(|e| e.offer.is_none_or(|(_, x)| x > now));
        let cfg = self.cfg().clone();
        let mut used: BTreeMap<MDim, u64> = self.usage(now).into_iter().map(|(d, u)| (d, u.counter())).collect();
        let expires = now + cfg.offer_ttl();
        let mut any = false;
        for e in self.wl.iter_mut().filter(|e| e.offer.is_none() && Some(e.actor) != skip) {
            let dims = cfg.dims_of(e.tier);
            let seats = u64::from(e.seats);
            if dims.iter().all(|d| cfg.cap(*d).is_none_or(|c| used[d] + seats <= c)) {
                for d in &dims {
                    *used.get_mut(d).unwrap() += seats;
                }
                e.offer = Some((e.seats, expires));
                evs.push(XEv {
                    occ,
                    actor: e.actor,
                    r: None,
                    at: now,
                    kind: XKind::Offered { tier: e.tier, seats: e.seats, expires },
                });
                any = true;
            }
        }
        any
    }

    /// The model's answer to "is there room for `needs`": by the counters, else with every
    /// lapsed hold counted out and the freed seats offered to the waiting list first. Returns
    /// the first need that does not fit, and whether offers would be made.
    fn room_answer(
        &self,
        occ: usize,
        now: i64,
        needs: &[Need],
        requester: Option<usize>,
    ) -> Result<(Option<(usize, MDim)>, bool), String> {
        if self.first_failing(now, needs).is_none() {
            return Ok((None, false));
        }
        let mut all = self.clone();
        for r in &self.lapsed(now) {
            all.expire(occ, r, now, &mut Vec::new())?;
        }
        let offered = all.settle_wl(occ, now, requester, &mut Vec::new());
        Ok((all.first_short(now, needs), offered))
    }

    /// Find room for `needs` on this (scratch) state: by the counters; if they say no, with
    /// lapsed holds expired (`chosen`, the engine's pick: all of them if someone waits,
    /// otherwise those it needed — checked), lapsed offers passed on and the waiting list
    /// offered the freed seats first (skipping `requester`).
    /// Returns the first need that does not fit (judged with every lapsed hold counted out),
    /// and whether offers were made.
    fn make_room(
        &mut self,
        occ: usize,
        now: i64,
        needs: &[Need],
        requester: Option<usize>,
        chosen: &[String],
        evs: &mut Vec<XEv>,
    ) -> Result<(Option<usize>, bool), String> {
        if self.first_failing(now, needs).is_none() {
            return Ok((None, false));
        }
        let lapsed = self.lapsed(now);
        let waiting = self.waiting();
        for r in chosen {
            ensure!(lapsed.contains(r), "the engine expired {r} at occ {occ} making room, but it is not lapsed");
        }
        let (want, all_offered) = self.room_answer(occ, now, needs, requester)?;
        let want = want.map(|(i, _)| i);
        if want.is_some() && !all_offered {
            // No room, and no offer made: nothing is committed.
            ensure!(chosen.is_empty(), "a full answer at occ {occ} committed the expiry of {chosen:?}");
            return Ok((want, false));
        }
        if waiting {
            let got: BTreeSet<&String> = chosen.iter().collect();
            let want: BTreeSet<&String> = lapsed.iter().collect();
            ensure!(
                got == want,
                "with people waiting every lapsed hold of occ {occ} must be expired making room: expired {got:?}, \
                 lapsed {want:?}"
            );
        }
        // What the engine's pick leaves (all of them, if someone waits).
        for r in chosen {
            self.expire(occ, r, now, evs)?;
        }
        let offered = self.settle_wl(occ, now, requester, evs);
        let got = self.first_failing(now, needs);
        ensure!(
            got == want,
            "making room at occ {occ} with the lapsed holds {chosen:?} expired leaves need {got:?} failing; with all \
             of {lapsed:?} expired, {want:?}"
        );
        Ok((want, offered))
    }
}

/// One payment result as the model sees it.
#[derive(Debug, Clone)]
struct MResult {
    occ: usize,
    actor: usize,
    r: String,
    status: Status,
    /// In cents, and the form it is written in.
    amount: Option<(u64, u8)>,
    currency: Option<&'static str>,
    provider: Option<String>,
    wire: bool,
}

impl MResult {
    fn nanos(&self) -> Option<u64> {
        self.amount.map(|(c, _)| c * CENT)
    }

    /// The money a refund carries: the result's, completed from `booked` where the result
    /// left a part out (every refund signal carries amount and currency).
    fn refund_money(&self, booked: Option<(u64, &'static str)>) -> (Option<u64>, Option<&'static str>) {
        match (self.nanos(), self.currency, booked) {
            (None, None, Some((a, c))) => (Some(a), Some(c)),
            (Some(a), None, Some((_, c))) => (Some(a), Some(c)),
            (None, Some(c), Some((a, bc))) if c == bc => (Some(a), Some(c)),
            (a, c, _) => (a, c),
        }
    }

    fn mismatch(&self, h: &MHold) -> Option<&'static str> {
        if self.currency.is_some_and(|c| c != h.cur) {
            return Some("currency_mismatch");
        }
        if self.nanos().is_some_and(|a| a != h.price) {
            return Some("amount_mismatch");
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpSettle {
    Rejected(&'static str),
    Confirmed { replayed: bool },
    Released,
    Noop,
    Refund { refund: MRefund, replayed: bool },
}

/// The model's request, resolved.
#[derive(Debug, Clone)]
enum ROrder {
    Plain { qty: u32, price: u64, cur: &'static str, scale: u32 },
    Lines { lines: Vec<(usize, u32)>, expect: Option<(u64, &'static str)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpReq {
    BadQuantity,
    Unknown,
    LinesNeedTiers,
    TiersNeedLines,
    UnknownTier(&'static str),
    Mixed,
    RequestChanged,
    RefUsed,
    Replay,
    FreeReplay,
    Already { r: String, confirmed: bool },
    PriceChanged { price: u64, cur: &'static str },
    Limit { max: u32 },
    Full { tier: Option<&'static str>, short: MDim },
    Placed,
    FreeConfirmed,
}

// ---------------------------------------------------------------------------------------
// Names and money

fn occ_name(i: usize) -> String {
    format!("occ-{i}")
}
fn occ_key(i: usize) -> OccKey {
    OccKey::new(occ_name(i)).unwrap()
}
fn actor_name(i: usize) -> String {
    format!("user-{i}")
}
fn actor_id(i: usize) -> ActorId {
    ActorId::new(actor_name(i)).unwrap()
}
fn index_of(s: &str, prefix: &str) -> Option<usize> {
    s.strip_prefix(prefix)?.parse().ok()
}
/// `n` nanos as an amount.
fn amount(n: u64) -> Amount {
    Amount::parse(&format!("{}.{:09}", n / NANOS, n % NANOS)).expect("valid amount")
}
/// An amount in nanos.
fn nanos_of(a: &Amount) -> u64 {
    let s = a.to_string();
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let frac = format!("{frac:0<9}");
    int.parse::<u64>().unwrap() * NANOS + frac[..9].parse::<u64>().unwrap()
}
fn cur_of(c: &Currency) -> &'static str {
    match c.as_str() {
        "EUR" => "EUR",
        "USD" => "USD",
        other => panic!("unexpected currency {other}"),
    }
}

/// How often each kind of outcome was seen, to prove the generator reaches every row.
static COVERAGE: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn cover(what: impl Into<String>) {
    *COVERAGE.lock().unwrap_or_else(PoisonError::into_inner).entry(what.into()).or_insert(0) += 1;
}

/// Every outcome the memory run must reach.
pub(crate) const MUST_COVER: &[&str] = &[
    "request:Placed",
    "request:Placed(ref leaked by another actor's payment)",
    "request:Placed(lines)",
    "request:Placed(3 lines)",
    "request:Placed(took own offer)",
    "request:Placed(repeat purchase)",
    "request:FreeConfirmed",
    "request:FreeReplay",
    "request:Full",
    "request:Full(tier)",
    "request:Full(second line)",
    "request:Full(pool)",
    "request:Full(offers made)",
    "request:Full(total short)",
    "request:Full(tier cap short)",
    "request:Full(pool short)",
    "request:offers before deciding",
    "block:offers before deciding",
    "request:offers before deciding (expired a lapsed hold)",
    "request:placed leaves the waiting list",
    "settle:redelivery names the payment",
    "request:Already",
    "request:Already(confirmed)",
    "request:Replay",
    "request:RequestChanged",
    "request:RefUsed(own hold)",
    "request:RefUsed(another actor's hold)",
    "request:RefUsed(paid before requested)",
    "request:Unknown",
    "request:BadQuantity",
    "request:PriceChanged",
    "request:Limit",
    "request:UnknownTier",
    "request:Mixed",
    "request:LinesNeedTiers",
    "request:TiersNeedLines",
    "request:own-lapse-expired",
    "request:reclaimed-other-lapsed",
    "settle:Confirmed",
    "settle:Confirmed(replay)",
    "settle:Confirmed(replay, other money)",
    "settle:Confirmed(revived)",
    "settle:Confirmed(revived lapsed)",
    "settle:Confirmed(repeat purchase)",
    "settle:Released",
    "settle:Noop",
    "settle:Rejected(amount_mismatch)",
    "settle:Rejected(currency_mismatch)",
    "settle:Rejected(alarm)",
    "settle:Refund(no_hold)",
    "settle:Refund(expired)",
    "settle:Refund(released)",
    "settle:Refund(ref_mismatch)",
    "settle:Refund(already_paid)",
    "settle:Refund(duplicate_payment)",
    "settle:Refund(replay)",
    "settle:Refund(replay of a duplicate)",
    "settle:Refund(other money, hold not live)",
    "settle:Refund(ref_mismatch, older hold of the actor's)",
    "settle:Refund(expired, not revived)",
    "settle:Refund(no_hold, another actor's booking)",
    "settle:own-lapse-expired",
    "settle:other-ref-lapse-expired",
    "join:behind-another-tier",
    "set_price:changed",
    "set_price:Locked",
    "set_price:UnknownTier",
    "block:Blocked",
    "block:Full",
    "block:Exists",
    "unblock:Unblocked",
    "unblock:offered",
    "cancel:Cancelled",
    "cancel:Cancelled(some tickets)",
    "cancel:Cancelled(plain share)",
    "cancel:Noop",
    "cancel:CheckedIn",
    "cancel:NotConfirmed",
    "cancel:BadTicket",
    "cancel:NoTickets",
    "cancel:offered",
    "check_in:Admitted",
    "check_in:AlreadyCheckedIn",
    "check_in:Cancelled",
    "check_in:Invalid",
    "check_in:WrongOccurrence",
    "cancel:retry replayed",
    "cancel:retry refused again",
    "check_in:Retry(replayed)",
    "check_in:Retry(not recorded)",
    "check_in:ReuseKey(same command: replayed)",
    "check_in:ReuseKey(another command: refused)",
    "join:offered",
    "join:waiting",
    "join:again",
    "leave:left",
    "leave:passed on",
    "abandon:Released",
    "abandon:offered",
    "extend:extended",
    "extend:capped",
    "extend:NotAllowed",
    "extend:NotLive",
    "offer:passed on",
    "sweep:expired",
    "sweep:offered",
    "open:offered",
    "bad-input",
    "capacity-lowered-below-use",
];

const BAD_BODIES: usize = 17;

fn bad_body(k: u8) -> Vec<u8> {
    let base = |extra: &str| {
        format!(r#"{{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"r1","status":"paid"{extra}}}"#)
    };
    match k {
        0 => b"not json".to_vec(),
        1 => b"[]".to_vec(),
        2 => br#"{"kind":"events.checkout","occ_key":"occ-0","actor":"user-0","ref":"r1","status":"paid"}"#.to_vec(),
        3 => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"r1","status":"refunded"}"#.to_vec(),
        4 => base(r#","amount":25.0,"currency":"EUR""#).into_bytes(),
        5 => base(r#","amount":"-25.00","currency":"EUR""#).into_bytes(),
        6 => base(r#","amount":"25,00","currency":"EUR""#).into_bytes(),
        7 => base(r#","amount":"25.00","currency":"eur""#).into_bytes(),
        8 => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"","ref":"r1","status":"paid"}"#.to_vec(),
        9 => format!(
            r#"{{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"{}","status":"paid"}}"#,
            "r".repeat(129)
        )
        .into_bytes(),
        10 => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","status":"paid"}"#.to_vec(),
        11 => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"r1","status":null}"#.to_vec(),
        12 => base(&format!(r#","pad":"{}""#, "x".repeat(70_000))).into_bytes(),
        13 => base(r#","occurred_at":"yesterday""#).into_bytes(),
        14 => base(r#","amount":"2.5e1","currency":"EUR""#).into_bytes(),
        15 => base(r#","amount":"25.001","currency":"EUR""#).into_bytes(),
        _ => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"r\n1","status":"paid"}"#.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// The harness: engine + model + outbox consumer, checked after every step

struct Harness<'x, S: AsyncStore, X: Exec> {
    x: &'x X,
    engine: AsyncEngine<S, ManualClock>,
    other_key: TicketKey,
    ticket_key: TicketKey,
    /// Scans made under an operation key so far, and the last of them.
    scans: u64,
    last_scan: Option<LastScan>,
    /// Every first answer recorded under an operation key, by (door, key).
    scan_records: BTreeMap<(OccKey, OpKey), ScanRecord>,
    now: i64,
    occs: Vec<MOcc>,
    consumer: Ledger,
    /// Events pending in the outbox (committed, not drained) as last seen.
    pending: Vec<OutboxEvent>,
    last_id: u64,
    prev_live: Vec<BTreeMap<MDim, u64>>,
    prev_confirmed: Vec<u64>,
    /// Seats cancelled this step, per occurrence (the only way sold seats go down).
    cancelled_now: Vec<u64>,
    /// Bookings whose tickets changed this step: their `tickets()` are compared.
    touched: Vec<(usize, String)>,
    next_ref: u64,
    used_refs: BTreeMap<(usize, usize), Vec<String>>,
    leaked: Vec<Vec<String>>,
    past: Vec<MResult>,
    /// Every payment accounted, as the model decided.
    paid_keys: HashSet<PaidKey>,
    /// Requests made, resolved: (occ, actor, ref, order, form).
    requests: Vec<(usize, usize, String, ROrder, u8)>,
    /// The outbox as `peek_events` last read it (the next `new_events` uses it).
    peeked: Option<Vec<OutboxEvent>>,
    /// Whether this step's events were compared already.
    checked: bool,
    /// Steps run, and the occurrence the current step names (its ledger is checked after it).
    steps: u64,
    step_occ: Option<usize>,
}

/// The bad-ref answer shapes are compared by kind.
fn refusal_is<R>(got: &Result<impl std::fmt::Debug, OpError<R>>, want: impl Fn(&R) -> bool) -> bool {
    matches!(got, Err(OpError::Refused(r)) if want(r))
}

impl<'x, S: AsyncStore, X: Exec> Harness<'x, S, X> {
    fn new(x: &'x X, store: S, read_cache: Option<usize>) -> Self {
        let ticket_key = TicketKey::new([7u8; 32].to_vec()).expect("ticket key");
        let engine = AsyncEngine::with_clock(store, ManualClock::new(start())).with_ticket_key(ticket_key.clone());
        Self {
            x,
            engine: match read_cache {
                Some(n) => engine.with_read_cache(n),
                None => engine,
            },
            other_key: TicketKey::new([8u8; 32].to_vec()).expect("ticket key"),
            scans: 0,
            last_scan: None,
            scan_records: BTreeMap::new(),
            ticket_key,
            now: 0,
            occs: vec![MOcc::default(); OCCS],
            consumer: Ledger::part2(),
            pending: Vec::new(),
            last_id: 0,
            prev_live: vec![BTreeMap::new(); OCCS],
            prev_confirmed: vec![0; OCCS],
            cancelled_now: vec![0; OCCS],
            touched: Vec::new(),
            next_ref: 0,
            used_refs: BTreeMap::new(),
            leaked: vec![Vec::new(); OCCS],
            past: Vec::new(),
            paid_keys: HashSet::new(),
            requests: Vec::new(),
            peeked: None,
            checked: false,
            steps: 0,
            step_occ: None,
        }
    }

    fn at(&self, secs: i64) -> OffsetDateTime {
        start() + Duration::seconds(secs)
    }

    fn fresh_ref(&mut self) -> String {
        self.next_ref += 1;
        format!("r{}", self.next_ref)
    }

    fn resolve_ref(&mut self, occ: usize, actor: usize, pick: RefPick) -> String {
        let pick_from = |h: &mut Self, v: Vec<String>, i: usize| {
            if v.is_empty() { h.fresh_ref() } else { v[i % v.len()].clone() }
        };
        let m = &self.occs[occ];
        match pick {
            RefPick::Fresh => self.fresh_ref(),
            RefPick::Current => match m.current.get(&actor) {
                Some(r) => r.clone(),
                None => self.fresh_ref(),
            },
            RefPick::Previous(i) => {
                let v = self.used_refs.get(&(occ, actor)).cloned().unwrap_or_default();
                pick_from(self, v, i)
            }
            RefPick::Other(i) => {
                let v = m.order.clone();
                pick_from(self, v, i)
            }
            RefPick::Leaked(i) => {
                let v = self.leaked[occ].clone();
                pick_from(self, v, i)
            }
            RefPick::Upcoming => format!("r{}", self.next_ref + 1),
            RefPick::Shared(k) => format!("x{k}"),
            RefPick::Booked(i) => {
                let v: Vec<String> =
                    m.order.iter().filter(|r| m.holds[*r].state == MState::Confirmed).cloned().collect();
                pick_from(self, v, i)
            }
            RefPick::Ticketed(i) => {
                let v: Vec<String> = m.order.iter().filter(|r| !m.holds[*r].tickets.is_empty()).cloned().collect();
                if v.is_empty() { self.resolve_ref(occ, actor, RefPick::Booked(i)) } else { v[i % v.len()].clone() }
            }
            RefPick::Holding(i) => {
                let v: Vec<String> = m.order.iter().filter(|r| m.holds[*r].state == MState::Held).cloned().collect();
                pick_from(self, v, i)
            }
        }
    }

    /// The actor, and the waiting-list entry it was picked by.
    fn resolve_actor(&self, occ: usize, pick: ActorPick) -> (usize, Option<MEntry>) {
        let m = &self.occs[occ];
        let (list, i, a): (Vec<&MEntry>, usize, usize) = match pick {
            ActorPick::Fixed(a) => return (a, None),
            ActorPick::Offered(i, a) => {
                (m.wl.iter().filter(|e| e.offer.is_some_and(|(_, x)| x > self.now)).collect(), i, a)
            }
            ActorPick::Waiting(i, a) => (m.wl.iter().collect(), i, a),
            ActorPick::Buyer(i, a) => {
                let buyers: Vec<usize> = m
                    .order
                    .iter()
                    .map(|r| &m.holds[r])
                    .filter(|h| h.state == MState::Confirmed)
                    .map(|h| h.actor)
                    .collect();
                return (if buyers.is_empty() { a } else { buyers[i % buyers.len()] }, None);
            }
        };
        if list.is_empty() {
            (a, None)
        } else {
            let e = list[i % list.len()];
            (e.actor, Some(e.clone()))
        }
    }

    /// A tier pick as a slot (`None`: no tier).
    fn resolve_tier(&self, occ: usize, pick: TierPick, entry: Option<&MEntry>) -> Option<usize> {
        let cfg = self.occs[occ].cfg.as_ref();
        match pick {
            TierPick::Entry(_) if entry.is_some() => {
                let e = entry.unwrap();
                e.tier.map(|t| cfg.expect("open").tiers[t].slot)
            }
            TierPick::Auto(i) | TierPick::Entry(i) => match cfg {
                Some(c) if c.tiered() => Some(c.tiers[usize::from(i) % c.tiers.len()].slot),
                _ => None,
            },
            TierPick::NoTier => None,
            TierPick::Slot(s) => Some(usize::from(s)),
        }
    }

    /// Events committed since the last look, after checking that nothing committed before
    /// changed and that ids increase.
    fn new_events(&mut self) -> Result<(Vec<OutboxEvent>, Vec<XEv>), String> {
        let pending = match self.peeked.take() {
            Some(p) => p,
            None => self.x.run(self.engine.pending_events(usize::MAX)).map_err(|e| e.to_string())?,
        };
        ensure!(
            pending.len() >= self.pending.len() && pending[..self.pending.len()] == self.pending[..],
            "events already committed changed or vanished from the outbox"
        );
        let new = pending[self.pending.len()..].to_vec();
        let mut xs = Vec::with_capacity(new.len());
        for e in &new {
            ensure!(
                e.id.0 > self.last_id,
                "event id {} not above the last one {} (ids must increase)",
                e.id,
                self.last_id
            );
            self.last_id = e.id.0;
            xs.push(self.xev(e)?);
        }
        self.consumer.absorb_all(&new)?;
        self.pending = pending;
        Ok((new, xs))
    }

    /// An outbox event in the model's terms.
    fn xev(&self, e: &OutboxEvent) -> Result<XEv, String> {
        let ev = &e.event;
        let bad = || format!("event with unknown names or times: {e:?}");
        let occ = index_of(ev.occ_key.as_str(), "occ-").ok_or_else(bad)?;
        let actor = index_of(ev.actor.as_str(), "user-").ok_or_else(bad)?;
        let secs = |t: OffsetDateTime| -> Result<i64, String> {
            let s = (t - start()).whole_seconds();
            if start() + Duration::seconds(s) == t { Ok(s) } else { Err(bad()) }
        };
        let slot = |t: &TierName| TIER_NAMES.iter().position(|n| *n == t.as_str());
        let tier_pos = |t: &TierName| -> Result<usize, String> {
            let s = slot(t).ok_or_else(bad)?;
            self.occs.get(occ).and_then(|m| m.cfg.as_ref()).and_then(|c| c.tier_at(s)).ok_or_else(bad)
        };
        ensure!(ev.metadata.is_none(), "an event carries metadata no request sent: {e:?}");
        let kind = match &ev.kind {
            EventKind::HoldPlaced { quantity, price, expires_at, lines } => XKind::Placed {
                qty: *quantity,
                price: nanos_of(&price.amount),
                cur: cur_of(&price.currency),
                expires: secs(*expires_at)?,
                lines: lines
                    .iter()
                    .map(|l| Ok((tier_pos(&l.tier)?, l.quantity, nanos_of(&l.unit_price))))
                    .collect::<Result<_, String>>()?,
            },
            EventKind::HoldConfirmed { quantity, revived } => XKind::Confirmed { qty: *quantity, revived: *revived },
            EventKind::HoldReleased { quantity } => XKind::Released { qty: *quantity },
            EventKind::HoldExpired { quantity } => XKind::Expired { qty: *quantity },
            EventKind::HoldExtended { expires_at } => XKind::Extended { expires: secs(*expires_at)? },
            EventKind::RefundRequired { reason, amount, currency, provider_ref } => XKind::Refund {
                reason: *reason,
                amount: amount.as_ref().map(nanos_of),
                currency: currency.as_ref().map(cur_of),
                provider: provider_ref.as_ref().map(|p| p.as_str().to_owned()),
            },
            EventKind::TicketIssued { ticket, tier } => {
                XKind::Issued { ticket: ticket.clone(), tier: tier.as_ref().map(tier_pos).transpose()? }
            }
            EventKind::TicketCancelled { ticket } => XKind::TicketCancelled { ticket: ticket.clone() },
            EventKind::CheckedIn { ticket } => XKind::CheckedIn { ticket: ticket.clone() },
            EventKind::WaitlistOffered { tier, seats, expires_at } => XKind::Offered {
                tier: tier.as_ref().map(tier_pos).transpose()?,
                seats: *seats,
                expires: secs(*expires_at)?,
            },
            EventKind::PaymentRejected { reason, amount, currency, provider_ref } => XKind::Rejected {
                reason: match reason.as_str() {
                    "amount_mismatch" => "amount_mismatch",
                    "currency_mismatch" => "currency_mismatch",
                    _ => return Err(bad()),
                },
                amount: amount.as_ref().map(nanos_of),
                currency: currency.as_ref().map(cur_of),
                provider: provider_ref.as_ref().map(|p| p.as_str().to_owned()),
            },
            other => return Err(format!("unexpected event kind {other:?}")),
        };
        Ok(XEv { occ, actor, r: ev.hold_ref.as_ref().map(|r| r.as_str().to_owned()), at: secs(ev.at)?, kind })
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        self.cancelled_now = vec![0; OCCS];
        self.touched.clear();
        self.checked = false;
        self.peeked = None;
        self.steps += 1;
        self.step_occ = match op {
            Op::Open { occ, .. }
            | Op::Request { occ, .. }
            | Op::Settle { occ, .. }
            | Op::SetPrice { occ, .. }
            | Op::Block { occ, .. }
            | Op::Unblock { occ, .. }
            | Op::Cancel { occ, .. }
            | Op::CheckIn { occ, .. }
            | Op::Join { occ, .. }
            | Op::Leave { occ, .. }
            | Op::Abandon { occ, .. }
            | Op::Extend { occ, .. } => Some(*occ),
            Op::Redeliver(i) => (!self.past.is_empty()).then(|| self.past[i % self.past.len()].occ),
            Op::Repeat(i) => (!self.requests.is_empty()).then(|| self.requests[i % self.requests.len()].0),
            _ => None,
        };
        match op {
            Op::Open { occ, cfg, shift } => self.open(*occ, cfg, *shift)?,
            Op::Request { occ, actor, r, order } => {
                let (actor, entry) = self.resolve_actor(*occ, *actor);
                let r = self.resolve_ref(*occ, actor, *r);
                self.request(*occ, actor, r, order, entry.as_ref())?;
            }
            Op::Settle { occ, actor, owner, r, status, money, wire, provider } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                let m = &self.occs[*occ];
                let actor = match m.holds.get(&r) {
                    Some(h) if *owner => h.actor,
                    _ => *actor,
                };
                if !m.holds.contains_key(&r) && !self.leaked[*occ].contains(&r) {
                    self.leaked[*occ].push(r.clone());
                }
                let (price, cur) = m.holds.get(&r).map_or((2500 * CENT, "EUR"), |h| (h.price, h.cur));
                let cents = price / CENT;
                let other_cur = if cur == "EUR" { "USD" } else { "EUR" };
                let (amount, currency) = match *money {
                    MoneyPick::Absent => (None, None),
                    MoneyPick::Exact(f) => (Some((cents, f)), Some(cur)),
                    MoneyPick::WrongAmount => (Some((cents + 1, 0)), Some(cur)),
                    MoneyPick::WrongCurrency => (Some((cents, 0)), Some(other_cur)),
                    MoneyPick::AmountOnly(f) => (Some((cents, f)), None),
                    MoneyPick::CurrencyOnly => (None, Some(cur)),
                };
                let provider = provider.map(|k| format!("pi-{r}-{k}"));
                let res = MResult { occ: *occ, actor, r, status: *status, amount, currency, provider, wire: *wire };
                self.past.push(res.clone());
                self.settle(&res)?;
            }
            Op::Repeat(i) => {
                if !self.requests.is_empty() {
                    let (occ, actor, r, order, form) = self.requests[i % self.requests.len()].clone();
                    self.run_request(occ, actor, r, order, form)?;
                }
            }
            Op::Redeliver(i) => {
                if !self.past.is_empty() {
                    let res = self.past[i % self.past.len()].clone();
                    self.settle(&res)?;
                }
            }
            Op::Bad(k) => {
                let body = bad_body(*k);
                match self.x.run(self.engine.settle_json(&body)) {
                    Err(OpError::Refused(_)) => {}
                    other => return Err(format!("bad body {k} answered {other:?}")),
                }
                cover("bad-input");
                self.expect_events(&[])?;
            }
            Op::Advance(secs) => {
                self.engine.clock().advance(Duration::seconds(*secs));
                self.now += secs;
            }
            Op::Sweep(limit) => self.sweep(*limit)?,
            Op::Drain => {
                let before = self.x.run(self.engine.pending_events(usize::MAX)).map_err(|e| e.to_string())?;
                let drained = self.x.run(self.engine.drain_events(usize::MAX)).map_err(|e| e.to_string())?;
                ensure!(drained == before, "drain returned {drained:?}, pending was {before:?}");
                ensure!(drained == self.pending, "outbox changed without a commit");
                self.pending.clear();
                let left = self.x.run(self.engine.pending_events(usize::MAX)).map_err(|e| e.to_string())?;
                ensure!(left.is_empty(), "drained events are still pending: {left:?}");
                self.checked = true;
            }
            Op::SetPrice { occ, tier, cents, usd } => {
                let slot = self.resolve_tier(*occ, *tier, None).unwrap_or(0);
                self.set_price(*occ, slot, *cents, if *usd { "USD" } else { "EUR" })?;
            }
            Op::Block { occ, name, seats, tier } => {
                let slot = self.resolve_tier(*occ, *tier, None);
                self.block(*occ, *name, *seats, slot)?;
            }
            Op::Unblock { occ, name } => self.unblock(*occ, *name)?,
            Op::Cancel { occ, actor, r, tickets } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                self.cancel(*occ, &r, tickets.as_deref())?;
            }
            Op::CheckIn { occ, actor, r, index, forge } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                self.check_in(*occ, &r, *index, *forge)?;
            }
            Op::Join { occ, actor, tier, seats } => {
                let (actor, entry) = self.resolve_actor(*occ, *actor);
                let slot = self.resolve_tier(*occ, *tier, entry.as_ref());
                self.join(*occ, actor, slot, *seats)?;
            }
            Op::Leave { occ, actor, tier } => {
                let (actor, entry) = self.resolve_actor(*occ, *actor);
                let slot = self.resolve_tier(*occ, *tier, entry.as_ref());
                self.leave(*occ, actor, slot)?;
            }
            Op::Abandon { occ, actor, owner, r } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                let actor = match self.occs[*occ].holds.get(&r) {
                    Some(h) if *owner => h.actor,
                    _ => *actor,
                };
                self.abandon(*occ, actor, &r)?;
            }
            Op::Extend { occ, actor, r, by } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                self.extend(*occ, &r, *by)?;
            }
        }
        // An op that compared no events committed none.
        if !self.checked {
            self.expect_events(&[])?;
        }
        self.check_state()
    }

    /// The events committed since the last look must be exactly `want`.
    fn expect_events(&mut self, want: &[XEv]) -> Result<(), String> {
        self.checked = true;
        let (raw, got) = self.new_events()?;
        ensure!(
            got == want,
            "at t={} the step committed\n  {got:?}\nthe model expects\n  {want:?}\n(raw: {raw:?})",
            self.now
        );
        Ok(())
    }

    /// Look at the events first (for the lapsed holds the engine chose to expire), then
    /// check them against what the model builds from that choice.
    fn peek_events(&mut self) -> Result<Vec<XEv>, String> {
        let pending = self.x.run(self.engine.pending_events(usize::MAX)).map_err(|e| e.to_string())?;
        ensure!(pending.len() >= self.pending.len(), "events vanished from the outbox");
        let new = pending[self.pending.len()..].iter().map(|e| self.xev(e)).collect();
        self.peeked = Some(pending);
        new
    }

    fn open(&mut self, occ: usize, cfg: &MCfg, shift: i32) -> Result<(), String> {
        let now = self.now;
        let (next, fresh) = match &self.occs[occ].cfg {
            None => (cfg.clone(), true),
            Some(old) => (old.reopened(cfg, shift), false),
        };
        self.x.run(self.engine.open(&occ_key(occ), next.to_config())).map_err(|e| format!("open {occ}: {e:?}"))?;
        let m = &mut self.occs[occ];
        let changed = m.cfg.as_ref() != Some(&next);
        m.cfg = Some(next);
        let mut evs = Vec::new();
        if changed && !fresh && m.settle_wl(occ, now, None, &mut evs) {
            cover("open:offered");
        }
        self.expect_events(&evs)
    }
}

// ---------------------------------------------------------------------------------------
// Requests

impl<S: AsyncStore, X: Exec> Harness<'_, S, X> {
    fn request(
        &mut self,
        occ: usize,
        actor: usize,
        r: String,
        pick: &OrderPick,
        entry: Option<&MEntry>,
    ) -> Result<(), String> {
        let cfg = self.occs[occ].cfg.clone();
        let tiered = cfg.as_ref().is_some_and(MCfg::tiered);
        let offer = entry.filter(|e| e.actor == actor && e.offer.is_some());
        // Resolve the order.
        let lines_shape = match pick.shape {
            Shape::Auto => tiered,
            Shape::Plain => false,
            Shape::Lines => true,
            Shape::Offer => tiered,
        };
        let order = if lines_shape {
            let mut lines: Vec<(usize, u32)> =
                pick.lines.iter().map(|(t, q)| (self.resolve_tier(occ, *t, None).unwrap_or(0), *q)).collect();
            if let (Shape::Offer, Some(e)) = (pick.shape, offer) {
                let slot = e.tier.map_or(0, |t| cfg.as_ref().unwrap().tiers[t].slot);
                lines = vec![(slot, e.seats)];
            }
            // The total as the buyer was shown it: the current prices' (if they price).
            let total = cfg.as_ref().and_then(|c| {
                let mut sum = 0u64;
                let mut cur = None;
                for (slot, q) in &lines {
                    let t = c.tier_at(*slot)?;
                    let (p, tc) = c.price(t);
                    if cur.is_some_and(|x| x != tc) {
                        return None;
                    }
                    cur = Some(tc);
                    sum += p * u64::from((*q).min(MAX_QUANTITY));
                }
                Some((sum, cur?))
            });
            let (sum, cur) = total.unwrap_or((2500 * CENT, "EUR"));
            let expect = match pick.expect {
                ExpectPick::None => None,
                ExpectPick::Exact(_) => Some((sum, cur)),
                ExpectPick::WrongAmount => Some((sum + CENT, cur)),
                ExpectPick::WrongCurrency => Some((sum, if cur == "EUR" { "USD" } else { "EUR" })),
            };
            ROrder::Lines { lines, expect }
        } else {
            let qty = match (pick.shape, offer) {
                (Shape::Offer, Some(e)) => e.seats,
                _ => pick.qty,
            };
            let cents = UNITS[pick.unit] * u64::from(qty.min(3));
            let cur = if pick.usd { "USD" } else { "EUR" };
            let text = fmt_amount(cents, pick.form);
            let scale = Amount::parse(&text).map_err(|e| e.to_string())?.scale();
            ROrder::Plain { qty, price: cents * CENT, cur, scale }
        };
        let form = match (&order, pick.expect) {
            (ROrder::Lines { .. }, ExpectPick::Exact(f)) => f,
            (ROrder::Lines { .. }, _) => 0,
            _ => pick.form,
        };
        self.requests.push((occ, actor, r.clone(), order.clone(), form));
        self.run_request(occ, actor, r, order, form)
    }

    /// Send a resolved request (`form`: how its amounts are written), and check the answer
    /// and the events against the model.
    fn run_request(&mut self, occ: usize, actor: usize, r: String, order: ROrder, form: u8) -> Result<(), String> {
        let cfg = self.occs[occ].cfg.clone();
        let req = match &order {
            ROrder::Plain { qty, price, cur, .. } => {
                let text = fmt_amount(price / CENT, form);
                let price = Money::parse(&text, cur).map_err(|e| e.to_string())?;
                HoldRequest::new(occ_key(occ), actor_id(actor), Ref::new(&r).unwrap(), price).with_quantity(*qty)
            }
            ROrder::Lines { lines, expect } => {
                let lines = lines
                    .iter()
                    .map(|(s, q)| Line { tier: TierName::new(TIER_NAMES[*s]).unwrap(), quantity: *q })
                    .collect();
                let req = HoldRequest::lines(occ_key(occ), actor_id(actor), Ref::new(&r).unwrap(), lines);
                match expect {
                    Some((n, c)) => {
                        let text = if n % CENT == 0 { fmt_amount(n / CENT, form) } else { amount(*n).to_string() };
                        req.expecting(Money::parse(&text, c).map_err(|e| e.to_string())?)
                    }
                    None => req,
                }
            }
        };
        let got = self.x.run(self.engine.request(&req));
        let peek = self.peek_events()?;
        let chosen: Vec<String> = peek
            .iter()
            .filter(|e| e.occ == occ && matches!(e.kind, XKind::Expired { .. }))
            .filter_map(|e| e.r.clone())
            .collect();
        let leaked = self.leaked[occ].contains(&r);
        let (want, evs, checkout) = self.model_request(occ, actor, &r, &order, &chosen)?;
        let now = self.now;
        let ctx = || format!("request occ {occ} actor {actor} ref {r} {order:?} at t={now}");
        let label = match &want {
            ExpReq::Already { confirmed: true, .. } => "request:Already(confirmed)".to_owned(),
            ExpReq::Already { .. } => "request:Already".to_owned(),
            ExpReq::Full { tier, short } => {
                cover(match short {
                    MDim::Total => "request:Full(total short)",
                    MDim::Tier(_) => "request:Full(tier cap short)",
                    MDim::Pool(_) => "request:Full(pool short)",
                });
                if evs.iter().any(|e| matches!(e.kind, XKind::Offered { .. })) {
                    cover("request:Full(offers made)");
                }
                if let (Some(t), ROrder::Lines { lines, .. }) = (tier, &order) {
                    cover("request:Full(tier)");
                    if TIER_NAMES[lines[0].0] != *t {
                        cover("request:Full(second line)");
                    }
                    let c = cfg.as_ref().unwrap();
                    let ti = c.tier_at(TIER_NAMES.iter().position(|n| n == t).unwrap()).unwrap();
                    let m = &self.occs[occ];
                    let u = m.usage(self.now);
                    if c.tiers[ti]
                        .pools
                        .iter()
                        .any(|p| c.cap(MDim::Pool(*p)).is_some_and(|cap| u[&MDim::Pool(*p)].live() + 1 > cap))
                        && c.cap(MDim::Tier(ti)).is_none_or(|cap| u[&MDim::Tier(ti)].live() < cap)
                    {
                        cover("request:Full(pool)");
                    }
                }
                "request:Full".to_owned()
            }
            ExpReq::RefUsed => match self.occs[occ].holds.get(&r) {
                Some(h) if h.actor == actor => "request:RefUsed(own hold)".to_owned(),
                Some(_) => "request:RefUsed(another actor's hold)".to_owned(),
                None => "request:RefUsed(paid before requested)".to_owned(),
            },
            ExpReq::Placed if leaked => "request:Placed(ref leaked by another actor's payment)".to_owned(),
            ExpReq::UnknownTier(_) => "request:UnknownTier".to_owned(),
            ExpReq::PriceChanged { .. } => "request:PriceChanged".to_owned(),
            ExpReq::Limit { .. } => "request:Limit".to_owned(),
            w => format!("request:{w:?}"),
        };
        cover(label);
        let refused = |f: fn(&RequestRefusal) -> bool| refusal_is(&got, f);
        let ok = match (&want, &got) {
            (ExpReq::BadQuantity, _) => {
                refused(|e| matches!(e, RequestRefusal::BadQuantity { max } if *max == MAX_QUANTITY))
            }
            (ExpReq::Unknown, _) => refused(|e| matches!(e, RequestRefusal::UnknownOccurrence)),
            (ExpReq::LinesNeedTiers, _) => refused(|e| matches!(e, RequestRefusal::LinesNeedTiers)),
            (ExpReq::TiersNeedLines, _) => refused(|e| matches!(e, RequestRefusal::TiersNeedLines)),
            (ExpReq::UnknownTier(t), Err(OpError::Refused(RequestRefusal::Pricing(PricingError::UnknownTier(g))))) => {
                g.as_str() == *t
            }
            (ExpReq::Mixed, _) => refused(|e| matches!(e, RequestRefusal::Pricing(PricingError::MixedCurrencies(..)))),
            (ExpReq::RefUsed, _) => refused(|e| matches!(e, RequestRefusal::RefUsed)),
            (ExpReq::RequestChanged, _) => refused(|e| matches!(e, RequestRefusal::RequestChanged)),
            (ExpReq::Replay, Ok(RequestOutcome::AwaitingPayment { checkout: c, replayed: true, .. }))
            | (ExpReq::Placed, Ok(RequestOutcome::AwaitingPayment { checkout: c, replayed: false, .. })) => {
                checkout.as_ref().is_some_and(|w| check_checkout(occ, c, w).is_ok())
            }
            (ExpReq::FreeReplay, Ok(RequestOutcome::Confirmed { hold_ref, replayed: true, .. }))
            | (ExpReq::FreeConfirmed, Ok(RequestOutcome::Confirmed { hold_ref, replayed: false, .. })) => {
                hold_ref.as_str() == r
            }
            (
                ExpReq::Already { r: want_r, confirmed: want_c },
                Ok(RequestOutcome::Already { hold_ref, confirmed, checkout: c }),
            ) => {
                hold_ref.as_str() == want_r
                    && confirmed == want_c
                    && match (c, &checkout) {
                        (Some(c), Some(w)) => check_checkout(occ, c, w).is_ok(),
                        (None, None) => true,
                        _ => false,
                    }
            }
            (ExpReq::PriceChanged { price, cur }, Ok(RequestOutcome::PriceChanged { price: p })) => {
                nanos_of(&p.amount) == *price && p.currency.as_str() == *cur
            }
            (ExpReq::Limit { max }, Ok(RequestOutcome::LimitReached { max_per_actor })) => max == max_per_actor,
            (ExpReq::Full { tier, short }, Ok(RequestOutcome::Full { capacity, tier: t, short: s })) => {
                cfg.as_ref().is_some_and(|c| {
                    c.cap(*short).is_some_and(|cap| cap == u64::from(*capacity)) && c.dim_key(*short) == s.to_key()
                }) && t.as_ref().map(TierName::as_str) == *tier
            }
            _ => false,
        };
        ensure!(ok, "{}: the model expects {want:?} (checkout {checkout:?}), the engine answered {got:?}", ctx());
        if matches!(want, ExpReq::Placed | ExpReq::FreeConfirmed) {
            self.used_refs.entry((occ, actor)).or_default().push(r.clone());
        }
        self.expect_events(&evs).map_err(|e| format!("{}: {e}", ctx()))
    }

    /// The model's answer to a request, the events it commits, and (for a hold) its
    /// checkout request; applied to the model.
    fn model_request(
        &mut self,
        occ: usize,
        actor: usize,
        r: &str,
        order: &ROrder,
        chosen: &[String],
    ) -> Result<(ExpReq, Vec<XEv>, Option<MHold>), String> {
        let now = self.now;
        let none = |w: ExpReq| Ok((w, Vec::new(), None));
        // Malformed input first.
        match order {
            ROrder::Plain { qty, .. } if *qty == 0 || *qty > MAX_QUANTITY => return none(ExpReq::BadQuantity),
            ROrder::Lines { lines, .. } => {
                let total: u64 = lines.iter().map(|(_, q)| u64::from(*q)).sum();
                if lines.iter().any(|(_, q)| *q == 0 || *q > MAX_QUANTITY) || total > u64::from(MAX_QUANTITY) {
                    return none(ExpReq::BadQuantity);
                }
            }
            _ => {}
        }
        let m = &self.occs[occ];
        let Some(cfg) = m.cfg.clone() else { return none(ExpReq::Unknown) };
        let (qty, price, cur, scale, lines) = match (order, cfg.tiered()) {
            (ROrder::Plain { .. }, true) => return none(ExpReq::TiersNeedLines),
            (ROrder::Lines { .. }, false) => return none(ExpReq::LinesNeedTiers),
            (ROrder::Plain { qty, price, cur, scale }, false) => (*qty, *price, *cur, *scale, Vec::new()),
            (ROrder::Lines { lines, .. }, true) => {
                let mut priced = Vec::new();
                let mut cur: Option<&'static str> = None;
                let mut total = 0;
                for (slot, q) in lines {
                    let Some(t) = cfg.tier_at(*slot) else { return none(ExpReq::UnknownTier(TIER_NAMES[*slot])) };
                    let (unit, c) = cfg.price(t);
                    if cur.is_some_and(|x| x != c) {
                        return none(ExpReq::Mixed);
                    }
                    cur = Some(c);
                    total += unit * u64::from(*q);
                    priced.push(MLine { tier: t, qty: *q, unit });
                }
                let qty = lines.iter().map(|(_, q)| *q).sum();
                (qty, total, cur.unwrap(), 0, priced)
            }
        };
        let same_order = |h: &MHold| match order {
            ROrder::Plain { qty, price, cur, .. } => {
                h.lines.is_empty() && h.qty == *qty && h.price == *price && h.cur == *cur
            }
            ROrder::Lines { lines, expect } => {
                h.lines.len() == lines.len()
                    && h.lines.iter().zip(lines).all(|(l, (s, q))| cfg.tiers[l.tier].slot == *s && l.qty == *q)
                    && expect.is_none_or(|e| e == (h.price, h.cur))
            }
        };
        // The replay of this very request.
        if let Some(b) = m.holds.get(r).filter(|b| b.actor == actor) {
            if b.live(now) {
                return if same_order(b) {
                    Ok((ExpReq::Replay, Vec::new(), Some(b.clone())))
                } else {
                    none(ExpReq::RequestChanged)
                };
            }
            if b.state == MState::Confirmed && b.free && same_order(b) {
                return none(ExpReq::FreeReplay);
            }
        }
        // Already: the actor's live hold (one at most), or at a one-booking occurrence its
        // standing booking.
        let held = m.holds.values().find(|h| h.actor == actor && h.state == MState::Held && h.r != r);
        if let Some(h) = held.filter(|h| h.live(now)) {
            return Ok((ExpReq::Already { r: h.r.clone(), confirmed: false }, Vec::new(), Some(h.clone())));
        }
        let own_lapsed = held.map(|h| h.r.clone());
        if cfg.max_per_actor.is_none() {
            if let Some(b) = m.holds.values().find(|h| h.actor == actor && h.state == MState::Confirmed) {
                return none(ExpReq::Already { r: b.r.clone(), confirmed: true });
            }
        }
        // A used ref.
        if m.holds.contains_key(r) || m.records.contains_key(&(actor, r.to_owned())) {
            return none(ExpReq::RefUsed);
        }
        if let ROrder::Lines { expect: Some(e), .. } = order {
            if *e != (price, cur) {
                return none(ExpReq::PriceChanged { price, cur });
            }
        }
        if let Some(max) = cfg.max_per_actor {
            let have: u64 = m.holds.values().filter(|h| h.actor == actor).map(|h| u64::from(h.standing_seats())).sum();
            if have + u64::from(qty) > u64::from(max) {
                return none(ExpReq::Limit { max });
            }
        }
        // Room.
        let needs: Vec<Need> = if lines.is_empty() {
            vec![(vec![MDim::Total], u64::from(qty))]
        } else {
            lines.iter().map(|l| (cfg.dims_of(Some(l.tier)), u64::from(l.qty))).collect()
        };
        let mut scratch = m.clone();
        let mut evs = Vec::new();
        if let Some(own) = &own_lapsed {
            scratch.expire(occ, own, now, &mut evs)?;
            cover("request:own-lapse-expired");
        }
        let mut others: Vec<String> = chosen.iter().filter(|c| Some(*c) != own_lapsed.as_ref()).cloned().collect();
        // With someone waiting, every lapsed hold is expired and the free seats offered down
        // the list before the request decides (a walk-in never takes seats the list is owed,
        // sweep or no sweep). Nobody is skipped.
        let (lapsed, pre_offered) = scratch.offer_before_deciding(occ, now, &mut evs)?;
        if !lapsed.is_empty() {
            cover("request:offers before deciding (expired a lapsed hold)");
        }
        others.retain(|c| !lapsed.contains(c));
        if pre_offered {
            cover("request:offers before deciding");
        }
        let (before, evs_before) = (scratch.clone(), evs.clone());
        let taken = scratch.wl.iter().position(|e| e.actor == actor && e.offer.is_some_and(|(_, x)| x > now));
        if let Some(i) = taken {
            scratch.wl.remove(i);
        }
        // Whether it fits at all (every lapsed hold counted out) decides which evaluation the
        // engine commits: the one with the offer taken, or — Full — the one without; only
        // that one's expiries are checked against the engine's.
        let (failing, _) = scratch.room_answer(occ, now, &needs, Some(actor))?;
        if failing.is_none() {
            let (placed, _) = scratch.make_room(occ, now, &needs, Some(actor), &others, &mut evs)?;
            ensure!(placed.is_none(), "request at occ {occ}: room judged two ways");
        }
        if !others.is_empty() {
            cover("request:reclaimed-other-lapsed");
        }
        if let Some((need, short)) = failing {
            // Full takes nothing: the requester's own offer stays set aside, and only the
            // seats freed by lapses go down the waiting list.
            let tier = lines.get(need).map(|l| cfg.tier_name(l.tier));
            let (mut kept, mut evs) = (before, evs_before);
            let (_, offered) = kept.make_room(occ, now, &needs, Some(actor), &others, &mut evs)?;
            if offered || pre_offered {
                self.occs[occ] = kept;
                return Ok((ExpReq::Full { tier, short }, evs, None));
            }
            return none(ExpReq::Full { tier, short });
        }
        if taken.is_some() {
            cover("request:Placed(took own offer)");
        }
        if !lines.is_empty() {
            cover("request:Placed(lines)");
            if lines.len() == 3 {
                cover("request:Placed(3 lines)");
            }
        }
        if scratch.holds.values().any(|h| h.actor == actor && h.state == MState::Confirmed) {
            cover("request:Placed(repeat purchase)");
        }
        let hold = MHold {
            actor,
            r: r.to_owned(),
            qty,
            price,
            cur,
            scale,
            lines: lines.clone(),
            first_expires: now + i64::from(cfg.ttl),
            expires: now + i64::from(cfg.ttl),
            state: MState::Held,
            tickets: Vec::new(),
            cancelled_seats: 0,
            cancellations: 0,
            refunded: 0,
            free: false,
            revived: false,
        };
        evs.push(XEv {
            occ,
            actor,
            r: Some(r.to_owned()),
            at: now,
            kind: XKind::Placed {
                qty,
                price,
                cur,
                expires: hold.expires,
                lines: lines.iter().map(|l| (l.tier, l.qty, l.unit)).collect(),
            },
        });
        scratch.holds.insert(r.to_owned(), hold.clone());
        scratch.order.push(r.to_owned());
        scratch.current.insert(actor, r.to_owned());
        let free = !lines.is_empty() && price == 0;
        if free {
            scratch.holds.get_mut(r).unwrap().free = true;
            scratch.confirm(occ, r, now, false, &mut evs);
            self.touched.push((occ, r.to_owned()));
        }
        // The requester got seats: its entries still waiting for a tier of this order (or for
        // any seat) leave the list.
        let before_wl = scratch.wl.len();
        scratch.wl.retain(|e| {
            !(e.actor == actor && e.offer.is_none() && e.tier.is_none_or(|t| lines.iter().any(|l| l.tier == t)))
        });
        if scratch.wl.len() < before_wl {
            cover("request:placed leaves the waiting list");
        }
        scratch.settle_wl(occ, now, Some(actor), &mut evs);
        self.occs[occ] = scratch;
        if free { Ok((ExpReq::FreeConfirmed, evs, None)) } else { Ok((ExpReq::Placed, evs, Some(hold))) }
    }
}

/// A checkout request against the model's hold.
fn check_checkout(occ: usize, c: &CheckoutRequest, h: &MHold) -> Result<(), String> {
    let lines_ok = c.lines.len() == h.lines.len()
        && c.lines.iter().zip(&h.lines).all(|(g, w)| g.quantity == w.qty && nanos_of(&g.unit_price) == w.unit);
    ensure!(
        c.occ_key.as_str() == occ_name(occ)
            && c.actor.as_str() == actor_name(h.actor)
            && c.hold_ref.as_str() == h.r
            && c.quantity == h.qty
            && nanos_of(&c.amount) == h.price
            && c.currency.as_str() == h.cur
            && c.expires_at == start() + Duration::seconds(h.expires)
            && lines_ok,
        "checkout {c:?} does not match hold {h:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Settlement

impl<S: AsyncStore, X: Exec> Harness<'_, S, X> {
    fn settle(&mut self, res: &MResult) -> Result<(), String> {
        let status = match res.status {
            Status::Paid => PaymentStatus::Paid,
            Status::Failed => PaymentStatus::Failed,
            Status::Expired => PaymentStatus::Expired,
        };
        let got = if res.wire {
            let mut v = serde_json::json!({
                "kind": "events.payment", "occ_key": occ_name(res.occ), "actor": actor_name(res.actor),
                "ref": res.r, "status": status.as_str(), "unknown_extra_field": {"ignored": true},
            });
            if let Some((c, f)) = res.amount {
                v["amount"] = fmt_amount(c, f).into();
            }
            if let Some(c) = res.currency {
                v["currency"] = c.into();
            }
            if let Some(p) = &res.provider {
                v["provider_ref"] = p.clone().into();
            }
            self.x.run(self.engine.settle_json(&serde_json::to_vec(&v).unwrap()))
        } else {
            let mut p = PaymentResult::new(occ_key(res.occ), actor_id(res.actor), Ref::new(&res.r).unwrap(), status);
            p.amount = res.amount.map(|(c, f)| Amount::parse(&fmt_amount(c, f)).unwrap());
            p.currency = res.currency.map(|c| Currency::parse(c).unwrap());
            if let Some(pr) = &res.provider {
                p = p.with_provider_ref(ProviderRef::new(pr).unwrap());
            }
            self.x.run(self.engine.settle(&p))
        };
        let now = self.now;
        let ctx = || format!("settle {res:?} at t={now}");
        let got = got.map_err(|e| format!("{}: error {e:?}", ctx()))?;
        let peek = self.peek_events()?;
        let chosen: Vec<String> = peek
            .iter()
            .filter(|e| e.occ == res.occ && matches!(e.kind, XKind::Expired { .. }))
            .filter_map(|e| e.r.clone())
            .collect();
        let (want, evs) = self.model_settle(res, &chosen)?;
        let refund_matches = |got: &seathold::settlement::Refund, want: &MRefund| {
            got.occ_key.as_str() == occ_name(res.occ)
                && got.actor.as_str() == actor_name(res.actor)
                && got.hold_ref.as_str() == res.r
                && got.reason == want.reason
                && got.amount.as_ref().map(nanos_of) == want.amount
                && got.currency.as_ref().map(cur_of) == want.currency
                && got.provider_ref.as_ref().map(|p| p.as_str().to_owned()) == want.provider
        };
        let ok = match (&want, &got) {
            (ExpSettle::Rejected(reason), Settlement::Rejected { reason: r }) => {
                r.as_str() == *reason
                    && match r {
                        RejectReason::AmountMismatch { paid, .. } => Some(nanos_of(paid)) == res.nanos(),
                        RejectReason::CurrencyMismatch { paid, .. } => Some(paid.as_str()) == res.currency,
                        _ => false,
                    }
            }
            (ExpSettle::Confirmed { replayed: a }, Settlement::Confirmed { replayed: b }) => a == b,
            (ExpSettle::Released, Settlement::Released) | (ExpSettle::Noop, Settlement::Noop) => true,
            (ExpSettle::Refund { refund: w, replayed: a }, Settlement::PaidButNoHold { refund: g, replayed: b }) => {
                a == b && refund_matches(g, w)
            }
            _ => false,
        };
        ensure!(ok, "{}: the model expects {want:?}, the engine answered {got:?}", ctx());
        // Every refund signal carries the money when the payment says it, or leaves out only
        // what the booking it names says (an amount in another currency is no amount).
        if let ExpSettle::Refund { refund, replayed: false } = &want {
            let booked =
                self.occs[res.occ].holds.get(&res.r).filter(|h| h.actor == res.actor).map(|h| (h.price, h.cur));
            let known = match (res.amount, res.currency, booked) {
                (Some(_), Some(_), _) | (None, None, Some(_)) | (Some(_), None, Some(_)) => true,
                (None, Some(c), Some((_, bc))) => c == bc,
                _ => false,
            };
            if known {
                ensure!(
                    refund.amount.is_some() && refund.currency.is_some(),
                    "{}: a refund signal without its amount and currency: {got:?}",
                    ctx()
                );
            }
        }
        self.expect_events(&evs).map_err(|e| format!("{}: {e}", ctx()))
    }

    fn model_settle(&mut self, res: &MResult, chosen: &[String]) -> Result<(ExpSettle, Vec<XEv>), String> {
        let now = self.now;
        let (occ, actor) = (res.occ, res.actor);
        let mut evs = Vec::new();
        let m = &mut self.occs[occ];
        let named = m.holds.get(&res.r).filter(|h| h.actor == actor).cloned();
        if res.status != Status::Paid {
            // A failure names the actor's hold under its ref; it releases it if live.
            let answer = match &named {
                Some(h) if h.live(now) => {
                    m.release(occ, &h.r, now, &mut evs);
                    if m.settle_wl(occ, now, None, &mut evs) {
                        cover("settle:Released(offered)");
                    }
                    ExpSettle::Released
                }
                Some(h) if h.lapsed(now) => {
                    m.expire(occ, &h.r, now, &mut evs)?;
                    m.settle_wl(occ, now, None, &mut evs);
                    cover("settle:own-lapse-expired");
                    ExpSettle::Noop
                }
                _ => ExpSettle::Noop,
            };
            cover(format!("settle:{answer:?}"));
            return Ok((answer, evs));
        }

        // Which deliveries are the same payment: replays and second payments first.
        let key = (actor, res.r.clone());
        let own_money = named.as_ref().map(|h| (h.price, h.cur));
        let other_money = res.currency.is_some_and(|c| own_money.is_some_and(|(_, hc)| hc != c))
            || res.nanos().is_some_and(|a| own_money.is_some_and(|(hp, _)| hp != a));
        if let Some(first) = m.records.get(&key).cloned() {
            let second = match (&first.provider, &res.provider) {
                (Some(a), Some(b)) if a != b => Some(b.clone()),
                // The first provider ref seen on a redelivery is recorded: it names the payment.
                (None, Some(b)) => {
                    if let Some(rec) = m.records.get_mut(&key) {
                        rec.provider = Some(b.clone());
                    }
                    cover("settle:redelivery names the payment");
                    None
                }
                _ => None,
            };
            let Some(p) = second else {
                return Ok((
                    match first.outcome {
                        MOutcome::Confirmed => {
                            cover(if other_money {
                                "settle:Confirmed(replay, other money)"
                            } else {
                                "settle:Confirmed(replay)"
                            });
                            ExpSettle::Confirmed { replayed: true }
                        }
                        MOutcome::Refund(refund) => {
                            cover("settle:Refund(replay)");
                            ExpSettle::Refund { refund, replayed: true }
                        }
                    },
                    evs,
                ));
            };
            if let Some(refund) = m.dups.get(&(actor, res.r.clone(), p.clone())) {
                cover("settle:Refund(replay of a duplicate)");
                return Ok((ExpSettle::Refund { refund: refund.clone(), replayed: true }, evs));
            }
            // The result's money, completed from the first payment's when that says it, else
            // from the booking's price (every refund signal carries both).
            let recorded = match (first.amount, first.currency) {
                (Some(a), Some(c)) => Some((a, c)),
                _ => own_money,
            };
            let (mut amount, mut currency) = res.refund_money(recorded);
            if amount.is_none() || currency.is_none() {
                (amount, currency) = res.refund_money(own_money);
            }
            let refund =
                MRefund { reason: NoHoldReason::DuplicatePayment, amount, currency, provider: Some(p.clone()) };
            let mut pk = paid_key(&occ_name(occ), &actor_name(actor), &res.r);
            pk.3 = Some(p.clone());
            self.paid_keys.insert(pk);
            m.dups.insert((actor, res.r.clone(), p), refund.clone());
            evs.push(refund_event(res, &refund, now));
            cover("settle:Refund(duplicate_payment)");
            return Ok((ExpSettle::Refund { refund, replayed: false }, evs));
        }

        // Locate the booking.
        let refund = |m: &mut MOcc, reason: NoHoldReason, evs: &mut Vec<XEv>| {
            let (amount, currency) = res.refund_money(own_money);
            let refund = MRefund { reason, amount, currency, provider: res.provider.clone() };
            m.records.insert(
                key.clone(),
                MRecord { outcome: MOutcome::Refund(refund.clone()), provider: res.provider.clone(), amount, currency },
            );
            evs.push(refund_event(res, &refund, now));
            ExpSettle::Refund { refund, replayed: false }
        };
        self.paid_keys.insert(paid_key(&occ_name(occ), &actor_name(actor), &res.r));
        let Some(cfg) = m.cfg.clone() else {
            cover("settle:Refund(no_hold)");
            return Ok((refund(m, NoHoldReason::NoHold, &mut evs), evs));
        };
        let one_booking = cfg.max_per_actor.is_none();
        let current = m.current.get(&actor).cloned();
        let hold = match &named {
            Some(h) if one_booking && current.as_ref() != Some(&h.r) => None,
            other => other.clone(),
        };
        let Some(h) = hold else {
            // One booking per actor: the table's R' != R column, on the current hold.
            let reason = match current.as_ref().map(|c| &m.holds[c]) {
                Some(c) if one_booking && c.state == MState::Confirmed => NoHoldReason::AlreadyPaid,
                Some(_) if one_booking => NoHoldReason::RefMismatch,
                _ => NoHoldReason::NoHold,
            };
            cover(match reason {
                NoHoldReason::RefMismatch if named.is_some() => {
                    "settle:Refund(ref_mismatch, older hold of the actor's)".to_owned()
                }
                NoHoldReason::NoHold if m.holds.contains_key(&res.r) && !one_booking => {
                    "settle:Refund(no_hold, another actor's booking)".to_owned()
                }
                _ if other_money => "settle:Refund(other money, hold not live)".to_owned(),
                r => format!("settle:Refund({r})"),
            });
            // The current hold the table read, if it lapsed, is expired by this write
            // (invariant 7: the first writing operation that meets it).
            if let Some(c) = current.as_ref().filter(|c| one_booking && m.holds[*c].lapsed(now)) {
                m.expire(occ, c, now, &mut evs)?;
                m.settle_wl(occ, now, None, &mut evs);
                cover("settle:other-ref-lapse-expired");
            }
            return Ok((refund(m, reason, &mut evs), evs));
        };

        if h.live(now) {
            if let Some(why) = res.mismatch(&h) {
                cover(format!("settle:Rejected({why})"));
                let rk = (actor, res.r.clone(), res.provider.clone());
                if m.cfg().alarm && m.rejections.insert(rk) {
                    cover("settle:Rejected(alarm)");
                    evs.push(XEv {
                        occ,
                        actor,
                        r: Some(res.r.clone()),
                        at: now,
                        kind: XKind::Rejected {
                            reason: why,
                            amount: res.nanos(),
                            currency: res.currency,
                            provider: res.provider.clone(),
                        },
                    });
                }
                // Nothing is accounted.
                self.paid_keys.remove(&paid_key(&occ_name(occ), &actor_name(actor), &res.r));
                return Ok((ExpSettle::Rejected(why), evs));
            }
            m.confirm(occ, &h.r, now, false, &mut evs);
            m.records.insert(
                key,
                MRecord {
                    outcome: MOutcome::Confirmed,
                    provider: res.provider.clone(),
                    amount: Some(res.nanos().unwrap_or(h.price)),
                    currency: Some(res.currency.unwrap_or(h.cur)),
                },
            );
            self.touched.push((occ, h.r.clone()));
            cover("settle:Confirmed");
            if !one_booking && m.holds.values().filter(|b| b.actor == actor && b.state == MState::Confirmed).count() > 1
            {
                cover("settle:Confirmed(repeat purchase)");
            }
            return Ok((ExpSettle::Confirmed { replayed: false }, evs));
        }
        let lapsed = h.lapsed(now);
        let reason = match h.state {
            MState::Held | MState::Expired => NoHoldReason::Expired,
            MState::Released => NoHoldReason::Released,
            MState::Cancelled => NoHoldReason::Cancelled,
            // A confirmed booking without its payment record: a free order.
            MState::Confirmed => NoHoldReason::AlreadyPaid,
        };
        if matches!(h.state, MState::Held | MState::Expired | MState::Released)
            && cfg.revive
            && res.mismatch(&h).is_none()
        {
            if let Some(revived) = self.revive(res, &h, chosen)? {
                return Ok(revived);
            }
            cover("settle:Refund(expired, not revived)");
        }
        let m = &mut self.occs[occ];
        if lapsed {
            m.expire(occ, &h.r, now, &mut evs)?;
            m.settle_wl(occ, now, None, &mut evs);
            cover("settle:own-lapse-expired");
        }
        cover(if other_money {
            "settle:Refund(other money, hold not live)".to_owned()
        } else {
            format!("settle:Refund({reason})")
        });
        Ok((refund(m, reason, &mut evs), evs))
    }

    /// `late_payment: revive`: confirm a lapsed or ended booking after all, if the actor may
    /// have it and every capacity it touches has room (lapsed holds counted out, offers
    /// counted in). `None`: refund instead.
    fn revive(&mut self, res: &MResult, h: &MHold, chosen: &[String]) -> Result<Option<(ExpSettle, Vec<XEv>)>, String> {
        let now = self.now;
        let occ = res.occ;
        let m = &self.occs[occ];
        let cfg = m.cfg().clone();
        let others_live: u64 = m
            .holds
            .values()
            .filter(|b| b.actor == h.actor && b.r != h.r && b.live(now))
            .map(|b| u64::from(b.qty))
            .sum();
        let standing: u64 =
            m.holds.values().filter(|b| b.actor == h.actor).map(|b| u64::from(b.standing_seats())).sum();
        match cfg.max_per_actor {
            None if others_live > 0 || m.holds.values().any(|b| b.actor == h.actor && b.state == MState::Confirmed) => {
                return Ok(None);
            }
            Some(max) if standing + others_live + u64::from(h.qty) > u64::from(max) => return Ok(None),
            _ => {}
        }
        let mut scratch = m.clone();
        scratch.holds.get_mut(&h.r).unwrap().state = MState::Expired;
        // The waiting list is offered what it is owed first (a writing operation that meets a
        // lapsed hold makes the offers before it decides).
        let mut evs = Vec::new();
        scratch.settle_wl(occ, now, Some(h.actor), &mut evs);
        let needs: Vec<Need> = if h.lines.is_empty() {
            vec![(vec![MDim::Total], u64::from(h.qty))]
        } else {
            h.lines.iter().map(|l| (cfg.dims_of(Some(l.tier)), u64::from(l.qty))).collect()
        };
        // Whether it fits is the model's call (every lapsed hold counted out); the engine's
        // events say which lapsed holds it expired on the way, and are checked.
        let (fail, _) = scratch.room_answer(occ, now, &needs, Some(h.actor))?;
        if fail.is_some() {
            return Ok(None);
        }
        let chosen: Vec<String> = chosen.iter().filter(|c| **c != h.r).cloned().collect();
        scratch.make_room(occ, now, &needs, Some(h.actor), &chosen, &mut evs)?;
        scratch.confirm(occ, &h.r, now, true, &mut evs);
        scratch.records.insert(
            (h.actor, h.r.clone()),
            MRecord {
                outcome: MOutcome::Confirmed,
                provider: res.provider.clone(),
                amount: Some(res.nanos().unwrap_or(h.price)),
                currency: Some(res.currency.unwrap_or(h.cur)),
            },
        );
        self.occs[occ] = scratch;
        self.touched.push((occ, h.r.clone()));
        cover("settle:Confirmed(revived)");
        if h.state == MState::Held {
            cover("settle:Confirmed(revived lapsed)");
        }
        Ok(Some((ExpSettle::Confirmed { replayed: false }, evs)))
    }
}

fn refund_event(res: &MResult, refund: &MRefund, now: i64) -> XEv {
    XEv {
        occ: res.occ,
        actor: res.actor,
        r: Some(res.r.clone()),
        at: now,
        kind: XKind::Refund {
            reason: refund.reason,
            amount: refund.amount,
            currency: refund.currency,
            provider: refund.provider.clone(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// After the sale: prices, blocks, cancellations, check-in, the waiting list, abandon, extend

impl<S: AsyncStore, X: Exec> Harness<'_, S, X> {
    fn set_price(&mut self, occ: usize, slot: usize, cents: u64, cur: &'static str) -> Result<(), String> {
        let price = Money::parse(&fmt_amount(cents, 0), cur).unwrap();
        let got = self.x.run(self.engine.set_price(&occ_key(occ), &TierName::new(TIER_NAMES[slot]).unwrap(), price));
        let now = self.now;
        let m = &mut self.occs[occ];
        let ok = match m.cfg.as_mut() {
            None => refusal_is(&got, |e| matches!(e, PriceRefusal::UnknownOccurrence)),
            Some(cfg) => match cfg.tier_at(slot) {
                None => {
                    cover("set_price:UnknownTier");
                    refusal_is(&got, |e| {
                        matches!(e, PriceRefusal::Price(seathold::catalogue::SetPriceError::UnknownTier(_)))
                    })
                }
                Some(t) => {
                    let same = cfg.tiers[t].cents == cents && cfg.tiers[t].cur == cur;
                    let live_held: u64 = m
                        .holds
                        .values()
                        .filter(|h| h.live(now))
                        .flat_map(|h| h.lines.iter())
                        .filter(|l| l.tier == t)
                        .map(|l| u64::from(l.qty))
                        .sum();
                    if cfg.tiers[t].lock && live_held > 0 && !same {
                        cover("set_price:Locked");
                        refusal_is(&got, |e| {
                            matches!(e, PriceRefusal::Price(seathold::catalogue::SetPriceError::Locked(_)))
                        })
                    } else {
                        if !same {
                            cover("set_price:changed");
                        }
                        cfg.tiers[t].cents = cents;
                        cfg.tiers[t].cur = cur;
                        got.is_ok()
                    }
                }
            },
        };
        ensure!(
            ok,
            "set_price occ {occ} tier {} {cents} {cur} at t={now}: the engine answered {got:?}",
            TIER_NAMES[slot]
        );
        Ok(())
    }

    fn block(&mut self, occ: usize, name: u8, seats: u32, slot: Option<usize>) -> Result<(), String> {
        let tier = slot.map(|s| TierName::new(TIER_NAMES[s]).unwrap());
        let got = self.x.run(self.engine.block(
            &occ_key(occ),
            &BlockName::new(format!("b{name}")).unwrap(),
            seats,
            tier.as_ref(),
        ));
        let peek = self.peek_events()?;
        let chosen: Vec<String> =
            peek.iter().filter(|e| matches!(e.kind, XKind::Expired { .. })).filter_map(|e| e.r.clone()).collect();
        let now = self.now;
        let ctx = format!("block occ {occ} b{name} {seats} seats of {slot:?} at t={now}");
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let Some(cfg) = m.cfg.clone() else {
            ensure!(refusal_is(&got, |e| matches!(e, BlockRefusal::UnknownOccurrence)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        if seats == 0 || seats > MAX_QUANTITY {
            ensure!(refusal_is(&got, |e| matches!(e, BlockRefusal::BadSeats { .. })), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        let tier = match slot {
            Some(s) => match cfg.tier_at(s) {
                Some(t) => Some(t),
                None => {
                    ensure!(refusal_is(&got, |e| matches!(e, BlockRefusal::UnknownTier(_))), "{ctx}: {got:?}");
                    return self.expect_events(&[]);
                }
            },
            None => None,
        };
        if let Some((s, t)) = m.blocks.get(&name) {
            if *s == seats && *t == tier {
                ensure!(matches!(got, Ok(BlockOutcome::Blocked)), "{ctx}: repeating a block answered {got:?}");
            } else {
                cover("block:Exists");
                ensure!(refusal_is(&got, |e| matches!(e, BlockRefusal::Exists(_))), "{ctx}: {got:?}");
            }
            return self.expect_events(&[]);
        }
        let needs = vec![(cfg.dims_of(tier), u64::from(seats))];
        let mut scratch = m.clone();
        // As for a request: with someone waiting, lapsed holds are expired and the free seats
        // offered down the list before the block decides.
        let mut chosen = chosen;
        let (lapsed, pre_offered) = scratch.offer_before_deciding(occ, now, &mut evs)?;
        chosen.retain(|c| !lapsed.contains(c));
        if pre_offered {
            cover("block:offers before deciding");
        }
        let (fail, offered) = scratch.make_room(occ, now, &needs, None, &chosen, &mut evs)?;
        if fail.is_some() {
            cover("block:Full");
            ensure!(matches!(got, Ok(BlockOutcome::Full)), "{ctx}: the model says Full, the engine {got:?}");
            if offered || pre_offered {
                *m = scratch;
            } else {
                evs.clear();
            }
        } else {
            cover("block:Blocked");
            ensure!(matches!(got, Ok(BlockOutcome::Blocked)), "{ctx}: the model says Blocked, the engine {got:?}");
            scratch.blocks.insert(name, (seats, tier));
            *m = scratch;
        }
        self.expect_events(&evs).map_err(|e| format!("{ctx}: {e}"))
    }

    fn unblock(&mut self, occ: usize, name: u8) -> Result<(), String> {
        let got = self.x.run(self.engine.unblock(&occ_key(occ), &BlockName::new(format!("b{name}")).unwrap()));
        let now = self.now;
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let ok = if m.cfg.is_none() {
            refusal_is(&got, |e| matches!(e, BlockRefusal::UnknownOccurrence))
        } else if m.blocks.remove(&name).is_none() {
            refusal_is(&got, |e| matches!(e, BlockRefusal::Unknown(_)))
        } else {
            cover("unblock:Unblocked");
            if m.settle_wl(occ, now, None, &mut evs) {
                cover("unblock:offered");
            }
            matches!(got, Ok(BlockOutcome::Unblocked))
        };
        ensure!(ok, "unblock occ {occ} b{name} at t={now}: the engine answered {got:?}");
        self.expect_events(&evs)
    }

    /// A cancellation under a fresh operation key, checked against the model; then its retry
    /// under the same key (a lost answer): the first answer again, marked replayed, nothing
    /// changed — or, for a refusal (never recorded), the same refusal decided afresh.
    fn cancel(&mut self, occ: usize, r: &str, tickets: Option<&[u32]>) -> Result<(), String> {
        self.scans += 1;
        let key = OpKey::new(format!("cancel-{}", self.scans)).unwrap();
        let (k, hold_ref) = (occ_key(occ), Ref::new(r).unwrap());
        let got = self.x.run(self.engine.with_op_key(&key).cancel(&k, &hold_ref, tickets));
        if let Ok(first) = &got {
            ensure!(!first.replayed, "a first keyed cancellation answered replayed: {first:?}");
        }
        let got = got.map(|first| first.answer);
        // What the retry is compared with (a store error is not comparable, and not expected).
        let first: Result<CancelOutcome, Option<CancelRefusal>> =
            got.as_ref().map(Clone::clone).map_err(|e| e.refusal().cloned());
        self.cancel_checked(occ, r, tickets, got)?;
        let retry = self.x.run(self.engine.with_op_key(&key).cancel(&k, &hold_ref, tickets));
        match (&first, &retry) {
            (Ok(first), Ok(again)) => {
                cover("cancel:retry replayed");
                ensure!(
                    again.replayed && again.answer == *first,
                    "cancel {r} retried under {key}: {again:?}, first {first:?}"
                );
            }
            (Err(Some(first)), Err(OpError::Refused(again))) => {
                cover("cancel:retry refused again");
                ensure!(first == again, "cancel {r} retried under {key}: refused {again:?}, first {first:?}");
            }
            _ => return Err(format!("cancel {r} retried under {key}: {retry:?}, first {first:?}")),
        }
        self.expect_events(&[])
    }

    fn cancel_checked(
        &mut self,
        occ: usize,
        r: &str,
        tickets: Option<&[u32]>,
        got: Result<CancelOutcome, OpError<CancelRefusal>>,
    ) -> Result<(), String> {
        let now = self.now;
        let ctx = format!("cancel occ {occ} {r} tickets {tickets:?} at t={now}");
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let refused = |f: fn(&CancelRefusal) -> bool| refusal_is(&got, f);
        if m.cfg.is_none() {
            ensure!(refused(|e| matches!(e, CancelRefusal::UnknownOccurrence)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        let Some(h) = m.holds.get(r).cloned() else {
            ensure!(refused(|e| matches!(e, CancelRefusal::UnknownBooking)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        match h.state {
            MState::Held => {
                cover("cancel:NotConfirmed");
                ensure!(refused(|e| matches!(e, CancelRefusal::NotConfirmed)), "{ctx}: {got:?}");
                return self.expect_events(&[]);
            }
            MState::Confirmed => {}
            _ => {
                cover("cancel:Noop");
                ensure!(matches!(got, Ok(CancelOutcome::Noop)), "{ctx}: {got:?}");
                return self.expect_events(&[]);
            }
        }
        let all: Vec<u32> = (0..h.qty).collect();
        let targets: Vec<u32> = if h.tickets.is_empty() {
            if tickets.is_some() {
                cover("cancel:NoTickets");
                ensure!(refused(|e| matches!(e, CancelRefusal::NoTickets)), "{ctx}: {got:?}");
                return self.expect_events(&[]);
            }
            all
        } else {
            let named = tickets.unwrap_or(&all);
            for (i, t) in named.iter().enumerate() {
                if *t >= h.qty || named[..i].contains(t) {
                    cover("cancel:BadTicket");
                    let t = *t;
                    ensure!(
                        matches!(&got, Err(OpError::Refused(CancelRefusal::BadTicket { index })) if *index == t),
                        "{ctx}: {got:?}"
                    );
                    return self.expect_events(&[]);
                }
            }
            if let Some(t) = named.iter().find(|t| matches!(h.tickets[**t as usize], MTicket::CheckedIn(_))) {
                cover("cancel:CheckedIn");
                let id = format!("{r}#{t}");
                ensure!(
                    matches!(&got, Ok(CancelOutcome::CheckedIn { ticket }) if *ticket == id),
                    "{ctx}: the model says CheckedIn({id}), the engine {got:?}"
                );
                return self.expect_events(&[]);
            }
            named.iter().copied().filter(|t| h.tickets[*t as usize] == MTicket::Valid).collect()
        };
        if targets.is_empty() {
            cover("cancel:Noop");
            ensure!(matches!(got, Ok(CancelOutcome::Noop)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        let seats = u32::try_from(targets.len()).unwrap();
        let completes = h.cancelled_seats + seats >= h.qty;
        let refund = if !h.lines.is_empty() {
            targets.iter().map(|t| h.seat_unit(*t)).sum()
        } else if completes {
            h.price - h.refunded
        } else {
            // Its share, rounded down to the price's decimals.
            cover("cancel:Cancelled(plain share)");
            let unit = 10u64.pow(9 - h.scale.min(9));
            h.price * u64::from(seats) / u64::from(h.qty) / unit * unit
        };
        if seats < h.qty {
            cover("cancel:Cancelled(some tickets)");
        }
        cover("cancel:Cancelled");
        ensure!(
            matches!(&got, Ok(CancelOutcome::Cancelled { refund: g, seats: s, .. })
                if nanos_of(&g.amount) == refund && g.currency.as_str() == h.cur && *s == seats),
            "{ctx}: the model says Cancelled({refund} nanos {}, {seats} seats), the engine {got:?}",
            h.cur
        );
        let provider = m.records.get(&(h.actor, r.to_owned())).and_then(|rec| rec.provider.clone());
        let b = m.holds.get_mut(r).unwrap();
        for t in &targets {
            if let Some(s) = b.tickets.get_mut(*t as usize) {
                *s = MTicket::Cancelled(now);
                evs.push(XEv {
                    occ,
                    actor: h.actor,
                    r: Some(r.to_owned()),
                    at: now,
                    kind: XKind::TicketCancelled { ticket: format!("{r}#{t}") },
                });
            }
        }
        b.cancelled_seats += seats;
        b.cancellations += 1;
        b.refunded += refund;
        if completes {
            b.state = MState::Cancelled;
        }
        evs.push(XEv {
            occ,
            actor: h.actor,
            r: Some(r.to_owned()),
            at: now,
            kind: XKind::Refund {
                reason: NoHoldReason::Cancelled,
                amount: Some(refund),
                currency: Some(h.cur),
                provider,
            },
        });
        m.cancels.push((refund, h.cur));
        if m.settle_wl(occ, now, None, &mut evs) {
            cover("cancel:offered");
        }
        self.cancelled_now[occ] += u64::from(seats);
        self.touched.push((occ, r.to_owned()));
        self.expect_events(&evs).map_err(|e| format!("{ctx}: {e}"))
    }

    fn check_in(&mut self, occ: usize, r: &str, index: u32, forge: Forge) -> Result<(), String> {
        if matches!(forge, Forge::Retry) {
            return self.retry_scan();
        }
        let key = occ_key(occ);
        let hold_ref = Ref::new(r).unwrap();
        let tickets = self.x.run(self.engine.tickets(&key, &hold_ref));
        let now = self.now;
        let h = self.occs[occ].holds.get(r).cloned();
        match (&h, &tickets) {
            (None, t) => ensure!(
                refusal_is(t, |e| matches!(e, TicketRefusal::UnknownBooking)),
                "tickets of unknown booking {r} at occ {occ}: {t:?}"
            ),
            (Some(h), Ok(t)) => self.compare_tickets(occ, h, t)?,
            (Some(_), Err(e)) => return Err(format!("tickets of {r} at occ {occ}: {e:?}")),
        }
        let real = tickets.as_ref().ok().and_then(|t| t.get(index as usize)).map(|t| t.credential.clone());
        let credential = match (forge, real) {
            (Forge::Real | Forge::ReuseKey | Forge::WrongDoor, Some(c)) => c,
            (Forge::Tampered, Some(c)) => {
                let mut c = c.into_bytes();
                let last = c.len() - 1;
                c[last] = if c[last] == b'A' { b'B' } else { b'A' };
                String::from_utf8(c).unwrap()
            }
            (Forge::OtherKey, _) => self.other_key.credential(&key, &hold_ref, index),
            (Forge::Garbage, _) => format!("garbage.{r}"),
            _ => self.ticket_key.credential(&key, &hold_ref, index + 100),
        };
        // Genuine: made by the engine's key (whatever the forge meant to do); then the seat
        // index it names.
        let named = self.ticket_key.verify(&credential).ok();
        let genuine = named.is_some();
        let real_index = named.as_ref().map_or(index, |n| n.2);
        let door = if matches!(forge, Forge::WrongDoor) { OccKey::new("another-door").unwrap() } else { key.clone() };
        // A fresh operation key, or (ReuseKey) the last scan's.
        let reused = self.last_scan.clone().filter(|_| matches!(forge, Forge::ReuseKey));
        let op_key = match &reused {
            Some(last) => last.op_key.clone(),
            None => {
                self.scans += 1;
                OpKey::new(format!("scan-{}", self.scans)).unwrap()
            }
        };
        let got = self.x.run(self.engine.with_op_key(&op_key).check_in(&door, &credential));
        // The model: the seat the credential names, if it is genuine.
        let seat = if genuine {
            h.as_ref().and_then(|h| h.tickets.get(real_index as usize).map(|s| (real_index, *s)))
        } else {
            None
        };
        let ticket_ref = |i: u32| TicketRef {
            id: format!("{r}#{i}"),
            index: i,
            tier: tickets.as_ref().ok().and_then(|t| t.get(i as usize)).and_then(|t| t.tier.clone()),
        };
        // The key was recorded at this door: the same command replays, another is refused;
        // neither changes anything. (A credential refused before anything is read never
        // reaches the record.)
        let recorded_here = self.scan_records.get(&(door.clone(), op_key.clone())).cloned();
        if let Some((ticket, first)) = recorded_here.filter(|_| genuine && (door == key)) {
            let same = ticket == Some((r.to_owned(), real_index));
            if same {
                cover("check_in:ReuseKey(same command: replayed)");
                let ok = matches!(&got, Ok(g) if g.replayed && g.answer == first);
                ensure!(ok, "check_in under {op_key} again for the same ticket: {got:?}, first {first:?}");
            } else {
                cover("check_in:ReuseKey(another command: refused)");
                ensure!(
                    matches!(&got, Err(OpError::OpKeyReused { .. })),
                    "check_in under {op_key}, used for another ticket, answered {got:?}"
                );
            }
            return self.expect_events(&[]);
        }
        let got = got.map_err(|e| format!("check_in: {e:?}"))?;
        ensure!(!got.replayed, "a first keyed scan answered replayed: {got:?}");
        let got = got.answer;
        let mut evs = Vec::new();
        let (ok, recorded) = match seat {
            _ if genuine && door != key => {
                cover("check_in:WrongOccurrence");
                let want = CheckIn::WrongOccurrence {
                    occ_key: key.clone(),
                    ticket: TicketRef { id: format!("{r}#{real_index}"), index: real_index, tier: None },
                };
                (got == want, false)
            }
            // Invalid from the credential alone is answered before anything is read, and not
            // recorded; a genuine credential naming no ticket is the decision's answer, and is.
            None => {
                cover("check_in:Invalid");
                (got == CheckIn::Invalid, genuine)
            }
            Some((i, s)) => {
                let id = format!("{r}#{i}");
                let ok = match s {
                    MTicket::Cancelled(_) => {
                        cover("check_in:Cancelled");
                        got == CheckIn::Cancelled { ticket: ticket_ref(i) }
                    }
                    MTicket::CheckedIn(t) => {
                        cover("check_in:AlreadyCheckedIn");
                        got == CheckIn::AlreadyCheckedIn { ticket: ticket_ref(i), at: self.at(t) }
                    }
                    MTicket::Valid => {
                        cover("check_in:Admitted");
                        let h = self.occs[occ].holds.get_mut(r).unwrap();
                        h.tickets[i as usize] = MTicket::CheckedIn(now);
                        evs.push(XEv {
                            occ,
                            actor: h.actor,
                            r: Some(r.to_owned()),
                            at: now,
                            kind: XKind::CheckedIn { ticket: id.clone() },
                        });
                        self.touched.push((occ, r.to_owned()));
                        got == CheckIn::Admitted { ticket: ticket_ref(i) }
                    }
                };
                (ok, true)
            }
        };
        ensure!(
            ok,
            "check_in occ {occ} {r} seat {index} ({forge:?}) at t={now}: the model expects {seat:?}, got {got:?}"
        );
        if recorded {
            self.scan_records.insert((door.clone(), op_key.clone()), (Some((r.to_owned(), real_index)), got));
        }
        if reused.is_none() {
            self.last_scan = Some(LastScan { op_key, door, credential });
        }
        self.expect_events(&evs)
    }

    /// A scanner's retry of the last keyed scan after a lost answer: the first answer again,
    /// marked replayed, and nothing changed (a recorded answer); or, for an answer that was
    /// never recorded (`Invalid`, `WrongOccurrence`), the same answer decided afresh.
    fn retry_scan(&mut self) -> Result<(), String> {
        let Some(last) = self.last_scan.clone() else {
            cover("check_in:Retry(nothing to retry)");
            return Ok(());
        };
        let got = self
            .x
            .run(self.engine.with_op_key(&last.op_key).check_in(&last.door, &last.credential))
            .map_err(|e| format!("check_in retry under {}: {e:?}", last.op_key))?;
        match self.scan_records.get(&(last.door.clone(), last.op_key.clone())).map(|(_, a)| a) {
            Some(first) => {
                cover("check_in:Retry(replayed)");
                ensure!(
                    got.replayed && got.answer == *first,
                    "a retried scan under {} answered {got:?}; its first answer was {first:?}",
                    last.op_key
                );
            }
            None => {
                cover("check_in:Retry(not recorded)");
                ensure!(!got.replayed, "an unrecorded scan answered replayed: {got:?}");
                ensure!(
                    matches!(got.answer, CheckIn::Invalid | CheckIn::WrongOccurrence { .. }),
                    "a retried scan of an unrecorded answer: {got:?}"
                );
            }
        }
        self.expect_events(&[])
    }

    /// A booking's tickets as the engine lists them, against the model's.
    fn compare_tickets(&self, occ: usize, h: &MHold, got: &[seathold::tickets::Ticket]) -> Result<(), String> {
        let cfg = self.occs[occ].cfg();
        ensure!(
            got.len() == h.tickets.len(),
            "booking {} at occ {occ} has {} tickets, the model {:?}",
            h.r,
            got.len(),
            h.tickets
        );
        for (i, (t, s)) in got.iter().zip(&h.tickets).enumerate() {
            let state_ok = match (t.status, s) {
                (TicketStatus::Valid, MTicket::Valid) => t.at.is_none(),
                (TicketStatus::CheckedIn, MTicket::CheckedIn(w)) | (TicketStatus::Cancelled, MTicket::Cancelled(w)) => {
                    t.at == Some(self.at(*w))
                }
                _ => false,
            };
            let i = u32::try_from(i).unwrap();
            ensure!(
                t.id == format!("{}#{i}", h.r)
                    && t.index == i
                    && t.hold_ref.as_str() == h.r
                    && t.occ_key.as_str() == occ_name(occ)
                    && t.tier.as_ref().map(TierName::as_str) == h.seat_tier(i).map(|x| cfg.tier_name(x))
                    && state_ok
                    && t.credential == self.ticket_key.credential(&occ_key(occ), &Ref::new(&h.r).unwrap(), i),
                "ticket {i} of {} at occ {occ} is {t:?}; the model has {s:?}",
                h.r
            );
        }
        Ok(())
    }

    fn join(&mut self, occ: usize, actor: usize, slot: Option<usize>, seats: u32) -> Result<(), String> {
        let tier = slot.map(|s| TierName::new(TIER_NAMES[s]).unwrap());
        let got = self.x.run(self.engine.join_waitlist(&occ_key(occ), &actor_id(actor), tier.as_ref(), seats));
        let now = self.now;
        let ctx = format!("join occ {occ} actor {actor} tier {slot:?} seats {seats} at t={now}");
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let Some(cfg) = m.cfg.clone() else {
            ensure!(refusal_is(&got, |e| matches!(e, WaitlistRefusal::UnknownOccurrence)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        if seats == 0 || seats > MAX_QUANTITY {
            ensure!(refusal_is(&got, |e| matches!(e, WaitlistRefusal::BadSeats { .. })), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        let tier = match slot {
            Some(s) => match cfg.tier_at(s) {
                Some(t) => Some(t),
                None => {
                    ensure!(refusal_is(&got, |e| matches!(e, WaitlistRefusal::UnknownTier(_))), "{ctx}: {got:?}");
                    return self.expect_events(&[]);
                }
            },
            None => None,
        };
        // A position on the tier's own list: entries for other tiers are never ahead.
        let place = |wl: &[MEntry], i: usize| wl[..i].iter().filter(|e| e.tier == tier).count() + 1;
        let (position, offered) = if let Some(i) = m.wl.iter().position(|e| e.actor == actor && e.tier == tier) {
            cover("join:again");
            (place(&m.wl, i), m.wl[i].offer.is_some())
        } else {
            m.wl.push(MEntry { actor, tier, seats, offer: None });
            m.settle_wl(occ, now, None, &mut evs);
            let i = m.wl.iter().position(|e| e.actor == actor && e.tier == tier).unwrap();
            let offered = m.wl[i].offer.is_some();
            cover(if offered { "join:offered" } else { "join:waiting" });
            if i + 1 != place(&m.wl, i) {
                cover("join:behind-another-tier");
            }
            (place(&m.wl, i), offered)
        };
        ensure!(
            matches!(&got, Ok(j) if j.position == position && j.offered == offered),
            "{ctx}: the model says position {position} offered {offered}, the engine {got:?}"
        );
        self.expect_events(&evs).map_err(|e| format!("{ctx}: {e}"))
    }

    fn leave(&mut self, occ: usize, actor: usize, slot: Option<usize>) -> Result<(), String> {
        let tier = slot.map(|s| TierName::new(TIER_NAMES[s]).unwrap());
        let got = self.x.run(self.engine.leave_waitlist(&occ_key(occ), &actor_id(actor), tier.as_ref()));
        let now = self.now;
        let ctx = format!("leave occ {occ} actor {actor} tier {slot:?} at t={now}");
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let Some(cfg) = m.cfg.clone() else {
            ensure!(refusal_is(&got, |e| matches!(e, WaitlistRefusal::UnknownOccurrence)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        let tier = slot.and_then(|s| cfg.tier_at(s));
        let found = if slot.is_some() && tier.is_none() {
            None
        } else {
            m.wl.iter().position(|e| e.actor == actor && e.tier == tier)
        };
        let left = match found {
            Some(i) => {
                let e = m.wl.remove(i);
                cover("leave:left");
                if e.offer.is_some() && m.settle_wl(occ, now, None, &mut evs) {
                    cover("leave:passed on");
                } else {
                    m.settle_wl(occ, now, None, &mut evs);
                }
                true
            }
            None => false,
        };
        ensure!(matches!(got, Ok(b) if b == left), "{ctx}: the model says {left}, the engine {got:?}");
        self.expect_events(&evs).map_err(|e| format!("{ctx}: {e}"))
    }

    fn abandon(&mut self, occ: usize, actor: usize, r: &str) -> Result<(), String> {
        let got = self.x.run(self.engine.abandon(&occ_key(occ), &actor_id(actor), &Ref::new(r).unwrap()));
        let now = self.now;
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let named = m.holds.get(r).filter(|h| h.actor == actor).cloned();
        let want = match named {
            Some(h) if m.cfg.is_some() && h.live(now) => {
                m.release(occ, r, now, &mut evs);
                cover("abandon:Released");
                if m.settle_wl(occ, now, None, &mut evs) {
                    cover("abandon:offered");
                }
                AbandonOutcome::Released
            }
            Some(h) if m.cfg.is_some() && h.lapsed(now) => {
                m.expire(occ, r, now, &mut evs)?;
                m.settle_wl(occ, now, None, &mut evs);
                AbandonOutcome::Noop
            }
            _ => AbandonOutcome::Noop,
        };
        ensure!(
            matches!(got, Ok(g) if g == want),
            "abandon occ {occ} actor {actor} {r} at t={now}: the model says {want:?}, the engine {got:?}"
        );
        self.expect_events(&evs)
    }

    fn extend(&mut self, occ: usize, r: &str, by: i64) -> Result<(), String> {
        let got = self.x.run(self.engine.extend(&occ_key(occ), &Ref::new(r).unwrap(), Duration::seconds(by)));
        let now = self.now;
        let ctx = format!("extend occ {occ} {r} by {by}s at t={now}");
        let m = &mut self.occs[occ];
        let mut evs = Vec::new();
        let refused = |f: fn(&ExtendRefusal) -> bool| refusal_is(&got, f);
        let Some(cfg) = m.cfg.clone() else {
            ensure!(refused(|e| matches!(e, ExtendRefusal::UnknownOccurrence)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        let Some(h) = m.holds.get_mut(r) else {
            ensure!(refused(|e| matches!(e, ExtendRefusal::UnknownHold)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        };
        if !h.live(now) {
            cover("extend:NotLive");
            ensure!(refused(|e| matches!(e, ExtendRefusal::NotLive)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        if cfg.max_ext == 0 || by <= 0 {
            cover("extend:NotAllowed");
            ensure!(refused(|e| matches!(e, ExtendRefusal::NotAllowed)), "{ctx}: {got:?}");
            return self.expect_events(&[]);
        }
        // Never past the first expiry plus the maximum extension.
        let cap = h.first_expires + i64::from(cfg.max_ext);
        let next = (h.expires + by).min(cap);
        if h.expires + by > cap {
            // The cap cut this extension short (or, at the cap already, to nothing).
            cover("extend:capped");
        }
        if next > h.expires {
            cover("extend:extended");
            h.expires = next;
            evs.push(XEv {
                occ,
                actor: h.actor,
                r: Some(r.to_owned()),
                at: now,
                kind: XKind::Extended { expires: next },
            });
        }
        let h = h.clone();
        ensure!(
            matches!(&got, Ok(c) if check_checkout(occ, c, &h).is_ok()),
            "{ctx}: the model's hold is {h:?}, the engine answered {got:?}"
        );
        self.expect_events(&evs).map_err(|e| format!("{ctx}: {e}"))
    }

    // -----------------------------------------------------------------------------------
    // The sweep

    /// `expire_due(limit)`: the first `limit` due records, oldest first (lapsed holds; waiting
    /// lists with a lapsed offer), each expired or passed on with the waiting list offered
    /// the freed seats in its own commit. The order of ties and, for a small limit, which of
    /// a tie made the cut are the engine's; the events say which, and are checked.
    fn sweep(&mut self, limit: usize) -> Result<(), String> {
        let got = self.x.run(self.engine.expire_due(limit)).map_err(|e| format!("sweep: {e}"))?;
        let now = self.now;
        let peek = self.peek_events()?;
        // Due records: (due, is a hold, occ, ref).
        let mut due: Vec<(i64, bool, usize, Option<String>)> = Vec::new();
        for (o, m) in self.occs.iter().enumerate() {
            for h in m.holds.values().filter(|h| h.lapsed(now)) {
                due.push((h.expires, true, o, Some(h.r.clone())));
            }
            if let Some(t) = m.wl.iter().filter_map(|e| e.offer.map(|(_, x)| x)).min().filter(|t| *t <= now) {
                due.push((t, false, o, None));
            }
        }
        due.sort();
        let cut = due.get(limit.min(due.len()).wrapping_sub(1)).map(|d| d.0);
        let mut evs = Vec::new();
        let mut done: Vec<(i64, bool, usize, Option<String>)> = Vec::new();
        let mut i = 0;
        let mut expired = 0;
        while i < peek.len() {
            let e = &peek[i];
            let start = evs.len();
            let rec = match &e.kind {
                XKind::Expired { .. } => {
                    let r = e.r.clone().unwrap_or_default();
                    let d = due.iter().find(|d| d.1 && d.2 == e.occ && d.3.as_ref() == Some(&r));
                    let d = d
                        .cloned()
                        .ok_or_else(|| format!("the sweep expired {r} at occ {}, which is not due", e.occ))?;
                    let m = &mut self.occs[e.occ];
                    m.expire(e.occ, &r, now, &mut evs)?;
                    if m.settle_wl(e.occ, now, None, &mut evs) {
                        cover("sweep:offered");
                    }
                    expired += 1;
                    d
                }
                XKind::Offered { .. } => {
                    let d = due.iter().find(|d| !d.1 && d.2 == e.occ).cloned();
                    let d =
                        d.ok_or_else(|| format!("the sweep offered seats at occ {}, whose list is not due", e.occ))?;
                    ensure!(!done.contains(&d), "the sweep passed the list of occ {} on twice", e.occ);
                    let m = &mut self.occs[e.occ];
                    m.settle_wl(e.occ, now, None, &mut evs);
                    cover("offer:passed on");
                    d
                }
                _ => return Err(format!("the sweep committed {e:?}")),
            };
            ensure!(
                done.last().is_none_or(|l| l.0 <= rec.0),
                "the sweep took {rec:?} after {:?}: not oldest first",
                done.last()
            );
            ensure!(cut.is_some_and(|c| rec.0 <= c), "the sweep took {rec:?} beyond its limit {limit}; due {due:?}");
            done.push(rec);
            let n = evs.len() - start;
            ensure!(
                n > 0 && peek.len() >= i + n && peek[i..i + n] == evs[start..],
                "the sweep committed {:?}; the model expects {:?}",
                &peek[i..],
                &evs[start..]
            );
            i += n;
        }
        ensure!(got == expired, "expire_due({limit}) answered {got}, but expired {expired} holds");
        ensure!(done.len() <= limit, "the sweep handled {} records, limit {limit}", done.len());
        // The lists due but not seen in the events were passed on silently (their lapsed offers
        // dropped, nothing to offer) if they made the cut: every one before it; of a tie at
        // it, the store's counters say which.
        for d in due.iter().filter(|d| !d.1 && !done.contains(d)) {
            let surely = limit >= due.len() || cut.is_some_and(|c| d.0 < c);
            let maybe = cut.is_some_and(|c| d.0 == c);
            let occ = d.2;
            let passed = if surely {
                true
            } else if maybe {
                let o = self.x.run(self.engine.occurrence(&occ_key(occ))).map_err(|e| e.to_string())?;
                let lapsed: u64 = self.occs[occ]
                    .wl
                    .iter()
                    .filter_map(|e| e.offer)
                    .filter(|o| o.1 <= now)
                    .map(|o| u64::from(o.0))
                    .sum();
                o.counters.get(&Dim::Total).offered + lapsed == self.occs[occ].usage(now)[&MDim::Total].offered
            } else {
                false
            };
            if passed {
                let mut silent = Vec::new();
                self.occs[occ].settle_wl(occ, now, None, &mut silent);
                ensure!(
                    silent.is_empty(),
                    "the list of occ {occ} was due, the sweep offered nothing; the model {silent:?}"
                );
            }
        }
        if limit >= due.len() {
            for (o, m) in self.occs.iter().enumerate() {
                ensure!(
                    m.lapsed(now).is_empty(),
                    "after a full sweep occ {o} still has lapsed holds {:?}",
                    m.lapsed(now)
                );
            }
        }
        if expired > 0 {
            cover("sweep:expired");
        }
        self.expect_events(&evs)
    }

    // -----------------------------------------------------------------------------------
    // Checks after every step

    fn check_state(&mut self) -> Result<(), String> {
        let now = self.now;
        for occ in 0..OCCS {
            let key = occ_key(occ);
            let got = self.x.run(self.engine.availability(&key));
            let Some(cfg) = self.occs[occ].cfg.clone() else {
                ensure!(
                    matches!(&got, Err(OpError::Refused(u)) if u.occ_key == key),
                    "availability of never-opened {occ} answered {got:?}"
                );
                continue;
            };
            let a = got.map_err(|e| format!("availability {occ}: {e}"))?;
            let m = &self.occs[occ];
            let u = m.usage(now);
            // What a reader sees: lapsed holds and offers count nowhere, and the seats they
            // free are owed to the waiting list first (as the next write will offer them).
            let quiet = m.wl.iter().all(|e| e.offer.is_some_and(|(_, x)| x > now)) && m.lapsed(now).is_empty();
            if quiet {
                self.check_availability(occ, &cfg, &u, &a)?;
            } else {
                let mut seen = m.clone();
                for r in seen.lapsed(now) {
                    seen.expire(occ, &r, now, &mut Vec::new())?;
                }
                seen.settle_wl(occ, now, None, &mut Vec::new());
                self.check_availability(occ, &cfg, &seen.usage(now), &a)?;
            }
            // The store's counters: lapsed holds and offers count until something ends them.
            let o = self.x.run(self.engine.occurrence(&key)).map_err(|e| e.to_string())?;
            for d in cfg.dims() {
                let c = o.counters.get(&dim(&cfg, d));
                let w = u[&d];
                ensure!(
                    (c.held, c.confirmed, c.blocked, c.offered) == (w.held, w.confirmed, w.blocked, w.offered),
                    "counters of occ {occ} {d:?} at t={now} are {c:?}; the model has {w:?}"
                );
            }
            for (d, c) in o.counters.iter() {
                ensure!(
                    cfg.dims().iter().any(|x| dim(&cfg, *x) == *d) || c.total() == 0,
                    "occ {occ} counts {c:?} on {d:?}, which it does not have"
                );
            }
            // Invariant 1, every dimension: what is taken only grows within the cap.
            for d in cfg.dims() {
                let live = u[&d].live();
                let prev = self.prev_live[occ].get(&d).copied().unwrap_or(0);
                if let Some(cap) = cfg.cap(d) {
                    if live > cap {
                        cover("capacity-lowered-below-use");
                    }
                    ensure!(
                        live <= cap || live <= prev,
                        "occ {occ} {d:?}: {live} seats taken grew past its cap {cap} (was {prev}) at t={now}"
                    );
                }
                self.prev_live[occ].insert(d, live);
            }
            // Invariant 4 as amended: sold seats go only by cancellation.
            let confirmed = u[&MDim::Total].confirmed;
            ensure!(
                confirmed + self.cancelled_now[occ] >= self.prev_confirmed[occ],
                "occ {occ}: sold seats went from {} to {confirmed} with {} cancelled",
                self.prev_confirmed[occ],
                self.cancelled_now[occ]
            );
            self.prev_confirmed[occ] = confirmed;
            // Tickets: one per standing sold seat.
            if cfg.tickets {
                let tickets = self.consumer.standing_tickets(&occ_name(occ));
                ensure!(tickets == confirmed, "occ {occ} has {tickets} standing tickets for {confirmed} sold seats");
            }
        }
        // Every held hold is open in the outbox, and nothing else is.
        let mut held = 0;
        for (occ, m) in self.occs.iter().enumerate() {
            for (r, h) in &m.holds {
                if h.state == MState::Held {
                    held += 1;
                    let open = self.consumer.open.get(&(occ_name(occ), actor_name(h.actor)));
                    ensure!(
                        open.is_some_and(|o| o.hold_ref == *r && o.expires_at == self.at(h.expires)),
                        "held hold {h:?} at {occ} is not open in the outbox: {open:?}"
                    );
                }
            }
        }
        ensure!(
            held == self.consumer.open.len(),
            "the outbox has {} open holds, the model {held}",
            self.consumer.open.len()
        );
        for (occ, r) in std::mem::take(&mut self.touched) {
            let h = self.occs[occ].holds[&r].clone();
            let t =
                self.x.run(self.engine.tickets(&occ_key(occ), &Ref::new(&r).unwrap())).map_err(|e| format!("{e:?}"))?;
            self.compare_tickets(occ, &h, &t)?;
        }
        // Only payments and cancellations write the ledger, and a step writes only the
        // occurrence it names: its ledger after every step, all of them every 16 steps.
        if self.steps % 16 == 0 {
            self.check_ledgers(None)
        } else {
            self.step_occ.map_or(Ok(()), |o| self.check_ledgers(Some(o)))
        }
    }

    fn check_availability(
        &self,
        occ: usize,
        cfg: &MCfg,
        u: &BTreeMap<MDim, U>,
        a: &Availability,
    ) -> Result<(), String> {
        let t = u[&MDim::Total];
        let room = |d: MDim| cfg.cap(d).map(|c| c.saturating_sub(u[&d].live()));
        let tiers_ok = a.tiers.len() == cfg.tiers.len()
            && cfg.tiers.iter().enumerate().all(|(i, tier)| {
                let dims = cfg.dims_of(Some(i));
                let avail = dims.iter().filter_map(|d| room(*d)).min().unwrap_or(0);
                a.tiers.get(&TierName::new(TIER_NAMES[tier.slot]).unwrap()).is_some_and(|g| {
                    g.available == avail
                        && g.held == u[&MDim::Tier(i)].held_live
                        && g.confirmed == u[&MDim::Tier(i)].confirmed
                })
            });
        ensure!(
            a.capacity == cfg.capacity
                && a.held == t.held_live
                && a.confirmed == t.confirmed
                && a.blocked == t.blocked
                && a.offered == t.offered_live
                && a.available == room(MDim::Total).unwrap()
                && tiers_ok,
            "availability of occ {occ} at t={} is {a:?}; the model has {t:?} of {}, per dimension {u:?}",
            self.now,
            cfg.capacity
        );
        Ok(())
    }

    /// The store's ledger of each occurrence against the model: one payment entry per
    /// accounting, one refund entry per refund signal and per cancellation, and received
    /// minus refunded is what the bookings still confirmed keep, per currency.
    fn check_ledgers(&self, only: Option<usize>) -> Result<(), String> {
        for (occ, m) in self.occs.iter().enumerate().filter(|(o, _)| only.is_none_or(|x| x == *o)) {
            let ledger = self.x.run(self.engine.ledger(&occ_key(occ))).map_err(|e| e.to_string())?;
            let refunds = m.records.values().filter(|r| matches!(r.outcome, MOutcome::Refund(_))).count();
            let payments = m.records.len() + m.dups.len();
            let refunds = refunds + m.dups.len() + m.cancels.len();
            let count = |kind: EntryKind| ledger.entries.iter().filter(|e| e.kind == kind).count();
            ensure!(
                count(EntryKind::Payment) == payments && count(EntryKind::Refund) == refunds,
                "ledger of occ {occ}: {} payments and {} refunds, the model has {payments} and {refunds}",
                count(EntryKind::Payment),
                count(EntryKind::Refund)
            );
            for cur in ["EUR", "USD"] {
                // What the bookings still confirmed keep: the standing seats' prices.
                let kept: u64 = m
                    .holds
                    .values()
                    .filter(|h| h.cur == cur && matches!(h.state, MState::Confirmed | MState::Cancelled))
                    .map(|h| {
                        if !h.lines.is_empty() {
                            (0..h.qty)
                                .filter(|i| h.state == MState::Confirmed && h.standing(*i))
                                .map(|i| h.seat_unit(i))
                                .sum()
                        } else {
                            h.kept()
                        }
                    })
                    .sum();
                let paid_kept: u64 = m
                    .holds
                    .values()
                    .filter(|h| h.cur == cur && matches!(h.state, MState::Confirmed | MState::Cancelled))
                    .map(MHold::kept)
                    .sum();
                ensure!(kept == paid_kept, "model: occ {occ} keeps {kept} by seats, {paid_kept} by refunds");
                let got = ledger.net(Currency::parse(cur).unwrap());
                ensure!(
                    got == Some(amount(kept)),
                    "ledger of occ {occ} nets {got:?} {cur} (received {:?}, refunded {:?}); the bookings still \
                     confirmed keep {kept} nanos",
                    ledger.received,
                    ledger.refunded
                );
            }
        }
        Ok(())
    }

    /// End of a case: past every expiry, sweeps end every hold and pass every offer on; every
    /// paid result was accounted exactly once; every booking and its tickets are the model's.
    fn finish(&mut self) -> Result<(), String> {
        self.step(&Op::Advance(1_000))?;
        self.step(&Op::Sweep(usize::MAX))?;
        for _ in 0..64 {
            if self.occs.iter().all(|m| m.wl.iter().all(|e| e.offer.is_none())) {
                break;
            }
            self.step(&Op::Advance(61))?;
            self.step(&Op::Sweep(usize::MAX))?;
        }
        ensure!(self.occs.iter().all(|m| m.wl.iter().all(|e| e.offer.is_none())), "offers still out after the sweeps");
        ensure!(self.consumer.open.is_empty(), "holds without a terminal event: {:?}", self.consumer.open);
        ensure!(
            self.consumer.placed == self.consumer.ended,
            "placed {} ended {}",
            self.consumer.placed,
            self.consumer.ended
        );
        for k in &self.paid_keys {
            ensure!(
                self.consumer.accounted.contains_key(k),
                "paid result {k:?} was never accounted; the model's records {:?}, holds {:?}",
                self.occs[index_of(&k.0, "occ-").unwrap()].records,
                self.occs[index_of(&k.0, "occ-").unwrap()].holds.get(&k.2)
            );
        }
        for k in self.consumer.accounted.keys() {
            ensure!(self.paid_keys.contains(k), "{k:?} accounted without a paid result");
        }
        for (occ, m) in self.occs.iter().enumerate() {
            for (r, h) in &m.holds {
                let b = self
                    .x
                    .run(self.engine.booking(&occ_key(occ), &Ref::new(r).unwrap()))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("booking {r} of occ {occ} is gone"))?;
                let state = match h.state {
                    MState::Held => HoldState::Held,
                    MState::Confirmed => HoldState::Confirmed,
                    MState::Released => HoldState::Released,
                    MState::Expired => HoldState::Expired,
                    MState::Cancelled => HoldState::Cancelled,
                };
                ensure!(
                    b.state == state
                        && b.quantity == h.qty
                        && b.cancelled_seats == h.cancelled_seats
                        && b.revived == h.revived
                        && b.expires_at == self.at(h.expires),
                    "booking {r} of occ {occ} is {b:?}; the model has {h:?}"
                );
                let t = self
                    .x
                    .run(self.engine.tickets(&occ_key(occ), &Ref::new(r).unwrap()))
                    .map_err(|e| format!("{e:?}"))?;
                self.compare_tickets(occ, h, &t)?;
            }
        }
        self.check_ledgers(None)?;
        self.step(&Op::Drain)
    }
}

/// The library's dimension for one of the model's.
fn dim(cfg: &MCfg, d: MDim) -> Dim {
    match d {
        MDim::Total => Dim::Total,
        MDim::Tier(t) => Dim::Tier(TierName::new(cfg.tier_name(t)).unwrap()),
        MDim::Pool(p) => Dim::Pool(pool_name(p)),
    }
}

fn run_case<S: AsyncStore, X: Exec>(
    x: &X,
    store: S,
    case: &Case,
    steps: &AtomicU64,
    read_cache: Option<usize>,
) -> Result<(), String> {
    let mut h = Harness::new(x, store, read_cache);
    for (occ, cfg) in case.init.iter().enumerate() {
        h.step(&Op::Open { occ, cfg: cfg.clone(), shift: 0 })?;
    }
    for (n, op) in case.ops.iter().enumerate() {
        h.step(op).map_err(|e| format!("step {n} ({op:?}): {e}"))?;
        steps.fetch_add(1, Ordering::Relaxed);
    }
    h.finish().map_err(|e| format!("finish: {e}"))?;
    if let Some(st) = h.engine.read_cache_stats() {
        CACHE_HITS.fetch_add(st.hits, Ordering::Relaxed);
        CACHE_MISSES.fetch_add(st.misses, Ordering::Relaxed);
    }
    Ok(())
}

/// Read-cache hits and misses over a run (the cache must have been used, or the run with it
/// proves nothing about it).
static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static CACHE_MISSES: AtomicU64 = AtomicU64::new(0);

/// Run the model: `params.cases` random cases, each on a fresh store from `fresh`.
pub(crate) fn run_model<S: AsyncStore, X: Exec>(params: &Params, x: &X, fresh: impl Fn() -> S) {
    let seed = std::env::var("SEATHOLD_MODEL_SEED").ok().and_then(|s| s.parse::<u64>().ok());
    let config = Config {
        cases: params.cases,
        max_shrink_iters: 300,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    // XorShift: deterministic, and generating 400-op cases with it costs a tenth of ChaCha.
    let mut bytes = *b"seathold-model!!";
    bytes[..8].copy_from_slice(&seed.unwrap_or(0x5EA7_401D).to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::XorShift, &bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let steps = AtomicU64::new(0);
    let began = Instant::now();
    let result = runner.run(&case(params.max_ops), |case| {
        run_case(x, fresh(), &case, &steps, params.read_cache).map_err(TestCaseError::fail)
    });
    let steps = steps.into_inner();
    // Straight to the stderr handle, past libtest's capture, so CI logs show it.
    let _ = writeln!(
        std::io::stderr(),
        "{}: {steps} steps over {} cases in {:.1?} (seed {seed:?})",
        params.label,
        params.cases,
        began.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    if params.read_cache.is_some() {
        let (hits, misses) = (CACHE_HITS.load(Ordering::Relaxed), CACHE_MISSES.load(Ordering::Relaxed));
        let _ = writeln!(std::io::stderr(), "{}: read cache {hits} hits, {misses} misses", params.label);
        assert!(hits > 0 && misses > 0, "the read cache was not exercised: {hits} hits, {misses} misses");
    }
    assert!(steps >= params.min_steps, "only {steps} steps ran, want at least {}", params.min_steps);
    if params.check_coverage {
        let coverage = COVERAGE.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let _ = writeln!(std::io::stderr(), "{} coverage: {coverage:?}", params.label);
        let missing: Vec<&&str> = MUST_COVER.iter().filter(|w| coverage.get(**w).is_none_or(|n| *n == 0)).collect();
        assert!(missing.is_empty(), "the generator never reached {missing:?}");
    }
}
