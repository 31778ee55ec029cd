//! Operations: the one unit the engine runs. An operation names its occurrence, the records
//! to load first, and its pure decision over what was loaded; the engine runs every one of
//! them through one loop (load -> decide -> one guarded commit, retried on a lost race) and
//! one public entry point, [`AsyncEngine::run`](crate::AsyncEngine::run) (and
//! [`Engine::run`](crate::Engine::run)); the named methods (`request`, `settle`, `cancel`…)
//! are sugar over it. A write that may be retried under an operation key is a [`Command`]
//! as well: it names itself, so a key used for another command is told apart from a retry.
//!
//! Owns: the [`Operation`] and [`Command`] traits and [`Never`]. May not touch: the rules
//! (each operation lives beside its lifecycle module: [`holds::Request`](crate::holds::Request),
//! [`settlement::Settle`](crate::settlement::Settle), [`catalogue::SetPrice`](crate::catalogue::SetPrice)…),
//! storage, the clock.
//!
//! The traits are sealed: the crate's operations are the only ones, so every write the
//! engine commits is one the crate's invariants were checked against. An operation's
//! decision can be run without an engine or a store, on a [`Given`](crate::given::Given):
//!
//! ```
//! use seathold::catalogue::OccurrenceConfig;
//! use seathold::contract::{ActorId, Money, OccKey, Ref};
//! use seathold::given::Given;
//! use seathold::holds::{HoldRequest, Request, RequestOutcome};
//! use seathold::time::macros::datetime;
//!
//! let now = datetime!(2026-12-01 19:00 UTC);
//! let gig = OccKey::new("gig")?;
//! let mut given = Given::occurrence(gig.clone(), OccurrenceConfig::new(1, 600)?);
//! let req = HoldRequest::new(gig, ActorId::new("ann")?, Ref::new("r1")?, Money::parse("20.00", "EUR")?);
//! let then = given.run(&Request(&req), now)?;
//! assert!(matches!(then.answer, RequestOutcome::AwaitingPayment { .. }));
//! assert_eq!(then.event_types(), ["hold_placed"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use time::OffsetDateTime;

use crate::contract::OccKey;
use crate::kind::Classify;
use crate::records::{Keys, Loaded, Step};

/// One operation the engine runs: which occurrence, what to load first, and the pure
/// decision over what was loaded. Sealed: see the [module docs](self).
pub trait Operation: sealed::Sealed {
    /// What it answers.
    type Output;
    /// What the rules may refuse (a typed error that changes nothing; it knows its
    /// [`ErrorKind`](crate::ErrorKind)).
    type Refusal: Classify;
    /// The occurrence it reads and writes.
    fn occ_key(&self) -> &OccKey;
    /// The records to load before deciding (more may be asked for with [`Step::Load`]).
    fn keys(&self) -> Keys;
    /// Decide on what was loaded, at `now`: answer, write a change, or ask for more records.
    ///
    /// # Errors
    /// The operation's refusal: nothing is written.
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<Self::Output>, Self::Refusal>;
}

/// An operation that may run under an operation key ([`crate::opkeys`]): it names itself,
/// so a key used for another command is told apart from a retry of the same one.
pub trait Command: Operation {
    /// The operation and its arguments, as text (never a secret: a ticket by its id). The
    /// text is stored with the key: it must not change between versions for one command.
    fn command(&self) -> String;
}

/// Never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("never")]
pub enum Never {}

impl Classify for Never {
    fn kind(&self) -> crate::ErrorKind {
        match *self {}
    }
}

pub(crate) mod sealed {
    /// Implemented by the crate's operations only.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}
