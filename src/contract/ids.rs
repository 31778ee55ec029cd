//! Validated identifiers. Cheap to clone (shared, immutable strings).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::IdError;

/// The longest `occ_key`, `actor` or `ref` accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// The longest section or row name of a seat map, in bytes.
pub const MAX_SEAT_NAME_BYTES: usize = 32;

/// The longest `provider_ref` accepted, in bytes.
pub const MAX_PROVIDER_REF_BYTES: usize = 256;

fn check(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { len: s.len(), max });
    }
    if s.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(Arc<str>);

        // Ordered as strings; two clones of one identifier (the usual case inside a
        // decision: keys and dimensions cloned from the same configuration or request)
        // compare equal without reading the text.
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                if Arc::ptr_eq(&self.0, &other.0) {
                    std::cmp::Ordering::Equal
                } else {
                    self.0.cmp(&other.0)
                }
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Validate and wrap an identifier.
            ///
            /// # Errors
            /// [`IdError`] if it is empty, too long, or contains a control character.
            pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                check(s, $max)?;
                Ok(Self(Arc::from(s)))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Identifies one occurrence: one thing with a capacity (a show on a date, a resale
    /// listing, a slot). Wire field `occ_key`.
    OccKey,
    MAX_ID_BYTES
);
id_type!(
    /// Identifies who books (a user id). Opaque to seathold. Wire field `actor`.
    ActorId,
    MAX_ID_BYTES
);
id_type!(
    /// The correlation and idempotency id of one checkout attempt, chosen by the booking side
    /// and echoed by the payment side. Wire field `ref`.
    ///
    /// Use a fresh ref for every attempt ([`Ref::random`] gives one): a payment result is
    /// matched to a hold by its ref, and that is what keeps a late result for an old attempt
    /// from touching a newer one.
    Ref,
    MAX_ID_BYTES
);
id_type!(
    /// The payment provider's own id for a payment, carried by payment results and passed on
    /// in refund signals so the refund can be issued. Wire field `provider_ref`.
    ProviderRef,
    MAX_PROVIDER_REF_BYTES
);

id_type!(
    /// Names a ticket tier of an occurrence (`adult`, `vip`, …). Wire field `tier`.
    TierName,
    MAX_ID_BYTES
);
id_type!(
    /// Names a shared pool of seats that several tiers draw on (pretix's quotas).
    PoolName,
    MAX_ID_BYTES
);
id_type!(
    /// Names a block: seats an organiser took out of sale.
    BlockName,
    MAX_ID_BYTES
);
id_type!(
    /// Names a section of a seat map (`A`, `stalls`): no `-` (seat ids are
    /// `SECTION-ROW-N`), checked with the map.
    SectionName,
    MAX_SEAT_NAME_BYTES
);
id_type!(
    /// Names a row within a section of a seat map (`1`, `AA`): no `-`, checked with the map.
    RowName,
    MAX_SEAT_NAME_BYTES
);
id_type!(
    /// An operation key (1 to 128 bytes, scoped to one occurrence): the caller's name for
    /// one write (a scan at the door, a cancellation, a block…), so that a retry after a lost
    /// answer is answered what the first call answered instead of being carried out again
    /// (see [`opkeys`](crate::opkeys)). Use a fresh key per intended write (a UUID, or the
    /// scanner's event id), and the same key for its retries.
    OpKey,
    MAX_ID_BYTES
);

impl Ref {
    /// A fresh random ref (a UUID v4 in its hyphenated form).
    pub fn random() -> Self {
        Self(Arc::from(uuid::Uuid::new_v4().hyphenated().to_string()))
    }
}
