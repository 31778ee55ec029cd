//! The pure hold state machine: occurrences with a capacity, holds on their seats, and the
//! decisions that move holds between states.
//!
//! Owns: [`Occurrence`] (capacity, hold TTL, seat counters), [`Hold`] and its
//! [`HoldState`]s, lapse-when-read expiry, and [`decide_request`] — the decision whether a
//! request places a hold, answers `Already`, or answers `Full`.
//!
//! May not touch: storage, the system clock, or any I/O. Every function takes the time as an
//! argument and returns what should change; the engine commits it. Depends on
//! [`contract`](crate::contract) only.
//!
//! ```text
//!             request (capacity ok)
//!    (none) ───────────────────────▶ Held{ref, expires_at}
//!                                     │  paid(ref)        ─▶ Confirmed{ref}
//!                                     │  failed/expired   ─▶ Released
//!                                     │  now >= expires_at ─▶ Expired (lazily, or by sweep)
//!    Released / Expired / (none): a new request by the same actor may hold again (new ref)
//! ```

mod hold;
mod occurrence;
mod request;

pub use hold::{Hold, HoldState, HoldView};
pub use occurrence::{Availability, ConfigError, MAX_HOLD_TTL_SECS, Occurrence, OccurrenceConfig, SeatDelta};
pub use request::{HoldRequest, Placement, RequestDecision, RequestOutcome, RequestRefusal, decide_request};

use time::OffsetDateTime;

use crate::contract::{DomainEvent, EventKind};

/// Expire one hold found by the sweep: `Some` with the hold's new state, the seats it frees
/// and its `hold_expired` event if it is held and lapsed at `now`; `None` otherwise (it was
/// confirmed, released, renewed or is still live, so the sweep leaves it alone).
pub fn decide_expiry(hold: &Hold, now: OffsetDateTime) -> Option<(Hold, SeatDelta, DomainEvent)> {
    hold.lapse(now)
}

/// The `hold_expired` event for a hold that lapsed.
pub(crate) fn expired_event(hold: &Hold) -> DomainEvent {
    hold.event(hold.expires_at, EventKind::HoldExpired { quantity: hold.quantity })
}
