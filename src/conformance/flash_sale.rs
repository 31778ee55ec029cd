//! Clauses 1, 5 and 6 under real threads: a flash sale on one hot occurrence, run through
//! the engine on the store under test, then audited.
//!
//! The checks of the other modules call the store one call at a time, so a store that
//! checks its guards and applies the writes in two separately locked steps, or that reuses
//! an outbox id once the event that had it is acknowledged, passes them all. This workload
//! is where such a store breaks: buyer threads race for a few seats, pay, fail, pay late or
//! never, deliver their results twice, and lose acknowledgements (a commit applied but
//! reported failed, then retried); a sweeper moves the clock and expires lapsed holds; a
//! relay delivers the outbox to a consumer that, as consumers are told to, deduplicates
//! by event id. Then the audit:
//!
//! - no operation failed for any reason but a lost acknowledgement or contention (a store
//!   that applied half a commit answers `Internal("counter … would go negative")` sooner
//!   or later);
//! - nothing oversold, and the counters equal the bookings: seats confirmed by the records
//!   = the confirmed counter = the seats the buyers were told are theirs, nothing held
//!   once the sweep is done;
//! - each payment accounted once: one `hold_confirmed` for every booking a buyer was told
//!   is confirmed and none for another, one `refund_required` for every refund signal;
//! - each hold placed once and ended once (`hold_placed`, then exactly one of
//!   `hold_confirmed`, `hold_released`, `hold_expired`);
//! - every event delivered exactly once: no id yielded twice, none lost to the consumer.
//!
//! It is also a workload to run on your own store: [`flash_sale`] for a blocking store,
//! [`flash_sale_async`] for an [`AsyncStore`] whose futures need a runtime on each thread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use time::Duration;

use super::engine::{paid, req};
use super::fixtures::*;
use super::proxy::{Hook, Plain, Proxy};
use crate::AsyncEngine;
use crate::clock::ManualClock;
use crate::contract::{OccKey, PaymentResult};
use crate::engine::OpError;
use crate::holds::{HoldState, RequestOutcome, RequestRefusal};
use crate::records::{Record, RecordKey, RecordKind};
use crate::settlement::Settlement;
use crate::store::{AsyncStore, CommitError, Committed, Store, StoreError};

/// The shape of a [`flash_sale`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlashSale {
    /// Buyer threads (a sweeper and a relay run beside them).
    pub threads: usize,
    /// Buyers in all, each asking for one or two seats.
    pub buyers: usize,
    /// Seats on sale.
    pub capacity: u32,
    /// One commit in this many reports failure after it was applied (0: none).
    pub lose_every: u32,
}

impl Default for FlashSale {
    fn default() -> Self {
        Self { threads: 6, buyers: 600, capacity: 20, lose_every: 7 }
    }
}

impl FlashSale {
    /// The default sale with `buyers` buyers.
    pub fn with_buyers(mut self, buyers: usize) -> Self {
        self.buyers = buyers;
        self
    }

    /// The default sale with `threads` buyer threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }
}

/// What a [`flash_sale`] saw, and what its audit found wrong (nothing, on a store that
/// keeps the contract).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlashSaleReport {
    /// Holds placed.
    pub placed: u64,
    /// Requests answered `Full`.
    pub full: u64,
    /// Seats the buyers were told are theirs.
    pub confirmed_seats: u64,
    /// Refund signals given (`PaidButNoHold`).
    pub refunds: u64,
    /// Acknowledgements lost (commits applied, reported failed, retried).
    pub lost_acks: u64,
    /// Events the consumer received.
    pub events: u64,
    /// What the audit found wrong.
    pub violations: Vec<String>,
}

impl fmt::Display for FlashSaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} placed, {} full, {} seats confirmed, {} refunds, {} lost acks, {} events; {} violation(s)",
            self.placed,
            self.full,
            self.confirmed_seats,
            self.refunds,
            self.lost_acks,
            self.events,
            self.violations.len()
        )?;
        for v in self.violations.iter().take(10) {
            write!(f, "\n  - {v}")?;
        }
        Ok(())
    }
}

/// Run the sale on a blocking store (threads of its own), audit it, and report.
pub fn flash_sale<S: Store>(store: &S, sale: &FlashSale) -> FlashSaleReport {
    flash_sale_async(store, sale, &|body: &mut dyn FnMut()| body())
}

/// The flash sale as a conformance check: panics with the audit's findings.
///
/// # Panics
/// If the audit found anything wrong.
pub fn check_flash_sale<S: Store>(store: &S) {
    let report = flash_sale(store, &FlashSale::default());
    assert!(report.violations.is_empty(), "store contract 1, 5, 6 (threaded flash sale): {report}");
}

/// [`flash_sale`] for an [`AsyncStore`]: every thread runs its work inside `on_thread`,
/// which must call the body it is given (after entering your runtime's context, say, so
/// the store's futures can do I/O from a thread the runtime does not own).
pub fn flash_sale_async<S: AsyncStore>(
    store: &S,
    sale: &FlashSale,
    on_thread: &(dyn Fn(&mut dyn FnMut()) + Sync),
) -> FlashSaleReport {
    let o = unique_occ();
    let clock = ManualClock::new(T0);
    let run = Run {
        store,
        clock: &clock,
        occ: o,
        sale: sale.clone(),
        next_buyer: AtomicU32::new(0),
        buyers_done: AtomicBool::new(false),
        lose: LoseEvery { every: sale.lose_every, count: AtomicU32::new(0), lost: AtomicU32::new(0) },
        answers: Mutex::new(Answers::default()),
        delivered: Mutex::new(Delivered::default()),
    };
    let setup = AsyncEngine::with_clock(Proxy { inner: store, hook: Plain }, &clock);
    let cfg = config(sale.capacity);
    let mut opened = None;
    on_thread(&mut || opened = Some(super::block_on(setup.open(&run.occ, cfg.clone()))));
    if let Some(Err(e)) = opened {
        return FlashSaleReport { violations: vec![format!("open: {e}")], ..FlashSaleReport::default() };
    }
    std::thread::scope(|scope| {
        let run = &run;
        let buyers: Vec<_> = (0..sale.threads.max(1))
            .map(|_| scope.spawn(move || on_thread(&mut || super::block_on(run.buy()))))
            .collect();
        let sweeper = scope.spawn(move || on_thread(&mut || super::block_on(run.sweep())));
        let relay = scope.spawn(move || on_thread(&mut || super::block_on(run.relay())));
        for b in buyers {
            if b.join().is_err() {
                run.violation("a buyer thread panicked".to_owned());
            }
        }
        run.buyers_done.store(true, Ordering::SeqCst);
        for t in [sweeper, relay] {
            if t.join().is_err() {
                run.violation("the sweeper or the relay panicked".to_owned());
            }
        }
    });
    let mut report = None;
    on_thread(&mut || report = Some(super::block_on(run.audit())));
    report.unwrap_or_default()
}

/// Explorations and sales on one store must not meet: each sale gets an occurrence of its
/// own.
fn unique_occ() -> OccKey {
    occ(&format!("flash-{}", uuid::Uuid::new_v4().simple()))
}

/// Lose the acknowledgement of one commit in `every`.
struct LoseEvery {
    every: u32,
    count: AtomicU32,
    lost: AtomicU32,
}

impl Hook for &LoseEvery {
    async fn before(&self) {}
    fn after_commit(&self, r: Result<Committed, CommitError>) -> Result<Committed, CommitError> {
        if r.is_ok() && self.every > 0 && self.count.fetch_add(1, Ordering::Relaxed) % self.every == self.every - 1 {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("flash sale: acknowledgement lost after the commit".into()).into());
        }
        r
    }
}

#[derive(Default)]
struct Answers {
    placed: BTreeMap<String, u32>,
    full: u64,
    confirmed: BTreeMap<String, u32>,
    refunded: BTreeSet<String>,
    violations: Vec<String>,
}

#[derive(Default)]
struct Delivered {
    ids: BTreeSet<u64>,
    events: Vec<(String, &'static str)>,
}

struct Run<'a, S> {
    store: &'a S,
    clock: &'a ManualClock,
    occ: OccKey,
    sale: FlashSale,
    next_buyer: AtomicU32,
    buyers_done: AtomicBool,
    lose: LoseEvery,
    answers: Mutex<Answers>,
    delivered: Mutex<Delivered>,
}

const TTL_SECS: i64 = 600;
const TRIES: usize = 100;
/// Requests a buyer makes while the sale is full.
const FULL_RETRIES: usize = 20;
/// Violations kept (a broken store can produce one per event).
const MAX_VIOLATIONS: usize = 100;

impl<S: AsyncStore> Run<'_, S> {
    fn violation(&self, v: String) {
        let mut a = self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if a.violations.len() < MAX_VIOLATIONS {
            a.violations.push(v);
        }
    }

    fn with_answers(&self, f: impl FnOnce(&mut Answers)) {
        f(&mut self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Retry `op` while it fails retryably (a lost acknowledgement, contention).
    async fn retrying<T, R: fmt::Display>(
        &self,
        what: &str,
        mut op: impl AsyncFnMut() -> Result<T, OpError<R>>,
    ) -> Option<T> {
        for _ in 0..TRIES {
            match op().await {
                Ok(t) => return Some(t),
                Err(e) if e.is_retryable() => std::thread::yield_now(),
                Err(e) => {
                    self.violation(format!("{what}: {e}"));
                    return None;
                }
            }
        }
        self.violation(format!("{what}: still failing after {TRIES} tries"));
        None
    }

    async fn buy(&self) {
        let e = AsyncEngine::with_clock(Proxy { inner: self.store, hook: &self.lose }, self.clock);
        loop {
            let i = self.next_buyer.fetch_add(1, Ordering::SeqCst) as usize;
            if i >= self.sale.buyers {
                return;
            }
            let (who, hr) = (format!("buyer{i}"), format!("r{i}"));
            let quantity = 1 + (i % 2) as u32;
            let request = req(&self.occ, &who, &hr, quantity);
            // A buyer told `Full` keeps trying for a while, as buyers at a flash sale do:
            // seats come back as holds fail and lapse.
            let mut answer = None;
            // Whether an attempt's acknowledgement was lost: it may have placed the hold.
            let mut lost_ack = false;
            'buy: for _ in 0..FULL_RETRIES {
                for _ in 0..TRIES {
                    match e.request(&request).await {
                        Ok(RequestOutcome::Full { .. }) => {
                            self.with_answers(|a| a.full += 1);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            continue 'buy;
                        }
                        Ok(a) => {
                            answer = Some(a);
                            break 'buy;
                        }
                        Err(err @ OpError::Store(_)) if err.is_retryable() => lost_ack = true,
                        Err(err) if err.is_retryable() => {}
                        Err(OpError::Refused(RequestRefusal::RefUsed)) if lost_ack => {
                            // The attempt whose acknowledgement was lost placed the hold,
                            // and it lapsed and ended before the retry: refs are single-use.
                            self.with_answers(|a| {
                                a.placed.insert(hr.clone(), quantity);
                            });
                            break 'buy;
                        }
                        Err(err) => {
                            self.violation(format!("request {hr}: {err}"));
                            break 'buy;
                        }
                    }
                    std::thread::yield_now();
                }
                self.violation(format!("request {hr}: still failing after {TRIES} tries"));
                break;
            }
            let expires_at = match answer {
                None => continue,
                Some(RequestOutcome::AwaitingPayment { checkout, .. }) => {
                    self.with_answers(|a| {
                        a.placed.insert(hr.clone(), quantity);
                    });
                    checkout.expires_at
                }
                Some(other) => {
                    self.violation(format!("request {hr}: unexpected {other:?}"));
                    continue;
                }
            };
            let result = match i % 5 {
                0 | 2 | 3 => paid(&self.occ, &who, &hr, &format!("pi_{i}")),
                1 => PaymentResult::failed(self.occ.clone(), actor(&who), r(&hr)),
                _ => continue, // never pays: the sweep expires it
            };
            if i % 5 == 2 {
                // Pays late: once the sweeper's clock has passed the hold's expiry (a
                // refund signal, whether or not the sweep got to it first).
                for _ in 0..10_000 {
                    if crate::Clock::now(&self.clock) > expires_at || self.buyers_done.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            let deliveries = if i % 3 == 0 { 2 } else { 1 };
            let mut first: Option<Settlement> = None;
            for _ in 0..deliveries {
                let Some(s) = self.retrying("settle", async || e.settle(&result).await).await else { break };
                match &first {
                    None => first = Some(s.clone()),
                    Some(f) if same_answer(f, &s) => {}
                    Some(f) => self.violation(format!("settle {hr}: redelivery answered {s:?}, first {f:?}")),
                }
            }
            self.with_answers(|a| match first {
                Some(Settlement::Confirmed { .. }) => {
                    a.confirmed.insert(hr.clone(), quantity);
                }
                Some(Settlement::PaidButNoHold { .. }) => {
                    a.refunded.insert(hr.clone());
                }
                _ => {}
            });
        }
    }

    async fn sweep(&self) {
        let e = AsyncEngine::with_clock(Proxy { inner: self.store, hook: &self.lose }, self.clock);
        while !self.buyers_done.load(Ordering::SeqCst) {
            self.clock.advance(Duration::seconds(TTL_SECS / 20));
            self.retrying("sweep", async || {
                e.expire_due_of(&self.occ, 16).await.map_err(|err| match err {
                    crate::engine::SweepError::Store { source, .. } => OpError::<StoreError>::Store(source),
                })
            })
            .await;
            // A hold lives about 20 of these: long enough to be paid, short enough to lapse
            // when it is not.
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }

    async fn relay(&self) {
        loop {
            let done = self.buyers_done.load(Ordering::SeqCst);
            let n = self.deliver_once().await;
            if done && n == 0 {
                return;
            }
            if n == 0 {
                std::thread::yield_now();
            }
        }
    }

    /// Deliver one batch to the deduplicating consumer; answer how many events in it were
    /// new to the consumer (a store that never forgets acknowledged events ends at 0).
    async fn deliver_once(&self) -> usize {
        let batch = match self.store.pending_events(64).await {
            Ok(b) => b,
            Err(e) => {
                self.violation(format!("pending_events: {e}"));
                return 0;
            }
        };
        let mut new = 0;
        let mut twice = Vec::new();
        {
            let mut seen = self.delivered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for ev in &batch {
                if !seen.ids.insert(ev.id.0) {
                    // An idempotent consumer drops it: whatever it was, it is lost to it.
                    twice.push(ev.id.0);
                    continue;
                }
                if ev.event.occ_key == self.occ {
                    let hr = ev.event.hold_ref.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
                    seen.events.push((hr, ev.event.kind.type_str()));
                }
                new += 1;
            }
        }
        for id in twice {
            self.violation(format!("event id {id} delivered twice"));
        }
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        if let Err(e) = self.store.ack_events(&ids).await {
            self.violation(format!("ack_events: {e}"));
        }
        new
    }

    async fn audit(&self) -> FlashSaleReport {
        // Everything lapses; the sweep ends it; the relay delivers the rest.
        self.clock.advance(Duration::seconds(TTL_SECS * 10));
        let e = AsyncEngine::with_clock(Proxy { inner: self.store, hook: Plain }, self.clock);
        for _ in 0..1000 {
            match e.expire_due_of(&self.occ, 256).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => {
                    self.violation(format!("final sweep: {err}"));
                    break;
                }
            }
        }
        while self.deliver_once().await > 0 {}
        let a = std::mem::take(&mut *self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let d = std::mem::take(&mut *self.delivered.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut v = a.violations.clone();
        let confirmed_seats: u64 = a.confirmed.values().map(|q| u64::from(*q)).sum();
        if confirmed_seats > u64::from(self.sale.capacity) {
            v.push(format!("oversold: {confirmed_seats} seats confirmed of {}", self.sale.capacity));
        }
        // The counters against the records.
        match self.store.load(&self.occ, &[]).await {
            Ok(snap) => match snap.occurrence {
                Some(occ) => {
                    let u = occ.counters.get(&crate::catalogue::Dim::Total);
                    if u.confirmed != confirmed_seats || u.held != 0 {
                        v.push(format!(
                            "counters {u:?} after the sweep; the buyers were told {confirmed_seats} seats are theirs"
                        ));
                    }
                }
                None => v.push("the occurrence vanished".to_owned()),
            },
            Err(err) => v.push(format!("load: {err}")),
        }
        let mut booked = 0u64;
        let mut after: Option<RecordKey> = None;
        loop {
            let page = match self.store.scan(&self.occ, RecordKind::Booking, after.as_ref(), 256).await {
                Ok(p) => p,
                Err(err) => {
                    v.push(format!("scan: {err}"));
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(last.value.key());
            for rec in &page {
                if let Record::Booking(h) = &rec.value {
                    match h.state {
                        HoldState::Confirmed => booked += u64::from(h.quantity),
                        HoldState::Held => v.push(format!("booking {} still held after the sweep", h.hold_ref)),
                        _ => {}
                    }
                }
            }
        }
        if booked != confirmed_seats {
            v.push(format!("the bookings confirm {booked} seats; the buyers were told {confirmed_seats}"));
        }
        // Events: each hold placed once, ended once; each payment accounted once.
        let mut per_ref: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
        for (hr, kind) in &d.events {
            per_ref.entry(hr.as_str()).or_default().push(kind);
        }
        let count = |hr: &str, kind: &str| per_ref.get(hr).map_or(0, |ks| ks.iter().filter(|k| **k == kind).count());
        for hr in a.placed.keys() {
            let placed = count(hr, "hold_placed");
            let ended = count(hr, "hold_confirmed") + count(hr, "hold_released") + count(hr, "hold_expired");
            if placed != 1 || ended != 1 {
                v.push(format!("hold {hr}: {placed} hold_placed and {ended} endings delivered (want 1 and 1)"));
            }
            let confirmed = count(hr, "hold_confirmed");
            if confirmed != usize::from(a.confirmed.contains_key(hr)) {
                v.push(format!(
                    "hold {hr}: {confirmed} hold_confirmed delivered, confirmed answer given: {}",
                    a.confirmed.contains_key(hr)
                ));
            }
        }
        for hr in &a.refunded {
            if count(hr, "refund_required") != 1 {
                v.push(format!("refund for {hr}: {} refund_required delivered (want 1)", count(hr, "refund_required")));
            }
        }
        let unknown = per_ref.keys().filter(|hr| !hr.is_empty() && !a.placed.contains_key(**hr)).count();
        if unknown > 0 {
            v.push(format!("{unknown} refs have events but were never placed"));
        }
        if v.len() > MAX_VIOLATIONS {
            let more = v.len() - MAX_VIOLATIONS;
            v.truncate(MAX_VIOLATIONS);
            v.push(format!("... and {more} more"));
        }
        FlashSaleReport {
            placed: a.placed.len() as u64,
            full: a.full,
            confirmed_seats,
            refunds: a.refunded.len() as u64,
            lost_acks: u64::from(self.lose.lost.load(Ordering::Relaxed)),
            events: d.ids.len() as u64,
            violations: v,
        }
    }
}

/// Whether two answers to one payment agree (a redelivery may say it is a replay).
fn same_answer(first: &Settlement, again: &Settlement) -> bool {
    match (first, again) {
        (Settlement::Confirmed { .. }, Settlement::Confirmed { .. }) => true,
        (Settlement::PaidButNoHold { refund: a, .. }, Settlement::PaidButNoHold { refund: b, .. }) => a == b,
        (Settlement::Released | Settlement::Noop, Settlement::Released | Settlement::Noop) => true,
        (a, b) => a == b,
    }
}
