//! Orders: holds on seats, which become bookings when paid.
//!
//! Owns: [`Hold`] (one per ref — refs are single-use per occurrence) and its
//! [`HoldState`]s, lapse-when-read expiry, each actor's [`ActorRecord`] at an occurrence,
//! [`decide_request`] (place a hold, or a confirmed booking for a free order; or answer
//! `Already`, `PriceChanged`, `LimitReached`, `Full`), and what happens to a hold after it is
//! placed except payment: the sweep's expiry ([`decide_expiry`]), abandoning a checkout
//! ([`decide_abandon`]), extending a live hold ([`decide_extend`]), and cancelling a
//! booking ([`decide_cancel`]) — the one way a paid seat is released.
//!
//! May not touch: payments (see [`settlement`](crate::settlement)), storage, the clock.
//! Every function takes the time and what the engine loaded ([`Loaded`]) and returns a
//! [`Step`].
//!
//! ```text
//!             request (capacity ok)
//!    (none) ───────────────────────▶ Held{ref, expires_at}
//!                                     │  paid(ref)        ─▶ Confirmed{ref}  ── cancel ─▶ Cancelled
//!                                     │  failed/expired   ─▶ Released
//!                                     │  abandon          ─▶ Released
//!                                     │  now >= expires_at ─▶ Expired (lazily, or by sweep)
//!    Released / Expired / (none): a new request by the same actor may hold again (new ref)
//! ```

mod actor;
mod cancel;
mod hold;
mod ops;
mod request;
mod room;

pub use actor::{ActorRecord, LiveHold};
pub use cancel::{Cancel, CancelOutcome, CancelRefusal, Cancellation, decide_cancel};
pub use hold::{Hold, HoldState, HoldView};
pub use ops::{Abandon, AbandonOutcome, Expire, Extend, ExtendRefusal, decide_abandon, decide_expiry, decide_extend};
pub use request::{HoldRequest, Order, Request, RequestOutcome, RequestRefusal, decide_request};

pub(crate) use ops::release as ops_release;
pub(crate) use room::{Need, Room, make_room, offer_before_deciding};

#[allow(unused_imports)]
use crate::records::{Loaded, Step};
