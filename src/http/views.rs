//! The JSON the router answers where a library type's own serde is a storage format: a
//! booking as a shop reads it (RFC 3339 instants, readable states, money as strings).
//!
//! Owns: [`BookingView`]. May not touch: the engine, the rules.

use serde::Serialize;
use time::OffsetDateTime;

use crate::contract::{ActorId, CheckoutLine, Metadata, Money, OccKey, Ref};
use crate::holds::{Hold, HoldView};
use crate::seating::SeatId;
use crate::tickets::TicketState;

/// A booking (or hold) as the router answers it.
#[derive(Debug, Clone, Serialize)]
pub struct BookingView {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Who holds it.
    pub actor: ActorId,
    /// Its ref.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Its state at the instant it was read: `live`, `lapsed`, `confirmed`, `released`,
    /// `expired` or `cancelled`.
    pub state: &'static str,
    /// Seats (over all lines).
    pub quantity: u32,
    /// The total price.
    #[serde(flatten)]
    pub price: Money,
    /// The lines of a tiered order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<CheckoutLine>,
    /// The seats of a seated booking.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seat_ids: Vec<SeatId>,
    /// When it was placed.
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    /// When it lapses unless paid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it reached its state, once it ended or was confirmed.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<OffsetDateTime>,
    /// Each ticket's state (`valid`, `checked_in`, `cancelled`), in ticket order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<&'static str>,
    /// Seats cancelled so far.
    pub cancelled_seats: u32,
    /// Whether a late payment revived it.
    pub revived: bool,
    /// The caller's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl BookingView {
    /// `hold` as at `now`.
    pub fn of(hold: &Hold, now: OffsetDateTime) -> Self {
        let state = match hold.view(now) {
            HoldView::Live => "live",
            HoldView::Lapsed => "lapsed",
            HoldView::Confirmed => "confirmed",
            HoldView::Released => "released",
            HoldView::Expired => "expired",
            _ => "cancelled",
        };
        Self {
            occ_key: hold.occ_key.clone(),
            actor: hold.actor.clone(),
            hold_ref: hold.hold_ref.clone(),
            state,
            quantity: hold.quantity,
            price: hold.price,
            lines: hold.lines.to_vec(),
            seat_ids: hold.seat_ids.to_vec(),
            placed_at: hold.placed_at,
            expires_at: hold.expires_at,
            ended_at: hold.ended_at,
            tickets: hold
                .tickets
                .iter()
                .map(|t| match t {
                    TicketState::Valid => "valid",
                    TicketState::CheckedIn { .. } => "checked_in",
                    _ => "cancelled",
                })
                .collect(),
            cancelled_seats: hold.cancelled_seats,
            revived: hold.revived,
            metadata: hold.metadata.clone(),
        }
    }
}
