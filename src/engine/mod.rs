//! The engine: the thin shell that ties the pure rules to a store.
//!
//! Owns: [`AsyncEngine`] — it runs any [`Operation`](crate::operation::Operation) through
//! the one loop in `run.rs` ([`AsyncEngine::run`]: read the clock once, load, decide in pure
//! code, commit; on a lost race load and decide again, a bounded number of times); its named
//! methods are sugar naming an operation — and [`Engine`], its blocking face for blocking
//! stores (the same futures, driven to completion on the calling thread). Errors:
//! [`OpError`], typed per operation by what the rules refuse.
//!
//! May not touch: the rules themselves (they live in the lifecycle modules) or any storage
//! detail beyond the [`Store`] / [`AsyncStore`] traits. The optional read cache
//! (`cache.rs`) only feeds that loop; [`AsyncEngine::with_read_cache`] says why it is safe.

pub(crate) mod block_on;
mod cache;
mod error;
mod keyed;
mod kind;
mod run;

pub use crate::catalogue::{OpenRefusal, PriceRefusal};
pub use crate::kind::{Classify, ErrorKind};
pub use crate::operation::Never;
pub use cache::ReadCacheStats;
pub use error::{OpError, SweepError, UnknownOccurrence};
pub use keyed::{BlockingWithOpKey, WithOpKey};
pub use run::unplanned_loads;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::Duration;

use crate::catalogue::{Availability, BlockOutcome, BlockRefusal, OccurrenceConfig, availability};
use crate::clock::{Clock, SystemClock};
use crate::contract::{
    ActorId, BlockName, CheckoutRequest, EventId, Money, OccKey, OutboxEvent, ParseError, PaymentResult, Ref, TierName,
};
use crate::holds::{
    AbandonOutcome, CancelOutcome, CancelRefusal, ExtendRefusal, Hold, HoldRequest, RequestOutcome, RequestRefusal,
};
use crate::ledger::Ledger;
use crate::records::{Occurrence, Record, RecordKey, RecordKind};
use crate::seating::{SeatId, SeatMapView, seat_map_view};
use crate::settlement::Settlement;
use crate::store::{AsyncStore, Store, StoreError};
use crate::tickets::{CheckIn, Ticket, TicketKey, tickets_of};
use crate::waitlist::{Joined, WaitlistRefusal, WaitlistView};
use block_on::block_on;

/// How many times an operation reloads and decides again after losing a race before it
/// answers `Contention`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 64;

/// Why [`open`](AsyncEngine::open) or [`create`](AsyncEngine::create) failed.
pub type OpenError = OpError<OpenRefusal>;
/// Why [`request`](AsyncEngine::request) failed.
pub type RequestError = OpError<RequestRefusal>;
/// Why [`settle`](AsyncEngine::settle) or [`settle_json`](AsyncEngine::settle_json) failed
/// (a result is never refused by the rules; a body may be unparsable).
pub type SettleError = OpError<ParseError>;
/// Why a read of one occurrence failed.
pub type AvailabilityError = OpError<UnknownOccurrence>;
/// Why [`set_price`](AsyncEngine::set_price) failed.
pub type PriceError = OpError<PriceRefusal>;
/// Why [`block`](AsyncEngine::block) or [`unblock`](AsyncEngine::unblock) failed.
pub type BlockError = OpError<BlockRefusal>;
/// Why [`cancel`](AsyncEngine::cancel) failed.
pub type CancelError = OpError<CancelRefusal>;
/// Why [`extend`](AsyncEngine::extend) failed.
pub type ExtendError = OpError<ExtendRefusal>;
/// Why a waiting-list operation failed.
pub type WaitlistError = OpError<WaitlistRefusal>;
/// Why a ticket operation failed.
pub type TicketError = OpError<TicketRefusal>;

/// Why a signed or provider webhook was refused.
pub type WebhookError = OpError<WebhookRefusal>;

/// Why a signed or provider webhook was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WebhookRefusal {
    /// The signature does not verify (answer 401).
    #[error("bad webhook signature: {0}")]
    Signature(#[from] crate::webhooks::SignatureError),
    /// The body is not a payment result (answer 400).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The provider's body could not be mapped (answer 400 or 422).
    #[error(transparent)]
    Provider(#[from] crate::webhooks::AdapterError),
}

/// Why a ticket operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TicketRefusal {
    /// The engine has no ticket key: give it one with
    /// [`with_ticket_key`](AsyncEngine::with_ticket_key).
    #[error("no ticket key configured")]
    NoTicketKey,
    /// No booking has this ref at this occurrence.
    #[error("no booking has this ref")]
    UnknownBooking,
}

/// What [`prune`](AsyncEngine::prune) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Released and expired holds.
    pub bookings: usize,
    /// Refund records.
    pub payments: usize,
    /// Rejection records.
    pub rejections: usize,
    /// Operation keys (their recorded first answers).
    #[serde(default)]
    pub op_keys: usize,
}

/// What [`request_basket`](AsyncEngine::request_basket) answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Basket {
    /// Every part was placed (or, free, confirmed): send each checkout request.
    Placed {
        /// Each part's answer, in order.
        parts: Vec<RequestOutcome>,
    },
    /// Part `part` could not be placed (`outcome` says why); the parts placed before it were
    /// released (or, free, cancelled).
    NotPlaced {
        /// Which part, from 0.
        part: usize,
        /// Its answer.
        outcome: RequestOutcome,
    },
}

/// A settle error as another operation's (settling a parsed result is never refused).
fn refusal_into<R>(e: SettleError) -> OpError<R> {
    e.map_refused(|_| OpError::Store(StoreError::Internal("settling a parsed result was refused".into())))
}

/// The asynchronous engine, over any [`AsyncStore`] (every [`Store`] is one). No runtime is
/// assumed; it does no I/O but the store's. [`Engine`] is its blocking face.
///
/// Time comes from its [`Clock`] (read once per operation), ticket credentials from its
/// [`TicketKey`]: both injected, so the rules stay deterministic in tests.
#[derive(Debug)]
pub struct AsyncEngine<S, C = SystemClock> {
    store: S,
    clock: C,
    max_attempts: u32,
    ticket_key: Option<TicketKey>,
    cache: Option<cache::ReadCache>,
}

impl<S: AsyncStore> AsyncEngine<S, SystemClock> {
    /// An engine over `store`, on the system clock.
    pub fn new(store: S) -> Self {
        Self::with_clock(store, SystemClock)
    }
}

impl<S: AsyncStore, C: Clock> AsyncEngine<S, C> {
    /// An engine over `store`, reading time from `clock`.
    pub fn with_clock(store: S, clock: C) -> Self {
        Self { store, clock, max_attempts: DEFAULT_MAX_ATTEMPTS, ticket_key: None, cache: None }
    }

    /// Change how many attempts an operation makes when it keeps losing races (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Keep a read cache of up to `max_records` records (all occurrences together; past that
    /// it starts again empty): an operation's first attempt decides on what this engine last
    /// read or wrote, without a load round trip, and commits that decision under the usual
    /// guards; a lost guard, or an answer with nothing to write, falls back to a load.
    /// [`read_cache_stats`](Self::read_cache_stats) counts both.
    ///
    /// # Why it cannot change an outcome
    ///
    /// A decision made from the cache is a decision made from an old read, and the engine
    /// already lives with old reads: between its load and its commit anything may change, and
    /// the commit carries a guard for every record it read (its version, or its absence) and
    /// for the occurrence's configuration version. A cached view is only older; a record the
    /// cache does not know is taken as absent, which the commit's guard checks like any other
    /// read. The seat counters are the exception: no guard checks that a dimension was *full*
    /// (only that one a commit admits seats to has room), so a view built from old counters
    /// could decide "no room" — no waiting-list offer, a late payment refunded instead of
    /// revived — and commit it. So a cached view carries no counters at all, as if every seat
    /// were free: every decision it makes about room is "there is room", which admits seats,
    /// which the store's capacity guard checks against the real counters. That is not enough
    /// where a waiting list is: there the order of a decision matters (seats owed to the list are
    /// offered before a walk-in request may take them, but only when the counters say the
    /// request does not fit as it is), so an occurrence whose waiting-list record exists is
    /// never decided from the cache. So:
    /// - a speculative **write** that commits was decided on exactly the state it guarded;
    /// - a speculative write that loses a guard is a conflict like any other: the cache forgets
    ///   the occurrence and the operation loads and decides again (a normal attempt);
    /// - a speculative **answer** (nothing to write: a replay, `Already`, `Full`) or refusal
    ///   (`RefUsed`, say) is never returned — no guard has checked it — the operation loads
    ///   and decides again.
    ///
    /// A hit saves the load round trip; a miss (another engine changed what this one
    /// cached) costs a refused commit before the load. It pays where one engine sees most of an
    /// occurrence's traffic (one service instance, or requests routed by occurrence) on a store
    /// whose reads cross a network, and not on [`MemoryStore`](crate::MemoryStore), whose loads
    /// are cheaper than the copies the cache makes.
    pub fn with_read_cache(mut self, max_records: usize) -> Self {
        self.cache = Some(cache::ReadCache::new(max_records));
        self
    }

    /// How often the read cache saved a load (`None` without one): a low hit rate says
    /// another engine writes most of what this one caches, and the cache costs more than it
    /// saves.
    pub fn read_cache_stats(&self) -> Option<ReadCacheStats> {
        self.cache.as_ref().map(cache::ReadCache::stats)
    }

    /// Use `key` for ticket credentials (needed by [`tickets`](Self::tickets) and
    /// [`check_in`](Self::check_in); see [`tickets`](crate::tickets) for why the store never
    /// sees it).
    pub fn with_ticket_key(mut self, key: TicketKey) -> Self {
        self.ticket_key = Some(key);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Run any [`Operation`](crate::operation::Operation) at the engine's clock: load its
    /// records, decide, commit the change in one guarded write, and on a lost race load and
    /// decide again (up to [`with_max_attempts`](Self::with_max_attempts) times). Every named
    /// write (`request`, `settle`, `cancel`…) is this call with its operation; under an
    /// operation key, run it through [`with_op_key`](Self::with_op_key)'s
    /// [`run`](WithOpKey::run).
    ///
    /// [`Engine::run`] shows it, blocking.
    ///
    /// # Errors
    /// [`OpError`] over the operation's refusal.
    pub async fn run<O: crate::operation::Operation>(&self, op: &O) -> Result<O::Output, OpError<O::Refusal>> {
        run::run(&self.store, op, self.clock.now(), self.max_attempts, self.cache.as_ref()).await
    }

    /// Create an occurrence, or change its configuration. Lowering a capacity revokes
    /// nothing (it only refuses new holds until they fit); a change that would strand seats
    /// (removing a tier or pool in use) is refused. Seats a larger capacity frees go to the
    /// waiting list at once.
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError> {
        self.run(&crate::catalogue::Configure { occ_key, config: &config, create_only: false }).await.map(|_| ())
    }

    /// Create an occurrence; refused with [`OpenRefusal::Exists`] if it exists already (a
    /// create-only [`open`](Self::open), for services that must not reconfigure by mistake).
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn create(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError> {
        self.run(&crate::catalogue::Configure { occ_key, config: &config, create_only: true }).await.map(|_| ())
    }

    /// Ask for a hold. Answers `AwaitingPayment` with the checkout request to send,
    /// `Confirmed` for a free order, `Already` with the actor's live hold (or booking),
    /// `PriceChanged`, `LimitReached` or `Full` — by the precedence in
    /// [`decide_request`](crate::holds::decide_request).
    ///
    /// Idempotent by ref: repeating a request with the ref of its live hold answers the same
    /// checkout (marked `replayed`) and writes nothing; refs are single-use per occurrence,
    /// so any other reuse is refused.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn request(&self, req: &HoldRequest) -> Result<RequestOutcome, RequestError> {
        self.run(&crate::holds::Request(req)).await
    }

    /// Settle a payment result (see the [`settlement`](crate::settlement) truth table).
    ///
    /// # Errors
    /// [`SettleError`].
    pub async fn settle(&self, result: &PaymentResult) -> Result<Settlement, SettleError> {
        self.run(&crate::settlement::Settle(result)).await.map_err(|e| e.map_refused(|never| match never {}))
    }

    /// Parse a raw payment-result body (a webhook's) and settle it. Bad bytes answer
    /// [`OpError::Refused`] with the [`ParseError`] and change nothing.
    ///
    /// # Errors
    /// [`SettleError`].
    pub async fn settle_json(&self, body: &[u8]) -> Result<Settlement, SettleError> {
        let result = PaymentResult::from_json(body).map_err(OpError::Refused)?;
        self.settle(&result).await
    }

    /// Verify a Standard Webhooks delivery (before anything is parsed, at the engine's
    /// clock), then parse and settle its body.
    ///
    /// # Errors
    /// [`WebhookError`]: a bad signature or body is refused and changes nothing.
    pub async fn settle_signed(
        &self,
        verifier: &crate::webhooks::Verifier,
        headers: &crate::webhooks::Headers<'_>,
        body: &[u8],
    ) -> Result<Settlement, WebhookError> {
        verifier.verify(headers, body, self.clock.now()).map_err(|e| OpError::Refused(e.into()))?;
        let result = PaymentResult::from_json(body).map_err(|e| OpError::Refused(e.into()))?;
        self.settle(&result).await.map_err(refusal_into)
    }

    /// Map a provider's webhook body through `adapter` and settle it (a pending status
    /// answers `Noop` and changes nothing). Verify its signature first
    /// ([`settle_signed`](Self::settle_signed)'s verifier, or the provider's own scheme).
    ///
    /// # Errors
    /// [`WebhookError`].
    pub async fn settle_provider(
        &self,
        adapter: &dyn crate::webhooks::ProviderAdapter,
        body: &[u8],
    ) -> Result<Settlement, WebhookError> {
        let adapted = adapter.adapt(body).map_err(|e| OpError::Refused(e.into()))?;
        match adapted.result {
            None => Ok(Settlement::Noop),
            Some(result) => self.settle(&result).await.map_err(refusal_into),
        }
    }

    /// Expire up to `limit` due records (run it on a timer): lapsed holds are expired (their
    /// seats freed, `hold_expired` emitted, the waiting list offered the seats) and lapsed
    /// waiting-list offers pass on. Returns how many holds this call moved to `Expired`.
    /// Lapsed holds never block or show anyway.
    ///
    /// # Errors
    /// [`SweepError`].
    pub async fn expire_due(&self, limit: usize) -> Result<usize, SweepError> {
        self.sweep(None, limit).await
    }

    /// As [`expire_due`](Self::expire_due), for one occurrence only.
    ///
    /// # Errors
    /// [`SweepError`].
    pub async fn expire_due_of(&self, occ_key: &OccKey, limit: usize) -> Result<usize, SweepError> {
        self.sweep(Some(occ_key), limit).await
    }

    async fn sweep(&self, occ_key: Option<&OccKey>, limit: usize) -> Result<usize, SweepError> {
        let now = self.clock.now();
        let due =
            self.store.due(occ_key, now, limit).await.map_err(|source| SweepError::Store { expired: 0, source })?;
        let mut expired = 0usize;
        for d in due {
            let key = d.record.value.key();
            let op = crate::holds::Expire { occ_key: &d.occ_key, key: &key };
            match run::run(&self.store, &op, now, self.max_attempts, self.cache.as_ref()).await {
                Ok(n) => expired += n as usize,
                // Others kept changing it: it is theirs to finish; the next sweep sees it.
                Err(OpError::Contention { .. }) => {}
                Err(OpError::Refused(never)) => match never {},
                Err(OpError::Store(source)) => return Err(SweepError::Store { expired, source }),
                Err(e @ OpError::OpKeyReused { .. }) => {
                    return Err(SweepError::Store { expired, source: StoreError::Internal(e.to_string()) });
                }
            }
        }
        Ok(expired)
    }

    /// Seats held (live holds only), sold, blocked, offered and available now, per tier too.
    ///
    /// # Errors
    /// [`AvailabilityError`].
    pub async fn availability(&self, occ_key: &OccKey) -> Result<Availability, AvailabilityError> {
        let now = self.clock.now();
        let snap = self.store.load(occ_key, &[RecordKey::Waitlist]).await?;
        let occ = snap.occurrence.ok_or_else(|| OpError::Refused(UnknownOccurrence { occ_key: occ_key.clone() }))?;
        let waitlist = match snap.records.into_iter().next().flatten().map(|r| r.value) {
            Some(Record::Waitlist(w)) => Some(w),
            _ => None,
        };
        let due = self.store.due(Some(occ_key), now, usize::MAX).await?;
        let due: Vec<Record> = due.into_iter().map(|d| d.record.value).collect();
        Ok(availability(&occ, &due, waitlist.as_ref(), now))
    }

    /// The waiting list of `occ_key`: the entries waiting, in order (actor, tier, seats,
    /// place), and the live offers (actor, tier, seats, expiry), so a shop can show a person
    /// their place and their offer. A read, as [`availability`](Self::availability) is.
    ///
    /// # Errors
    /// [`AvailabilityError`].
    pub async fn waitlist_of(&self, occ_key: &OccKey) -> Result<WaitlistView, AvailabilityError> {
        let now = self.clock.now();
        let snap = self.store.load(occ_key, &[RecordKey::Waitlist]).await?;
        if snap.occurrence.is_none() {
            return Err(OpError::Refused(UnknownOccurrence { occ_key: occ_key.clone() }));
        }
        let wl = match snap.records.into_iter().next().flatten().map(|r| r.value) {
            Some(Record::Waitlist(w)) => Some(w),
            _ => None,
        };
        Ok(crate::waitlist::view(wl.as_ref(), now))
    }

    /// The seat map of a seated occurrence as it stands now: per row, one character a seat
    /// (`.` free, `H` held by a live hold, `S` sold, `B` blocked). Reads every row of the map
    /// (a read for a screen or an audit, not for a hot path); `None` for an occurrence
    /// without seating.
    ///
    /// # Errors
    /// [`AvailabilityError`] (unknown occurrence, or the store failed).
    pub async fn seat_map(&self, occ_key: &OccKey) -> Result<Option<SeatMapView>, AvailabilityError> {
        let now = self.clock.now();
        let occ = self.occurrence(occ_key).await?;
        let Some(map) = occ.config.seating() else { return Ok(None) };
        let keys = map.row_keys();
        let snap = self.store.load(occ_key, &keys).await?;
        let rows: std::collections::HashMap<RecordKey, crate::seating::SeatRow> = keys
            .into_iter()
            .zip(snap.records)
            .filter_map(|(k, r)| match r.map(|r| r.value) {
                Some(Record::SeatRow(row)) => Some((k, row)),
                _ => None,
            })
            .collect();
        Ok(Some(seat_map_view(map, |k| rows.get(k), now)))
    }

    /// The occurrence: its configuration and counters.
    ///
    /// # Errors
    /// [`AvailabilityError`] (unknown occurrence, or the store failed).
    pub async fn occurrence(&self, occ_key: &OccKey) -> Result<Occurrence, AvailabilityError> {
        let snap = self.store.load(occ_key, &[]).await?;
        snap.occurrence.ok_or_else(|| OpError::Refused(UnknownOccurrence { occ_key: occ_key.clone() }))
    }

    /// Up to `limit` occurrence keys in ascending order, after `after`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        self.store.occurrences(after, limit).await
    }

    /// The hold or booking `hold_ref` names at `occ_key`, if any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn booking(&self, occ_key: &OccKey, hold_ref: &Ref) -> Result<Option<Hold>, StoreError> {
        let snap = self.store.load(occ_key, &[RecordKey::Booking(hold_ref.clone())]).await?;
        Ok(snap.records.into_iter().flatten().find_map(|r| match r.value {
            Record::Booking(h) => Some(h),
            _ => None,
        }))
    }

    /// Every hold and booking `actor` has at `occ_key`, oldest first. A listing: it reads
    /// the occurrence's bookings (O(bookings)), not for hot paths.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn bookings_of(&self, occ_key: &OccKey, actor: &ActorId) -> Result<Vec<Hold>, StoreError> {
        let mut out: Vec<Hold> = self
            .scan_all(occ_key, RecordKind::Booking)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Booking(h) if &h.actor == actor => Some(h),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| (a.placed_at, &a.hold_ref).cmp(&(b.placed_at, &b.hold_ref)));
        Ok(out)
    }

    async fn scan_all(&self, occ_key: &OccKey, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        const PAGE: usize = 1_000;
        let mut out = Vec::new();
        let mut after: Option<RecordKey> = None;
        loop {
            let page = self.store.scan(occ_key, kind, after.as_ref(), PAGE).await?;
            let n = page.len();
            after = page.last().map(|r| r.value.key());
            out.extend(page.into_iter().map(|r| r.value));
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// The occurrence's ledger: every accounted payment and refund signal.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ledger(&self, occ_key: &OccKey) -> Result<Ledger, StoreError> {
        let mut records = self.scan_all(occ_key, RecordKind::Payment).await?;
        records.extend(self.scan_all(occ_key, RecordKind::Cancellation).await?);
        Ok(Ledger::from_records(&records))
    }

    /// Forget ended state of `occ_key` older than `horizon` (retention): released and
    /// expired holds that ended before it, refund records of payments settled before it,
    /// rejection records raised before it, and operation keys first used before it.
    /// Confirmed and cancelled bookings, their payment
    /// records, cancellations (the ledger), actor summaries and the waiting list are kept.
    ///
    /// What is no longer recognised afterwards — choose a horizon longer than your payment
    /// provider's longest redelivery window:
    /// - a redelivered `paid` answered with a refund before the horizon is judged afresh: a
    ///   *second* refund signal (its first record is gone);
    /// - a late `paid` for a pruned released or expired hold is still a refund signal, with
    ///   reason `ref_mismatch` or `no_hold` instead of `released`/`expired`;
    /// - the ref of a pruned hold is free again at this occurrence (refs are single-use
    ///   within the horizon);
    /// - a money-mismatched `paid` repeated after the horizon raises its alarm again;
    /// - a write retried under a pruned operation key is carried out afresh (a second scan
    ///   answers `AlreadyCheckedIn`, a second cancellation `Noop`), and the key may be used
    ///   for another command.
    ///
    /// Within the horizon nothing changes: every invariant holds. Work is O(records of the
    /// occurrence); run it off-peak.
    ///
    /// # Errors
    /// [`StoreError`] (what was deleted before the failure stays deleted; run it again).
    pub async fn prune(&self, occ_key: &OccKey, horizon: time::OffsetDateTime) -> Result<Pruned, StoreError> {
        use crate::holds::HoldState;
        use crate::settlement::PaidOutcome;
        use crate::store::{Commit, CommitError, RecordWrite, WriteOp};
        let mut pruned = Pruned::default();
        for kind in [RecordKind::Booking, RecordKind::Payment, RecordKind::Rejection, RecordKind::Op] {
            const PAGE: usize = 1_000;
            let mut after: Option<RecordKey> = None;
            loop {
                let page = self.store.scan(occ_key, kind, after.as_ref(), PAGE).await?;
                let n = page.len();
                after = page.last().map(|r| r.value.key());
                for rec in page {
                    let old = match &rec.value {
                        Record::Booking(h) => {
                            matches!(h.state, HoldState::Released | HoldState::Expired)
                                && h.ended_at.is_some_and(|t| t < horizon)
                        }
                        Record::Payment(p) => matches!(p.outcome, PaidOutcome::Refund(_)) && p.settled_at < horizon,
                        Record::Rejection(r) => r.at < horizon,
                        Record::Op(o) => o.at < horizon,
                        _ => false,
                    };
                    if !old {
                        continue;
                    }
                    let key = rec.value.key();
                    let commit = Commit {
                        records: vec![RecordWrite { key, expected: Some(rec.version), op: WriteOp::Delete }],
                        ..Commit::new(occ_key.clone())
                    };
                    match self.store.commit(commit).await {
                        Ok(_) => match kind {
                            RecordKind::Booking => pruned.bookings += 1,
                            RecordKind::Payment => pruned.payments += 1,
                            RecordKind::Op => pruned.op_keys += 1,
                            _ => pruned.rejections += 1,
                        },
                        // Changed since the scan: not ours to remove now.
                        Err(CommitError::Conflict(_)) => {}
                        Err(CommitError::Invalid(why)) => return Err(StoreError::Internal(why)),
                        Err(CommitError::Store(e)) => return Err(e),
                    }
                }
                if n < PAGE {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    /// Change a tier's price. Existing holds keep their amounts; a tier opened with
    /// `lock_price_while_held` refuses while a live hold has seats of it. Under an operation
    /// key: [`with_op_key`](Self::with_op_key).
    ///
    /// # Errors
    /// [`PriceError`].
    pub async fn set_price(&self, occ_key: &OccKey, tier: &TierName, price: Money) -> Result<(), PriceError> {
        self.without_op_key().set_price(occ_key, tier, price).await.map(|r| r.answer)
    }

    /// Take `seats` seats (of `tier`) out of sale under the name `block`.
    ///
    /// # Errors
    /// [`BlockError`].
    pub async fn block(
        &self,
        occ_key: &OccKey,
        block: &BlockName,
        seats: u32,
        tier: Option<&TierName>,
    ) -> Result<BlockOutcome, BlockError> {
        self.without_op_key().block(occ_key, block, seats, tier).await.map(|r| r.answer)
    }

    /// Take the named seats out of sale under the name `block` (the sound desk): all or
    /// none; a seat held, sold or blocked answers [`BlockOutcome::SeatTaken`].
    ///
    /// # Errors
    /// [`BlockError`].
    pub async fn block_seats(
        &self,
        occ_key: &OccKey,
        block: &BlockName,
        seat_ids: &[SeatId],
    ) -> Result<BlockOutcome, BlockError> {
        self.without_op_key().block_seats(occ_key, block, seat_ids).await.map(|r| r.answer)
    }

    /// Give a block's seats back (to the waiting list first).
    ///
    /// # Errors
    /// [`BlockError`].
    pub async fn unblock(&self, occ_key: &OccKey, block: &BlockName) -> Result<BlockOutcome, BlockError> {
        self.without_op_key().unblock(occ_key, block).await.map(|r| r.answer)
    }

    /// The tickets of booking `hold_ref`, with their credentials (empty before payment, or
    /// at an occurrence that issues none).
    ///
    /// # Errors
    /// [`TicketError`].
    pub async fn tickets(&self, occ_key: &OccKey, hold_ref: &Ref) -> Result<Vec<Ticket>, TicketError> {
        let key = self.ticket_key.as_ref().ok_or(OpError::Refused(TicketRefusal::NoTicketKey))?;
        let hold = self.booking(occ_key, hold_ref).await?.ok_or(OpError::Refused(TicketRefusal::UnknownBooking))?;
        Ok(tickets_of(&hold, key))
    }

    /// Scan a ticket at the door of occurrence `occ_key`: `Admitted` the first time, then
    /// `AlreadyCheckedIn`; `Invalid` for a forged, unknown or unreadable credential;
    /// `Cancelled` for a cancelled ticket; `WrongOccurrence` for a genuine ticket of another
    /// occurrence (it admits nothing and changes nothing). Every answer but `Invalid` names
    /// the ticket (id, seat index, tier). Concurrent scans of one credential admit once. A
    /// scanner that retries after a lost answer should scan under an operation key
    /// ([`with_op_key`](Self::with_op_key)): its retry is answered `Admitted` again.
    ///
    /// # Errors
    /// [`TicketError`] (no key; the store failed).
    pub async fn check_in(&self, occ_key: &OccKey, credential: &str) -> Result<CheckIn, TicketError> {
        self.without_op_key().check_in(occ_key, credential).await.map(|r| r.answer)
    }

    /// Cancel a confirmed booking, or (with `tickets`) some of its tickets: seats freed,
    /// tickets voided, the cancelled seats' whole share refunded (see
    /// [`decide_cancel`](crate::holds::decide_cancel)).
    ///
    /// # Errors
    /// [`CancelError`].
    pub async fn cancel(
        &self,
        occ_key: &OccKey,
        hold_ref: &Ref,
        tickets: Option<&[u32]>,
    ) -> Result<CancelOutcome, CancelError> {
        self.without_op_key().cancel(occ_key, hold_ref, tickets).await.map(|r| r.answer)
    }

    /// As [`cancel`](Self::cancel), refunding `refund` under the shop's own policy (at most
    /// the cancelled seats' share, in the booking's currency): the answer, the
    /// `refund_required` event and the ledger carry it.
    ///
    /// # Errors
    /// [`CancelError`]: [`RefundTooLarge`](crate::holds::CancelRefusal::RefundTooLarge),
    /// [`RefundCurrency`](crate::holds::CancelRefusal::RefundCurrency) and the others.
    pub async fn cancel_refunding(
        &self,
        occ_key: &OccKey,
        hold_ref: &Ref,
        tickets: Option<&[u32]>,
        refund: Money,
    ) -> Result<CancelOutcome, CancelError> {
        self.without_op_key().cancel_refunding(occ_key, hold_ref, tickets, refund).await.map(|r| r.answer)
    }

    /// Join the waiting list of `occ_key` (for `tier`) for `seats` seats.
    ///
    /// # Errors
    /// [`WaitlistError`].
    pub async fn join_waitlist(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        tier: Option<&TierName>,
        seats: u32,
    ) -> Result<Joined, WaitlistError> {
        self.without_op_key().join_waitlist(occ_key, actor, tier, seats).await.map(|r| r.answer)
    }

    /// Leave the waiting list (an offer held passes on). Answers whether there was an entry.
    ///
    /// # Errors
    /// [`WaitlistError`].
    pub async fn leave_waitlist(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        tier: Option<&TierName>,
    ) -> Result<bool, WaitlistError> {
        self.without_op_key().leave_waitlist(occ_key, actor, tier).await.map(|r| r.answer)
    }

    /// Give a live hold more time (a buyer on a slow 3-D Secure page), up to the
    /// occurrence's `max_extension` in all. Answers the checkout request with the new expiry.
    ///
    /// # Errors
    /// [`ExtendError`].
    pub async fn extend(&self, occ_key: &OccKey, hold_ref: &Ref, by: Duration) -> Result<CheckoutRequest, ExtendError> {
        self.without_op_key().extend(occ_key, hold_ref, by).await.map(|r| r.answer)
    }

    /// The buyer abandons the checkout of `hold_ref`: its live hold is released (no payment
    /// result is forged).
    ///
    /// # Errors
    /// [`OpError`] (contention, the store).
    pub async fn abandon(
        &self,
        occ_key: &OccKey,
        actor: &ActorId,
        hold_ref: &Ref,
    ) -> Result<AbandonOutcome, OpError<Never>> {
        self.without_op_key().abandon(occ_key, actor, hold_ref).await.map(|r| r.answer)
    }

    /// Place a basket: one hold per part (each its own occurrence and ref), all or none. If
    /// a part cannot be placed, the parts placed before it are released (or, free,
    /// cancelled). Safe to retry after an error: parts already placed answer their replay,
    /// and a part already paid under its own ref answers `Already { confirmed: true }` and
    /// counts as placed (a paid part is never released by a retry).
    ///
    /// # Errors
    /// [`RequestError`]: a part refused (bad input) — the parts placed before it are
    /// released first; or the store failed — the parts placed stay placed, so retrying the
    /// basket replays them (or they lapse).
    pub async fn request_basket(&self, parts: &[HoldRequest]) -> Result<Basket, RequestError> {
        let mut placed = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let outcome = match self.request(part).await {
                Ok(o) => o,
                // Refused (bad input): the basket cannot be placed; give back what was.
                Err(OpError::Refused(r)) => {
                    self.release_parts(&parts[..placed.len()], &placed).await?;
                    return Err(OpError::Refused(r));
                }
                // The store failed: keep what was placed, so a retry replays it.
                Err(e) => return Err(e),
            };
            match outcome {
                RequestOutcome::AwaitingPayment { .. } | RequestOutcome::Confirmed { .. } => placed.push(outcome),
                // A retry meeting a part already paid under its own ref: that part was placed
                // (by the first try) and bought; it is not a reason to release the others.
                RequestOutcome::Already { ref hold_ref, confirmed: true, .. } if *hold_ref == part.hold_ref => {
                    placed.push(outcome)
                }
                outcome => {
                    self.release_parts(&parts[..placed.len()], &placed).await?;
                    return Ok(Basket::NotPlaced { part: i, outcome });
                }
            }
        }
        Ok(Basket::Placed { parts: placed })
    }

    /// Release (or, free, cancel) the basket parts placed so far.
    async fn release_parts(&self, parts: &[HoldRequest], placed: &[RequestOutcome]) -> Result<(), RequestError> {
        for (p, done) in parts.iter().zip(placed) {
            match done {
                RequestOutcome::Confirmed { .. } => {
                    let _ = self.cancel(&p.occ_key, &p.hold_ref, None).await;
                }
                _ => {
                    self.abandon(&p.occ_key, &p.actor, &p.hold_ref)
                        .await
                        .map_err(|e| e.map_refused(|never| match never {}))?;
                }
            }
        }
        Ok(())
    }

    /// Settle one payment for a basket, part by part: each part's result (its own
    /// occurrence, ref and amount, the basket's `provider_ref`) is settled and accounted on
    /// its own, so a lapsed part is a refund signal for that part's amount while the others
    /// confirm. Safe to retry after an error: parts already settled replay.
    ///
    /// # Errors
    /// [`SettleError`] (the first part that failed).
    pub async fn settle_basket(&self, parts: &[PaymentResult]) -> Result<Vec<Settlement>, SettleError> {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(self.settle(p).await?);
        }
        Ok(out)
    }

    /// Up to `limit` committed, unacknowledged outbox events, oldest first. Publish them, then
    /// [`ack_events`](Self::ack_events): at-least-once delivery, deduplicated by event id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.store.pending_events(limit).await
    }

    /// Acknowledge published events: they are removed from the outbox.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        self.store.ack_events(ids).await
    }

    /// Take up to `limit` pending events and acknowledge them at once (at-most-once: for
    /// tests and in-process consumers that cannot fail).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn drain_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let events = self.pending_events(limit).await?;
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        self.ack_events(&ids).await?;
        Ok(events)
    }
}

/// The blocking engine, over any blocking [`Store`]: [`AsyncEngine`]'s operations, driven to
/// completion on the calling thread (a blocking store's futures are always ready, so this
/// costs nothing). `Send + Sync`: share it (for example in an `Arc`) between threads. Inside
/// a tokio runtime, use [`AsyncEngine`].
///
/// ```
/// use seathold::{Engine, MemoryStore};
/// use seathold::catalogue::OccurrenceConfig;
/// use seathold::contract::{ActorId, Money, OccKey, Ref};
/// use seathold::holds::{HoldRequest, RequestOutcome};
/// use seathold::settlement::Settlement;
///
/// let engine = Engine::new(MemoryStore::new());
/// let gig = OccKey::new("gig-2026-12-01")?;
/// engine.open(&gig, OccurrenceConfig::new(100, 600)?)?;
///
/// let actor = ActorId::new("user-42")?;
/// let price = Money::parse("25.00", "EUR")?;
/// let req = HoldRequest::new(gig.clone(), actor.clone(), Ref::new("r-7f3a")?, price);
/// let RequestOutcome::AwaitingPayment { checkout, .. } = engine.request(&req)? else { panic!() };
/// // send checkout.to_json() to the payment side; later its webhook arrives:
/// let body = br#"{"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-42","ref":"r-7f3a","status":"paid"}"#;
/// assert_eq!(engine.settle_json(body)?, Settlement::Confirmed { replayed: false });
/// assert_eq!(engine.availability(&gig)?.confirmed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Engine<S, C = SystemClock> {
    inner: AsyncEngine<S, C>,
}

impl<S: Store> Engine<S, SystemClock> {
    /// An engine over `store`, on the system clock.
    pub fn new(store: S) -> Self {
        Self { inner: AsyncEngine::new(store) }
    }
}

macro_rules! blocking {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("Blocking form of [`AsyncEngine::", stringify!($name), "`].")]
            ///
            /// # Errors
            /// As the async form.
            pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                block_on(self.inner.$name($($arg),*))
            }
        )*
    };
}

impl<S: Store, C: Clock> Engine<S, C> {
    /// An engine over `store`, reading time from `clock`.
    pub fn with_clock(store: S, clock: C) -> Self {
        Self { inner: AsyncEngine::with_clock(store, clock) }
    }

    /// As [`AsyncEngine::with_max_attempts`].
    pub fn with_max_attempts(self, attempts: u32) -> Self {
        Self { inner: self.inner.with_max_attempts(attempts) }
    }

    /// As [`AsyncEngine::with_read_cache`].
    pub fn with_read_cache(self, max_records: usize) -> Self {
        Self { inner: self.inner.with_read_cache(max_records) }
    }

    /// As [`AsyncEngine::with_ticket_key`].
    pub fn with_ticket_key(self, key: TicketKey) -> Self {
        Self { inner: self.inner.with_ticket_key(key) }
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.inner.store()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        self.inner.clock()
    }

    /// As [`AsyncEngine::read_cache_stats`].
    pub fn read_cache_stats(&self) -> Option<ReadCacheStats> {
        self.inner.read_cache_stats()
    }

    /// Run any [`Operation`](crate::operation::Operation): the blocking form of
    /// [`AsyncEngine::run`], the one entry point every named write is sugar over.
    ///
    /// ```
    /// # use seathold::{Engine, MemoryStore};
    /// # use seathold::catalogue::{Configure, OccurrenceConfig};
    /// # use seathold::contract::{ActorId, Money, OccKey, Ref};
    /// # use seathold::holds::{HoldRequest, Request, RequestOutcome};
    /// let engine = Engine::new(MemoryStore::new());
    /// let gig = OccKey::new("gig")?;
    /// let config = OccurrenceConfig::new(10, 600)?;
    /// engine.run(&Configure { occ_key: &gig, config: &config, create_only: true })?;
    /// let req = HoldRequest::new(gig, ActorId::new("ann")?, Ref::new("r1")?, Money::parse("20.00", "EUR")?);
    /// let outcome = engine.run(&Request(&req))?;
    /// assert!(matches!(outcome, RequestOutcome::AwaitingPayment { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`OpError`] over the operation's refusal.
    pub fn run<O: crate::operation::Operation>(&self, op: &O) -> Result<O::Output, OpError<O::Refusal>> {
        block_on(self.inner.run(op))
    }

    /// The async engine this one drives.
    pub fn as_async(&self) -> &AsyncEngine<S, C> {
        &self.inner
    }

    blocking! {
        fn open(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError>;
        fn create(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError>;
        fn request(&self, req: &HoldRequest) -> Result<RequestOutcome, RequestError>;
        fn settle(&self, result: &PaymentResult) -> Result<Settlement, SettleError>;
        fn settle_json(&self, body: &[u8]) -> Result<Settlement, SettleError>;
        fn settle_signed(&self, verifier: &crate::webhooks::Verifier, headers: &crate::webhooks::Headers<'_>, body: &[u8]) -> Result<Settlement, WebhookError>;
        fn settle_provider(&self, adapter: &dyn crate::webhooks::ProviderAdapter, body: &[u8]) -> Result<Settlement, WebhookError>;
        fn expire_due(&self, limit: usize) -> Result<usize, SweepError>;
        fn expire_due_of(&self, occ_key: &OccKey, limit: usize) -> Result<usize, SweepError>;
        fn availability(&self, occ_key: &OccKey) -> Result<Availability, AvailabilityError>;
        fn waitlist_of(&self, occ_key: &OccKey) -> Result<WaitlistView, AvailabilityError>;
        fn occurrence(&self, occ_key: &OccKey) -> Result<Occurrence, AvailabilityError>;
        fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError>;
        fn booking(&self, occ_key: &OccKey, hold_ref: &Ref) -> Result<Option<Hold>, StoreError>;
        fn bookings_of(&self, occ_key: &OccKey, actor: &ActorId) -> Result<Vec<Hold>, StoreError>;
        fn ledger(&self, occ_key: &OccKey) -> Result<Ledger, StoreError>;
        fn prune(&self, occ_key: &OccKey, horizon: time::OffsetDateTime) -> Result<Pruned, StoreError>;
        fn set_price(&self, occ_key: &OccKey, tier: &TierName, price: Money) -> Result<(), PriceError>;
        fn block(&self, occ_key: &OccKey, block: &BlockName, seats: u32, tier: Option<&TierName>) -> Result<BlockOutcome, BlockError>;
        fn block_seats(&self, occ_key: &OccKey, block: &BlockName, seat_ids: &[SeatId]) -> Result<BlockOutcome, BlockError>;
        fn seat_map(&self, occ_key: &OccKey) -> Result<Option<SeatMapView>, AvailabilityError>;
        fn unblock(&self, occ_key: &OccKey, block: &BlockName) -> Result<BlockOutcome, BlockError>;
        fn tickets(&self, occ_key: &OccKey, hold_ref: &Ref) -> Result<Vec<Ticket>, TicketError>;
        fn check_in(&self, occ_key: &OccKey, credential: &str) -> Result<CheckIn, TicketError>;
        fn cancel(&self, occ_key: &OccKey, hold_ref: &Ref, tickets: Option<&[u32]>) -> Result<CancelOutcome, CancelError>;
        fn cancel_refunding(&self, occ_key: &OccKey, hold_ref: &Ref, tickets: Option<&[u32]>, refund: Money) -> Result<CancelOutcome, CancelError>;
        fn join_waitlist(&self, occ_key: &OccKey, actor: &ActorId, tier: Option<&TierName>, seats: u32) -> Result<Joined, WaitlistError>;
        fn leave_waitlist(&self, occ_key: &OccKey, actor: &ActorId, tier: Option<&TierName>) -> Result<bool, WaitlistError>;
        fn extend(&self, occ_key: &OccKey, hold_ref: &Ref, by: Duration) -> Result<CheckoutRequest, ExtendError>;
        fn abandon(&self, occ_key: &OccKey, actor: &ActorId, hold_ref: &Ref) -> Result<AbandonOutcome, OpError<Never>>;
        fn request_basket(&self, parts: &[HoldRequest]) -> Result<Basket, RequestError>;
        fn settle_basket(&self, parts: &[PaymentResult]) -> Result<Vec<Settlement>, SettleError>;
        fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;
        fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError>;
        fn drain_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;
    }
}
