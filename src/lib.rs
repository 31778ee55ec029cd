//! # seathold — capacity-safe paid bookings
//!
//! Sell a limited capacity (seats at an occurrence, a resale listing, a slot) to actors who
//! must pay before the seat is theirs: never oversell, never lose a payment.
//!
//! The crate is layered so that every rule lives in one place and does no I/O:
//!
//! | module | owns | may not touch |
//! | --- | --- | --- |
//! | [`contract`] | the JSON wire messages, ids, money (ISO 4217), outbox events | anything else in the crate |
//! | [`catalogue`] | configuration: tiers, pools, prices, blocks, availability | I/O, the clock |
//! | [`holds`] | holds, the request decision, cancellation, extensions | I/O, the clock |
//! | [`settlement`] | the settlement truth table, refund signals, payment records | I/O, the clock |
//! | [`tickets`] | tickets, their credentials, check-in | I/O, the clock, storage |
//! | [`waitlist`] | the waiting list and its offers | holds, payments, storage |
//! | [`ledger`] | the per-occurrence ledger of payments and refunds | storage |
//! | [`opkeys`] | operation keys: a write's first answer, replayed to its retries | the rules of the writes it wraps, storage |
//! | [`webhooks`] | signed payment results (Standard Webhooks), provider adapters | bookings, storage, the clock |
//! | [`records`] | the records stores keep, and the change a decision makes | the rules |
//! | [`operation`] | the unit the engine runs: an occurrence, keys to load, a pure decision (each operation lives in its lifecycle module) | the rules, storage, the clock |
//! | [`store`] | the [`Store`] / [`AsyncStore`] contract, [`MemoryStore`], PostgreSQL, sharding | the rules |
//! | engine ([`Engine`], [`AsyncEngine`]) | load -> decide -> commit, retry on a lost race, for any operation ([`Engine::run`]; the named methods are sugar) | the rules, storage details |
//! | [`clock`] | where "now" comes from ([`SystemClock`], [`ManualClock`]) | |
//! | [`given`] | a pure test seam: given records, when an operation or a decision, then its answer and change | the rules, storage, the clock |
//!
//! The engine reads the clock once per operation and hands the instant to the pure code, so
//! tests and simulations run on a [`ManualClock`] and every decision is reproducible.
//!
//! ```
//! use std::sync::Arc;
//! use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref};
//! use seathold::catalogue::OccurrenceConfig;
//! use seathold::holds::{HoldRequest, RequestOutcome};
//! use seathold::settlement::Settlement;
//! use seathold::{Engine, ManualClock, MemoryStore};
//! use time::{Duration, macros::datetime};
//!
//! let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 19:00 UTC)));
//! let engine = Engine::with_clock(MemoryStore::new(), clock.clone());
//! let slot = OccKey::new("slot-9am")?;
//! engine.open(&slot, OccurrenceConfig::new(1, 600)?)?;
//!
//! let ann = ActorId::new("ann")?;
//! let price = Money::parse("5.00", "USD")?;
//! let first = HoldRequest::new(slot.clone(), ann.clone(), Ref::new("a-1")?, price);
//! assert!(matches!(engine.request(&first)?, RequestOutcome::AwaitingPayment { .. }));
//!
//! // Ann does not pay in time; her hold lapses and stops counting at once.
//! clock.advance(Duration::minutes(10));
//! assert_eq!(engine.availability(&slot)?.available, 1);
//!
//! // Her payment arrives late: a refund signal, not a seat.
//! let late = PaymentResult::paid(slot.clone(), ann, Ref::new("a-1")?);
//! let Settlement::PaidButNoHold { refund, .. } = engine.settle(&late)? else { unreachable!() };
//! assert_eq!(refund.reason.as_str(), "expired");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See the README for the guarantees, the truth table, the wire format and the store
//! contract in one place.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
pub mod background;
pub mod catalogue;
pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod contract;
mod engine;
mod finish;
pub mod given;
pub mod holds;
#[cfg(feature = "http")]
pub mod http;
mod kind;
pub mod ledger;
pub mod operation;
pub mod opkeys;
pub mod records;
pub mod seating;
pub mod settlement;
pub mod store;
pub mod tickets;
pub mod waitlist;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    AsyncEngine, AvailabilityError, Basket, BlockError, BlockingWithOpKey, CancelError, Classify, DEFAULT_MAX_ATTEMPTS,
    Engine, ErrorKind, ExtendError, Never, OpError, OpenError, OpenRefusal, PriceError, PriceRefusal, Pruned,
    ReadCacheStats, RequestError, SettleError, SweepError, TicketError, TicketRefusal, UnknownOccurrence,
    WaitlistError, WebhookError, WebhookRefusal, WithOpKey, unplanned_loads,
};
pub use store::{AsyncStore, MemoryStore, Store};

/// The `time` crate, as seathold's API uses it (`OffsetDateTime`, `Duration`): a store or a
/// service names the same version without a dependency of its own.
pub use time;

/// The `serde_json` crate, as seathold's API uses it ([`Record::to_json`](records::Record::to_json),
/// JSON bodies): a store that keeps records as JSON needs no dependency of its own.
pub use serde_json;

/// The README's code examples, compiled and run as doctests. They use the `postgres` and
/// `conformance` features, so they run under the README's test command,
/// `cargo test --all-features`.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "postgres", feature = "conformance"))]
pub struct ReadmeDoctests;
