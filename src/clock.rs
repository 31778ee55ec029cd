//! Where the engine gets "now". The pure modules never read a clock; the engine reads one
//! [`Clock`] once per operation and passes the instant down.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to: for tests, simulations and the scenario runner.
/// Nanosecond resolution; covers 1677 to 2262.
#[derive(Debug)]
pub struct ManualClock {
    unix_nanos: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start` (clamped to the representable range).
    pub fn new(start: OffsetDateTime) -> Self {
        Self { unix_nanos: AtomicI64::new(to_nanos(start)) }
    }

    /// Move the clock to `t`.
    pub fn set(&self, t: OffsetDateTime) {
        self.unix_nanos.store(to_nanos(t), Ordering::SeqCst);
    }

    /// Move the clock forward (or back, for a negative duration) by `d`.
    pub fn advance(&self, d: Duration) {
        let step = i64::try_from(d.whole_nanoseconds()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX });
        let _ = self.unix_nanos.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(step)));
    }
}

fn to_nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let n = self.unix_nanos.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}
