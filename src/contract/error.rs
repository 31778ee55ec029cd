//! Typed errors for everything that can be wrong with a wire message or one of its fields.

use crate::kind::{Classify, ErrorKind};
use thiserror::Error;

/// Why an identifier (`occ_key`, `actor`, `ref`, `provider_ref`) was refused.
///
/// The caller should reject the input that carried it (for a webhook: answer 4xx and do not
/// retry); nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is the empty string. Send a non-empty one.
    #[error("must not be empty")]
    Empty,
    /// The identifier is longer than the documented maximum. Use a shorter one (a UUID fits).
    #[error("is {len} bytes long, the maximum is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The identifier contains a control character (such as a newline or NUL), which would
    /// corrupt logs and keys. Strip it at the source.
    #[error("contains a control character")]
    ControlCharacter,
}

impl Classify for IdError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLong { .. } => ErrorKind::PayloadTooLarge,
            _ => ErrorKind::BadRequest,
        }
    }
}

/// Why an amount or a currency was refused.
///
/// The caller should reject the input that carried it; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The amount was a JSON number. Amounts travel as decimal strings (`"25.00"`), never as
    /// floats, so no rounding can creep in: quote it.
    #[error("amount must be a decimal string such as \"25.00\", not a JSON number")]
    NotAString,
    /// The amount is negative. Charges and refunds are both expressed as non-negative amounts.
    #[error("amount must not be negative")]
    Negative,
    /// The amount is not a plain decimal (`1` to 18 integer digits, optionally `.` and 1 to 9
    /// fraction digits; no sign, exponent, spaces or separators).
    #[error("amount {0:?} is not a plain decimal such as \"25.00\"")]
    Malformed(String),
    /// The currency is not three ASCII upper-case letters (the shape of an ISO 4217 code).
    #[error("currency {0:?} is not an ISO 4217 code of three upper-case letters")]
    BadCurrency(String),
    /// The currency has the right shape but ISO 4217 has no such code (`"XYZ"`). Fix the code.
    #[error("currency {0:?} is not in the ISO 4217 table")]
    UnknownCurrency(String),
    /// The amount has more decimals than the currency's minor unit (`"25.001"` EUR,
    /// `"100.5"` JPY): no payment can be taken for it. Round it at the source.
    #[error("amount has more decimals than {currency}'s minor unit ({minor_unit})")]
    TooPrecise {
        /// The currency.
        currency: String,
        /// Its minor unit, in decimals.
        minor_unit: u32,
    },
}

impl Classify for MoneyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownCurrency(_) | Self::TooPrecise { .. } => ErrorKind::Unprocessable,
            _ => ErrorKind::BadRequest,
        }
    }
}

/// Everything that can be wrong with a wire message. Returned by
/// [`PaymentResult::from_json`](crate::contract::PaymentResult::from_json) and
/// [`CheckoutRequest::from_json`](crate::contract::CheckoutRequest::from_json).
///
/// Every variant means the same thing to the caller: the message is not acceptable as it is,
/// nothing was changed, and sending the same bytes again will fail the same way. A webhook
/// handler should answer with a client error (4xx) and alert; the variant says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The body is larger than [`MAX_MESSAGE_BYTES`](crate::contract::MAX_MESSAGE_BYTES).
    #[error("message is {len} bytes, the maximum is {max}")]
    TooLarge {
        /// The body's length in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The body is not valid JSON (or not UTF-8).
    #[error("message is not valid JSON: {detail}")]
    NotJson {
        /// The JSON parser's description, with line and column.
        detail: String,
    },
    /// The object has the same field twice. Refused rather than picking one, because two
    /// parsers (a signature check and this one, say) could pick differently.
    #[error("field {field:?} appears more than once")]
    DuplicateField {
        /// The repeated field (cut to 64 characters).
        field: String,
    },
    /// The body is JSON, but not a JSON object.
    #[error("message must be a JSON object")]
    NotAnObject,
    /// The `kind` field names another message (for example a checkout request sent to the
    /// payment-result endpoint).
    #[error("message kind is {found:?}, expected {expected:?}")]
    WrongKind {
        /// The `kind` this parser accepts.
        expected: &'static str,
        /// The `kind` the message carried (cut to 64 characters).
        found: String,
    },
    /// A required field is absent or `null`.
    #[error("required field {field:?} is missing")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A field has the wrong JSON type (for example a number where a string belongs).
    #[error("field {field:?} must be {expected}")]
    WrongType {
        /// The field's name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An identifier field is empty, too long, or contains a control character.
    #[error("field {field:?} {source}")]
    BadId {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        source: IdError,
    },
    /// The `status` is not one of `paid`, `failed`, `expired`.
    #[error("unknown payment status {found:?}: expected \"paid\", \"failed\" or \"expired\"")]
    UnknownStatus {
        /// The status the message carried (cut to 64 characters).
        found: String,
    },
    /// The `amount` or `currency` field is not acceptable.
    #[error("field {field:?}: {source}")]
    BadMoney {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        source: MoneyError,
    },
    /// The `quantity` is not a whole number from 1 to
    /// [`MAX_QUANTITY`](crate::contract::MAX_QUANTITY).
    #[error("quantity must be a whole number from 1 to {max}")]
    BadQuantity {
        /// The largest quantity accepted.
        max: u32,
    },
    /// A timestamp field is not RFC 3339 (`2026-12-01T19:10:00Z`).
    #[error("field {field:?} is not an RFC 3339 timestamp")]
    BadTimestamp {
        /// The field's name.
        field: &'static str,
    },
}

impl Classify for ParseError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::BadId { source, .. } => source.kind(),
            Self::BadMoney { source, .. } => source.kind(),
            _ => ErrorKind::BadRequest,
        }
    }
}

/// Cut a caller-supplied string for inclusion in an error, on a character boundary.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
