//! Outbox events: the domain facts the booking side publishes after each committed change.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::checkout::Lines;
use super::error::ParseError;
use super::fields::rfc3339;
use super::ids::{ActorId, OccKey, ProviderRef, Ref, TierName};
use super::metadata::Metadata;
use super::money::{Amount, Currency, Money};

/// Why money must go back to the payer: carried by every refund signal. Wire values in
/// parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoHoldReason {
    /// There is no hold for this payment: no such booking, another actor's booking, or no
    /// such occurrence (`no_hold`).
    NoHold,
    /// The hold lapsed before the payment arrived (`expired`).
    Expired,
    /// The hold was released (its payment failed or expired, or the buyer abandoned it)
    /// before this payment arrived (`released`).
    Released,
    /// The actor's hold belongs to another checkout attempt (`ref_mismatch`).
    RefMismatch,
    /// The actor already paid for this hold under another ref, or the booking needed no
    /// payment (`already_paid`).
    AlreadyPaid,
    /// A second, different payment (another `provider_ref`) for a checkout that was already
    /// accounted: the customer was charged twice (`duplicate_payment`).
    DuplicatePayment,
    /// The booking (or some of its tickets) was cancelled (`cancelled`).
    Cancelled,
}

/// The reason carried by a refund signal (the same type; the historical name says where it
/// started).
pub type RefundReason = NoHoldReason;

impl NoHoldReason {
    /// Every reason, in wire order.
    pub const ALL: [NoHoldReason; 7] = [
        Self::NoHold,
        Self::Expired,
        Self::Released,
        Self::RefMismatch,
        Self::AlreadyPaid,
        Self::DuplicatePayment,
        Self::Cancelled,
    ];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHold => "no_hold",
            Self::Expired => "expired",
            Self::Released => "released",
            Self::RefMismatch => "ref_mismatch",
            Self::AlreadyPaid => "already_paid",
            Self::DuplicatePayment => "duplicate_payment",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parse a wire value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for NoHoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NoHoldReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NoHoldReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown refund reason {s:?}")))
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
        /// The order's lines (tiered orders only; not written when empty).
        lines: Lines,
    },
    /// A hold was paid (or needed no payment) and its seats are sold (`hold_confirmed`).
    /// Terminal — except that with `late_payment: revive` a hold that had ended
    /// (`hold_expired` / `hold_released`) can be revived by its payment: it then gets this
    /// event with `revived: true`.
    HoldConfirmed {
        /// Seats sold.
        quantity: u32,
        /// Whether a late payment revived a hold that had already ended.
        revived: bool,
    },
    /// A hold's payment failed or expired, or the buyer abandoned it, and its seats are free
    /// again (`hold_released`). Terminal.
    HoldReleased {
        /// Seats freed.
        quantity: u32,
    },
    /// A hold lapsed unpaid and its seats are free again (`hold_expired`). Terminal.
    HoldExpired {
        /// Seats freed.
        quantity: u32,
    },
    /// A live hold was given more time (`hold_extended`).
    HoldExtended {
        /// The new expiry.
        expires_at: OffsetDateTime,
    },
    /// Money must go back (`refund_required`): the refund signal.
    RefundRequired {
        /// Why.
        reason: NoHoldReason,
        /// The amount to refund, if known (it is unknown only for a payment that names no
        /// booking and carries no amount).
        amount: Option<Amount>,
        /// The currency of `amount`.
        currency: Option<Currency>,
        /// The provider's payment id, if known.
        provider_ref: Option<ProviderRef>,
    },
    /// A ticket was issued for a confirmed seat (`ticket_issued`).
    TicketIssued {
        /// The ticket's id.
        ticket: String,
        /// Its tier, for a tiered occurrence.
        tier: Option<TierName>,
    },
    /// A ticket was voided by a cancellation (`ticket_cancelled`).
    TicketCancelled {
        /// The ticket's id.
        ticket: String,
    },
    /// A ticket was admitted at the door (`checked_in`).
    CheckedIn {
        /// The ticket's id.
        ticket: String,
    },
    /// Seats were set aside for the first waiting-list entry that fits (`waitlist_offered`).
    WaitlistOffered {
        /// The tier, if the entry named one.
        tier: Option<TierName>,
        /// Seats set aside.
        seats: u32,
        /// When the offer lapses.
        expires_at: OffsetDateTime,
    },
    /// A `paid` result was refused because its money differs from the hold's
    /// (`payment_rejected`, raised only at occurrences opened
    /// [`with_rejection_alarm`](crate::catalogue::OccurrenceConfig::with_rejection_alarm)): the
    /// money is still with the provider; investigate.
    PaymentRejected {
        /// `amount_mismatch` or `currency_mismatch`.
        reason: String,
        /// What the result said was paid.
        amount: Option<Amount>,
        /// In what currency.
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
            Self::HoldExtended { .. } => "hold_extended",
            Self::RefundRequired { .. } => "refund_required",
            Self::TicketIssued { .. } => "ticket_issued",
            Self::TicketCancelled { .. } => "ticket_cancelled",
            Self::CheckedIn { .. } => "checked_in",
            Self::WaitlistOffered { .. } => "waitlist_offered",
            Self::PaymentRejected { .. } => "payment_rejected",
        }
    }

    /// Whether this event ends a hold (confirmed, released or expired).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::HoldConfirmed { .. } | Self::HoldReleased { .. } | Self::HoldExpired { .. })
    }
}

/// A domain fact about one hold, one payment, one ticket or one waiting-list offer, before
/// the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The actor.
    pub actor: ActorId,
    /// The checkout attempt (booking) the event is about; `None` only for waiting-list
    /// offers, which no ref names yet.
    pub hold_ref: Option<Ref>,
    /// When the fact became true (for `hold_expired`, when the hold lapsed).
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// The booking's metadata snapshot (the caller's, from its request), carried on every
    /// event of the booking; written last, and only when present.
    pub metadata: Option<Metadata>,
}

/// The id a store gives an event when it commits it. Unique within one store; consumers
/// deduplicate on it. Within one occurrence, ids increase in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A committed event as the outbox yields it.
///
/// Wire shape: `{"id":7,"type":"hold_placed","occ_key":…,"actor":…,"ref":…,"at":…}` plus the
/// kind's own fields (`quantity`; `amount`, `currency`, `expires_at`, and for tiered orders
/// `lines` for `hold_placed`; `revived` when true
/// for `hold_confirmed`; `reason` and, when known, `amount`, `currency`, `provider_ref` for
/// `refund_required`; `ticket` (and `tier`) for ticket events; `tier`, `seats`,
/// `expires_at` for `waitlist_offered`), and last, on every event of a booking whose request
/// carried one, `metadata`. Optional fields are omitted when absent, so the Part 1 events
/// keep their exact bytes.
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

    /// Parse an event from its wire bytes (what a consumer of the outbox receives).
    ///
    /// # Errors
    /// [`ParseError`] if the bytes are not an event this version writes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        let map = super::fields::object_from_bytes(bytes)?;
        let id = map.get("id").and_then(Value::as_u64).ok_or(ParseError::MissingField { field: "id" })?;
        Ok(Self { id: EventId(id), event: DomainEvent::from_map(&map)? })
    }
}

impl DomainEvent {
    /// The event's wire object without an id (how a store may keep it before it has one).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&EventBody { id: None, event: self }).unwrap_or_default()
    }

    /// Parse what [`DomainEvent::to_json`] (or [`OutboxEvent::to_json`]) wrote.
    ///
    /// # Errors
    /// [`ParseError`] if the bytes are not an event this version writes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_map(&super::fields::object_from_bytes(bytes)?)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Self, ParseError> {
        let f = super::fields::Fields(map);
        let hold_ref = f.opt_hold_ref()?;
        let at = f.opt_timestamp("at")?.ok_or(ParseError::MissingField { field: "at" })?;
        let qty = || f.quantity_req();
        let amount = f.opt_amount()?;
        let currency = f.opt_currency()?;
        let expires_at = || f.opt_timestamp("expires_at")?.ok_or(ParseError::MissingField { field: "expires_at" });
        let ticket = || f.req_str("ticket").map(str::to_owned);
        let tier = || f.opt_tier();
        let kind = match f.req_str("type")? {
            "hold_placed" => EventKind::HoldPlaced {
                quantity: qty()?,
                price: Money {
                    amount: amount.ok_or(ParseError::MissingField { field: "amount" })?,
                    currency: currency.ok_or(ParseError::MissingField { field: "currency" })?,
                },
                expires_at: expires_at()?,
                lines: super::checkout::lines_of(f.opt_lines()?),
            },
            "hold_confirmed" => EventKind::HoldConfirmed { quantity: qty()?, revived: f.opt_bool("revived")? },
            "hold_released" => EventKind::HoldReleased { quantity: qty()? },
            "hold_expired" => EventKind::HoldExpired { quantity: qty()? },
            "hold_extended" => EventKind::HoldExtended { expires_at: expires_at()? },
            "refund_required" => EventKind::RefundRequired {
                reason: NoHoldReason::parse(f.req_str("reason")?)
                    .ok_or(ParseError::WrongType { field: "reason", expected: "a refund reason" })?,
                amount,
                currency,
                provider_ref: f.opt_provider_ref()?,
            },
            "ticket_issued" => EventKind::TicketIssued { ticket: ticket()?, tier: tier()? },
            "ticket_cancelled" => EventKind::TicketCancelled { ticket: ticket()? },
            "checked_in" => EventKind::CheckedIn { ticket: ticket()? },
            "waitlist_offered" => {
                EventKind::WaitlistOffered { tier: tier()?, seats: f.seats_req()?, expires_at: expires_at()? }
            }
            "payment_rejected" => EventKind::PaymentRejected {
                reason: f.req_str("reason")?.to_owned(),
                amount,
                currency,
                provider_ref: f.opt_provider_ref()?,
            },
            other => {
                return Err(ParseError::WrongKind {
                    expected: "an outbox event type",
                    found: super::error::clip(other),
                });
            }
        };
        Ok(DomainEvent { occ_key: f.occ_key()?, actor: f.actor()?, hold_ref, at, kind, metadata: f.opt_metadata()? })
    }
}

impl Serialize for OutboxEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventBody { id: Some(self.id), event: &self.event }.serialize(s)
    }
}

struct EventBody<'a> {
    id: Option<EventId>,
    event: &'a DomainEvent,
}

fn time_str(t: &OffsetDateTime) -> String {
    rfc3339(*t)
}

impl Serialize for EventBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let mut m = s.serialize_map(None)?;
        if let Some(id) = self.id {
            m.serialize_entry("id", &id)?;
        }
        m.serialize_entry("type", e.kind.type_str())?;
        m.serialize_entry("occ_key", &e.occ_key)?;
        m.serialize_entry("actor", &e.actor)?;
        if let Some(r) = &e.hold_ref {
            m.serialize_entry("ref", r)?;
        }
        m.serialize_entry("at", &time_str(&e.at))?;
        match &e.kind {
            EventKind::HoldPlaced { quantity, price, expires_at, lines } => {
                m.serialize_entry("quantity", quantity)?;
                m.serialize_entry("amount", &price.amount)?;
                m.serialize_entry("currency", &price.currency)?;
                m.serialize_entry("expires_at", &time_str(expires_at))?;
                if !lines.is_empty() {
                    m.serialize_entry("lines", lines)?;
                }
            }
            EventKind::HoldConfirmed { quantity, revived } => {
                m.serialize_entry("quantity", quantity)?;
                if *revived {
                    m.serialize_entry("revived", &true)?;
                }
            }
            EventKind::HoldReleased { quantity } | EventKind::HoldExpired { quantity } => {
                m.serialize_entry("quantity", quantity)?;
            }
            EventKind::HoldExtended { expires_at } => {
                m.serialize_entry("expires_at", &time_str(expires_at))?;
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
            EventKind::TicketIssued { ticket, tier } => {
                m.serialize_entry("ticket", ticket)?;
                if let Some(t) = tier {
                    m.serialize_entry("tier", t)?;
                }
            }
            EventKind::TicketCancelled { ticket } | EventKind::CheckedIn { ticket } => {
                m.serialize_entry("ticket", ticket)?;
            }
            EventKind::WaitlistOffered { tier, seats, expires_at } => {
                if let Some(t) = tier {
                    m.serialize_entry("tier", t)?;
                }
                m.serialize_entry("seats", seats)?;
                m.serialize_entry("expires_at", &time_str(expires_at))?;
            }
            EventKind::PaymentRejected { reason, amount, currency, provider_ref } => {
                m.serialize_entry("reason", reason)?;
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
        if let Some(md) = &e.metadata {
            m.serialize_entry("metadata", md)?;
        }
        m.end()
    }
}
