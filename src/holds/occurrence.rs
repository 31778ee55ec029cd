//! Occurrences: a capacity, a hold TTL, and the seats held and sold.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::contract::OccKey;

/// The longest hold TTL accepted: 30 days.
pub const MAX_HOLD_TTL_SECS: u32 = 30 * 24 * 60 * 60;

/// Why an occurrence configuration was refused. Nothing was changed; fix the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The hold TTL is zero or longer than [`MAX_HOLD_TTL_SECS`].
    #[error("hold TTL must be from 1 to {max} seconds, got {got}")]
    BadHoldTtl {
        /// The TTL given, in seconds.
        got: u64,
        /// The maximum, in seconds.
        max: u32,
    },
}

/// How many seats an occurrence has and how long an unpaid hold lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OccurrenceConfig {
    capacity: u32,
    hold_ttl_secs: u32,
}

impl OccurrenceConfig {
    /// A configuration. A capacity of 0 is allowed (nothing can be held: a closed sale).
    ///
    /// # Errors
    /// [`ConfigError::BadHoldTtl`] if the TTL is not from 1 second to 30 days.
    pub fn new(capacity: u32, hold_ttl_secs: u64) -> Result<Self, ConfigError> {
        match u32::try_from(hold_ttl_secs) {
            Ok(t) if (1..=MAX_HOLD_TTL_SECS).contains(&t) => Ok(Self { capacity, hold_ttl_secs: t }),
            _ => Err(ConfigError::BadHoldTtl { got: hold_ttl_secs, max: MAX_HOLD_TTL_SECS }),
        }
    }

    /// Seats for sale.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How long an unpaid hold lasts, in seconds.
    pub fn hold_ttl_secs(&self) -> u32 {
        self.hold_ttl_secs
    }

    /// How long an unpaid hold lasts.
    pub fn hold_ttl(&self) -> Duration {
        Duration::seconds(i64::from(self.hold_ttl_secs))
    }
}

/// A change to an occurrence's seat counters, applied by the store under the capacity guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeatDelta {
    /// Change to seats in holds that are not yet confirmed (lapsed ones included until
    /// something expires them).
    pub held: i64,
    /// Change to confirmed (sold) seats.
    pub confirmed: i64,
}

impl SeatDelta {
    /// The change to seats in use (held + confirmed). A store must refuse a commit whose net
    /// change is positive and whose result would exceed the capacity.
    pub fn net(&self) -> i64 {
        self.held + self.confirmed
    }

    /// Whether nothing changes.
    pub fn is_zero(&self) -> bool {
        self.held == 0 && self.confirmed == 0
    }

    /// The sum of two changes.
    pub fn plus(self, other: SeatDelta) -> SeatDelta {
        SeatDelta { held: self.held + other.held, confirmed: self.confirmed + other.confirmed }
    }
}

/// One occurrence as the store holds it: its configuration and seat counters.
///
/// `held` counts the seats of every hold in state `Held`, lapsed ones included until an
/// operation expires them; that is what makes the counter a safe upper bound, so that
/// `held + confirmed <= capacity` implies the capacity invariant for live holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The occurrence's key.
    pub key: OccKey,
    /// Capacity and hold TTL.
    pub config: OccurrenceConfig,
    /// Seats in holds in state `Held` (live or lapsed-but-not-yet-expired).
    pub held: u64,
    /// Seats sold.
    pub confirmed: u64,
}

impl Occurrence {
    /// A new occurrence with nothing held or sold.
    pub fn new(key: OccKey, config: OccurrenceConfig) -> Self {
        Self { key, config, held: 0, confirmed: 0 }
    }

    /// Seats in use by the counters: held (including lapsed-not-yet-expired) plus confirmed.
    pub fn in_use(&self) -> u64 {
        self.held + self.confirmed
    }

    /// Whether `seats` more fit after applying `delta` to the counters.
    pub fn fits(&self, delta: SeatDelta, seats: u32) -> bool {
        let in_use = self.in_use() as i128 + i128::from(delta.net()) + i128::from(seats);
        in_use <= i128::from(self.config.capacity())
    }

    /// Availability as a reader sees it at `now`, given how many held seats belong to holds
    /// that have lapsed (those never show as held, invariant 2).
    pub fn availability(&self, lapsed_seats: u64) -> Availability {
        let held = self.held.saturating_sub(lapsed_seats);
        let capacity = u64::from(self.config.capacity());
        Availability {
            capacity: self.config.capacity(),
            held,
            confirmed: self.confirmed,
            available: capacity.saturating_sub(held + self.confirmed),
        }
    }

    /// When a hold placed at `now` lapses.
    pub fn expiry_for(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.saturating_add(self.config.hold_ttl())
    }
}

/// What an occurrence has left, in seats (quantity-weighted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Availability {
    /// Seats for sale.
    pub capacity: u32,
    /// Seats in live holds.
    pub held: u64,
    /// Seats sold.
    pub confirmed: u64,
    /// Seats a new hold could take now (never negative, even after the capacity was lowered
    /// below what is held or sold).
    pub available: u64,
}
