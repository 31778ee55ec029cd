//! The main job: a flash sale on the in-memory store.
//!
//! ```text
//! cargo run --release --example flash_sale
//! ```
//!
//! 5,000 buyers on 4 threads race for the 300 seats of one occurrence. A simulated payment
//! provider answers every checkout: paid, failed, abandoned (no answer: the hold lapses),
//! paid too late (after the hold lapsed), paid and delivered two or three times, charged
//! twice (two payments with different provider refs for one checkout: one is accounted for
//! the seat, the other is refunded as `duplicate_payment`), or a failure and a payment for
//! the same checkout delivered out of order; some results arrive as typed
//! values, some as raw JSON webhook bodies through `settle_json`, and a few bodies are
//! malformed and must be refused. Two webhook threads settle what arrives, a sweeper expires
//! due holds, and an outbox relay publishes and acknowledges the events.
//!
//! Time is a `ManualClock` driven by a thread at 25 simulated seconds per real second, so the
//! 30-second hold TTL passes in 1.2 s and the whole sale takes about 4 s. Every choice the
//! simulation makes (arrival times, payment fates, delays) comes from a seeded generator
//! (`rand`'s `StdRng`), so the choices are the same on every run; which buyer wins a seat
//! still depends on how the threads interleave.
//!
//! At the end the books are checked, and the example exits non-zero if a seat was oversold,
//! a payment was not accounted exactly once, a hold did not end exactly once, a malformed
//! body was accepted, or the occurrence's ledger does not net exactly the price of the seats
//! sold.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{
    ActorId, Amount, EventKind, Money, NoHoldReason, OccKey, PaymentResult, PaymentStatus, ProviderRef, Ref,
};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::{Clock, Engine, ManualClock, MemoryStore, OpError};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const BUYERS: u64 = 5_000;
const SEATS: u32 = 300;
const BUYER_THREADS: u64 = 4;
const WEBHOOK_THREADS: usize = 2;
const HOLD_TTL_SECS: u64 = 30;
/// Simulated seconds per real second.
const SPEED: f64 = 25.0;
/// Buyers arrive over this many simulated seconds.
const ARRIVAL_WINDOW_MS: u64 = 20_000;
/// A buyer told `Full` comes back at most this many times.
const MAX_ATTEMPTS: u32 = 3;
const SEED: u64 = 0x5EA7_401D_2026_1201;
const OCC: &str = "flash-2026-12-01";
const PRICE: &str = "49.00";
const CURRENCY: &str = "EUR";

type Eng = Engine<MemoryStore, Arc<ManualClock>>;

// ---------------------------------------------------------------------------------------
// Deterministic choices

/// The seeded generator: `rand`'s `StdRng`, so a run replays from its seed.
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(rand::SeedableRng::seed_from_u64(seed))
    }

    fn next(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        rand::Rng::random_range(&mut self.0, lo..hi.max(lo + 1))
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

// ---------------------------------------------------------------------------------------
// Webhook deliveries

enum Body {
    /// Already parsed by the caller (a queue consumer, say).
    Typed(PaymentResult),
    /// The raw webhook body.
    Json(Vec<u8>),
    /// A malformed body that must be refused.
    Bad(Vec<u8>, &'static str),
}

/// One webhook delivery, due at a simulated instant.
struct Delivery {
    at: OffsetDateTime,
    seq: u64,
    body: Body,
    /// For a `paid` result: the key (actor|ref) of the checkout it pays. A second, different
    /// payment for an accounted checkout is accounted under its own key, actor|ref|provider.
    paid_key: Option<String>,
}

impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delivery {}
impl PartialOrd for Delivery {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delivery {
    /// Reversed, so that `BinaryHeap` pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every figure the summary prints, gathered by all threads.
#[derive(Default)]
struct Books {
    // requests
    requests: u64,
    placed: u64,
    full: u64,
    already: u64,
    replayed_requests: u64,
    // the provider's choices
    fates: BTreeMap<&'static str, u64>,
    // settlement answers
    deliveries: u64,
    confirmed: u64,
    released: u64,
    noop: u64,
    refunds: BTreeMap<&'static str, u64>,
    confirm_replays: u64,
    refund_replays: u64,
    bad_refused: u64,
    bad_sent: u64,
    contention_retries: u64,
    /// Every checkout a paid result was sent for (actor|ref).
    paid_sent: HashSet<String>,
    /// Checkouts charged twice: each owes one extra accounting, a duplicate_payment refund.
    charged_twice: u64,
    /// Per accounting answered (actor|ref, or actor|ref|provider for a second payment): first
    /// (non-replayed) answers and replays.
    paid: HashMap<String, (u32, u32)>,
    violations: Vec<String>,
    // engine calls
    calls: u64,
    call_nanos: u64,
}

impl Books {
    fn violation(&mut self, v: String) {
        if self.violations.len() < 20 {
            eprintln!("VIOLATION: {v}");
        }
        self.violations.push(v);
    }
}

struct Sale {
    engine: Eng,
    clock: Arc<ManualClock>,
    occ: OccKey,
    price: Money,
    start: OffsetDateTime,
    deliveries: Mutex<BinaryHeap<Delivery>>,
    seq: AtomicU64,
    books: Mutex<Books>,
    buyers_done: AtomicBool,
    /// Set once every webhook is settled: the clock driver stops.
    clock_stop: AtomicBool,
    /// Set at the very end: the sweeper and the relay stop.
    stop: AtomicBool,
    swept: AtomicU64,
}

impl Sale {
    fn at(&self, ms: u64) -> OffsetDateTime {
        self.start + Duration::milliseconds(ms as i64)
    }

    fn wait_until(&self, t: OffsetDateTime) {
        while self.clock.now() < t {
            thread::sleep(StdDuration::from_micros(200));
        }
    }

    fn deliver(&self, at: OffsetDateTime, body: Body, paid_key: Option<String>) {
        if let Some(key) = &paid_key {
            lock(&self.books).paid_sent.insert(key.clone());
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.deliveries).push(Delivery { at, seq, body, paid_key });
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let nanos = t.elapsed().as_nanos() as u64;
        let mut b = lock(&self.books);
        b.calls += 1;
        b.call_nanos += nanos;
        out
    }
}

// ---------------------------------------------------------------------------------------
// The payment provider

/// What the provider does with one checkout.
#[derive(Clone, Copy)]
enum Fate {
    Paid,
    PaidDuplicated,
    ChargedTwice,
    Failed { retry: bool },
    Abandoned,
    Late { duplicated: bool },
    Reordered,
}

impl Fate {
    fn pick(rng: &mut Rng) -> Fate {
        match rng.next() % 100 {
            0..58 => Fate::Paid,
            58..68 => Fate::PaidDuplicated,
            68..72 => Fate::ChargedTwice,
            72..82 => Fate::Failed { retry: rng.percent(60) },
            82..88 => Fate::Abandoned,
            88..94 => Fate::Late { duplicated: rng.percent(30) },
            _ => Fate::Reordered,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fate::Paid => "paid",
            Fate::PaidDuplicated => "paid, delivered 2-3 times",
            Fate::ChargedTwice => "charged twice",
            Fate::Failed { .. } => "failed",
            Fate::Abandoned => "abandoned (no result)",
            Fate::Late { .. } => "paid after the hold lapsed",
            Fate::Reordered => "failed + paid, reordered",
        }
    }
}

fn result(sale: &Sale, actor: &ActorId, hold_ref: &Ref, status: PaymentStatus, n: u64) -> PaymentResult {
    let r = PaymentResult::new(sale.occ.clone(), actor.clone(), hold_ref.clone(), status);
    let r = r.with_provider_ref(ProviderRef::new(format!("pi_{}_{n}", hold_ref)).expect("valid provider ref"));
    if status == PaymentStatus::Paid { r.with_money(sale.price.amount, sale.price.currency) } else { r }
}

/// A result as the provider sends it: half as typed values, half as raw JSON bodies (with a
/// field seathold does not know, which it must ignore).
fn body(r: PaymentResult, rng: &mut Rng) -> Body {
    if rng.percent(50) {
        return Body::Typed(r);
    }
    let mut v = serde_json::to_value(&r).expect("a payment result serializes");
    v["livemode"] = json!(false);
    Body::Json(v.to_string().into_bytes())
}

/// Schedule the provider's answers to one checkout. Returns when the buyer learns the
/// payment failed, if the buyer will try again then.
fn provider(
    sale: &Sale,
    rng: &mut Rng,
    actor: &ActorId,
    hold_ref: &Ref,
    expires_at: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let now = sale.clock.now();
    let fate = Fate::pick(rng);
    *lock(&sale.books).fates.entry(fate.name()).or_default() += 1;
    let key = format!("{actor}|{hold_ref}");
    let soon = |rng: &mut Rng| now + Duration::milliseconds(rng.range(1_000, 15_000) as i64);
    let paid = |n| result(sale, actor, hold_ref, PaymentStatus::Paid, n);
    let failed = |n| result(sale, actor, hold_ref, PaymentStatus::Failed, n);
    match fate {
        Fate::Paid => sale.deliver(soon(rng), body(paid(1), rng), Some(key)),
        Fate::PaidDuplicated => {
            let at = soon(rng);
            for _ in 0..rng.range(2, 4) {
                let jitter = Duration::milliseconds(rng.range(0, 800) as i64);
                sale.deliver(at + jitter, body(paid(1), rng), Some(key.clone()));
            }
        }
        Fate::ChargedTwice => {
            // Two payments for one checkout, with different provider refs, each webhook
            // delivered once or twice, in any order.
            lock(&sale.books).charged_twice += 1;
            for n in [1, 2] {
                let at = soon(rng);
                for _ in 0..rng.range(1, 3) {
                    let jitter = Duration::milliseconds(rng.range(0, 800) as i64);
                    sale.deliver(at + jitter, body(paid(n), rng), Some(key.clone()));
                }
            }
        }
        Fate::Failed { retry } => {
            let at = soon(rng);
            let status = if rng.percent(70) { PaymentStatus::Failed } else { PaymentStatus::Expired };
            sale.deliver(at, body(result(sale, actor, hold_ref, status, 1), rng), None);
            if retry {
                return Some(at + Duration::milliseconds(rng.range(1_000, 3_000) as i64));
            }
        }
        Fate::Abandoned => {}
        Fate::Late { duplicated } => {
            let at = expires_at + Duration::milliseconds(rng.range(1_000, 6_000) as i64);
            sale.deliver(at, body(paid(1), rng), Some(key.clone()));
            if duplicated {
                sale.deliver(at + Duration::milliseconds(500), body(paid(1), rng), Some(key));
            }
        }
        Fate::Reordered => {
            // The card was declined, then accepted on a second try within the same checkout;
            // the two webhooks race, and in half of them the payment overtakes the failure.
            let (a, b) = (soon(rng), soon(rng));
            let (first, second) = (a.min(b), a.max(b) + Duration::milliseconds(1));
            let (failed_at, paid_at) = if rng.percent(50) { (first, second) } else { (second, first) };
            sale.deliver(failed_at, body(failed(1), rng), None);
            sale.deliver(paid_at, body(paid(2), rng), Some(key));
        }
    }
    None
}

/// Webhook bodies a careless or hostile sender might post. Each must be refused.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let ok = r#""kind":"events.payment","occ_key":"flash-2026-12-01","actor":"buyer-1","ref":"r-1-1""#;
    vec![
        ("truncated", br#"{"kind":"events.payment","occ_key":"flash-2026-12-01","actor":"buy"#.to_vec()),
        ("not json", b"status=paid&ref=r-1-1".to_vec()),
        ("not an object", b"[\"paid\"]".to_vec()),
        (
            "wrong kind",
            format!(
                r#"{{"kind":"events.checkout","occ_key":"{OCC}","actor":"buyer-1","ref":"r-1-1","status":"paid"}}"#
            )
            .into_bytes(),
        ),
        ("unknown status", format!(r#"{{{ok},"status":"refunded"}}"#).into_bytes()),
        ("float amount", format!(r#"{{{ok},"status":"paid","amount":49.0,"currency":"EUR"}}"#).into_bytes()),
        ("bad currency", format!(r#"{{{ok},"status":"paid","amount":"49.00","currency":"eur"}}"#).into_bytes()),
        (
            "empty actor",
            format!(r#"{{"kind":"events.payment","occ_key":"{OCC}","actor":"","ref":"r-1-1","status":"paid"}}"#)
                .into_bytes(),
        ),
        (
            "missing ref",
            format!(r#"{{"kind":"events.payment","occ_key":"{OCC}","actor":"buyer-1","status":"paid"}}"#).into_bytes(),
        ),
        ("oversized", format!(r#"{{{ok},"status":"paid","note":"{}"}}"#, "x".repeat(70 * 1024)).into_bytes()),
    ]
}

// ---------------------------------------------------------------------------------------
// The threads

/// One buyer thread: its buyers, in order of (re)arrival.
fn buyers(sale: &Sale, thread_no: u64) {
    // (when, buyer, attempt)
    let mut queue: BinaryHeap<std::cmp::Reverse<(OffsetDateTime, u64, u32)>> = BinaryHeap::new();
    let mut rngs: HashMap<u64, Rng> = HashMap::new();
    for i in (thread_no..BUYERS).step_by(BUYER_THREADS as usize) {
        let mut rng = Rng::new(SEED ^ i.wrapping_mul(0x9E37_79B9));
        let arrival = sale.at(rng.range(0, ARRIVAL_WINDOW_MS));
        rngs.insert(i, rng);
        queue.push(std::cmp::Reverse((arrival, i, 1)));
    }
    while let Some(std::cmp::Reverse((when, i, attempt))) = queue.pop() {
        sale.wait_until(when);
        let rng = rngs.get_mut(&i).expect("every buyer has a stream");
        let actor = ActorId::new(format!("buyer-{i}")).expect("valid actor");
        let hold_ref = Ref::new(format!("r-{i}-{attempt}")).expect("valid ref");
        let req = HoldRequest::new(sale.occ.clone(), actor.clone(), hold_ref.clone(), sale.price);
        let outcome = sale.timed(|| sale.engine.request(&req));
        let mut books = lock(&sale.books);
        books.requests += 1;
        match outcome {
            Ok(RequestOutcome::AwaitingPayment { checkout, replayed: false, .. }) => {
                books.placed += 1;
                drop(books);
                // A few buyers double-click: the same checkout again, then a second one.
                if rng.percent(4) {
                    double_click(sale, &req, &checkout.hold_ref);
                }
                if let Some(retry_at) = provider(sale, rng, &actor, &hold_ref, checkout.expires_at) {
                    if attempt <= MAX_ATTEMPTS {
                        queue.push(std::cmp::Reverse((retry_at, i, attempt + 1)));
                    }
                }
            }
            Ok(RequestOutcome::Full { .. }) => {
                books.full += 1;
                if attempt < MAX_ATTEMPTS {
                    let back = sale.clock.now() + Duration::milliseconds(rng.range(4_000, 12_000) as i64);
                    queue.push(std::cmp::Reverse((back, i, attempt + 1)));
                }
            }
            // The failure that sent the buyer back has not been settled yet: the old hold is
            // still live. A real buyer would resume it; this one gives up.
            Ok(RequestOutcome::Already { .. }) => books.already += 1,
            Ok(other) => books.violation(format!("request {actor}/{hold_ref}: unexpected {other:?}")),
            Err(e) => books.violation(format!("request {actor}/{hold_ref} failed: {e}")),
        }
    }
}

fn double_click(sale: &Sale, req: &HoldRequest, hold_ref: &Ref) {
    let again = sale.timed(|| sale.engine.request(req));
    let mut other = req.clone();
    other.hold_ref = Ref::new(format!("{hold_ref}-second-tab")).expect("valid ref");
    let second = sale.timed(|| sale.engine.request(&other));
    let mut books = lock(&sale.books);
    books.requests += 2;
    match again {
        Ok(RequestOutcome::AwaitingPayment { replayed: true, .. }) => books.replayed_requests += 1,
        other => books.violation(format!("double click {}: {other:?}", req.actor)),
    }
    match second {
        Ok(RequestOutcome::Already { hold_ref: r, confirmed: false, checkout: Some(c) })
            if r == *hold_ref && c.hold_ref == *hold_ref =>
        {
            books.already += 1
        }
        other => books.violation(format!("second tab {}: {other:?}", req.actor)),
    }
}

fn webhooks(sale: &Sale) {
    loop {
        let next = {
            let mut heap = lock(&sale.deliveries);
            match heap.peek() {
                Some(d) if d.at <= sale.clock.now() => heap.pop(),
                None if sale.buyers_done.load(Ordering::Acquire) => return,
                _ => None,
            }
        };
        let Some(d) = next else {
            thread::sleep(StdDuration::from_micros(200));
            continue;
        };
        let answer = match &d.body {
            Body::Typed(r) => sale.timed(|| sale.engine.settle(r)),
            Body::Json(bytes) | Body::Bad(bytes, _) => sale.timed(|| sale.engine.settle_json(bytes)),
        };
        let mut books = lock(&sale.books);
        books.deliveries += 1;
        if let Body::Bad(_, what) = &d.body {
            match answer {
                Err(OpError::Refused(_)) => books.bad_refused += 1,
                other => books.violation(format!("malformed body ({what}) answered {other:?}")),
            }
            continue;
        }
        let answer = match answer {
            Ok(a) => a,
            Err(OpError::Contention { .. }) => {
                // The provider redelivers later.
                books.contention_retries += 1;
                drop(books);
                sale.deliver(sale.clock.now() + Duration::milliseconds(100), d.body, d.paid_key);
                continue;
            }
            Err(e) => {
                books.violation(format!("settle failed: {e}"));
                continue;
            }
        };
        if let Some(key) = &d.paid_key {
            let replay = answer.is_replay();
            // A second payment for an accounted checkout is an accounting of its own.
            let key = match (&answer, &d.body) {
                (Settlement::PaidButNoHold { refund, .. }, _) if refund.reason == NoHoldReason::DuplicatePayment => {
                    let p = refund.provider_ref.as_ref().map(|p| p.as_str()).unwrap_or("?");
                    format!("{key}|{p}")
                }
                _ => key.clone(),
            };
            let entry = books.paid.entry(key.clone()).or_default();
            if replay {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
            match answer {
                Settlement::Confirmed { replayed: false } => books.confirmed += 1,
                Settlement::Confirmed { replayed: true } => books.confirm_replays += 1,
                Settlement::PaidButNoHold { refund, replayed: false } => {
                    *books.refunds.entry(refund.reason.as_str()).or_default() += 1;
                }
                Settlement::PaidButNoHold { replayed: true, .. } => books.refund_replays += 1,
                other => books.violation(format!("paid result {key} answered {other:?}")),
            }
        } else {
            match answer {
                Settlement::Released => books.released += 1,
                Settlement::Noop => books.noop += 1,
                other => books.violation(format!("failure result answered {other:?}")),
            }
        }
    }
}

fn sweeper(sale: &Sale) {
    while !sale.stop.load(Ordering::Acquire) {
        match sale.timed(|| sale.engine.expire_due(1_000)) {
            Ok(n) => {
                sale.swept.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => lock(&sale.books).violation(format!("sweep failed: {e}")),
        }
        // About one simulated second between sweeps: lapsed holds in between are expired by
        // whichever request or settlement meets them first.
        thread::sleep(StdDuration::from_millis(40));
    }
}

/// What the relay published, by event type (ids deduplicated, as a consumer would).
#[derive(Default)]
struct Published {
    seen: HashSet<u64>,
    last_id: u64,
    by_type: BTreeMap<&'static str, u64>,
    confirmed_seats: u64,
    refunds_by_reason: BTreeMap<&'static str, u64>,
    out_of_order: u64,
}

fn relay_once(sale: &Sale, published: &mut Published) -> usize {
    let events = match sale.engine.pending_events(500) {
        Ok(e) => e,
        Err(e) => {
            lock(&sale.books).violation(format!("outbox read failed: {e}"));
            return 0;
        }
    };
    for e in &events {
        // A real relay publishes `e.to_json()` to a broker here.
        if !published.seen.insert(e.id.0) {
            continue;
        }
        if e.id.0 <= published.last_id {
            published.out_of_order += 1;
        }
        published.last_id = e.id.0;
        *published.by_type.entry(e.event.kind.type_str()).or_default() += 1;
        match &e.event.kind {
            EventKind::HoldConfirmed { quantity, .. } => published.confirmed_seats += u64::from(*quantity),
            EventKind::RefundRequired { reason, .. } => {
                *published.refunds_by_reason.entry(reason.as_str()).or_default() += 1;
            }
            _ => {}
        }
    }
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    if let Err(e) = sale.engine.ack_events(&ids) {
        lock(&sale.books).violation(format!("outbox ack failed: {e}"));
    }
    events.len()
}

fn relay(sale: &Sale, published: &Mutex<Published>) {
    while !sale.stop.load(Ordering::Acquire) {
        if relay_once(sale, &mut lock(published)) == 0 {
            thread::sleep(StdDuration::from_millis(20));
        }
    }
}

fn clock_driver(sale: &Sale, real_start: Instant) {
    while !sale.clock_stop.load(Ordering::Acquire) {
        let sim = real_start.elapsed().as_secs_f64() * SPEED;
        sale.clock.set(sale.start + Duration::seconds_f64(sim));
        thread::sleep(StdDuration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------

fn main() {
    let start = time::macros::datetime!(2026-12-01 10:00:00 UTC);
    let clock = Arc::new(ManualClock::new(start));
    let sale = Sale {
        engine: Engine::with_clock(MemoryStore::new(), clock.clone()),
        clock,
        occ: OccKey::new(OCC).expect("valid occ_key"),
        price: Money::parse(PRICE, CURRENCY).expect("valid price"),
        start,
        deliveries: Mutex::new(BinaryHeap::new()),
        seq: AtomicU64::new(0),
        books: Mutex::new(Books::default()),
        buyers_done: AtomicBool::new(false),
        clock_stop: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        swept: AtomicU64::new(0),
    };
    sale.engine
        .open(&sale.occ, OccurrenceConfig::new(SEATS, HOLD_TTL_SECS).expect("valid config"))
        .expect("open the occurrence");

    // Some noise the webhook endpoint must survive: malformed bodies, and payments for
    // checkouts this service never issued (a provider bug, or a replayed old webhook).
    let mut rng = Rng::new(SEED);
    for round in 0..3 {
        for (what, bytes) in malformed() {
            sale.deliver(sale.at(rng.range(0, 40_000)), Body::Bad(bytes, what), None);
            lock(&sale.books).bad_sent += 1;
        }
        let stray = format!("ghost-{round}");
        let r = PaymentResult::paid(
            sale.occ.clone(),
            ActorId::new(&stray).expect("valid actor"),
            Ref::new(format!("r-{stray}")).expect("valid ref"),
        );
        sale.deliver(sale.at(rng.range(0, 40_000)), body(r, &mut rng), Some(format!("{stray}|r-{stray}")));
    }

    println!(
        "flash sale: {BUYERS} buyers on {BUYER_THREADS} threads for {SEATS} seats of {OCC}; hold TTL {HOLD_TTL_SECS} s (simulated, {SPEED}x real time); seed {SEED:#x}"
    );
    let real_start = Instant::now();
    let published = Mutex::new(Published::default());
    thread::scope(|s| {
        let sale = &sale;
        let driver = s.spawn(move || clock_driver(sale, real_start));
        let sweeper_thread = s.spawn(move || sweeper(sale));
        let relay_thread = s.spawn(|| relay(sale, &published));
        let hooks: Vec<_> = (0..WEBHOOK_THREADS).map(|_| s.spawn(move || webhooks(sale))).collect();
        let buyer_threads: Vec<_> = (0..BUYER_THREADS).map(|t| s.spawn(move || buyers(sale, t))).collect();
        for b in buyer_threads {
            b.join().expect("buyer thread panicked");
        }
        sale.buyers_done.store(true, Ordering::Release);
        for h in hooks {
            h.join().expect("webhook thread panicked");
        }
        sale.clock_stop.store(true, Ordering::Release);
        driver.join().expect("clock thread panicked");
        // Every hold still held has lapsed once its TTL has passed: the final sweep ends them.
        sale.clock.set(sale.clock.now() + Duration::seconds(HOLD_TTL_SECS as i64 + 1));
        sale.stop.store(true, Ordering::Release);
        sweeper_thread.join().expect("sweeper thread panicked");
        relay_thread.join().expect("relay thread panicked");
    });
    loop {
        let n = sale.engine.expire_due(10_000).expect("final sweep");
        sale.swept.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            break;
        }
    }
    let mut published = published.into_inner().unwrap_or_else(PoisonError::into_inner);
    while relay_once(&sale, &mut published) > 0 {}
    let wall = real_start.elapsed();

    report(&sale, &published, wall);
}

fn report(sale: &Sale, p: &Published, wall: StdDuration) {
    let avail = sale.engine.availability(&sale.occ).expect("availability");
    let mut books = std::mem::take(&mut *lock(&sale.books));
    let ty = |t: &str| p.by_type.get(t).copied().unwrap_or(0);
    let (placed_ev, confirmed_ev, released_ev, expired_ev) =
        (ty("hold_placed"), ty("hold_confirmed"), ty("hold_released"), ty("hold_expired"));
    let refunds_ev = ty("refund_required");
    let swept = sale.swept.load(Ordering::Relaxed);

    // The books, checked.
    let capacity = u64::from(SEATS);
    let sold = avail.confirmed.max(p.confirmed_seats);
    let oversold = sold.saturating_sub(capacity);
    if oversold > 0 {
        books.violation(format!(
            "OVERSOLD by {oversold}: availability says {} confirmed, hold_confirmed events say {}",
            avail.confirmed, p.confirmed_seats
        ));
    }
    if avail.confirmed != p.confirmed_seats || avail.confirmed != books.confirmed {
        books.violation(format!(
            "confirmed seats disagree: availability {}, events {}, settle answers {}",
            avail.confirmed, p.confirmed_seats, books.confirmed
        ));
    }
    let not_once: Vec<String> = books
        .paid_sent
        .iter()
        .chain(books.paid.keys().filter(|k| !books.paid_sent.contains(*k)))
        .map(|k| (k, books.paid.get(k).copied().unwrap_or((0, 0))))
        .filter(|(_, (first, _))| *first != 1)
        .map(|(k, (f, r))| format!("{k}: {f} first answers, {r} replays"))
        .collect();
    for v in not_once {
        books.violation(format!("paid result not accounted exactly once: {v}"));
    }
    let refund_answers: u64 = books.refunds.values().sum();
    if refund_answers != refunds_ev || books.refunds != p.refunds_by_reason {
        books.violation(format!(
            "refund signals disagree: answers {:?}, refund_required events {:?}",
            books.refunds, p.refunds_by_reason
        ));
    }
    let accountings = books.paid_sent.len() as u64 + books.charged_twice;
    let duplicates = books.refunds.get("duplicate_payment").copied().unwrap_or(0);
    if books.confirmed + refund_answers != accountings
        || books.paid.len() as u64 != accountings
        || duplicates != books.charged_twice
    {
        books.violation(format!(
            "{} checkouts paid ({} charged twice), but {} confirmations + {refund_answers} refunds ({duplicates} duplicate_payment) over {} accountings",
            books.paid_sent.len(),
            books.charged_twice,
            books.confirmed,
            books.paid.len()
        ));
    }
    // The occurrence's ledger reconciles: money received minus refunds is the price of the
    // seats sold, and it holds one payment entry per accounting.
    match sale.engine.ledger(&sale.occ) {
        Ok(ledger) => {
            let payments =
                ledger.entries.iter().filter(|e| e.kind == seathold::ledger::EntryKind::Payment).count() as u64;
            // The strays carry no amount: their entries are left out of the totals.
            let sold = sale.price.amount.checked_mul(avail.confirmed as u32).unwrap_or(Amount::ZERO);
            if payments != accountings || ledger.net(sale.price.currency) != Some(sold) {
                books.violation(format!(
                    "ledger: {payments} payment entries for {accountings} accountings, nets {:?} for {} seats sold",
                    ledger.net(sale.price.currency),
                    avail.confirmed
                ));
            }
        }
        Err(e) => books.violation(format!("ledger read failed: {e}")),
    }
    if placed_ev != books.placed || placed_ev != confirmed_ev + released_ev + expired_ev || avail.held != 0 {
        books.violation(format!(
            "holds did not end exactly once: {placed_ev} placed ({} answers), {confirmed_ev} confirmed + {released_ev} released + {expired_ev} expired, {} still held",
            books.placed, avail.held
        ));
    }
    if books.released != released_ev {
        books.violation(format!("{} Released answers but {released_ev} hold_released events", books.released));
    }
    if books.bad_refused != books.bad_sent {
        books.violation(format!("{} of {} malformed bodies refused", books.bad_refused, books.bad_sent));
    }
    if p.out_of_order > 0 {
        books.violation(format!("{} outbox events out of commit order", p.out_of_order));
    }

    let paid_deliveries: u64 = books.paid.values().map(|(f, r)| u64::from(f + r)).sum();
    let ops = books.calls;
    let secs = wall.as_secs_f64();
    println!();
    println!("sale over in {secs:.2} s (wall)");
    println!("  seats sold                      {} / {} capacity", avail.confirmed, avail.capacity);
    println!(
        "  requests                        {} ({} holds placed, {} full, {} already holding, {} replayed double clicks)",
        books.requests, books.placed, books.full, books.already, books.replayed_requests
    );
    let fates: Vec<String> = books.fates.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  provider's answers              {}", fates.join(", "));
    println!(
        "  webhook deliveries              {} ({} paid results in {paid_deliveries} deliveries)",
        books.deliveries,
        books.paid.len()
    );
    println!("  holds confirmed                 {}", books.confirmed);
    let reasons: Vec<String> = books.refunds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  refund signals                  {refund_answers} ({})", reasons.join(", "));
    println!(
        "  duplicates answered as replays  {} ({} confirmations, {} refund signals: none refunded twice)",
        books.confirm_replays + books.refund_replays,
        books.confirm_replays,
        books.refund_replays
    );
    println!("  holds released                  {} (payment failed or expired)", books.released);
    println!(
        "  holds expired                   {expired_ev} ({swept} by the sweeper, {} lazily by requests and settlements)",
        expired_ev.saturating_sub(swept)
    );
    println!("  failures answered noop          {} (late, stale or already settled)", books.noop);
    println!("  bad webhooks refused            {} / {}", books.bad_refused, books.bad_sent);
    println!("  contention retries              {}", books.contention_retries);
    let types: Vec<String> = p.by_type.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  outbox events relayed           {} ({})", p.seen.len(), types.join(", "));
    println!(
        "  oversold                        {oversold} (confirmed: {} by availability, {} by hold_confirmed events; capacity {capacity})",
        avail.confirmed, p.confirmed_seats
    );
    println!(
        "  payments accounted once         {} of {accountings} ({} confirmed + {refund_answers} refund signals, {duplicates} of them second charges)",
        books.paid.values().filter(|(f, _)| *f == 1).count(),
        books.confirmed
    );
    println!(
        "  holds ended exactly once        {placed_ev} placed = {confirmed_ev} confirmed + {released_ev} released + {expired_ev} expired"
    );
    println!(
        "  cycles per second               {:.0} request+settle cycles/s over the wall time (paced by the simulated clock); {} engine calls, mean {:.1} us each",
        (books.requests + books.deliveries) as f64 / 2.0 / secs,
        ops,
        books.call_nanos as f64 / ops.max(1) as f64 / 1_000.0
    );
    if books.violations.is_empty() {
        println!("OK: no seat oversold, every paid result accounted exactly once, every hold ended once");
    } else {
        println!("FAILED: {} violations (first ones above)", books.violations.len());
        std::process::exit(1);
    }
}
