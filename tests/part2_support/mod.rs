//! Shared by `tests/catalogue_orders.rs` and `tests/after_sale.rs`: a harness that runs one
//! test body, generic over [`AsyncStore`], on MemoryStore and (with `SEATHOLD_PG_URL`, built
//! with the `postgres` feature) on PostgreSQL; short constructors; a fault-injecting store;
//! and the checks every test repeats — nothing changed (a fingerprint of the whole store),
//! every capacity dimension within its cap, counters equal to the sums over the records.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use seathold::catalogue::{Availability, Dim, Line, OccurrenceConfig, Pool, Tier};
use seathold::contract::{
    ActorId, Amount, BlockName, Currency, EventId, EventKind, Money, OccKey, OutboxEvent, PaymentResult, PoolName,
    ProviderRef, Ref, TierName,
};
use seathold::holds::{Hold, HoldRequest, HoldState, RequestOutcome};
use seathold::records::Usage;
use seathold::settlement::Settlement;
use seathold::store::{
    AsyncStore, Call, Commit, CommitError, Committed, Intercept, Intercepted, Record, RecordKey, RecordKind,
    StoreError, Versioned,
};
use seathold::tickets::{TicketKey, TicketState};
use seathold::{AsyncEngine, ManualClock, MemoryStore};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Where every test clock starts (as in the scenario runner).
pub const START: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

/// The tests' ticket key (32 bytes; a service keeps its own secret).
pub const TICKET_KEY: &[u8; 32] = b"part2-tests-ticket-key-32-bytes!";

// ---------------------------------------------------------------------------------------
// Constructors

pub fn k(s: &str) -> OccKey {
    OccKey::new(s).unwrap()
}
pub fn a(s: &str) -> ActorId {
    ActorId::new(s).unwrap()
}
pub fn r(s: &str) -> Ref {
    Ref::new(s).unwrap()
}
pub fn t(s: &str) -> TierName {
    TierName::new(s).unwrap()
}
pub fn p(s: &str) -> PoolName {
    PoolName::new(s).unwrap()
}
pub fn b(s: &str) -> BlockName {
    BlockName::new(s).unwrap()
}
pub fn pr(s: &str) -> ProviderRef {
    ProviderRef::new(s).unwrap()
}
pub fn eur(s: &str) -> Money {
    Money::parse(s, "EUR").unwrap()
}
pub fn usd(s: &str) -> Money {
    Money::parse(s, "USD").unwrap()
}
pub fn amt(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}
pub fn cur(s: &str) -> Currency {
    Currency::parse(s).unwrap()
}
pub fn line(tier: &str, quantity: u32) -> Line {
    Line { tier: t(tier), quantity }
}
/// A tier priced in EUR.
pub fn tier(name: &str, price: &str) -> Tier {
    Tier::new(t(name), eur(price))
}
pub fn pool(name: &str, capacity: u32) -> Pool {
    Pool { pool: p(name), capacity }
}
pub fn cfg(capacity: u32, ttl: u64) -> OccurrenceConfig {
    OccurrenceConfig::new(capacity, ttl).unwrap()
}
/// A request of lines.
pub fn order(occ: &str, actor: &str, hold_ref: &str, lines: &[(&str, u32)]) -> HoldRequest {
    HoldRequest::lines(k(occ), a(actor), r(hold_ref), lines.iter().map(|(t, q)| line(t, *q)).collect())
}
/// A plain request (an occurrence without tiers) for `quantity` seats at `price` in all.
pub fn plain(occ: &str, actor: &str, hold_ref: &str, price: &str, quantity: u32) -> HoldRequest {
    HoldRequest::new(k(occ), a(actor), r(hold_ref), eur(price)).with_quantity(quantity)
}
pub fn paid(occ: &str, actor: &str, hold_ref: &str) -> PaymentResult {
    PaymentResult::paid(k(occ), a(actor), r(hold_ref))
}
pub fn failed(occ: &str, actor: &str, hold_ref: &str) -> PaymentResult {
    PaymentResult::failed(k(occ), a(actor), r(hold_ref))
}
/// A `paid` carrying its money and provider ref.
pub fn paid_with(occ: &str, actor: &str, hold_ref: &str, money: Money, provider: &str) -> PaymentResult {
    paid(occ, actor, hold_ref).with_money(money.amount, money.currency).with_provider_ref(pr(provider))
}

// ---------------------------------------------------------------------------------------
// The harness

pub type Eng<S> = AsyncEngine<S, Arc<ManualClock>>;

/// An engine on a manual clock (starting at [`START`]) with the tests' ticket key.
pub struct H<S> {
    pub e: Eng<S>,
    pub clock: Arc<ManualClock>,
}

/// Run `body` on a fresh MemoryStore.
pub fn on_memory<F, Fut>(body: F)
where
    F: FnOnce(H<MemoryStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    seathold::conformance::block_on(body(H::new(MemoryStore::new())));
}

/// Run `body` on PostgreSQL in a fresh schema (dropped afterwards), or skip loudly without
/// `SEATHOLD_PG_URL` (see `postgres_support::pg_url`).
#[cfg(feature = "postgres")]
pub fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(H<seathold::store::postgres::PostgresStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = crate::postgres_support::pg_url(test) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let store = crate::postgres_support::fresh_store(&url, "part2", 4).await;
        body(H::new(store.clone())).await;
        store.drop_schema().await.unwrap();
    });
}

/// One `#[test]` per store for each generic body: `mod NAME { fn memory(); fn postgres(); }`.
/// (`#[macro_use] mod part2_support;` in the test crate.)
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn memory() {
                crate::part2_support::on_memory(super::$name);
            }
            #[cfg(feature = "postgres")]
            #[test]
            fn postgres() {
                crate::part2_support::on_postgres(concat!(module_path!(), "::postgres"), super::$name);
            }
        }
    )*};
}

impl<S: AsyncStore> H<S> {
    pub fn new(store: S) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        let e =
            AsyncEngine::with_clock(store, clock.clone()).with_ticket_key(TicketKey::new(TICKET_KEY.to_vec()).unwrap());
        Self { e, clock }
    }

    pub fn store(&self) -> &S {
        self.e.store()
    }

    pub fn now(&self) -> OffsetDateTime {
        use seathold::Clock;
        self.clock.now()
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }

    pub async fn open(&self, occ: &str, config: OccurrenceConfig) {
        self.e.open(&k(occ), config).await.unwrap_or_else(|e| panic!("open {occ}: {e}"));
    }

    pub async fn avail(&self, occ: &str) -> Availability {
        self.e.availability(&k(occ)).await.unwrap()
    }

    /// `available` of one tier.
    pub async fn tier_avail(&self, occ: &str, tier: &str) -> u64 {
        self.avail(occ).await.tiers[&t(tier)].available
    }

    /// `available` of every tier, in name order.
    pub async fn tiers_avail(&self, occ: &str) -> BTreeMap<String, u64> {
        self.avail(occ).await.tiers.iter().map(|(t, a)| (t.to_string(), a.available)).collect()
    }

    pub async fn request(&self, req: &HoldRequest) -> RequestOutcome {
        self.e.request(req).await.unwrap_or_else(|e| panic!("request {req:?}: {e}"))
    }

    /// Request and expect a fresh hold; answers its checkout amount.
    pub async fn hold(&self, req: &HoldRequest) -> Money {
        match self.request(req).await {
            RequestOutcome::AwaitingPayment { checkout, replayed: false, .. } => checkout.price(),
            other => panic!("{req:?}: expected a fresh hold, got {other:?}"),
        }
    }

    pub async fn settle(&self, result: &PaymentResult) -> Settlement {
        self.e.settle(result).await.unwrap_or_else(|e| panic!("settle {result:?}: {e}"))
    }

    /// Pay `hold_ref` and expect a fresh confirmation.
    pub async fn pay(&self, occ: &str, actor: &str, hold_ref: &str) {
        let s = self.settle(&paid(occ, actor, hold_ref)).await;
        assert_eq!(s, Settlement::Confirmed { replayed: false }, "pay {occ}/{actor}/{hold_ref}");
    }

    /// Hold and pay in one go.
    pub async fn buy(&self, req: &HoldRequest) -> Money {
        let m = self.hold(req).await;
        self.pay(req.occ_key.as_str(), req.actor.as_str(), req.hold_ref.as_str()).await;
        m
    }

    pub async fn booking(&self, occ: &str, hold_ref: &str) -> Hold {
        self.e.booking(&k(occ), &r(hold_ref)).await.unwrap().unwrap_or_else(|| panic!("no booking {occ}/{hold_ref}"))
    }

    /// Take every pending event.
    pub async fn drain(&self) -> Vec<OutboxEvent> {
        self.e.drain_events(usize::MAX).await.unwrap()
    }

    /// Take every pending event; answer their types.
    pub async fn drain_types(&self) -> Vec<&'static str> {
        self.drain().await.iter().map(|e| e.event.kind.type_str()).collect()
    }

    /// Events pending (not taken).
    pub async fn pending(&self) -> Vec<OutboxEvent> {
        self.e.pending_events(usize::MAX).await.unwrap()
    }

    /// Every record of every occurrence, with its version.
    pub async fn all_records(&self) -> Vec<(OccKey, Versioned<Record>)> {
        let mut out = Vec::new();
        for occ in self.e.occurrences(None, usize::MAX).await.unwrap() {
            for kind in RecordKind::ALL {
                if kind == RecordKind::Waitlist {
                    // One record under the empty key: loaded by key (see
                    // `after_sale::scan_lists_the_waiting_list_record` for `scan`).
                    let snap = self.store().load(&occ, &[RecordKey::Waitlist]).await.unwrap();
                    out.extend(snap.records.into_iter().flatten().map(|r| (occ.clone(), r)));
                    continue;
                }
                let mut after: Option<RecordKey> = None;
                loop {
                    let page = self.store().scan(&occ, kind, after.as_ref(), 500).await.unwrap();
                    let n = page.len();
                    after = page.last().map(|r| r.value.key());
                    out.extend(page.into_iter().map(|r| (occ.clone(), r)));
                    if n < 500 {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Everything the store holds as text: occurrences (configuration, version, counters),
    /// records (key, version, JSON) and pending events. Two equal fingerprints: nothing
    /// changed in between.
    pub async fn fingerprint(&self) -> String {
        let mut s = String::new();
        for occ in self.e.occurrences(None, usize::MAX).await.unwrap() {
            let o = self.e.occurrence(&occ).await.unwrap();
            s.push_str(&format!("occ {occ} v{} {:?} {:?}\n", o.config_version, o.config, o.counters));
        }
        for (occ, rec) in self.all_records().await {
            s.push_str(&format!("rec {occ} {} v{} {}\n", rec.value.key(), rec.version, rec.value.to_json().unwrap()));
        }
        for e in self.pending().await {
            s.push_str(&format!("event {}\n", e.to_json()));
        }
        s
    }

    /// Everything a database reader could see, as one string: every record's JSON and every
    /// pending event.
    pub async fn stored_text(&self) -> String {
        let mut s = String::new();
        for (_, rec) in self.all_records().await {
            s.push_str(&rec.value.to_json().unwrap().to_string());
            s.push('\n');
        }
        for e in self.pending().await {
            s.push_str(&e.to_json());
            s.push('\n');
        }
        s
    }

    /// The occurrence's counters per dimension (every dimension of its configuration).
    pub async fn counters(&self, occ: &str) -> BTreeMap<Dim, Usage> {
        let o = self.e.occurrence(&k(occ)).await.unwrap();
        o.config.dims().into_iter().map(|(d, _)| (d.clone(), o.counters.get(&d))).collect()
    }

    /// Invariant 1 for every dimension, by the counters (which count lapsed holds until they
    /// are expired: an upper bound), and the counters equal to the sums over the records:
    /// held bookings, sold seats not cancelled, blocks, waiting-list offers.
    pub async fn check_dims(&self, occ: &str) {
        let o = self.e.occurrence(&k(occ)).await.unwrap();
        let config = &o.config;
        for (dim, cap) in config.dims() {
            let used = o.counters.get(&dim);
            if let Some(cap) = cap {
                assert!(used.total() <= cap, "{occ}: {dim} oversold: {used:?} > cap {cap}");
            }
        }
        let expected = expected_counters(config, self.all_records().await.iter().filter(|(o, _)| o.as_str() == occ));
        for (dim, _) in config.dims() {
            let want = expected.get(&dim).copied().unwrap_or_default();
            assert_eq!(o.counters.get(&dim), want, "{occ}: counter {dim} differs from the sums over the records");
        }
    }
}

/// The dimensions a seat of `tier` counts against, read off the configuration: the total, the
/// tier's own cap, every pool it names.
pub fn dims_of(config: &OccurrenceConfig, tier: Option<&TierName>) -> Vec<Dim> {
    let mut out = vec![Dim::Total];
    if let Some(t) = tier.and_then(|t| config.tiers().iter().find(|x| &x.tier == t)) {
        out.push(Dim::Tier(t.tier.clone()));
        out.extend(t.pools.iter().cloned().map(Dim::Pool));
    }
    out
}

/// The tier of each seat of a booking, in line order (`None` for a plain booking).
pub fn seat_tiers(h: &Hold) -> Vec<Option<TierName>> {
    if h.lines.is_empty() {
        return vec![None; h.quantity as usize];
    }
    h.lines.iter().flat_map(|l| std::iter::repeat_n(Some(l.tier.clone()), l.quantity as usize)).collect()
}

/// What the counters must be, recomputed from the records.
pub fn expected_counters<'a>(
    config: &OccurrenceConfig,
    records: impl Iterator<Item = &'a (OccKey, Versioned<Record>)>,
) -> BTreeMap<Dim, Usage> {
    let mut out: BTreeMap<Dim, Usage> = BTreeMap::new();
    let mut add = |tier: Option<&TierName>, f: &dyn Fn(&mut Usage)| {
        for d in dims_of(config, tier) {
            f(out.entry(d).or_default());
        }
    };
    for (_, rec) in records {
        match &rec.value {
            Record::Booking(h) => {
                let tiers = seat_tiers(h);
                match h.state {
                    HoldState::Held => tiers.iter().for_each(|t| add(t.as_ref(), &|u| u.held += 1)),
                    HoldState::Confirmed => {
                        for (i, t) in tiers.iter().enumerate() {
                            let standing = match h.tickets.get(i) {
                                Some(TicketState::Cancelled { .. }) => false,
                                Some(_) => true,
                                None => h.tickets.is_empty() && h.cancelled_seats == 0,
                            };
                            if standing {
                                add(t.as_ref(), &|u| u.confirmed += 1);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // A block of named seats counts each seat against its section's tier.
            Record::Block(bl) if !bl.seat_ids.is_empty() => {
                for s in &bl.seat_ids {
                    add(config.seating().and_then(|m| m.tier_of(s)), &|u| u.blocked += 1);
                }
            }
            Record::Block(bl) => {
                let seats = u64::from(bl.seats);
                add(bl.tier.as_ref(), &|u| u.blocked += seats);
            }
            Record::Waitlist(w) => {
                for e in w.entries.iter() {
                    if let Some(o) = &e.offer {
                        let seats = u64::from(o.seats);
                        add(e.tier.as_ref(), &|u| u.offered += seats);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The `refund_required` events among `events`, as (ref, reason, amount, currency).
pub fn refunds(events: &[OutboxEvent]) -> Vec<(String, String, Option<Amount>, Option<Currency>)> {
    events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::RefundRequired { reason, amount, currency, .. } => Some((
                e.event.hold_ref.as_ref().map(|r| r.to_string()).unwrap_or_default(),
                reason.as_str().to_owned(),
                *amount,
                *currency,
            )),
            _ => None,
        })
        .collect()
}

/// Whether event ids are consecutive (one commit's events are).
pub fn consecutive(ids: &[EventId]) -> bool {
    ids.windows(2).all(|w| w[1].0 == w[0].0 + 1)
}

// ---------------------------------------------------------------------------------------
// A fault-injecting store

/// What the next commit suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Fail without applying.
    Before,
    /// Apply, then report failure: a lost acknowledgement (or a crash right after the commit).
    After,
}

/// Commits failing as scripted (one entry per commit, then none), and the seat rows read
/// and written, counted.
#[derive(Default)]
pub struct Faults {
    script: Mutex<VecDeque<Fault>>,
    pub commits: AtomicU64,
    pub lost_acks: AtomicU64,
    /// Every seat row key loaded, in order (what an operation read of the seat map).
    pub rows_read: Mutex<Vec<RecordKey>>,
    /// Every seat row key a commit put or deleted (what an operation wrote of it).
    pub rows_written: Mutex<Vec<RecordKey>>,
}

/// MemoryStore, with [`Faults`] around its calls.
pub type FaultyStore = Intercepted<MemoryStore, Faults>;

impl Faults {
    /// The next commits suffer `faults`, in order.
    pub fn plan(&self, faults: &[Fault]) {
        self.script.lock().unwrap().extend(faults.iter().copied());
    }

    /// Whether every scripted fault was used.
    pub fn plan_used(&self) -> bool {
        self.script.lock().unwrap().is_empty()
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {what}").into())
}

impl Intercept for Faults {
    fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        match call {
            Call::Load { keys, .. } => {
                let rows = keys.iter().filter(|k| k.kind() == RecordKind::SeatRow).cloned();
                self.rows_read.lock().unwrap().extend(rows);
            }
            Call::Commit(commit) => {
                let rows = commit
                    .records
                    .iter()
                    .filter(|w| w.key.kind() == RecordKind::SeatRow && !matches!(w.op, seathold::store::WriteOp::Check))
                    .map(|w| w.key.clone());
                self.rows_written.lock().unwrap().extend(rows);
            }
            _ => {}
        }
        Ok(())
    }

    fn commit(
        &self,
        commit: Commit,
        apply: &dyn Fn(Commit) -> Result<Committed, CommitError>,
    ) -> Result<Committed, CommitError> {
        let fault = self.script.lock().unwrap().pop_front().unwrap_or(Fault::None);
        match fault {
            Fault::None => {
                let done = apply(commit)?;
                self.commits.fetch_add(1, Ordering::Relaxed);
                Ok(done)
            }
            Fault::Before => Err(CommitError::Store(injected("commit not applied"))),
            Fault::After => {
                apply(commit)?;
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.lost_acks.fetch_add(1, Ordering::Relaxed);
                Err(CommitError::Store(injected("commit applied, acknowledgement lost")))
            }
        }
    }
}

/// Whether an engine error is an injected (or any) unavailable store.
pub fn is_unavailable<R>(e: &seathold::OpError<R>) -> bool {
    matches!(e, seathold::OpError::Store(StoreError::Unavailable(_)))
}

/// The tests' one seeded generator (`tests/common/rng.rs`).
pub use crate::rng::Rng;
