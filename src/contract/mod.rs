//! The wire contract between the booking side and the payment side.
//!
//! Owns: identifiers ([`OccKey`], [`ActorId`], [`Ref`]), money ([`Amount`], [`Currency`],
//! [`Money`]), the two messages — [`CheckoutRequest`] (`events.checkout`, booking -> payments)
//! and [`PaymentResult`] (`events.payment`, payments -> booking) — and the outbox
//! [`DomainEvent`]s the booking side publishes. Parsing is strict about what is required and
//! tolerant of unknown extra fields; every way a message can be wrong has its own
//! [`ParseError`] variant.
//!
//! May not touch: anything else in this crate. A payment service can depend on this module's
//! types alone; the dependency points one way (booking rules import the contract, never the
//! reverse).
//!
//! # Limits
//!
//! | what | limit |
//! | --- | --- |
//! | a raw message body | [`MAX_MESSAGE_BYTES`] (64 KiB) |
//! | `occ_key`, `actor`, `ref` | 1 to [`MAX_ID_BYTES`] (128) bytes of UTF-8, no control characters |
//! | `provider_ref` | 1 to [`MAX_PROVIDER_REF_BYTES`] (256) bytes, no control characters |
//! | `amount` | a JSON *string*: 1 to 18 integer digits, optionally `.` and 1 to 9 fraction digits; no sign, no exponent |
//! | `currency` | three ASCII upper-case letters (the shape of an ISO 4217 alphabetic code) |
//! | `quantity` | 1 to [`MAX_QUANTITY`] (10,000) |
//! | `lines` | at most [`MAX_LINES`] (64) |
//! | timestamps | RFC 3339 |

mod checkout;
mod error;
mod event;
pub(crate) mod fields;
mod ids;
mod metadata;
mod money;
mod payment;

pub(crate) use checkout::no_lines;
pub use checkout::{CHECKOUT_KIND, CheckoutLine, CheckoutRequest, Lines, lines_of};
pub use error::{IdError, MoneyError, ParseError};
pub use event::{DomainEvent, EventId, EventKind, NoHoldReason, OutboxEvent, RefundReason};
pub use ids::{
    ActorId, BlockName, MAX_ID_BYTES, MAX_PROVIDER_REF_BYTES, MAX_SEAT_NAME_BYTES, OccKey, OpKey, PoolName,
    ProviderRef, Ref, RowName, SectionName, TierName,
};
pub use metadata::{MAX_METADATA_BYTES, Metadata};
pub use money::{Amount, Currency, Money};
pub use payment::{PAYMENT_KIND, PaymentResult, PaymentStatus};

/// The largest raw message [`PaymentResult::from_json`] and [`CheckoutRequest::from_json`]
/// accept, in bytes. A webhook body larger than this is refused before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The largest number of seats one hold may take (over all its lines).
pub const MAX_QUANTITY: u32 = 10_000;

/// The most lines one order may have.
pub const MAX_LINES: usize = 64;
