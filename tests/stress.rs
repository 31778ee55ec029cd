//! Multi-threaded stress on the engine over one `MemoryStore`: buyers request holds on a hot
//! occurrence from several threads; their payment results come back paid, failed, late (after
//! the hold lapsed), duplicated, reordered or under a stale ref, settled by several threads at
//! once; a sweeper expires lapsed holds and a sampler reads availability all along. Then every
//! answer is reconciled with the drained outbox (invariants 1, 3, 4, 5, 7).

use crate::common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration as StdDuration;

use common::{Ledger, PaidKey, Rng, paid_key, start};
use seathold::catalogue::{Dim, OccurrenceConfig};
use seathold::contract::{
    ActorId, Amount, Currency, Money, NoHoldReason, OccKey, PaymentResult, PaymentStatus, ProviderRef, Ref,
};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::ledger::EntryKind;
use seathold::settlement::Settlement;
use seathold::{Clock, Engine, ManualClock, MemoryStore, OpError, Store};
use time::{Duration, OffsetDateTime};

const TTL_SECS: u32 = 60;

type Eng = Engine<Arc<MemoryStore>, Arc<ManualClock>>;

struct Occ {
    key: OccKey,
    capacity: u32,
    buyers: usize,
    buyer_threads: usize,
}

/// Per-occurrence tallies of the answers the callers saw.
#[derive(Default)]
struct Tally {
    placed: AtomicU64,
    full: AtomicU64,
    confirmed: AtomicU64,
    confirmed_seats: AtomicU64,
    confirmed_replays: AtomicU64,
    refunds: AtomicU64,
    refund_replays: AtomicU64,
    duplicates: AtomicU64,
    released: AtomicU64,
    noops: AtomicU64,
}

struct Shared {
    engine: Eng,
    occs: Vec<Occ>,
    tallies: Vec<Tally>,
    /// Results to settle now.
    queue: Mutex<VecDeque<(usize, PaymentResult)>>,
    /// Results to settle only once the clock has passed the instant.
    late: Mutex<Vec<(OffsetDateTime, usize, PaymentResult)>>,
    /// Seats per (occ, actor, ref), for reconciling confirmed seats.
    quantities: Mutex<HashMap<PaidKey, u32>>,
    /// Non-replay answers per accounted payment (see [`PaidKey`]): must end at exactly 1 each.
    first_answers: Mutex<HashMap<PaidKey, u32>>,
    /// Every answer per delivered payment identity (occ, actor, ref, provider ref), replay
    /// flag cleared: a redelivery must answer what the first delivery answered.
    answers: Mutex<HashMap<PaidKey, Settlement>>,
    next_buyer: Vec<AtomicUsize>,
    buyers_left: AtomicUsize,
    settling_done: AtomicBool,
    contention: AtomicU64,
    samples: AtomicU64,
    violations: Mutex<Vec<String>>,
}

fn key_of(r: &PaymentResult) -> PaidKey {
    paid_key(r.occ_key.as_str(), r.actor.as_str(), r.hold_ref.as_str())
}

/// The delivery's identity with its provider ref.
fn delivery_of(r: &PaymentResult) -> PaidKey {
    let mut k = key_of(r);
    k.3 = r.provider_ref.as_ref().map(|p| p.as_str().to_owned());
    k
}

fn unreplayed(s: &Settlement) -> Settlement {
    match s {
        Settlement::Confirmed { .. } => Settlement::Confirmed { replayed: false },
        Settlement::PaidButNoHold { refund, .. } => {
            Settlement::PaidButNoHold { refund: refund.clone(), replayed: false }
        }
        other => other.clone(),
    }
}

fn buyer(shared: &Shared, occ: usize, i: usize, rng: &mut Rng) {
    let o = &shared.occs[occ];
    let actor = ActorId::new(format!("{}-buyer-{i}", o.key)).unwrap();
    let hold_ref = Ref::new(format!("r-{i}")).unwrap();
    let qty = 1 + rng.below(2) as u32;
    let price = Money::parse(&format!("{}.00", 25 * qty), "EUR").unwrap();
    let req = HoldRequest::new(o.key.clone(), actor.clone(), hold_ref.clone(), price).with_quantity(qty);
    let tally = &shared.tallies[occ];
    // A buyer told Full keeps trying (seats free up as payments fail and holds lapse) until
    // placed, or until the sale is as good as sold out.
    let mut checkout = None;
    for _ in 0..400 {
        match shared.engine.request(&req) {
            Ok(RequestOutcome::AwaitingPayment { checkout: c, replayed: false, .. }) => {
                checkout = Some(c);
                break;
            }
            Ok(RequestOutcome::Full { .. }) => {
                tally.full.fetch_add(1, Ordering::Relaxed);
                let a = shared.engine.availability(&o.key).expect("availability");
                if a.confirmed + 2 > u64::from(o.capacity) {
                    break;
                }
                thread::sleep(StdDuration::from_micros(50));
            }
            Err(OpError::Contention { .. }) => {
                shared.contention.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("buyer {i}: unexpected answer {other:?}"),
        }
    }
    let Some(checkout) = checkout else { return };
    tally.placed.fetch_add(1, Ordering::Relaxed);
    shared.quantities.lock().unwrap().insert(paid_key(o.key.as_str(), actor.as_str(), hold_ref.as_str()), qty);
    let paid = PaymentResult::paid(o.key.clone(), actor.clone(), hold_ref.clone())
        .with_money(checkout.amount, checkout.currency);
    let failed = PaymentResult::failed(o.key.clone(), actor.clone(), hold_ref.clone());
    let mut now = Vec::new();
    // Most attempts do not pay, so seats keep turning over while the sale is hot.
    match rng.below(100) {
        0..15 => now.push(paid),
        15..40 => now.push(failed),
        40..52 => {
            let mut late = shared.late.lock().unwrap();
            if rng.percent(30) {
                late.push((checkout.expires_at, occ, paid.clone())); // redelivered late, too
            }
            late.push((checkout.expires_at, occ, paid));
        }
        52..57 => now.extend([paid.clone(), paid]),
        57..60 => {
            // Charged twice by the provider: two payments race for one checkout, each
            // redelivered. One is accounted for the hold, the other is a duplicate_payment
            // refund of its own.
            let one = paid.clone().with_provider_ref(ProviderRef::new(format!("pi-{i}-1")).unwrap());
            let two = paid.with_provider_ref(ProviderRef::new(format!("pi-{i}-2")).unwrap());
            now.extend([one.clone(), two.clone(), one, two]);
        }
        60..72 => {
            // Reordered: the failure and the payment race each other (two settler threads).
            if rng.percent(50) {
                now.extend([failed, paid]);
            } else {
                now.extend([paid, failed]);
            }
        }
        72..78 => {
            // A stale attempt's payment: must never touch this hold (refund instead).
            let stale = Ref::new(format!("stale-{i}")).unwrap();
            now.push(PaymentResult::paid(o.key.clone(), actor, stale));
            now.push(PaymentResult::new(o.key.clone(), failed.actor.clone(), hold_ref, PaymentStatus::Expired));
        }
        _ => {} // abandoned: the hold lapses and is swept
    }
    let mut q = shared.queue.lock().unwrap();
    q.extend(now.into_iter().map(|r| (occ, r)));
}

fn settle(shared: &Shared, occ: usize, result: &PaymentResult) {
    let tally = &shared.tallies[occ];
    let answer = loop {
        match shared.engine.settle(result) {
            Err(OpError::Contention { .. }) => {
                shared.contention.fetch_add(1, Ordering::Relaxed);
            }
            other => break other.unwrap_or_else(|e| panic!("settle {result:?}: {e:?}")),
        }
    };
    let first = match &answer {
        Settlement::Confirmed { replayed: false } => {
            tally.confirmed.fetch_add(1, Ordering::Relaxed);
            let qty = shared.quantities.lock().unwrap()[&key_of(result)];
            tally.confirmed_seats.fetch_add(u64::from(qty), Ordering::Relaxed);
            true
        }
        Settlement::Confirmed { replayed: true } => {
            tally.confirmed_replays.fetch_add(1, Ordering::Relaxed);
            false
        }
        Settlement::PaidButNoHold { replayed: false, refund } => {
            tally.refunds.fetch_add(1, Ordering::Relaxed);
            if refund.reason == NoHoldReason::DuplicatePayment {
                tally.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        Settlement::PaidButNoHold { replayed: true, .. } => {
            tally.refund_replays.fetch_add(1, Ordering::Relaxed);
            false
        }
        Settlement::Released => {
            tally.released.fetch_add(1, Ordering::Relaxed);
            false
        }
        Settlement::Noop => {
            tally.noops.fetch_add(1, Ordering::Relaxed);
            false
        }
        other => panic!("{result:?} answered {other:?}"),
    };
    if result.status == PaymentStatus::Paid {
        // The accounting this answer stands for: the first payment under (occ, actor, ref),
        // or a second, different one, keyed by its provider ref.
        let key = match &answer {
            Settlement::PaidButNoHold { refund, .. } if refund.reason == NoHoldReason::DuplicatePayment => {
                delivery_of(result)
            }
            _ => key_of(result),
        };
        *shared.first_answers.lock().unwrap().entry(key).or_insert(0) += u32::from(first);
        let mut answers = shared.answers.lock().unwrap();
        let seen = answers.entry(delivery_of(result)).or_insert_with(|| unreplayed(&answer));
        assert_eq!(*seen, unreplayed(&answer), "{result:?}: a redelivery answered differently");
    } else {
        assert!(matches!(answer, Settlement::Released | Settlement::Noop), "{result:?} answered {answer:?}");
    }
}

fn run(occs: Vec<Occ>, settler_threads: usize, seed: u64) {
    let clock = Arc::new(ManualClock::new(start()));
    let engine = Engine::with_clock(Arc::new(MemoryStore::new()), clock.clone());
    for o in &occs {
        engine.open(&o.key, OccurrenceConfig::new(o.capacity, u64::from(TTL_SECS)).unwrap()).unwrap();
    }
    let total_buyers = occs.iter().map(|o| o.buyers).sum();
    let shared = Arc::new(Shared {
        engine,
        tallies: occs.iter().map(|_| Tally::default()).collect(),
        next_buyer: occs.iter().map(|_| AtomicUsize::new(0)).collect(),
        occs,
        queue: Mutex::new(VecDeque::new()),
        late: Mutex::new(Vec::new()),
        quantities: Mutex::new(HashMap::new()),
        first_answers: Mutex::new(HashMap::new()),
        answers: Mutex::new(HashMap::new()),
        buyers_left: AtomicUsize::new(total_buyers),
        settling_done: AtomicBool::new(false),
        contention: AtomicU64::new(0),
        samples: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
    });

    let mut workers = Vec::new();
    for (occ, o) in shared.occs.iter().enumerate() {
        for t in 0..o.buyer_threads {
            let s = shared.clone();
            workers.push(thread::spawn(move || {
                let mut rng = Rng::new(seed ^ ((occ as u64) << 32) ^ t as u64);
                loop {
                    let i = s.next_buyer[occ].fetch_add(1, Ordering::Relaxed);
                    if i >= s.occs[occ].buyers {
                        break;
                    }
                    buyer(&s, occ, i, &mut rng);
                    s.buyers_left.fetch_sub(1, Ordering::Release);
                }
            }));
        }
    }
    for t in 0..settler_threads {
        let s = shared.clone();
        workers.push(thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xABCD ^ t as u64);
            loop {
                let buyers_done = s.buyers_left.load(Ordering::Acquire) == 0;
                // Late results wait for the clock; take one that is due, if any.
                let due = {
                    let now = s.engine.clock().now();
                    let mut late = s.late.lock().unwrap();
                    late.iter().position(|(at, ..)| *at <= now).map(|p| late.swap_remove(p))
                };
                if let Some((_, occ, r)) = due {
                    settle(&s, occ, &r);
                    continue;
                }
                // Take from either end so deliveries of one buyer get reordered.
                let next = {
                    let mut q = s.queue.lock().unwrap();
                    if rng.percent(30) { q.pop_back() } else { q.pop_front() }
                };
                match next {
                    Some((occ, r)) => settle(&s, occ, &r),
                    None if buyers_done && s.late.lock().unwrap().is_empty() => break,
                    None => thread::yield_now(),
                }
            }
        }));
    }
    let mut background = Vec::new();
    {
        // The clock: 1 s of hold time per ~100 µs, so late results come due within the run.
        let s = shared.clone();
        background.push(thread::spawn(move || {
            while !s.settling_done.load(Ordering::Acquire) {
                s.engine.clock().advance(Duration::seconds(1));
                thread::sleep(StdDuration::from_micros(100));
            }
        }));
    }
    {
        let s = shared.clone();
        background.push(thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0x5EE9);
            while !s.settling_done.load(Ordering::Acquire) {
                s.engine.expire_due(1 + rng.below(64) as usize).expect("sweep");
                thread::sleep(StdDuration::from_micros(200));
            }
        }));
    }
    {
        // The sampler: never oversold, as readers and as the store's counters see it.
        let s = shared.clone();
        background.push(thread::spawn(move || {
            while !s.settling_done.load(Ordering::Acquire) {
                for o in &s.occs {
                    let a = s.engine.availability(&o.key).expect("availability");
                    let snap = Store::load(&**s.engine.store(), &o.key, &[]).expect("load");
                    let occ = snap.occurrence.expect("occurrence");
                    // The counters count lapsed holds until something expires them: an upper
                    // bound on what is taken, which must itself stay within the capacity.
                    let counted = occ.counters.get(&Dim::Total).total();
                    if a.held + a.confirmed > u64::from(o.capacity) || counted > u64::from(o.capacity) {
                        s.violations.lock().unwrap().push(format!("{}: oversold: {a:?} / {occ:?}", o.key));
                    }
                    s.samples.fetch_add(1, Ordering::Relaxed);
                }
                thread::yield_now();
            }
        }));
    }
    for w in workers {
        w.join().expect("worker thread");
    }
    shared.settling_done.store(true, Ordering::Release);
    for b in background {
        b.join().expect("background thread");
    }

    // Past every expiry, sweep until nothing is left, then reconcile with the outbox.
    let s = &*shared;
    s.engine.clock().advance(Duration::seconds(i64::from(TTL_SECS) + 1));
    while s.engine.expire_due(usize::MAX).unwrap() > 0 {}
    let events = s.engine.drain_events(usize::MAX).unwrap();
    assert!(s.engine.pending_events(usize::MAX).unwrap().is_empty());
    let mut ledger = Ledger::default();
    ledger.absorb_all(&events).unwrap_or_else(|e| panic!("outbox: {e}"));

    let violations = s.violations.lock().unwrap();
    assert!(violations.is_empty(), "{} oversold samples, first: {}", violations.len(), violations[0]);
    assert!(s.samples.load(Ordering::Relaxed) > 0, "the sampler never ran");
    assert!(ledger.open.is_empty(), "holds with no terminal event: {:?}", ledger.open);
    assert_eq!(ledger.placed, ledger.ended);

    let first_answers = s.first_answers.lock().unwrap();
    for (k, n) in first_answers.iter() {
        assert_eq!(*n, 1, "paid result {k:?} got {n} first (non-replay) answers");
        assert!(ledger.accounted.contains_key(k), "paid result {k:?} has no hold_confirmed/refund_required");
    }
    let accounted: HashSet<_> = ledger.accounted.keys().collect();
    assert_eq!(accounted.len(), first_answers.len(), "accounting events without a paid answer");
    assert_eq!(
        ledger.duplicate_refunds,
        s.tallies.iter().map(|t| t.duplicates.load(Ordering::Relaxed)).sum::<u64>(),
        "duplicate_payment answers vs events"
    );

    let mut report = Vec::new();
    for (o, t) in s.occs.iter().zip(&s.tallies) {
        let name = o.key.as_str();
        let a = s.engine.availability(&o.key).unwrap();
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        let placed_here =
            events.iter().filter(|e| e.event.occ_key == o.key && e.event.kind.type_str() == "hold_placed").count()
                as u64;
        let confirmed_here =
            events.iter().filter(|e| e.event.occ_key == o.key && e.event.kind.type_str() == "hold_confirmed").count()
                as u64;
        let refunds_here =
            events.iter().filter(|e| e.event.occ_key == o.key && e.event.kind.type_str() == "refund_required").count()
                as u64;
        for e in events.iter().filter(|e| e.event.occ_key == o.key) {
            assert!(e.event.actor.as_str().starts_with(name), "{name} has an event of another occurrence: {e:?}");
        }
        assert_eq!(a.held, 0, "{name}: seats still held after the final sweep");
        assert!(a.confirmed <= u64::from(o.capacity), "{name}: oversold {a:?}");
        assert_eq!(load(&t.placed), placed_here, "{name}: placed answers vs hold_placed events");
        assert_eq!(load(&t.confirmed), confirmed_here, "{name}: Confirmed{{replayed:false}} answers vs events");
        assert_eq!(load(&t.confirmed_seats), a.confirmed, "{name}: confirmed seats vs availability");
        assert_eq!(ledger.confirmed(name), a.confirmed, "{name}: confirmed seats vs hold_confirmed events");
        assert_eq!(load(&t.refunds), refunds_here, "{name}: refund answers vs refund_required events");
        // The store's ledger: one payment entry per accounting, and what is kept is exactly
        // the price of the seats sold (25.00 a seat; refunds carry what was received).
        let books = s.engine.ledger(&o.key).unwrap();
        let payments = books.entries.iter().filter(|e| e.kind == EntryKind::Payment).count();
        let accounted_here = ledger.accounted.keys().filter(|k| k.0 == name).count();
        assert_eq!(payments, accounted_here, "{name}: ledger payments vs accounting events");
        let eur = Currency::parse("EUR").unwrap();
        let kept = Amount::parse(&format!("{}.00", 25 * a.confirmed)).unwrap();
        assert_eq!(books.net(eur), Some(kept), "{name}: ledger net vs seats sold");
        report.push(format!(
            "{name}: cap {} placed {} full {} confirmed {} ({} seats, {} replays) refunds {} ({} replays, {} duplicates) released {} noop {}",
            o.capacity,
            load(&t.placed),
            load(&t.full),
            load(&t.confirmed),
            a.confirmed,
            load(&t.confirmed_replays),
            load(&t.refunds),
            load(&t.refund_replays),
            load(&t.duplicates),
            load(&t.released),
            load(&t.noops),
        ));
    }
    eprintln!(
        "stress: {} events, {} samples, {} contention retries; {}",
        events.len(),
        s.samples.load(Ordering::Relaxed),
        s.contention.load(Ordering::Relaxed),
        report.join("; ")
    );
}

/// ~2,000 buyers on one hot occurrence of 200 seats, 6 buyer threads and 3 settler threads.
#[test]
fn hot_occurrence_never_oversells_and_accounts_every_payment() {
    for seed in 1..=8 {
        let occs = vec![Occ { key: OccKey::new("hot").unwrap(), capacity: 200, buyers: 2_000, buyer_threads: 6 }];
        run(occs, 3, seed);
    }
}

/// Two occurrences driven by separate threads: each reconciles with its own answers and
/// events only.
#[test]
fn two_occurrences_do_not_interfere() {
    for seed in 1..=4 {
        let occs = vec![
            Occ { key: OccKey::new("left").unwrap(), capacity: 120, buyers: 1_000, buyer_threads: 3 },
            Occ { key: OccKey::new("right").unwrap(), capacity: 40, buyers: 1_000, buyer_threads: 3 },
        ];
        run(occs, 3, 100 + seed);
    }
}
