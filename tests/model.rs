//! Model-based property test: random sequences of operations over several occurrences and
//! actors, run against the engine on a `MemoryStore` and against a small independent
//! reference model written here from DESIGN.md Part 1 (it does not call seathold's `holds`
//! or `settlement` modules). After every step every outcome is compared with the model's and
//! invariants 1-8 of DESIGN.md are asserted.
//!
//! The model's rules, as DESIGN.md states them:
//! - refs are single-use per occurrence, whoever used them: a request whose ref names any
//!   hold, or a payment accounted for (ref, actor), is refused — except the replay of the
//!   actor's live hold's own request; the same ref with another order is `RequestChanged`;
//! - a request answers, first to last: malformed input, unknown occurrence, the replay (or
//!   `RequestChanged`), `Already`, used ref, `Full`, a new hold;
//! - a payment is identified by (occ, actor, ref), plus its provider ref when both it and
//!   the accounted one carry one; a redelivery replays the first answer whatever its body
//!   says, a different provider ref is a `duplicate_payment` refund of its own;
//! - a result is judged against the actor's current (latest) hold: a ref other than that
//!   hold's is the R' != R column of the truth table;
//! - money is checked only when a live hold is about to be confirmed (`Rejected`); for any
//!   other hold a paid result is a refund carrying the result's money (or, if it carries
//!   none, the price of the actor's hold under that ref).
//!
//! Sized so one run executes at least [`MIN_STEPS`] steps; the count is printed.
//! Set `SEATHOLD_MODEL_SEED=<u64>` to explore another deterministic sequence.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use common::{Ledger, PaidKey, fmt_amount, paid_key, start};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{
    ActorId, Amount, CheckoutRequest, Currency, EventKind, MAX_QUANTITY, Money, NoHoldReason, OccKey, OutboxEvent,
    PaymentResult, PaymentStatus, ProviderRef, Ref,
};
use seathold::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use seathold::ledger::EntryKind;
use seathold::settlement::{RejectReason, Settlement};
use seathold::{Engine, ManualClock, MemoryStore, OpError};
use time::{Duration, OffsetDateTime};

/// Occurrences 0..OPENABLE can be opened; occurrence OPENABLE is never opened (unknown).
const OPENABLE: usize = 3;
const OCCS: usize = OPENABLE + 1;
const ACTORS: usize = 6;
const CASES: u32 = 560;
/// Ops per case are drawn from 1..=MAX_OPS (mean ~200), so a failure shrinks to a short case.
const MAX_OPS: usize = 400;
const MIN_STEPS: u64 = 100_000;

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
    /// One of the refs a payment result named here before any request used it (fresh if
    /// none): a ref leaked to the payment side early.
    Leaked(usize),
    /// The ref the next fresh pick will get: a settlement with it is a payment that arrives
    /// before its request.
    Upcoming,
    /// One of a few refs shared by everyone.
    Shared(u8),
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

#[derive(Debug, Clone)]
enum Op {
    Open {
        occ: usize,
        capacity: u32,
        ttl: u32,
    },
    Request {
        occ: usize,
        actor: usize,
        qty: u32,
        r: RefPick,
        unit: usize,
        usd: bool,
        form: u8,
    },
    /// `provider`: none, or the `k`-th of a few provider refs per ref (so one checkout can be
    /// charged twice).
    Settle {
        occ: usize,
        actor: usize,
        r: RefPick,
        status: Status,
        money: MoneyPick,
        wire: bool,
        provider: Option<u8>,
    },
    Redeliver(usize),
    Bad(u8),
    Advance(i64),
    Sweep(usize),
    Drain,
}

const UNITS: [u64; 3] = [2500, 1999, 0];

fn occ_pick() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..OPENABLE, 1 => Just(OPENABLE)]
}

fn ref_pick(current_weight: u32) -> impl Strategy<Value = RefPick> {
    prop_oneof![
        4 => Just(RefPick::Fresh),
        current_weight => Just(RefPick::Current),
        2 => (0..4usize).prop_map(RefPick::Previous),
        2 => (0..16usize).prop_map(RefPick::Other),
        1 => (0..4usize).prop_map(RefPick::Leaked),
        1 => Just(RefPick::Upcoming),
        1 => (0..3u8).prop_map(RefPick::Shared),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let qty = prop_oneof![30 => 1..=3u32, 1 => Just(0u32), 1 => Just(MAX_QUANTITY + 1)];
    let status = prop_oneof![6 => Just(Status::Paid), 2 => Just(Status::Failed), 1 => Just(Status::Expired)];
    let money = prop_oneof![
        4 => Just(MoneyPick::Absent),
        6 => (0..6u8).prop_map(MoneyPick::Exact),
        1 => Just(MoneyPick::WrongAmount),
        1 => Just(MoneyPick::WrongCurrency),
        1 => (0..6u8).prop_map(MoneyPick::AmountOnly),
        1 => Just(MoneyPick::CurrencyOnly),
    ];
    let provider = prop_oneof![6 => Just(None), 4 => (0..3u8).prop_map(Some)];
    prop_oneof![
        3 => (0..OPENABLE, 0..=9u32, prop::sample::select(vec![5u32, 10, 30, 60]))
            .prop_map(|(occ, capacity, ttl)| Op::Open { occ, capacity, ttl }),
        30 => (occ_pick(), 0..ACTORS, qty, ref_pick(3), 0..UNITS.len(), prop::bool::weighted(0.2), 0..6u8)
            .prop_map(|(occ, actor, qty, r, unit, usd, form)| Op::Request { occ, actor, qty, r, unit, usd, form }),
        30 => (occ_pick(), 0..ACTORS, ref_pick(8), status, money, any::<bool>(), provider).prop_map(
            |(occ, actor, r, status, money, wire, provider)| Op::Settle { occ, actor, r, status, money, wire, provider }
        ),
        6 => any::<usize>().prop_map(Op::Redeliver),
        3 => (0..BAD_BODIES as u8).prop_map(Op::Bad),
        10 => prop_oneof![3 => 1..=5i64, 1 => 20..=120i64].prop_map(Op::Advance),
        5 => prop_oneof![Just(0usize), 1..4usize, Just(usize::MAX)].prop_map(Op::Sweep),
        4 => Just(Op::Drain),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    init: Vec<(u32, u32)>,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((1..=9u32, prop::sample::select(vec![5u32, 10, 30, 60])), 2),
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(|(init, ops)| Case { init, ops })
}

// ---------------------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Held,
    Confirmed,
    Released,
    Expired,
}

#[derive(Debug, Clone)]
struct MHold {
    actor: usize,
    r: String,
    qty: u32,
    cents: u64,
    cur: &'static str,
    expires: i64,
    state: MState,
}

impl MHold {
    fn live(&self, now: i64) -> bool {
        self.state == MState::Held && self.expires > now
    }
    /// Held but past its expiry, and not yet seen expired.
    fn lapsed(&self, now: i64) -> bool {
        self.state == MState::Held && self.expires <= now
    }
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
    /// Its provider ref, if it carried one.
    provider: Option<String>,
    /// The money received: the result's, else the hold's price (for a refund, what it
    /// carries).
    amount: Option<u64>,
    currency: Option<&'static str>,
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    cfg: [Option<(u32, u32)>; OCCS],
    /// Every hold, by (occ, ref): a ref names at most one hold per occurrence, ever.
    holds: HashMap<(usize, String), MHold>,
    /// The ref of each actor's latest hold, by (occ, actor).
    current: HashMap<(usize, usize), String>,
    /// First payments, by (occ, actor, ref).
    records: HashMap<(usize, usize, String), MRecord>,
    /// Second, different payments, by (occ, actor, ref, provider ref).
    dups: HashMap<(usize, usize, String, String), MRefund>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpReq {
    BadQuantity,
    Unknown,
    Replay,
    RequestChanged,
    Already { r: String, confirmed: bool },
    RefUsed,
    Full { capacity: u32 },
    Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpSettle {
    Rejected(&'static str),
    Confirmed { replayed: bool },
    Released,
    Noop,
    Refund { refund: MRefund, replayed: bool },
}

/// One payment result as the model sees it.
#[derive(Debug, Clone)]
struct MResult {
    occ: usize,
    actor: usize,
    r: String,
    status: Status,
    amount: Option<(u64, u8)>,
    currency: Option<&'static str>,
    provider: Option<String>,
    wire: bool,
}

impl MResult {
    fn cents(&self) -> Option<u64> {
        self.amount.map(|(c, _)| c)
    }
}

/// What settling a result does, besides its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    /// Nothing is written.
    None,
    /// The first payment of (occ, actor, ref) is recorded.
    Record(MRecord),
    /// A second payment is recorded under its provider ref.
    Dup(String, MRefund),
    /// A hold is released (failed / expired result).
    Release,
    /// Written, but no record and no hold change (a failure meeting a lapsed hold).
    Expire,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    answer: ExpSettle,
    effect: Effect,
    /// The hold the decision meets lapsed and must expire in the same commit, by ref.
    expires: Option<String>,
    /// The hold confirmed or released, by ref.
    hold: Option<String>,
}

impl Model {
    fn live_held(&self, occ: usize) -> u64 {
        self.holds.iter().filter(|((o, _), h)| *o == occ && h.live(self.now)).map(|(_, h)| u64::from(h.qty)).sum()
    }

    fn confirmed(&self, occ: usize) -> u64 {
        self.holds
            .iter()
            .filter(|((o, _), h)| *o == occ && h.state == MState::Confirmed)
            .map(|(_, h)| u64::from(h.qty))
            .sum()
    }

    fn lapsed_count(&self) -> usize {
        self.holds.values().filter(|h| h.lapsed(self.now)).count()
    }

    /// The actor's current (latest) hold here.
    fn current(&self, occ: usize, actor: usize) -> Option<&MHold> {
        self.current.get(&(occ, actor)).map(|r| &self.holds[&(occ, r.clone())])
    }

    /// The actor's own hold under `r`, if `r` names one of theirs.
    fn own(&self, occ: usize, actor: usize, r: &str) -> Option<&MHold> {
        self.holds.get(&(occ, r.to_owned())).filter(|h| h.actor == actor)
    }

    fn expect_request(&self, occ: usize, actor: usize, r: &str, qty: u32, cents: u64, cur: &str) -> ExpReq {
        // Malformed input first, then an occurrence to ask at.
        if qty == 0 || qty > MAX_QUANTITY {
            return ExpReq::BadQuantity;
        }
        let Some((cap, _)) = self.cfg[occ] else {
            return ExpReq::Unknown;
        };
        // The replay of the live hold's own request; the same ref with another order.
        if let Some(h) = self.own(occ, actor, r).filter(|h| h.live(self.now)) {
            return if h.qty == qty && h.cents == cents && h.cur == cur {
                ExpReq::Replay
            } else {
                ExpReq::RequestChanged
            };
        }
        // Already: a live hold under another ref, or (one booking per actor) the booking.
        if let Some(h) = self.current(occ, actor) {
            if h.live(self.now) || h.state == MState::Confirmed {
                return ExpReq::Already { r: h.r.clone(), confirmed: h.state == MState::Confirmed };
            }
        }
        // Refs are single-use: any hold under it, whoever's, or a payment of this actor's
        // under it (its redelivery would answer for the new hold).
        if self.holds.contains_key(&(occ, r.to_owned())) || self.records.contains_key(&(occ, actor, r.to_owned())) {
            return ExpReq::RefUsed;
        }
        // Invariant 2: only live holds and sold seats count; lapsed ones never block.
        if self.live_held(occ) + self.confirmed(occ) + u64::from(qty) > u64::from(cap) {
            ExpReq::Full { capacity: cap }
        } else {
            ExpReq::Place
        }
    }

    fn expect_settle(&self, res: &MResult) -> Verdict {
        let none = |answer| Verdict { answer, effect: Effect::None, expires: None, hold: None };
        if res.status != Status::Paid {
            // A failure names the actor's hold under its ref; it releases it if live.
            return match self.own(res.occ, res.actor, &res.r) {
                Some(h) if h.live(self.now) => Verdict {
                    answer: ExpSettle::Released,
                    effect: Effect::Release,
                    expires: None,
                    hold: Some(h.r.clone()),
                },
                Some(h) if h.lapsed(self.now) => {
                    Verdict { answer: ExpSettle::Noop, effect: Effect::Expire, expires: Some(h.r.clone()), hold: None }
                }
                _ => none(ExpSettle::Noop),
            };
        }

        // Which deliveries are the same payment: replays and second payments first.
        if let Some(first) = self.records.get(&(res.occ, res.actor, res.r.clone())) {
            let second = match (&first.provider, &res.provider) {
                (Some(a), Some(b)) if a != b => Some(b.clone()),
                _ => None,
            };
            let Some(p) = second else {
                return none(match &first.outcome {
                    MOutcome::Confirmed => ExpSettle::Confirmed { replayed: true },
                    MOutcome::Refund(refund) => ExpSettle::Refund { refund: refund.clone(), replayed: true },
                });
            };
            if let Some(refund) = self.dups.get(&(res.occ, res.actor, res.r.clone(), p.clone())) {
                return none(ExpSettle::Refund { refund: refund.clone(), replayed: true });
            }
            // The result's money; if it carries none, what the first payment brought, field
            // by field completed from the actor's hold under the ref.
            let own = self.own(res.occ, res.actor, &res.r);
            let (amount, currency) = match (res.cents(), res.currency) {
                (None, None) => (first.amount.or(own.map(|h| h.cents)), first.currency.or(own.map(|h| h.cur))),
                money => money,
            };
            let refund =
                MRefund { reason: NoHoldReason::DuplicatePayment, amount, currency, provider: Some(p.clone()) };
            return Verdict {
                answer: ExpSettle::Refund { refund: refund.clone(), replayed: false },
                effect: Effect::Dup(p, refund),
                expires: None,
                hold: None,
            };
        }

        // The table, on the actor's current hold.
        let current = self.cfg[res.occ].and_then(|_| self.current(res.occ, res.actor));
        let mut expires = None;
        let reason = match current {
            None => NoHoldReason::NoHold,
            Some(h) if h.r == res.r => match h.state {
                MState::Held if h.live(self.now) => {
                    if res.currency.is_some_and(|c| c != h.cur) {
                        return none(ExpSettle::Rejected("currency_mismatch"));
                    }
                    if res.cents().is_some_and(|a| a != h.cents) {
                        return none(ExpSettle::Rejected("amount_mismatch"));
                    }
                    let record = MRecord {
                        outcome: MOutcome::Confirmed,
                        provider: res.provider.clone(),
                        amount: Some(res.cents().unwrap_or(h.cents)),
                        currency: Some(res.currency.unwrap_or(h.cur)),
                    };
                    return Verdict {
                        answer: ExpSettle::Confirmed { replayed: false },
                        effect: Effect::Record(record),
                        expires: None,
                        hold: Some(h.r.clone()),
                    };
                }
                MState::Held => {
                    // Lapsed: it ends here.
                    expires = Some(h.r.clone());
                    NoHoldReason::Expired
                }
                MState::Expired => NoHoldReason::Expired,
                MState::Released => NoHoldReason::Released,
                // Its payment is accounted under this very (ref, actor): answered above.
                MState::Confirmed => unreachable!("a confirmed hold without its payment record: {h:?}"),
            },
            Some(h) => match h.state {
                MState::Confirmed => NoHoldReason::AlreadyPaid,
                _ => NoHoldReason::RefMismatch,
            },
        };
        let (amount, currency) = match (res.cents(), res.currency, self.own(res.occ, res.actor, &res.r)) {
            (None, None, Some(h)) => (Some(h.cents), Some(h.cur)),
            (a, c, _) => (a, c),
        };
        let refund = MRefund { reason, amount, currency, provider: res.provider.clone() };
        let record =
            MRecord { outcome: MOutcome::Refund(refund.clone()), provider: res.provider.clone(), amount, currency };
        Verdict {
            answer: ExpSettle::Refund { refund, replayed: false },
            effect: Effect::Record(record),
            expires,
            hold: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The harness: engine + model + ledger, checked after every step

fn occ_name(i: usize) -> String {
    format!("occ-{i}")
}
fn actor_name(i: usize) -> String {
    format!("user-{i}")
}
fn index_of(s: &str, prefix: &str) -> Option<usize> {
    s.strip_prefix(prefix)?.parse().ok()
}
fn amount(cents: u64) -> Amount {
    Amount::parse(&fmt_amount(cents, 0)).expect("valid amount")
}
fn at(secs: i64) -> OffsetDateTime {
    start() + Duration::seconds(secs)
}

/// What the events committed by one step may and must be.
#[derive(Debug, Default)]
struct Expect {
    /// Which lapsed holds may be expired in this step.
    scope: Scope,
    /// A hold (occ, ref) that must be expired in this step.
    must_expire: Option<(usize, String)>,
    /// The exact number of `hold_expired` events (the sweep's count).
    exact_expired: Option<usize>,
    /// The one event after the `hold_expired` ones, if any.
    main: Option<Main>,
}

#[derive(Debug, Default, Clone)]
enum Scope {
    #[default]
    Nothing,
    /// Any lapsed hold of the occurrence (a request making room).
    Occ(usize),
    /// Only this hold (occ, ref): the one a settlement met lapsed.
    Hold(usize, String),
    /// Any lapsed hold (the sweep).
    Any,
}

#[derive(Debug)]
enum Main {
    Placed { occ: usize, actor: usize, r: String, qty: u32, cents: u64, cur: &'static str, expires: i64 },
    Confirmed { occ: usize, actor: usize, r: String, qty: u32 },
    Released { occ: usize, actor: usize, r: String, qty: u32 },
    Refund { occ: usize, actor: usize, r: String, refund: MRefund },
}

/// How often each kind of outcome was seen, to prove the generator reaches every row.
static COVERAGE: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn cover(what: impl Into<String>) {
    *COVERAGE.lock().unwrap_or_else(PoisonError::into_inner).entry(what.into()).or_insert(0) += 1;
}

/// Every outcome the model test must reach in one run.
const MUST_COVER: &[&str] = &[
    "request:Place",
    "request:Place(ref leaked by another actor's payment)",
    "request:Full",
    "request:Already",
    "request:Already(confirmed)",
    "request:Replay",
    "request:RequestChanged",
    "request:RefUsed(own hold)",
    "request:RefUsed(another actor's hold)",
    "request:RefUsed(paid before requested)",
    "request:Unknown",
    "request:BadQuantity",
    "settle:Confirmed",
    "settle:Confirmed(replay)",
    "settle:Confirmed(replay, other money)",
    "settle:Released",
    "settle:Noop",
    "settle:Rejected(amount_mismatch)",
    "settle:Rejected(currency_mismatch)",
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
    "settle:own-lapse-expired",
    "request:own-lapse-expired",
    "request:reclaimed-other-lapsed",
    "sweep:expired",
    "bad-input",
    "capacity-lowered-below-use",
];

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

const BAD_BODIES: usize = 16;

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
        _ => br#"{"kind":"events.payment","occ_key":"occ-0","actor":"user-0","ref":"r\n1","status":"paid"}"#.to_vec(),
    }
}

struct Harness {
    engine: Engine<MemoryStore, ManualClock>,
    model: Model,
    ledger: Ledger,
    /// Events pending in the outbox (committed, not drained) as last seen.
    pending: Vec<OutboxEvent>,
    last_id: u64,
    prev_in_use: [u64; OCCS],
    prev_confirmed: [u64; OCCS],
    next_ref: u64,
    /// Refs each actor held under, by (occ, actor).
    used_refs: HashMap<(usize, usize), Vec<String>>,
    /// Refs anyone held under, by occ.
    occ_refs: [Vec<String>; OCCS],
    /// Refs a payment result named before any hold was placed under them, by occ.
    leaked: [Vec<String>; OCCS],
    past: Vec<MResult>,
    /// Every payment accounted, as the model decided.
    paid_keys: HashSet<PaidKey>,
    /// A hold the current step placed, applied to the model once its events are checked.
    pending_hold: Option<MHold>,
}

impl Harness {
    fn new() -> Self {
        Self {
            engine: Engine::with_clock(MemoryStore::new(), ManualClock::new(start())),
            model: Model::default(),
            ledger: Ledger::default(),
            pending: Vec::new(),
            last_id: 0,
            prev_in_use: [0; OCCS],
            prev_confirmed: [0; OCCS],
            next_ref: 0,
            used_refs: HashMap::new(),
            occ_refs: Default::default(),
            leaked: Default::default(),
            past: Vec::new(),
            paid_keys: HashSet::new(),
            pending_hold: None,
        }
    }

    fn resolve_ref(&mut self, occ: usize, actor: usize, pick: RefPick) -> String {
        let fresh = |h: &mut Self| {
            h.next_ref += 1;
            format!("r{}", h.next_ref)
        };
        let from = |h: &mut Self, v: Option<&Vec<String>>, i: usize| match v {
            Some(v) if !v.is_empty() => v[i % v.len()].clone(),
            _ => fresh(h),
        };
        match pick {
            RefPick::Fresh => fresh(self),
            RefPick::Current => match self.model.current.get(&(occ, actor)) {
                Some(r) => r.clone(),
                None => fresh(self),
            },
            RefPick::Previous(i) => {
                let v = self.used_refs.get(&(occ, actor)).cloned();
                from(self, v.as_ref(), i)
            }
            RefPick::Other(i) => {
                let v = self.occ_refs[occ].clone();
                from(self, Some(&v), i)
            }
            RefPick::Leaked(i) => {
                let v = self.leaked[occ].clone();
                from(self, Some(&v), i)
            }
            RefPick::Upcoming => format!("r{}", self.next_ref + 1),
            RefPick::Shared(k) => format!("x{k}"),
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let expect = match op {
            Op::Open { occ, capacity, ttl } => {
                let cfg = OccurrenceConfig::new(*capacity, u64::from(*ttl)).map_err(|e| e.to_string())?;
                self.engine.open(&OccKey::new(occ_name(*occ)).unwrap(), cfg).map_err(|e| format!("open: {e}"))?;
                self.model.cfg[*occ] = Some((*capacity, *ttl));
                Expect::default()
            }
            Op::Request { occ, actor, qty, r, unit, usd, form } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                self.request(*occ, *actor, *qty, r, *unit, *usd, *form)?
            }
            Op::Settle { occ, actor, r, status, money, wire, provider } => {
                let r = self.resolve_ref(*occ, *actor, *r);
                if !self.model.holds.contains_key(&(*occ, r.clone())) && !self.leaked[*occ].contains(&r) {
                    self.leaked[*occ].push(r.clone());
                }
                let (cents, cur) = self.model.holds.get(&(*occ, r.clone())).map_or((2500, "EUR"), |h| (h.cents, h.cur));
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
                let res =
                    MResult { occ: *occ, actor: *actor, r, status: *status, amount, currency, provider, wire: *wire };
                self.past.push(res.clone());
                self.settle(&res)?
            }
            Op::Redeliver(i) => {
                if self.past.is_empty() {
                    Expect::default()
                } else {
                    let res = self.past[i % self.past.len()].clone();
                    self.settle(&res)?
                }
            }
            Op::Bad(k) => {
                let body = bad_body(*k);
                match self.engine.settle_json(&body) {
                    Err(OpError::Refused(_)) => {}
                    other => return Err(format!("bad body {k} answered {other:?}")),
                }
                cover("bad-input");
                Expect::default()
            }
            Op::Advance(secs) => {
                self.engine.clock().advance(Duration::seconds(*secs));
                self.model.now += secs;
                Expect::default()
            }
            Op::Sweep(limit) => {
                let n = self.engine.expire_due(*limit).map_err(|e| format!("sweep: {e}"))?;
                let want = self.model.lapsed_count().min(*limit);
                ensure!(n == want, "expire_due({limit}) expired {n}, the model has {want} to expire");
                Expect { scope: Scope::Any, exact_expired: Some(n), ..Expect::default() }
            }
            Op::Drain => {
                let before = self.engine.pending_events(usize::MAX).map_err(|e| e.to_string())?;
                let drained = self.engine.drain_events(usize::MAX).map_err(|e| e.to_string())?;
                ensure!(drained == before, "drain returned {drained:?}, pending was {before:?}");
                ensure!(drained == self.pending, "outbox changed without a commit");
                self.pending.clear();
                Expect::default()
            }
        };
        self.check_events(expect)?;
        self.check_state()
    }

    /// Check a checkout request against the model's hold.
    fn check_checkout(&self, occ: usize, c: &CheckoutRequest, h: &MHold) -> Result<(), String> {
        ensure!(
            c.occ_key.as_str() == occ_name(occ)
                && c.actor.as_str() == actor_name(h.actor)
                && c.hold_ref.as_str() == h.r
                && c.quantity == h.qty
                && c.amount == amount(h.cents)
                && c.currency.as_str() == h.cur
                && c.expires_at == at(h.expires)
                && c.lines.is_empty(),
            "checkout {c:?} does not match hold {h:?}"
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        occ: usize,
        actor: usize,
        qty: u32,
        r: String,
        unit: usize,
        usd: bool,
        form: u8,
    ) -> Result<Expect, String> {
        let cents = UNITS[unit] * u64::from(qty.min(3));
        let cur = if usd { "USD" } else { "EUR" };
        let price = Money::parse(&fmt_amount(cents, form), cur).map_err(|e| e.to_string())?;
        let req = HoldRequest::new(
            OccKey::new(occ_name(occ)).unwrap(),
            ActorId::new(actor_name(actor)).unwrap(),
            Ref::new(&r).unwrap(),
            price,
        )
        .with_quantity(qty);
        let want = self.model.expect_request(occ, actor, &r, qty, cents, cur);
        let key = (occ, r.clone());
        cover(match &want {
            ExpReq::Already { confirmed: true, .. } => "request:Already(confirmed)".to_owned(),
            ExpReq::Already { .. } => "request:Already".to_owned(),
            ExpReq::Full { .. } => "request:Full".to_owned(),
            ExpReq::RefUsed => match self.model.holds.get(&key) {
                Some(h) if h.actor == actor => "request:RefUsed(own hold)".to_owned(),
                Some(_) => "request:RefUsed(another actor's hold)".to_owned(),
                None => "request:RefUsed(paid before requested)".to_owned(),
            },
            ExpReq::Place if self.leaked[occ].contains(&r) => {
                "request:Place(ref leaked by another actor's payment)".to_owned()
            }
            w => format!("request:{w:?}"),
        });
        let got = self.engine.request(&req);
        let ctx =
            || format!("request occ {occ} actor {actor} ref {r} qty {qty} price {price:?} at t={}", self.model.now);
        let refused = |got: &Result<RequestOutcome, _>, want: fn(&RequestRefusal) -> bool| matches!(got, Err(OpError::Refused(refusal)) if want(refusal));
        let ok = match (&want, &got) {
            (ExpReq::BadQuantity, g) => {
                refused(g, |e| matches!(e, RequestRefusal::BadQuantity { max } if *max == MAX_QUANTITY))
            }
            (ExpReq::Unknown, g) => refused(g, |e| matches!(e, RequestRefusal::UnknownOccurrence)),
            (ExpReq::RefUsed, g) => refused(g, |e| matches!(e, RequestRefusal::RefUsed)),
            (ExpReq::RequestChanged, g) => refused(g, |e| matches!(e, RequestRefusal::RequestChanged)),
            (ExpReq::Replay, Ok(RequestOutcome::AwaitingPayment { checkout, replayed: true })) => {
                self.check_checkout(occ, checkout, &self.model.holds[&key]).map_err(|e| format!("{}: {e}", ctx()))?;
                true
            }
            (
                ExpReq::Already { r: want_r, confirmed: want_c },
                Ok(RequestOutcome::Already { hold_ref, confirmed, checkout }),
            ) if hold_ref.as_str() == want_r && confirmed == want_c => {
                let held = &self.model.holds[&(occ, want_r.clone())];
                match checkout {
                    // A live hold answers with its checkout, to resume it.
                    Some(c) if !*want_c => {
                        self.check_checkout(occ, c, held).map_err(|e| format!("{}: {e}", ctx()))?;
                        true
                    }
                    None => *want_c,
                    Some(_) => false,
                }
            }
            (ExpReq::Full { capacity: want_c }, Ok(RequestOutcome::Full { capacity, tier: None })) => {
                capacity == want_c
            }
            (ExpReq::Place, Ok(RequestOutcome::AwaitingPayment { checkout, replayed: false })) => {
                let ttl = self.model.cfg[occ].map(|c| c.1).unwrap_or_default();
                let hold = MHold {
                    actor,
                    r: r.clone(),
                    qty,
                    cents,
                    cur,
                    expires: self.model.now + i64::from(ttl),
                    state: MState::Held,
                };
                self.check_checkout(occ, checkout, &hold).map_err(|e| format!("{}: {e}", ctx()))?;
                let own_lapsed =
                    self.model.current(occ, actor).filter(|h| h.lapsed(self.model.now)).map(|h| (occ, h.r.clone()));
                let main = Main::Placed { occ, actor, r: r.clone(), qty, cents, cur, expires: hold.expires };
                self.used_refs.entry((occ, actor)).or_default().push(r.clone());
                self.occ_refs[occ].push(r);
                // Applied after the step's events are checked against the old state.
                self.pending_hold = Some(hold);
                return Ok(Expect {
                    scope: Scope::Occ(occ),
                    must_expire: own_lapsed,
                    exact_expired: None,
                    main: Some(main),
                });
            }
            _ => false,
        };
        ensure!(ok, "{}: the model expects {want:?}, the engine answered {got:?}", ctx());
        Ok(Expect::default())
    }

    fn settle(&mut self, res: &MResult) -> Result<Expect, String> {
        let verdict = self.model.expect_settle(res);
        let want = verdict.answer.clone();
        let own_hold = self.model.own(res.occ, res.actor, &res.r);
        let current_r = self.model.current.get(&(res.occ, res.actor));
        let other_money = res.currency.is_some_and(|c| own_hold.is_some_and(|h| h.cur != c))
            || res.cents().is_some_and(|a| own_hold.is_some_and(|h| h.cents != a));
        cover(match &want {
            ExpSettle::Rejected(r) => format!("settle:Rejected({r})"),
            ExpSettle::Confirmed { replayed: true } if other_money => {
                "settle:Confirmed(replay, other money)".to_owned()
            }
            ExpSettle::Confirmed { replayed: true } => "settle:Confirmed(replay)".to_owned(),
            ExpSettle::Confirmed { .. } => "settle:Confirmed".to_owned(),
            ExpSettle::Refund { refund, replayed: true } if refund.reason == NoHoldReason::DuplicatePayment => {
                "settle:Refund(replay of a duplicate)".to_owned()
            }
            ExpSettle::Refund { replayed: true, .. } => "settle:Refund(replay)".to_owned(),
            ExpSettle::Refund { refund, .. } if other_money && refund.reason != NoHoldReason::DuplicatePayment => {
                "settle:Refund(other money, hold not live)".to_owned()
            }
            ExpSettle::Refund { refund, .. }
                if refund.reason == NoHoldReason::RefMismatch
                    && own_hold.is_some()
                    && current_r.is_some_and(|c| *c != res.r) =>
            {
                "settle:Refund(ref_mismatch, older hold of the actor's)".to_owned()
            }
            ExpSettle::Refund { refund, .. } => format!("settle:Refund({})", refund.reason),
            w => format!("settle:{w:?}"),
        });
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
            self.engine.settle_json(&serde_json::to_vec(&v).unwrap())
        } else {
            let mut p = PaymentResult::new(
                OccKey::new(occ_name(res.occ)).unwrap(),
                ActorId::new(actor_name(res.actor)).unwrap(),
                Ref::new(&res.r).unwrap(),
                status,
            );
            p.amount = res.amount.map(|(c, f)| Amount::parse(&fmt_amount(c, f)).unwrap());
            p.currency = res.currency.map(|c| Currency::parse(c).unwrap());
            if let Some(pr) = &res.provider {
                p = p.with_provider_ref(ProviderRef::new(pr).unwrap());
            }
            self.engine.settle(&p)
        };
        let ctx = || format!("settle {res:?} at t={}", self.model.now);
        let got = got.map_err(|e| format!("{}: error {e:?}", ctx()))?;
        let refund_matches = |got: &seathold::settlement::Refund, want: &MRefund| {
            got.occ_key.as_str() == occ_name(res.occ)
                && got.actor.as_str() == actor_name(res.actor)
                && got.hold_ref.as_str() == res.r
                && got.reason == want.reason
                && got.amount == want.amount.map(amount)
                && got.currency.map(|c| c.as_str().to_owned()) == want.currency.map(str::to_owned)
                && got.provider_ref.as_ref().map(|p| p.as_str().to_owned()) == want.provider
        };
        let ok = match (&want, &got) {
            (ExpSettle::Rejected(reason), Settlement::Rejected { reason: r }) => {
                r.as_str() == *reason
                    && match r {
                        RejectReason::AmountMismatch { paid, .. } => Some(*paid) == res.cents().map(amount),
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

        let (occ, actor) = (res.occ, res.actor);
        let mut main = None;
        match &verdict.effect {
            Effect::None => {}
            Effect::Record(record) => {
                self.paid_keys.insert(paid_key(&occ_name(occ), &actor_name(actor), &res.r));
                self.model.records.insert((occ, actor, res.r.clone()), record.clone());
                main = Some(match &record.outcome {
                    MOutcome::Confirmed => {
                        let h = &self.model.holds[&(occ, res.r.clone())];
                        Main::Confirmed { occ, actor, r: res.r.clone(), qty: h.qty }
                    }
                    MOutcome::Refund(refund) => Main::Refund { occ, actor, r: res.r.clone(), refund: refund.clone() },
                });
            }
            Effect::Dup(p, refund) => {
                let mut key = paid_key(&occ_name(occ), &actor_name(actor), &res.r);
                key.3 = Some(p.clone());
                self.paid_keys.insert(key);
                self.model.dups.insert((occ, actor, res.r.clone(), p.clone()), refund.clone());
                main = Some(Main::Refund { occ, actor, r: res.r.clone(), refund: refund.clone() });
            }
            Effect::Release => {
                let h = &self.model.holds[&(occ, res.r.clone())];
                main = Some(Main::Released { occ, actor, r: res.r.clone(), qty: h.qty });
            }
            Effect::Expire => {}
        }
        let scope = match &verdict.expires {
            Some(r) => Scope::Hold(occ, r.clone()),
            None => Scope::Nothing,
        };
        Ok(Expect { scope, must_expire: verdict.expires.map(|r| (occ, r)), exact_expired: None, main })
    }

    /// Compare the events this step committed with what it may and must commit, feed them to
    /// the ledger (invariants 3 and 7), and move the model's holds accordingly.
    fn check_events(&mut self, expect: Expect) -> Result<(), String> {
        let pending = self.engine.pending_events(usize::MAX).map_err(|e| e.to_string())?;
        ensure!(
            pending.len() >= self.pending.len() && pending[..self.pending.len()] == self.pending[..],
            "events already committed changed or vanished from the outbox"
        );
        let new = pending[self.pending.len()..].to_vec();
        for e in &new {
            ensure!(
                e.id.0 > self.last_id,
                "event id {} not above the last one {} (ids must increase)",
                e.id,
                self.last_id
            );
            self.last_id = e.id.0;
        }
        let mut expired: Vec<(usize, String)> = Vec::new();
        let mut i = 0;
        while let Some(e) = new.get(i).filter(|e| matches!(e.event.kind, EventKind::HoldExpired { .. })) {
            let (Some(occ), Some(actor), Some(r)) = (
                index_of(e.event.occ_key.as_str(), "occ-"),
                index_of(e.event.actor.as_str(), "user-"),
                e.event.hold_ref.as_ref().map(|r| r.as_str().to_owned()),
            ) else {
                return Err(format!("hold_expired for unknown names {e:?}"));
            };
            let allowed = match &expect.scope {
                Scope::Nothing => false,
                Scope::Occ(o) => *o == occ,
                Scope::Hold(o, hr) => (*o, hr.as_str()) == (occ, r.as_str()),
                Scope::Any => true,
            };
            ensure!(allowed, "unexpected {e:?} in a step expecting {expect:?}");
            let EventKind::HoldExpired { quantity } = e.event.kind else { unreachable!() };
            let h = self.model.holds.get(&(occ, r.clone()));
            ensure!(
                h.is_some_and(|h| h.lapsed(self.model.now)
                    && h.actor == actor
                    && h.qty == quantity
                    && e.event.at == at(h.expires)),
                "{e:?} for a hold that is not lapsed: {h:?} at t={}",
                self.model.now
            );
            ensure!(!expired.contains(&(occ, r.clone())), "{e:?} twice in one step");
            expired.push((occ, r));
            i += 1;
        }
        if let Some(n) = expect.exact_expired {
            ensure!(i == n, "the sweep said {n} but committed {i} hold_expired events");
        }
        if let Some(own) = &expect.must_expire {
            ensure!(expired.contains(own), "the lapsed hold {own:?} met by this step did not get hold_expired");
        }
        match expect.scope {
            Scope::Hold(..) if i > 0 => cover("settle:own-lapse-expired"),
            Scope::Occ(..) if expect.must_expire.is_some() => cover("request:own-lapse-expired"),
            _ => {}
        }
        if matches!(expect.scope, Scope::Occ(..)) && i > usize::from(expect.must_expire.is_some()) {
            cover("request:reclaimed-other-lapsed");
        }
        if matches!(expect.scope, Scope::Any) && i > 0 {
            cover("sweep:expired");
        }
        let rest = &new[i..];
        match (&expect.main, rest) {
            (None, []) => {}
            (Some(main), [e]) => check_main(main, e)?,
            _ => return Err(format!("step expecting {expect:?} committed {rest:?}")),
        }
        self.ledger.absorb_all(&new)?;
        for k in expired {
            if let Some(h) = self.model.holds.get_mut(&k) {
                h.state = MState::Expired;
            }
        }
        if let Some(main) = &expect.main {
            match main {
                Main::Placed { occ, actor, r, .. } => {
                    let h = self.pending_hold.take().expect("placed hold");
                    debug_assert_eq!((h.actor, &h.r), (*actor, r));
                    self.model.current.insert((*occ, *actor), r.clone());
                    self.model.holds.insert((*occ, r.clone()), h);
                }
                Main::Confirmed { occ, r, .. } => {
                    self.model.holds.get_mut(&(*occ, r.clone())).unwrap().state = MState::Confirmed;
                }
                Main::Released { occ, r, .. } => {
                    self.model.holds.get_mut(&(*occ, r.clone())).unwrap().state = MState::Released;
                }
                Main::Refund { .. } => {}
            }
        }
        self.pending = pending;
        Ok(())
    }

    /// Availability equals the model's (invariants 1, 2, 4); the ledger's open holds are the
    /// model's held ones (invariant 7).
    fn check_state(&mut self) -> Result<(), String> {
        for occ in 0..OCCS {
            let key = OccKey::new(occ_name(occ)).unwrap();
            let got = self.engine.availability(&key);
            let Some((cap, _)) = self.model.cfg[occ] else {
                ensure!(
                    matches!(&got, Err(OpError::Refused(u)) if u.occ_key == key),
                    "availability of never-opened {occ} answered {got:?}"
                );
                continue;
            };
            let a = got.map_err(|e| format!("availability {occ}: {e}"))?;
            let held = self.model.live_held(occ);
            let confirmed = self.model.confirmed(occ);
            ensure!(
                a.capacity == cap
                    && a.held == held
                    && a.confirmed == confirmed
                    && a.blocked == 0
                    && a.offered == 0
                    && a.tiers.is_empty()
                    && a.available == u64::from(cap).saturating_sub(held + confirmed),
                "availability of occ {occ} at t={} is {a:?}; the model has capacity {cap}, held {held}, confirmed {confirmed}",
                self.model.now
            );
            let in_use = a.held + a.confirmed;
            if in_use > u64::from(cap) {
                cover("capacity-lowered-below-use");
            }
            // Invariant 1: seats in use only grow by admitting holds, and only within capacity
            // (lowering the capacity revokes nothing, so in_use may sit above it).
            ensure!(
                in_use <= u64::from(cap) || in_use <= self.prev_in_use[occ],
                "occ {occ}: {in_use} seats in use grew past capacity {cap} (was {})",
                self.prev_in_use[occ]
            );
            // Invariant 4: sold seats are never released.
            ensure!(a.confirmed >= self.prev_confirmed[occ], "occ {occ}: confirmed seats went down");
            self.prev_in_use[occ] = in_use;
            self.prev_confirmed[occ] = a.confirmed;
        }
        let mut held = 0;
        for ((occ, r), h) in &self.model.holds {
            if h.state == MState::Held {
                held += 1;
                let open = self.ledger.open.get(&(occ_name(*occ), actor_name(h.actor)));
                ensure!(
                    open.is_some_and(|o| o.hold_ref == *r),
                    "held hold {h:?} at {occ} is not open in the outbox: {open:?}"
                );
            }
        }
        ensure!(
            held == self.ledger.open.len(),
            "the outbox has {} open holds, the model {held}",
            self.ledger.open.len()
        );
        Ok(())
    }

    /// The store's ledger of each occurrence against the model's payments: one payment entry
    /// per accounting, one refund entry per refund, and what is kept is exactly the price of
    /// what was sold, per currency.
    fn check_ledgers(&self) -> Result<(), String> {
        for occ in 0..OCCS {
            let ledger = self.engine.ledger(&OccKey::new(occ_name(occ)).unwrap()).map_err(|e| e.to_string())?;
            let firsts: Vec<&MRecord> =
                self.model.records.iter().filter(|((o, ..), _)| *o == occ).map(|(_, r)| r).collect();
            let dups = self.model.dups.keys().filter(|(o, ..)| *o == occ).count();
            let refunds = firsts.iter().filter(|r| matches!(r.outcome, MOutcome::Refund(_))).count() + dups;
            let count = |kind: EntryKind| ledger.entries.iter().filter(|e| e.kind == kind).count();
            ensure!(
                count(EntryKind::Payment) == firsts.len() + dups && count(EntryKind::Refund) == refunds,
                "ledger of occ {occ}: {} payments and {} refunds, the model has {} and {refunds}",
                count(EntryKind::Payment),
                count(EntryKind::Refund),
                firsts.len() + dups
            );
            for cur in ["EUR", "USD"] {
                let kept: u64 = firsts
                    .iter()
                    .filter(|r| r.outcome == MOutcome::Confirmed && r.currency == Some(cur))
                    .filter_map(|r| r.amount)
                    .sum();
                let got = ledger.net(Currency::parse(cur).unwrap());
                ensure!(got == Some(amount(kept)), "ledger of occ {occ} nets {got:?} {cur}, the model {kept} cents");
            }
        }
        Ok(())
    }

    /// End of a case: past every expiry, one sweep ends every hold; every paid result was
    /// accounted exactly once; the ledgers reconcile.
    fn finish(&mut self) -> Result<(), String> {
        self.step(&Op::Advance(1_000))?;
        self.step(&Op::Sweep(usize::MAX))?;
        ensure!(self.ledger.open.is_empty(), "holds without a terminal event: {:?}", self.ledger.open);
        ensure!(self.ledger.placed == self.ledger.ended, "placed {} ended {}", self.ledger.placed, self.ledger.ended);
        for k in &self.paid_keys {
            ensure!(self.ledger.accounted.contains_key(k), "paid result {k:?} was never accounted");
        }
        for k in self.ledger.accounted.keys() {
            ensure!(self.paid_keys.contains(k), "{k:?} accounted without a paid result");
        }
        self.check_ledgers()?;
        self.step(&Op::Drain)
    }
}

fn check_main(main: &Main, e: &OutboxEvent) -> Result<(), String> {
    let ev = &e.event;
    let names = |occ: usize, actor: usize, r: &str| {
        ev.occ_key.as_str() == occ_name(occ)
            && ev.actor.as_str() == actor_name(actor)
            && ev.hold_ref.as_ref().is_some_and(|h| h.as_str() == r)
    };
    let ok = match (main, &ev.kind) {
        (
            Main::Placed { occ, actor, r, qty, cents, cur, expires },
            EventKind::HoldPlaced { quantity, price, expires_at, lines, metadata },
        ) => {
            names(*occ, *actor, r)
                && quantity == qty
                && price.amount == amount(*cents)
                && price.currency.as_str() == *cur
                && *expires_at == at(*expires)
                && lines.is_empty()
                && metadata.is_none()
        }
        (Main::Confirmed { occ, actor, r, qty }, EventKind::HoldConfirmed { quantity, revived }) => {
            names(*occ, *actor, r) && quantity == qty && !revived
        }
        (Main::Released { occ, actor, r, qty }, EventKind::HoldReleased { quantity }) => {
            names(*occ, *actor, r) && quantity == qty
        }
        (
            Main::Refund { occ, actor, r, refund },
            EventKind::RefundRequired { reason, amount: a, currency, provider_ref },
        ) => {
            names(*occ, *actor, r)
                && *reason == refund.reason
                && *a == refund.amount.map(amount)
                && currency.map(|c| c.as_str().to_owned()) == refund.currency.map(str::to_owned)
                && provider_ref.as_ref().map(|p| p.as_str().to_owned()) == refund.provider
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("expected {main:?}, the outbox has {e:?}")) }
}

fn run_case(case: &Case, steps: &AtomicU64) -> Result<(), String> {
    let mut h = Harness::new();
    for (occ, &(capacity, ttl)) in case.init.iter().enumerate() {
        h.step(&Op::Open { occ, capacity, ttl })?;
    }
    for (n, op) in case.ops.iter().enumerate() {
        h.step(op).map_err(|e| format!("step {n} ({op:?}): {e}"))?;
        steps.fetch_add(1, Ordering::Relaxed);
    }
    h.finish().map_err(|e| format!("finish: {e}"))
}

#[test]
fn engine_matches_reference_model() {
    let seed = std::env::var("SEATHOLD_MODEL_SEED").ok().and_then(|s| s.parse::<u64>().ok());
    let config = Config {
        cases: CASES,
        max_shrink_iters: 300,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = match seed {
        Some(s) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&s.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
        }
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let steps = AtomicU64::new(0);
    let result = runner.run(&case(), |case| run_case(&case, &steps).map_err(TestCaseError::fail));
    let steps = steps.into_inner();
    // Straight to the stderr handle, past libtest's capture, so CI logs show it.
    let _ = writeln!(std::io::stderr(), "model: {steps} steps over {CASES} cases (seed {seed:?})");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(steps >= MIN_STEPS, "only {steps} steps ran, want at least {MIN_STEPS}");
    let coverage = COVERAGE.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let _ = writeln!(std::io::stderr(), "model coverage: {coverage:?}");
    for what in MUST_COVER {
        assert!(coverage.get(*what).is_some_and(|n| *n > 0), "the generator never reached {what}");
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic regressions found by the model

/// Invariant 2 after lowering the capacity: lapsed (unswept) holds must not block a new hold.
#[test]
fn lapsed_holds_do_not_block_after_capacity_lowered() {
    let engine = Engine::with_clock(MemoryStore::new(), ManualClock::new(start()));
    let gig = OccKey::new("gig").unwrap();
    engine.open(&gig, OccurrenceConfig::new(3, 10).unwrap()).unwrap();
    let price = Money::parse("25.00", "EUR").unwrap();
    for a in ["a", "b", "c"] {
        let req = HoldRequest::new(gig.clone(), ActorId::new(a).unwrap(), Ref::new(format!("r-{a}")).unwrap(), price);
        assert!(matches!(engine.request(&req), Ok(RequestOutcome::AwaitingPayment { .. })));
    }
    engine.clock().advance(Duration::seconds(20)); // all three lapse; no sweep runs
    engine.open(&gig, OccurrenceConfig::new(1, 10).unwrap()).unwrap();
    let a = engine.availability(&gig).unwrap();
    assert_eq!((a.held, a.confirmed, a.available), (0, 0, 1));
    let req = HoldRequest::new(gig.clone(), ActorId::new("d").unwrap(), Ref::new("r-d").unwrap(), price);
    let got = engine.request(&req).unwrap();
    assert!(
        matches!(got, RequestOutcome::AwaitingPayment { replayed: false, .. }),
        "nothing live is held and 1 seat is available, yet request answered {got:?}"
    );
}

/// A plain (Part 1) hold priced 0.00 is not a free order: it waits for its payment like any
/// other hold. Once paid, asking again under its ref answers `Already { confirmed: true }`
/// (the actor has a booking; DESIGN.md: "Requesting while holding (live) or confirmed returns
/// `Already`"), never `Confirmed { replayed: true }`, which only a free order of tiers,
/// confirmed by its own request, may answer. Found by the model: the engine took a hold paid
/// in the very instant it was placed (a manual clock) for a free confirmation.
#[test]
fn a_paid_zero_priced_plain_hold_answers_already_not_a_free_confirmation_replay() {
    let engine = Engine::with_clock(MemoryStore::new(), ManualClock::new(start()));
    let gig = OccKey::new("gig").unwrap();
    engine.open(&gig, OccurrenceConfig::new(1, 5).unwrap()).unwrap();
    let (ann, r1) = (ActorId::new("ann").unwrap(), Ref::new("r1").unwrap());
    let req = HoldRequest::new(gig.clone(), ann.clone(), r1.clone(), Money::parse("0.00", "EUR").unwrap());
    assert!(matches!(engine.request(&req), Ok(RequestOutcome::AwaitingPayment { replayed: false, .. })));
    let paid = engine.settle(&PaymentResult::paid(gig.clone(), ann.clone(), r1.clone())).unwrap();
    assert_eq!(paid, Settlement::Confirmed { replayed: false });
    engine.clock().advance(Duration::seconds(2));
    let already = RequestOutcome::Already { hold_ref: r1.clone(), confirmed: true, checkout: None };
    let other =
        HoldRequest::new(gig.clone(), ann.clone(), Ref::new("r2").unwrap(), Money::parse("0.00", "EUR").unwrap());
    assert_eq!(engine.request(&other).unwrap(), already, "under a new ref");
    assert_eq!(engine.request(&req).unwrap(), already, "under the booking's own ref");
}
