//! `metadata`: a caller's JSON object kept with a booking as a snapshot (the buyer's answers
//! to a shop's questions, say). Carried, stored and returned; never read by a rule.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::ParseError;

/// The largest metadata object accepted, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 4 * 1024;

/// A JSON object of at most [`MAX_METADATA_BYTES`] bytes (compact), kept as given.
///
/// Shared, not copied: a booking is read out of a store and cloned often, and its metadata
/// never changes, so a clone is a reference count and a booking carries one pointer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata(Arc<Map<String, Value>>);

impl Metadata {
    /// Check and wrap a JSON value.
    ///
    /// # Errors
    /// [`ParseError::WrongType`] unless it is an object; [`ParseError::TooLarge`] past
    /// [`MAX_METADATA_BYTES`].
    pub fn from_value(v: &Value) -> Result<Self, ParseError> {
        let Value::Object(map) = v else {
            return Err(ParseError::WrongType { field: "metadata", expected: "a JSON object" });
        };
        let len = serde_json::to_string(map).map(|s| s.len()).unwrap_or(usize::MAX);
        if len > MAX_METADATA_BYTES {
            return Err(ParseError::TooLarge { len, max: MAX_METADATA_BYTES });
        }
        Ok(Self(Arc::new(map.clone())))
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_value(&v).map_err(serde::de::Error::custom)
    }
}
