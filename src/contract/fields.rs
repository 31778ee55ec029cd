//! Reading required and optional fields out of a JSON object with typed errors.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{MoneyError, ParseError, clip};
use super::ids::{ActorId, OccKey, ProviderRef, Ref, TierName};
use super::metadata::Metadata;
use super::money::{Amount, Currency};
use super::{MAX_MESSAGE_BYTES, MAX_QUANTITY};

/// Parse raw bytes into a JSON object, refusing oversize bodies first and duplicate
/// top-level keys after.
pub(crate) fn object_from_bytes(bytes: &[u8]) -> Result<Map<String, Value>, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = de.deserialize_any(TopVisitor).and_then(|top| de.end().map(|()| top));
    match top {
        Ok(Top::Object(map, None)) => Ok(map),
        Ok(Top::Object(_, Some(field))) => Err(ParseError::DuplicateField { field: clip(&field) }),
        Ok(Top::Other) => Err(ParseError::NotAnObject),
        Err(e) => Err(ParseError::NotJson { detail: e.to_string() }),
    }
}

/// A top-level JSON value: an object (with the first repeated key, if any) or anything else.
enum Top {
    Object(Map<String, Value>, Option<String>),
    Other,
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Top, A::Error> {
        let mut map = Map::new();
        let mut duplicate = None;
        while let Some(key) = access.next_key::<String>()? {
            let value: Value = access.next_value()?;
            if map.contains_key(&key) {
                duplicate.get_or_insert(key);
            } else {
                map.insert(key, value);
            }
        }
        Ok(Top::Object(map, duplicate))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Top, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Other)
    }
}

/// A JSON object being read field by field.
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, field: &'static str) -> Option<&'a Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn req(&self, field: &'static str) -> Result<&'a Value, ParseError> {
        self.get(field).ok_or(ParseError::MissingField { field })
    }

    pub(crate) fn req_str(&self, field: &'static str) -> Result<&'a str, ParseError> {
        self.req(field)?.as_str().ok_or(ParseError::WrongType { field, expected: "a string" })
    }

    fn opt_str(&self, field: &'static str) -> Result<Option<&'a str>, ParseError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or(ParseError::WrongType { field, expected: "a string" }),
        }
    }

    pub(crate) fn kind(&self, expected: &'static str) -> Result<(), ParseError> {
        let found = self.req_str("kind")?;
        if found == expected { Ok(()) } else { Err(ParseError::WrongKind { expected, found: clip(found) }) }
    }

    pub(crate) fn occ_key(&self) -> Result<OccKey, ParseError> {
        OccKey::new(self.req_str("occ_key")?).map_err(|source| ParseError::BadId { field: "occ_key", source })
    }

    pub(crate) fn actor(&self) -> Result<ActorId, ParseError> {
        ActorId::new(self.req_str("actor")?).map_err(|source| ParseError::BadId { field: "actor", source })
    }

    pub(crate) fn hold_ref(&self) -> Result<Ref, ParseError> {
        Ref::new(self.req_str("ref")?).map_err(|source| ParseError::BadId { field: "ref", source })
    }

    pub(crate) fn opt_provider_ref(&self) -> Result<Option<ProviderRef>, ParseError> {
        self.opt_str("provider_ref")?
            .map(|s| ProviderRef::new(s).map_err(|source| ParseError::BadId { field: "provider_ref", source }))
            .transpose()
    }

    pub(crate) fn opt_amount(&self) -> Result<Option<Amount>, ParseError> {
        let bad = |source| ParseError::BadMoney { field: "amount", source };
        match self.get("amount") {
            None => Ok(None),
            Some(Value::String(s)) => Amount::parse(s).map(Some).map_err(bad),
            Some(Value::Number(_)) => Err(bad(MoneyError::NotAString)),
            Some(_) => Err(ParseError::WrongType { field: "amount", expected: "a decimal string" }),
        }
    }

    pub(crate) fn opt_currency(&self) -> Result<Option<Currency>, ParseError> {
        self.opt_str("currency")?
            .map(|s| Currency::parse(s).map_err(|source| ParseError::BadMoney { field: "currency", source }))
            .transpose()
    }

    pub(crate) fn opt_timestamp(&self, field: &'static str) -> Result<Option<OffsetDateTime>, ParseError> {
        self.opt_str(field)?
            .map(|s| OffsetDateTime::parse(s, &Rfc3339).map_err(|_| ParseError::BadTimestamp { field }))
            .transpose()
    }

    /// `lines` of a checkout request, empty when absent.
    pub(crate) fn opt_lines(&self) -> Result<Vec<super::checkout::CheckoutLine>, ParseError> {
        match self.get("lines") {
            None => Ok(Vec::new()),
            Some(v @ Value::Array(items)) if items.len() <= super::MAX_LINES => serde_json::from_value(v.clone())
                .map_err(|_| ParseError::WrongType {
                    field: "lines",
                    expected: "a list of {tier, quantity, unit_price}",
                }),
            Some(_) => Err(ParseError::WrongType { field: "lines", expected: "a list of at most 64 lines" }),
        }
    }

    pub(crate) fn opt_hold_ref(&self) -> Result<Option<Ref>, ParseError> {
        self.opt_str("ref")?
            .map(|s| Ref::new(s).map_err(|source| ParseError::BadId { field: "ref", source }))
            .transpose()
    }

    pub(crate) fn opt_tier(&self) -> Result<Option<TierName>, ParseError> {
        self.opt_str("tier")?
            .map(|s| TierName::new(s).map_err(|source| ParseError::BadId { field: "tier", source }))
            .transpose()
    }

    pub(crate) fn opt_bool(&self, field: &'static str) -> Result<bool, ParseError> {
        match self.get(field) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or(ParseError::WrongType { field, expected: "true or false" }),
        }
    }

    pub(crate) fn opt_metadata(&self) -> Result<Option<Metadata>, ParseError> {
        self.get("metadata").map(Metadata::from_value).transpose()
    }

    /// A required `quantity` (events always carry it).
    pub(crate) fn quantity_req(&self) -> Result<u32, ParseError> {
        self.req("quantity")?;
        self.quantity()
    }

    /// A required `seats` count, 1 to `MAX_QUANTITY`.
    pub(crate) fn seats_req(&self) -> Result<u32, ParseError> {
        match self.req("seats")?.as_u64() {
            Some(q) if (1..=u64::from(MAX_QUANTITY)).contains(&q) => Ok(q as u32),
            _ => Err(ParseError::BadQuantity { max: MAX_QUANTITY }),
        }
    }

    /// `quantity`, defaulting to 1 when absent.
    pub(crate) fn quantity(&self) -> Result<u32, ParseError> {
        let bad = ParseError::BadQuantity { max: MAX_QUANTITY };
        match self.get("quantity") {
            None => Ok(1),
            Some(v) => match v.as_u64() {
                Some(q) if (1..=u64::from(MAX_QUANTITY)).contains(&q) => Ok(q as u32),
                _ => Err(bad),
            },
        }
    }
}

/// The instants RFC 3339 can express: years 0000 to 9999, in UTC.
pub(crate) fn rfc3339_range() -> (OffsetDateTime, OffsetDateTime) {
    (time::macros::datetime!(0000-01-01 00:00:00 UTC), time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC))
}

/// Format a timestamp as RFC 3339 in UTC (`2026-12-01T19:10:00Z`). Every wire timestamp is
/// written in UTC, so offsets with seconds (which RFC 3339 cannot express) never reach the
/// wire; an instant outside years 0000..=9999 is clamped to the nearest one RFC 3339 can
/// express (constructors refuse such instants; this only guards public fields set by hand).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let (min, max) = rfc3339_range();
    let utc = t.clamp(min, max).to_offset(time::UtcOffset::UTC);
    utc.format(&Rfc3339).unwrap_or_else(|_| String::from("9999-12-31T23:59:59Z"))
}

/// Whether RFC 3339 can express `t`.
pub(crate) fn in_rfc3339_range(t: OffsetDateTime) -> bool {
    let (min, max) = rfc3339_range();
    (min..=max).contains(&t)
}

/// Serialize a timestamp as an RFC 3339 string.
pub(crate) fn ser_rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// Serialize an optional timestamp as an RFC 3339 string.
pub(crate) fn ser_opt_rfc3339<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// A JSON value cut for inclusion in an error.
pub(crate) fn clip_value(v: &Value) -> String {
    super::error::clip(&v.to_string())
}
