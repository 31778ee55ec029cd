//! One hold — a booking once paid — and its transitions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalogue::{Dim, OccurrenceConfig};
use crate::contract::{
    ActorId, Amount, CheckoutRequest, DomainEvent, EventKind, Lines, Metadata, Money, OccKey, Ref, TierName,
};
use crate::records::{Deltas, UsageDelta, nanos};
use crate::seating::SeatList;
use crate::tickets::{TicketState, ticket_id};

/// The stored state of a hold. Whether a `Held` hold has lapsed is not stored: it is read off
/// `expires_at` against the current time ([`Hold::view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HoldState {
    /// Seats are held while the actor pays (possibly lapsed, see [`HoldView`]).
    Held,
    /// Paid (or free): the seats are sold. Only a cancellation ends it.
    Confirmed,
    /// The payment failed or expired, or the buyer abandoned it; the seats were freed.
    Released,
    /// The hold lapsed unpaid; the seats were freed.
    Expired,
    /// Every seat of the booking was cancelled (and refunded); the seats were freed.
    Cancelled,
}

impl HoldState {
    /// A stable name (`held`, `confirmed`, `released`, `expired`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => Self::Held,
            "confirmed" => Self::Confirmed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A hold's state as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HoldView {
    /// Held and `now < expires_at`.
    Live,
    /// Held, but `expires_at <= now`: it blocks nothing and shows nowhere.
    Lapsed,
    /// Paid (or free).
    Confirmed,
    /// Released.
    Released,
    /// Expired.
    Expired,
    /// Cancelled.
    Cancelled,
}

/// A hold on seats of one occurrence, placed under one ref (refs are single-use per
/// occurrence, so the ref names it for good). Once paid it is the booking: it keeps its
/// tickets and its cancellations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Who holds it.
    pub actor: ActorId,
    /// The checkout attempt this hold was requested under.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Seats held (over all lines).
    pub quantity: u32,
    /// The total price, fixed when the hold was placed.
    pub price: Money,
    /// The lines of a tiered order, with their unit prices (empty for a plain hold).
    #[serde(default, skip_serializing_if = "crate::contract::no_lines")]
    pub lines: Lines,
    /// The caller's metadata snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// When the hold was placed.
    #[serde(with = "nanos")]
    pub placed_at: OffsetDateTime,
    /// When the hold lapses unless paid (moved by extensions).
    #[serde(with = "nanos")]
    pub expires_at: OffsetDateTime,
    /// The expiry it was placed with, once an extension moved `expires_at` (`None`: never
    /// extended, `expires_at` is still the first one). Extensions are capped from it.
    #[serde(default, with = "nanos::option", skip_serializing_if = "Option::is_none")]
    pub first_expires_at: Option<OffsetDateTime>,
    /// The stored state.
    pub state: HoldState,
    /// When the hold reached its state (for `Expired`, when it lapsed).
    #[serde(default, with = "nanos::option", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<OffsetDateTime>,
    /// One per seat once the booking is confirmed at an occurrence that issues tickets, in
    /// line order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<TicketState>,
    /// Whether a late payment revived it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revived: bool,
    /// Seats cancelled so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancelled_seats: u32,
    /// Cancellations so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancellations: u32,
    /// Refunded so far by cancellations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Amount>,
    /// The seats of a seated hold, one per seat in ticket order (empty: unseated). Rows
    /// follow the hold's state ([`seating`](crate::seating)): held while it is, sold once
    /// paid, free when it ends or a ticket is cancelled.
    #[serde(default, skip_serializing_if = "SeatList::is_empty")]
    pub seat_ids: SeatList,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            HoldState::Cancelled => HoldView::Cancelled,
        }
    }

    /// Whether the hold is held and live at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.view(now) == HoldView::Live
    }

    /// When the sweep should meet it: its expiry while it is held.
    pub fn due(&self) -> Option<OffsetDateTime> {
        (self.state == HoldState::Held).then_some(self.expires_at)
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
        .with_lines(self.lines.clone())
    }

    pub(crate) fn event(&self, at: OffsetDateTime, kind: EventKind) -> DomainEvent {
        DomainEvent {
            occ_key: self.occ_key.clone(),
            actor: self.actor.clone(),
            hold_ref: Some(self.hold_ref.clone()),
            at,
            kind,
            metadata: self.metadata.clone(),
        }
    }

    /// The `hold_placed` event.
    pub(crate) fn placed_event(&self) -> DomainEvent {
        self.event(
            self.placed_at,
            EventKind::HoldPlaced {
                quantity: self.quantity,
                price: self.price,
                expires_at: self.expires_at,
                lines: self.lines.clone(),
            },
        )
    }

    /// The tier of seat `i` (in line order), for a tiered hold.
    pub fn seat_tier(&self, i: u32) -> Option<&TierName> {
        let mut seen = 0u32;
        for l in self.lines.iter() {
            seen = seen.saturating_add(l.quantity);
            if i < seen {
                return Some(&l.tier);
            }
        }
        None
    }

    /// The unit price of seat `i`: its line's, or for a plain hold its share of the total.
    pub fn seat_tier_price(&self, i: u32) -> Option<Amount> {
        let mut seen = 0u32;
        for l in self.lines.iter() {
            seen = seen.saturating_add(l.quantity);
            if i < seen {
                return Some(l.unit_price);
            }
        }
        None
    }

    /// The seat changes of `per_seat` for `n` seats of each line of this hold (all of
    /// them: `n` = the line's quantity), on the dimensions `config` counts them against.
    pub fn deltas(&self, config: &OccurrenceConfig, per_seat: UsageDelta) -> Deltas {
        let mut d = Deltas::new();
        if self.lines.is_empty() {
            d.add(&[Dim::Total], scale(per_seat, self.quantity));
        } else {
            for l in self.lines.iter() {
                d.add(&config.seat_dims(Some(&l.tier)), scale(per_seat, l.quantity));
            }
        }
        d
    }

    /// The seat changes of `per_seat` for the seats `indices` (ticket order).
    pub fn seat_deltas(&self, config: &OccurrenceConfig, per_seat: UsageDelta, indices: &[u32]) -> Deltas {
        let mut d = Deltas::new();
        for &i in indices {
            d.add(&config.seat_dims(self.seat_tier(i)), per_seat);
        }
        d
    }

    fn ended(&self, state: HoldState, at: OffsetDateTime) -> Hold {
        Hold { state, ended_at: Some(at), ..self.clone() }
    }

    /// If this hold is held and lapsed at `now`: its `Expired` form, the seats it frees and
    /// its `hold_expired` event.
    pub fn lapse(&self, config: &OccurrenceConfig, now: OffsetDateTime) -> Option<(Hold, Deltas, DomainEvent)> {
        (self.view(now) == HoldView::Lapsed).then(|| {
            let expired = self.ended(HoldState::Expired, self.expires_at);
            let event = self.event(self.expires_at, EventKind::HoldExpired { quantity: self.quantity });
            (expired, self.deltas(config, UsageDelta::held(1).negated()), event)
        })
    }

    /// Confirm this hold: its `Confirmed` form (with tickets when `config` issues them), the
    /// seats moving to sold (from held if it is still held); its events, `hold_confirmed`
    /// then one `ticket_issued` per ticket, are appended to `events`. `revived` marks a late payment confirming a hold
    /// that had lapsed or ended.
    pub fn confirm(
        &self,
        config: &OccurrenceConfig,
        now: OffsetDateTime,
        revived: bool,
        events: &mut crate::records::Events,
    ) -> (Hold, Deltas) {
        let mut confirmed = self.ended(HoldState::Confirmed, now);
        confirmed.revived = revived;
        let mut per_seat = UsageDelta::confirmed(1);
        if self.state == HoldState::Held {
            per_seat.held = -1;
        }
        let deltas = self.deltas(config, per_seat);
        events.push(self.event(now, EventKind::HoldConfirmed { quantity: self.quantity, revived }));
        if config.issue_tickets() {
            confirmed.tickets = vec![TicketState::Valid; self.quantity as usize];
            events.extend((0..self.quantity).map(|i| {
                self.event(
                    now,
                    EventKind::TicketIssued { ticket: ticket_id(&self.hold_ref, i), tier: self.seat_tier(i).cloned() },
                )
            }));
        }
        (confirmed, deltas)
    }

    /// Release a live hold: its `Released` form, the seats it frees, and its `hold_released`
    /// event. The caller checks the hold is live.
    pub fn release(&self, config: &OccurrenceConfig, now: OffsetDateTime) -> (Hold, Deltas, DomainEvent) {
        let event = self.event(now, EventKind::HoldReleased { quantity: self.quantity });
        (self.ended(HoldState::Released, now), self.deltas(config, UsageDelta::held(1).negated()), event)
    }

    /// Seats of the booking still sold (not cancelled).
    pub fn standing_seats(&self) -> u32 {
        self.quantity.saturating_sub(self.cancelled_seats)
    }
}

fn scale(d: UsageDelta, n: u32) -> UsageDelta {
    let n = i64::from(n);
    UsageDelta { held: d.held * n, confirmed: d.confirmed * n, blocked: d.blocked * n, offered: d.offered * n }
}

/// A booking is stored under its ref, and due for the sweep at its expiry while held.
impl crate::records::RecordBody for Hold {
    fn key(&self) -> crate::records::RecordKey {
        crate::records::RecordKey::Booking(self.hold_ref.clone())
    }
    fn has_key(&self, key: &crate::records::RecordKey) -> bool {
        matches!(key, crate::records::RecordKey::Booking(r) if *r == self.hold_ref)
    }
    fn due(&self) -> Option<OffsetDateTime> {
        Hold::due(self)
    }
}
