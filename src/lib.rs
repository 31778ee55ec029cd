#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
//! seathold
pub mod clock;
pub mod contract;
mod engine;
pub mod holds;
pub mod settlement;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    AsyncEngine, AvailabilityError, DEFAULT_MAX_ATTEMPTS, Engine, OpenError, RequestError, SettleError, SweepError,
};
pub use store::{AsyncStore, MemoryStore, Store};
