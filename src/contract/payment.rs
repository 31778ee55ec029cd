//! `events.payment`: the payment side reports how a payment went.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::error::{ParseError, clip};
use super::fields::{Fields, object_from_bytes, ser_opt_rfc3339};
use super::ids::{ActorId, OccKey, ProviderRef, Ref};
use super::money::{Amount, Currency};

/// The `kind` of a payment result.
pub const PAYMENT_KIND: &str = "events.payment";

/// How a payment attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// The money was taken. Wire value `paid`.
    Paid,
    /// The payment was declined or abandoned. Wire value `failed`.
    Failed,
    /// The payment session timed out without payment. Wire value `expired`.
    Expired,
}

impl PaymentStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Parse a wire value.
    ///
    /// # Errors
    /// [`ParseError::UnknownStatus`] for anything but `paid`, `failed`, `expired`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "paid" => Ok(Self::Paid),
            "failed" => Ok(Self::Failed),
            "expired" => Ok(Self::Expired),
            other => Err(ParseError::UnknownStatus { found: clip(other) }),
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PaymentStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// "Here is how that payment went": sent by the payment side, settled by the booking side.
///
/// Required: `occ_key`, `actor`, `ref`, `status`. Optional: `amount` and `currency` (when
/// present, a `paid` result whose money differs from the hold's is rejected),
/// `provider_ref` (the provider's payment id, passed on in refund signals) and
/// `occurred_at`. Unknown fields are ignored.
///
/// Wire shape (field order is frozen; optional fields are omitted when absent):
/// ```json
/// {"kind":"events.payment","occ_key":"gig-2026-12-01","actor":"user-42",
///  "ref":"r-7f3a","status":"paid"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentResult {
    kind: Kind,
    /// The occurrence the checkout was for.
    pub occ_key: OccKey,
    /// Who paid.
    pub actor: ActorId,
    /// The checkout attempt's ref, as sent in the checkout request.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// How the payment went.
    pub status: PaymentStatus,
    /// The amount taken, if the provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// The currency of `amount`, if the provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// The provider's id for the payment: what a refund needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// When the provider says the payment ended.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_rfc3339")]
    pub occurred_at: Option<OffsetDateTime>,
}

/// Serializes as the constant `kind` string, keeping it first in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Kind;

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(PAYMENT_KIND)
    }
}

impl PaymentResult {
    /// A result with only the required fields.
    pub fn new(occ_key: OccKey, actor: ActorId, hold_ref: Ref, status: PaymentStatus) -> Self {
        Self {
            kind: Kind,
            occ_key,
            actor,
            hold_ref,
            status,
            amount: None,
            currency: None,
            provider_ref: None,
            occurred_at: None,
        }
    }

    /// A `paid` result.
    pub fn paid(occ_key: OccKey, actor: ActorId, hold_ref: Ref) -> Self {
        Self::new(occ_key, actor, hold_ref, PaymentStatus::Paid)
    }

    /// A `failed` result.
    pub fn failed(occ_key: OccKey, actor: ActorId, hold_ref: Ref) -> Self {
        Self::new(occ_key, actor, hold_ref, PaymentStatus::Failed)
    }

    /// The same result, carrying the amount and currency the provider charged.
    pub fn with_money(mut self, amount: Amount, currency: Currency) -> Self {
        self.amount = Some(amount);
        self.currency = Some(currency);
        self
    }

    /// The same result, carrying the provider's payment id.
    pub fn with_provider_ref(mut self, provider_ref: ProviderRef) -> Self {
        self.provider_ref = Some(provider_ref);
        self
    }

    /// Parse a payment result from a raw body, for example a webhook's. Never panics; bodies
    /// over [`MAX_MESSAGE_BYTES`](super::MAX_MESSAGE_BYTES) are refused unread.
    ///
    /// # Errors
    /// A [`ParseError`] variant for every way the message can be wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_map(&object_from_bytes(bytes)?)
    }

    /// Parse a payment result from an already-parsed JSON value. (A `Value` has already
    /// collapsed duplicate keys; prefer [`PaymentResult::from_json`] on raw bodies, which
    /// refuses them.)
    ///
    /// # Errors
    /// As [`PaymentResult::from_json`].
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err(ParseError::NotAnObject),
        }
    }

    fn from_map(map: &Map<String, Value>) -> Result<Self, ParseError> {
        let f = Fields(map);
        f.kind(PAYMENT_KIND)?;
        let (amount, currency) = (f.opt_amount()?, f.opt_currency()?);
        if let (Some(a), Some(c)) = (amount, currency) {
            c.check_amount(a).map_err(|source| ParseError::BadMoney { field: "amount", source })?;
        }
        Ok(Self {
            kind: Kind,
            occ_key: f.occ_key()?,
            actor: f.actor()?,
            hold_ref: f.hold_ref()?,
            status: PaymentStatus::parse(f.req_str("status")?)?,
            amount,
            currency,
            provider_ref: f.opt_provider_ref()?,
            occurred_at: f.opt_timestamp("occurred_at")?,
        })
    }

    /// The exact wire bytes of this message.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> serde::Deserialize<'de> for PaymentResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_value(&v).map_err(serde::de::Error::custom)
    }
}
