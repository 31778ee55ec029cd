//! Signed payment results and payment providers.
//!
//! Owns: Standard Webhooks signatures — [`Verifier`] (checked *before* anything is parsed,
//! with the time passed in) and [`Signer`] (for relaying the outbox onward) — and provider
//! adapters ([`ProviderAdapter`], [`StatusCodeAdapter`]) that turn a provider's own webhook
//! body into a [`PaymentResult`].
//!
//! May not touch: bookings, storage, the clock. Pure: every check takes `now`.
//!
//! # Standard Webhooks
//!
//! Headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (one or
//! more space-separated `v1,<base64>` entries); the signature is HMAC-SHA256, keyed by the
//! secret (`whsec_` + base64), over `id.timestamp.body`. A delivery is accepted when its
//! timestamp is within the tolerance of `now` (default 5 minutes, either way) and any entry
//! matches any of the verifier's secrets (several during a key rotation), compared in
//! constant time. The cryptography is the RustCrypto `hmac` and `sha2` crates; base64 is the
//! `base64` crate.

use crate::kind::{Classify, ErrorKind};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::contract::{ActorId, Amount, Currency, OccKey, ParseError, PaymentResult, PaymentStatus, ProviderRef, Ref};

type HmacSha256 = Hmac<Sha256>;

/// The default tolerance between a webhook's timestamp and now: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

/// The longest `webhook-id` or `webhook-timestamp` header accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 256;

/// The longest `webhook-signature` header accepted, in bytes (room for a dozen signatures).
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 4096;

/// Why a signed webhook was refused. Nothing was parsed or changed; answer 401 and let the
/// sender (or an attacker) fail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A header is missing.
    #[error("header {name} is missing")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A header is malformed or too long.
    #[error("header {name} is malformed")]
    BadHeader {
        /// The header's name.
        name: &'static str,
    },
    /// The timestamp is older than the tolerance: a replay, or a very late delivery.
    #[error("webhook timestamp is too old")]
    TooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("webhook timestamp is in the future")]
    TooNew,
    /// No signature matches any secret: forged, tampered with, or signed with a retired key.
    #[error("no signature matches")]
    NoMatch,
    /// A secret is not `whsec_` + base64 of at least 16 bytes.
    #[error("a webhook secret must be whsec_ followed by base64 of at least 16 bytes")]
    BadSecret,
    /// The verifier has no secret.
    #[error("no webhook secret configured")]
    NoSecret,
}

impl Classify for SignatureError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BadSecret | Self::NoSecret => ErrorKind::Internal,
            _ => ErrorKind::Unauthorized,
        }
    }
}

/// A webhook signing secret. Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// Parse a Standard Webhooks secret: `whsec_` followed by base64 of the key bytes.
    ///
    /// # Errors
    /// [`SignatureError::BadSecret`].
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let b64 = s.strip_prefix("whsec_").ok_or(SignatureError::BadSecret)?;
        let key = STANDARD.decode(b64).map_err(|_| SignatureError::BadSecret)?;
        Self::from_bytes(key)
    }

    /// A secret from raw key bytes (at least 16).
    ///
    /// # Errors
    /// [`SignatureError::BadSecret`].
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SignatureError> {
        let key = key.into();
        if key.len() < 16 {
            return Err(SignatureError::BadSecret);
        }
        Ok(Self(key))
    }

    /// The secret in its `whsec_` form (to hand to the other side).
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        #[allow(clippy::expect_used)]
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The three Standard Webhooks headers of a delivery, as received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headers<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

impl<'a> Headers<'a> {
    /// The headers, read through `get` (give it your HTTP library's lookup; names are asked
    /// for in lower case).
    pub fn from_lookup(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self { id: get("webhook-id"), timestamp: get("webhook-timestamp"), signature: get("webhook-signature") }
    }
}

/// Checks Standard Webhooks signatures against one or more secrets.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting signatures by any of `secrets` (the current one and, during a
    /// rotation, the previous ones), with the default tolerance.
    ///
    /// # Errors
    /// [`SignatureError::NoSecret`] if there is none.
    pub fn new(secrets: impl IntoIterator<Item = WebhookSecret>) -> Result<Self, SignatureError> {
        let secrets: Vec<WebhookSecret> = secrets.into_iter().collect();
        if secrets.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        Ok(Self { secrets, tolerance: DEFAULT_TOLERANCE })
    }

    /// The same verifier with another tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance.abs();
        self
    }

    /// Check a delivery's signature at `now`, before its body is parsed.
    ///
    /// # Errors
    /// [`SignatureError`].
    pub fn verify(&self, headers: &Headers<'_>, body: &[u8], now: OffsetDateTime) -> Result<(), SignatureError> {
        let id = header(headers.id, "webhook-id", MAX_HEADER_BYTES)?;
        let ts = header(headers.timestamp, "webhook-timestamp", MAX_HEADER_BYTES)?;
        let sig = header(headers.signature, "webhook-signature", MAX_SIGNATURE_HEADER_BYTES)?;
        if !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::BadHeader { name: "webhook-timestamp" });
        }
        let secs: i64 = ts.parse().map_err(|_| SignatureError::BadHeader { name: "webhook-timestamp" })?;
        let sent = OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| SignatureError::BadHeader { name: "webhook-timestamp" })?;
        if sent < now - self.tolerance {
            return Err(SignatureError::TooOld);
        }
        if sent > now + self.tolerance {
            return Err(SignatureError::TooNew);
        }
        let mut any = false;
        for entry in sig.split_ascii_whitespace() {
            let Some(b64) = entry.strip_prefix("v1,") else { continue };
            let Ok(tag) = STANDARD.decode(b64) else { continue };
            any = true;
            if self.secrets.iter().any(|s| s.mac(id, ts, body).verify_slice(&tag).is_ok()) {
                return Ok(());
            }
        }
        if any { Err(SignatureError::NoMatch) } else { Err(SignatureError::BadHeader { name: "webhook-signature" }) }
    }
}

fn header<'a>(v: Option<&'a str>, name: &'static str, max: usize) -> Result<&'a str, SignatureError> {
    let v = v.ok_or(SignatureError::MissingHeader { name })?;
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(SignatureError::BadHeader { name });
    }
    Ok(v)
}

/// Signs deliveries with one secret (for relaying outbox events onward).
#[derive(Debug, Clone)]
pub struct Signer {
    secret: WebhookSecret,
}

/// The headers to send with a signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
}

impl Signer {
    /// A signer with `secret`.
    pub fn new(secret: WebhookSecret) -> Self {
        Self { secret }
    }

    /// Sign `body` as message `id` sent at `at`.
    pub fn sign(&self, id: &str, at: OffsetDateTime, body: &[u8]) -> SignedHeaders {
        let timestamp = at.unix_timestamp().to_string();
        let tag = self.secret.mac(id, &timestamp, body).finalize().into_bytes();
        SignedHeaders { id: id.to_owned(), timestamp, signature: format!("v1,{}", STANDARD.encode(tag)) }
    }
}

// ---------------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------------

/// A provider's webhook, mapped to the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapted {
    /// The provider event's id, `provider:{payment id}:{status}`: the same for every
    /// redelivery of one event (log and deduplicate on it at the edge; settling is
    /// idempotent anyway).
    pub event_id: String,
    /// The payment result, or `None` for a status that settles nothing yet (pending).
    pub result: Option<PaymentResult>,
}

/// Why a provider's webhook could not be mapped. Nothing was changed; answer 4xx.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The body is not a JSON object of the provider's shape.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The provider's status code is none this adapter knows.
    #[error("unknown provider status {0:?}")]
    UnknownStatus(String),
}

impl Classify for AdapterError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Parse(p) => p.kind(),
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// Maps one provider's webhook bodies to payment results.
pub trait ProviderAdapter: Send + Sync {
    /// Map a (signature-checked) body.
    ///
    /// # Errors
    /// [`AdapterError`].
    fn adapt(&self, body: &[u8]) -> Result<Adapted, AdapterError>;
}

/// A provider that reports numeric status codes — `0` pending, `1` paid, `3` expired, `4` or
/// `5` failed; a number and its string (`1`, `"1"`) are the same — in a body of the shape
///
/// ```json
/// {"id":"pay_123","status":1,"occ_key":"gig","actor":"user-42","ref":"r-7f3a",
///  "amount":"25.00","currency":"EUR"}
/// ```
///
/// `id` becomes the result's `provider_ref`; `amount` and `currency` are optional; unknown
/// fields are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusCodeAdapter;

impl StatusCodeAdapter {
    /// The contract status of a provider code: `Ok(None)` for pending.
    ///
    /// # Errors
    /// [`AdapterError::UnknownStatus`].
    pub fn status(code: &Value) -> Result<Option<PaymentStatus>, AdapterError> {
        let text = match code {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => return Err(AdapterError::UnknownStatus(crate::contract::fields::clip_value(other))),
        };
        match text.as_str() {
            "0" => Ok(None),
            "1" => Ok(Some(PaymentStatus::Paid)),
            "3" => Ok(Some(PaymentStatus::Expired)),
            "4" | "5" => Ok(Some(PaymentStatus::Failed)),
            other => Err(AdapterError::UnknownStatus(other.chars().take(64).collect())),
        }
    }
}

impl ProviderAdapter for StatusCodeAdapter {
    fn adapt(&self, body: &[u8]) -> Result<Adapted, AdapterError> {
        let map = crate::contract::fields::object_from_bytes(body)?;
        let f = crate::contract::fields::Fields(&map);
        let id = f.req_str("id")?;
        let provider_ref = ProviderRef::new(id).map_err(|source| ParseError::BadId { field: "id", source })?;
        let code = map.get("status").filter(|v| !v.is_null()).ok_or(ParseError::MissingField { field: "status" })?;
        let status = Self::status(code)?;
        let code_text = match code {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let event_id = format!("provider:{id}:{code_text}");
        let Some(status) = status else { return Ok(Adapted { event_id, result: None }) };
        let occ =
            OccKey::new(f.req_str("occ_key")?).map_err(|source| ParseError::BadId { field: "occ_key", source })?;
        let actor = ActorId::new(f.req_str("actor")?).map_err(|source| ParseError::BadId { field: "actor", source })?;
        let r = Ref::new(f.req_str("ref")?).map_err(|source| ParseError::BadId { field: "ref", source })?;
        let mut result = PaymentResult::new(occ, actor, r, status).with_provider_ref(provider_ref);
        let amount: Option<Amount> = f.opt_amount()?;
        let currency: Option<Currency> = f.opt_currency()?;
        if let (Some(a), Some(c)) = (amount, currency) {
            c.check_amount(a).map_err(|source| ParseError::BadMoney { field: "amount", source })?;
        }
        result.amount = amount;
        result.currency = currency;
        Ok(Adapted { event_id, result: Some(result) })
    }
}
