//! One actor's hold on some seats of one occurrence, and its transitions.

use time::OffsetDateTime;

use crate::contract::{ActorId, CheckoutRequest, DomainEvent, EventKind, Money, OccKey, Ref};

use super::SeatDelta;

/// The stored state of a hold. Whether a `Held` hold has lapsed is not stored: it is read off
/// `expires_at` against the current time ([`Hold::view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldState {
    /// Seats are held while the actor pays (possibly lapsed, see [`HoldView`]).
    Held,
    /// Paid: the seats are sold. Terminal.
    Confirmed,
    /// The payment failed or expired; the seats were freed. Terminal.
    Released,
    /// The hold lapsed unpaid; the seats were freed. Terminal.
    Expired,
}

impl HoldState {
    /// A stable name for storage (`held`, `confirmed`, `released`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => Self::Held,
            "confirmed" => Self::Confirmed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// A hold's state as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldView {
    /// Held and `now < expires_at`.
    Live,
    /// Held, but `expires_at <= now`: it blocks nothing and shows nowhere.
    Lapsed,
    /// Paid.
    Confirmed,
    /// Released.
    Released,
    /// Expired.
    Expired,
}

/// One actor's current hold at one occurrence. An actor has at most one hold record per
/// occurrence; a new hold after a released or expired one replaces it (with a new ref and the
/// next `attempt` number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Who holds it.
    pub actor: ActorId,
    /// The checkout attempt this hold was requested under.
    pub hold_ref: Ref,
    /// Seats held.
    pub quantity: u32,
    /// The total price of the hold.
    pub price: Money,
    /// 1 for the actor's first hold at this occurrence, then 2, 3, ….
    pub attempt: u32,
    /// When the hold was placed.
    pub placed_at: OffsetDateTime,
    /// When the hold lapses unless paid.
    pub expires_at: OffsetDateTime,
    /// The stored state.
    pub state: HoldState,
    /// When the hold reached its terminal state (for `Expired`, when it lapsed).
    pub ended_at: Option<OffsetDateTime>,
}

impl Hold {
    /// The hold as seen at `now`: a `Held` hold whose `expires_at <= now` has lapsed.
    pub fn view(&self, now: OffsetDateTime) -> HoldView {
        match self.state {
            HoldState::Held if self.expires_at <= now => HoldView::Lapsed,
            HoldState::Held => HoldView::Live,
            HoldState::Confirmed => HoldView::Confirmed,
            HoldState::Released => HoldView::Released,
            HoldState::Expired => HoldView::Expired,
        }
    }

    /// The checkout request for this hold.
    pub fn checkout_request(&self) -> CheckoutRequest {
        CheckoutRequest::from_parts(
            self.occ_key.clone(),
            self.actor.clone(),
            self.price,
            self.hold_ref.clone(),
            self.quantity,
            self.expires_at,
        )
    }

    pub(crate) fn event(&self, at: OffsetDateTime, kind: EventKind) -> DomainEvent {
        DomainEvent {
            occ_key: self.occ_key.clone(),
            actor: self.actor.clone(),
            hold_ref: self.hold_ref.clone(),
            at,
            kind,
        }
    }

    fn ended(&self, state: HoldState, at: OffsetDateTime) -> Hold {
        Hold { state, ended_at: Some(at), ..self.clone() }
    }

    fn seats(&self) -> i64 {
        i64::from(self.quantity)
    }

    /// If this hold is held and lapsed at `now`: its `Expired` form, the seats it frees and
    /// its `hold_expired` event.
    pub fn lapse(&self, now: OffsetDateTime) -> Option<(Hold, SeatDelta, DomainEvent)> {
        (self.view(now) == HoldView::Lapsed).then(|| {
            let expired = self.ended(HoldState::Expired, self.expires_at);
            let event = super::expired_event(self);
            (expired, SeatDelta { held: -self.seats(), confirmed: 0 }, event)
        })
    }

    /// Confirm a live hold: its `Confirmed` form, the seats moving from held to sold, and its
    /// `hold_confirmed` event. The caller checks the hold is live.
    pub fn confirm(&self, now: OffsetDateTime) -> (Hold, SeatDelta, DomainEvent) {
        let event = self.event(now, EventKind::HoldConfirmed { quantity: self.quantity });
        (self.ended(HoldState::Confirmed, now), SeatDelta { held: -self.seats(), confirmed: self.seats() }, event)
    }

    /// Release a live hold: its `Released` form, the seats it frees, and its `hold_released`
    /// event. The caller checks the hold is live.
    pub fn release(&self, now: OffsetDateTime) -> (Hold, SeatDelta, DomainEvent) {
        let event = self.event(now, EventKind::HoldReleased { quantity: self.quantity });
        (self.ended(HoldState::Released, now), SeatDelta { held: -self.seats(), confirmed: 0 }, event)
    }
}
