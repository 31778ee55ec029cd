//! `events.checkout`: the booking side asks the payment side to take payment for a hold.

use serde::Serialize;
use time::OffsetDateTime;

use super::error::ParseError;
use super::fields::{Fields, object_from_bytes, ser_rfc3339};
use super::ids::{ActorId, OccKey, Ref, TierName};
use super::money::{Amount, Currency, Money};

/// The `kind` of a checkout request.
pub const CHECKOUT_KIND: &str = "events.checkout";

/// "Take payment for this hold": sent by the booking side when a hold is placed.
///
/// The payment side must echo `occ_key`, `actor` and `ref` in its
/// [`PaymentResult`](crate::contract::PaymentResult), should echo `amount` and `currency` (seathold then
/// refuses a result whose money differs), and should not take payment after `expires_at`:
/// a payment that arrives after it is answered with a refund signal.
///
/// Wire shape (field order is frozen):
/// ```json
/// {"kind":"events.checkout","occ_key":"gig-2026-12-01","actor":"user-42",
///  "amount":"25.00","currency":"EUR","ref":"r-7f3a","quantity":1,
///  "expires_at":"2026-12-01T19:10:00Z"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutRequest {
    kind: Kind,
    /// The occurrence the hold is on.
    pub occ_key: OccKey,
    /// Who is paying.
    pub actor: ActorId,
    /// The total to charge for the hold.
    pub amount: Amount,
    /// The currency to charge in.
    pub currency: Currency,
    /// The checkout attempt's ref; the payment result must carry it back.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// How many seats the hold takes.
    pub quantity: u32,
    /// When the hold lapses; a payment after this instant is refunded, not booked.
    #[serde(serialize_with = "ser_rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The order's lines, for an order of tiers (empty, and not written, otherwise): what
    /// the amount is made of.
    #[serde(skip_serializing_if = "no_lines")]
    pub lines: Lines,
}

/// An order's lines, shared: a hold, its checkout request and its `hold_placed` event carry
/// the same list without copying it (cloning is a reference count; an empty list allocates
/// nothing). Serialized as a JSON array of lines. Build one from a `Vec` with
/// [`lines_of`].
pub type Lines = std::sync::Arc<[CheckoutLine]>;

/// `lines` as [`Lines`]; no allocation when empty.
pub fn lines_of(lines: Vec<CheckoutLine>) -> Lines {
    if lines.is_empty() { Lines::default() } else { Lines::from(lines) }
}

pub(crate) fn no_lines(lines: &Lines) -> bool {
    lines.is_empty()
}

/// One line of a tiered order, as the checkout request carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckoutLine {
    /// The tier.
    pub tier: TierName,
    /// Seats of that tier.
    pub quantity: u32,
    /// The price of one seat of it when the hold was placed.
    pub unit_price: Amount,
}

/// Serializes as the constant `kind` string, keeping it first in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Kind;

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(CHECKOUT_KIND)
    }
}

impl CheckoutRequest {
    /// Build a checkout request, under the same rules its parser enforces.
    ///
    /// # Errors
    /// [`ParseError::BadQuantity`] unless `quantity` is 1 to
    /// [`MAX_QUANTITY`](super::MAX_QUANTITY); [`ParseError::BadTimestamp`] if `expires_at`
    /// is outside what RFC 3339 can express (years 0000 to 9999).
    pub fn new(
        occ_key: OccKey,
        actor: ActorId,
        price: Money,
        hold_ref: Ref,
        quantity: u32,
        expires_at: OffsetDateTime,
    ) -> Result<Self, ParseError> {
        if !(1..=super::MAX_QUANTITY).contains(&quantity) {
            return Err(ParseError::BadQuantity { max: super::MAX_QUANTITY });
        }
        if !super::fields::in_rfc3339_range(expires_at) {
            return Err(ParseError::BadTimestamp { field: "expires_at" });
        }
        Ok(Self::from_parts(occ_key, actor, price, hold_ref, quantity, expires_at))
    }

    /// Build from parts already validated (a placed hold's).
    pub(crate) fn from_parts(
        occ_key: OccKey,
        actor: ActorId,
        price: Money,
        hold_ref: Ref,
        quantity: u32,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            kind: Kind,
            occ_key,
            actor,
            amount: price.amount,
            currency: price.currency,
            hold_ref,
            quantity,
            expires_at,
            lines: Lines::default(),
        }
    }

    /// The same request, carrying the lines of a tiered order.
    pub fn with_lines(mut self, lines: Lines) -> Self {
        self.lines = lines;
        self
    }

    /// The amount and currency together.
    pub fn price(&self) -> Money {
        Money { amount: self.amount, currency: self.currency }
    }

    /// Parse a checkout request from raw bytes (for the payment side). Unknown fields are
    /// ignored; `quantity` defaults to 1 and must be a JSON integer (`1.0` is refused).
    ///
    /// # Errors
    /// A [`ParseError`] variant for every way the message can be wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_map(&object_from_bytes(bytes)?)
    }

    fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ParseError> {
        let f = Fields(map);
        f.kind(CHECKOUT_KIND)?;
        let amount = f.opt_amount()?.ok_or(ParseError::MissingField { field: "amount" })?;
        let currency = f.opt_currency()?.ok_or(ParseError::MissingField { field: "currency" })?;
        currency.check_amount(amount).map_err(|source| ParseError::BadMoney { field: "amount", source })?;
        let expires_at = f.opt_timestamp("expires_at")?.ok_or(ParseError::MissingField { field: "expires_at" })?;
        Ok(Self {
            kind: Kind,
            occ_key: f.occ_key()?,
            actor: f.actor()?,
            amount,
            currency,
            hold_ref: f.hold_ref()?,
            quantity: f.quantity()?,
            expires_at,
            lines: lines_of(f.opt_lines()?),
        })
    }

    /// The exact wire bytes of this message.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> serde::Deserialize<'de> for CheckoutRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Object(map) => Self::from_map(&map).map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(ParseError::NotAnObject)),
        }
    }
}
