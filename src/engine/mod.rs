//! The engine: the thin shell that ties the pure rules to a store.
//!
//! Owns: [`Engine`] (blocking) and [`AsyncEngine`], the per-operation errors, and the one
//! copy of each operation's flow — read the clock once, load, decide in pure code, commit,
//! and on a lost race (a [`Conflict`](crate::store::Conflict)) load and decide again, a
//! bounded number of times.
//!
//! May not touch: the rules themselves (they live in [`holds`](crate::holds) and
//! [`settlement`](crate::settlement)) or any storage detail beyond the [`Store`] /
//! [`AsyncStore`] traits.

pub(crate) mod block_on;
mod error;
mod flow;

pub use error::{AvailabilityError, OpenError, RequestError, SettleError, SweepError};

use crate::clock::{Clock, SystemClock};
use crate::contract::{EventId, OccKey, OutboxEvent, PaymentResult};
use crate::holds::{Availability, HoldRequest, OccurrenceConfig, RequestOutcome};
use crate::settlement::Settlement;
use crate::store::{AsyncStore, Store, StoreError};
use block_on::block_on;

/// How many times an operation reloads and decides again after losing a race before it
/// answers `Contention`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 64;

/// The blocking engine, over any [`Store`]. `Send + Sync`: share it (for example in an `Arc`)
/// between threads.
///
/// ```
/// use seathold::{Engine, MemoryStore};
/// use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref};
/// use seathold::holds::{HoldRequest, OccurrenceConfig, RequestOutcome};
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
    store: S,
    clock: C,
    max_attempts: u32,
}

impl<S: Store> Engine<S, SystemClock> {
    /// An engine over `store`, on the system clock.
    pub fn new(store: S) -> Self {
        Self::with_clock(store, SystemClock)
    }
}

impl<S: Store, C: Clock> Engine<S, C> {
    /// An engine over `store`, reading time from `clock`.
    pub fn with_clock(store: S, clock: C) -> Self {
        Self { store, clock, max_attempts: DEFAULT_MAX_ATTEMPTS }
    }

    /// Change how many attempts an operation makes when it keeps losing races (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
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

    /// Create an occurrence, or change its capacity and hold TTL. Lowering the capacity below
    /// what is held or sold revokes nothing; it only refuses new holds until they fit.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError> {
        block_on(flow::open(&self.store, occ_key, config))
    }

    /// Ask for a hold. Answers `AwaitingPayment` with the checkout request to send, `Already`
    /// with the ref of the actor's live or paid hold, or `Full`.
    ///
    /// Idempotent by ref: repeating a request with the ref of the actor's live hold answers
    /// the same checkout (marked `replayed`) and writes nothing.
    ///
    /// # Errors
    /// [`RequestError`].
    pub fn request(&self, req: &HoldRequest) -> Result<RequestOutcome, RequestError> {
        block_on(flow::request(&self.store, req, self.clock.now(), self.max_attempts))
    }

    /// Settle a payment result (see the [`settlement`](crate::settlement) truth table).
    ///
    /// # Errors
    /// [`SettleError`].
    pub fn settle(&self, result: &PaymentResult) -> Result<Settlement, SettleError> {
        block_on(flow::settle(&self.store, result, self.clock.now(), self.max_attempts))
    }

    /// Parse a raw payment-result body (a webhook's) and settle it. Bad bytes answer
    /// [`SettleError::Parse`] and change nothing.
    ///
    /// # Errors
    /// [`SettleError`].
    pub fn settle_json(&self, body: &[u8]) -> Result<Settlement, SettleError> {
        self.settle(&PaymentResult::from_json(body)?)
    }

    /// Expire up to `limit` lapsed holds (run it on a timer). Returns how many this call
    /// moved to `Expired`. Lapsed holds never block or show anyway; the sweep frees their
    /// counters and emits their `hold_expired` events.
    ///
    /// # Errors
    /// [`SweepError`].
    pub fn expire_due(&self, limit: usize) -> Result<usize, SweepError> {
        block_on(flow::expire_due(&self.store, self.clock.now(), limit))
    }

    /// Seats held (live holds only), sold and available now.
    ///
    /// # Errors
    /// [`AvailabilityError`].
    pub fn availability(&self, occ_key: &OccKey) -> Result<Availability, AvailabilityError> {
        block_on(flow::availability(&self.store, occ_key, self.clock.now()))
    }

    /// Up to `limit` committed, unacknowledged outbox events, oldest first. Publish them, then
    /// [`ack_events`](Self::ack_events): at-least-once delivery, deduplicated by event id.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        Store::pending_events(&self.store, limit)
    }

    /// Acknowledge published events: they are removed from the outbox.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        Store::ack_events(&self.store, ids)
    }

    /// Take up to `limit` pending events and acknowledge them at once (at-most-once: for
    /// tests and in-process consumers that cannot fail).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn drain_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let events = self.pending_events(limit)?;
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        self.ack_events(&ids)?;
        Ok(events)
    }
}

/// The asynchronous engine, over any [`AsyncStore`] (every [`Store`] is one). The same flows
/// as [`Engine`], awaited instead of blocked on; no runtime is assumed. See [`Engine`] for
/// what each operation does.
#[derive(Debug)]
pub struct AsyncEngine<S, C = SystemClock> {
    store: S,
    clock: C,
    max_attempts: u32,
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
        Self { store, clock, max_attempts: DEFAULT_MAX_ATTEMPTS }
    }

    /// Change how many attempts an operation makes when it keeps losing races (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
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

    /// As [`Engine::open`].
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(&self, occ_key: &OccKey, config: OccurrenceConfig) -> Result<(), OpenError> {
        flow::open(&self.store, occ_key, config).await
    }

    /// As [`Engine::request`].
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn request(&self, req: &HoldRequest) -> Result<RequestOutcome, RequestError> {
        flow::request(&self.store, req, self.clock.now(), self.max_attempts).await
    }

    /// As [`Engine::settle`].
    ///
    /// # Errors
    /// [`SettleError`].
    pub async fn settle(&self, result: &PaymentResult) -> Result<Settlement, SettleError> {
        flow::settle(&self.store, result, self.clock.now(), self.max_attempts).await
    }

    /// As [`Engine::settle_json`].
    ///
    /// # Errors
    /// [`SettleError`].
    pub async fn settle_json(&self, body: &[u8]) -> Result<Settlement, SettleError> {
        let result = PaymentResult::from_json(body)?;
        self.settle(&result).await
    }

    /// As [`Engine::expire_due`].
    ///
    /// # Errors
    /// [`SweepError`].
    pub async fn expire_due(&self, limit: usize) -> Result<usize, SweepError> {
        flow::expire_due(&self.store, self.clock.now(), limit).await
    }

    /// As [`Engine::availability`].
    ///
    /// # Errors
    /// [`AvailabilityError`].
    pub async fn availability(&self, occ_key: &OccKey) -> Result<Availability, AvailabilityError> {
        flow::availability(&self.store, occ_key, self.clock.now()).await
    }

    /// As [`Engine::pending_events`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        AsyncStore::pending_events(&self.store, limit).await
    }

    /// As [`Engine::ack_events`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        AsyncStore::ack_events(&self.store, ids).await
    }

    /// As [`Engine::drain_events`].
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
