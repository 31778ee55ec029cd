//! Outbox events: the domain facts the booking side publishes after each committed change.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::fields::rfc3339;
use super::ids::{ActorId, OccKey, ProviderRef, Ref};
use super::money::{Amount, Currency, Money};

/// Why money arrived for a seat that is not (or no longer) the payer's. Carried by refund
/// signals; wire values in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoHoldReason {
    /// There is no hold for this actor at this occurrence, or no such occurrence (`no_hold`).
    NoHold,
    /// The hold lapsed before the payment arrived (`expired`).
    Expired,
    /// The hold was released (its payment failed or expired) before this payment arrived
    /// (`released`).
    Released,
    /// The actor's hold belongs to another checkout attempt (`ref_mismatch`).
    RefMismatch,
    /// The actor already paid for this hold under another ref (`already_paid`).
    AlreadyPaid,
}

impl NoHoldReason {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHold => "no_hold",
            Self::Expired => "expired",
            Self::Released => "released",
            Self::RefMismatch => "ref_mismatch",
            Self::AlreadyPaid => "already_paid",
        }
    }

    /// Parse a wire value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "no_hold" => Self::NoHold,
            "expired" => Self::Expired,
            "released" => Self::Released,
            "ref_mismatch" => Self::RefMismatch,
            "already_paid" => Self::AlreadyPaid,
            _ => return None,
        })
    }
}

impl fmt::Display for NoHoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, with the facts specific to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A hold was placed and a checkout request issued (`hold_placed`).
    HoldPlaced {
        /// Seats held.
        quantity: u32,
        /// The price of the hold.
        price: Money,
        /// When the hold lapses.
        expires_at: OffsetDateTime,
    },
    /// A hold was paid and its seats are sold (`hold_confirmed`). Terminal.
    HoldConfirmed {
        /// Seats sold.
        quantity: u32,
    },
    /// A hold's payment failed or expired and its seats are free again (`hold_released`).
    /// Terminal.
    HoldReleased {
        /// Seats freed.
        quantity: u32,
    },
    /// A hold lapsed unpaid and its seats are free again (`hold_expired`). Terminal.
    HoldExpired {
        /// Seats freed.
        quantity: u32,
    },
    /// Money arrived that must go back (`refund_required`): the refund signal.
    RefundRequired {
        /// Why the payment could not be booked.
        reason: NoHoldReason,
        /// The amount to refund, if the result or the hold says it.
        amount: Option<Amount>,
        /// The currency of `amount`.
        currency: Option<Currency>,
        /// The provider's payment id, if the result carried it.
        provider_ref: Option<ProviderRef>,
    },
}

impl EventKind {
    /// The wire `type`.
    pub fn type_str(&self) -> &'static str {
        match self {
            Self::HoldPlaced { .. } => "hold_placed",
            Self::HoldConfirmed { .. } => "hold_confirmed",
            Self::HoldReleased { .. } => "hold_released",
            Self::HoldExpired { .. } => "hold_expired",
            Self::RefundRequired { .. } => "refund_required",
        }
    }

    /// Whether this event ends a hold (confirmed, released or expired).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::HoldConfirmed { .. } | Self::HoldReleased { .. } | Self::HoldExpired { .. })
    }
}

/// A domain fact about one hold or one payment, before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The actor.
    pub actor: ActorId,
    /// The checkout attempt.
    pub hold_ref: Ref,
    /// When the fact became true (for `hold_expired`, when the hold lapsed).
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
}

/// The id a store gives an event when it commits it. Unique within one store; consumers
/// deduplicate on it. Within one occurrence, ids increase in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A committed event as the outbox yields it.
///
/// Wire shape: `{"id":7,"type":"hold_placed","occ_key":…,"actor":…,"ref":…,"at":…}` plus the
/// kind's own fields (`quantity`; `amount`, `currency`, `expires_at` for `hold_placed`;
/// `reason` and, when known, `amount`, `currency`, `provider_ref` for `refund_required`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id.
    pub id: EventId,
    /// The event.
    pub event: DomainEvent,
}

impl OutboxEvent {
    /// The exact wire bytes of this event.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for OutboxEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.event;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("type", e.kind.type_str())?;
        m.serialize_entry("occ_key", &e.occ_key)?;
        m.serialize_entry("actor", &e.actor)?;
        m.serialize_entry("ref", &e.hold_ref)?;
        m.serialize_entry("at", &rfc3339(e.at))?;
        match &e.kind {
            EventKind::HoldPlaced { quantity, price, expires_at } => {
                m.serialize_entry("quantity", quantity)?;
                m.serialize_entry("amount", &price.amount)?;
                m.serialize_entry("currency", &price.currency)?;
                m.serialize_entry("expires_at", &rfc3339(*expires_at))?;
            }
            EventKind::HoldConfirmed { quantity }
            | EventKind::HoldReleased { quantity }
            | EventKind::HoldExpired { quantity } => {
                m.serialize_entry("quantity", quantity)?;
            }
            EventKind::RefundRequired { reason, amount, currency, provider_ref } => {
                m.serialize_entry("reason", reason.as_str())?;
                if let Some(a) = amount {
                    m.serialize_entry("amount", a)?;
                }
                if let Some(c) = currency {
                    m.serialize_entry("currency", c)?;
                }
                if let Some(p) = provider_ref {
                    m.serialize_entry("provider_ref", p)?;
                }
            }
        }
        m.end()
    }
}
