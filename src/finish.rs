//! The rules that cut across operations, applied to every change a decision asks to commit,
//! after the decision and before the commit: by the engine's one loop and by the test seam
//! ([`given`](crate::given)) alike, so no decision has to remember them.
//!
//! 1. **The waiting list's claim on freed seats** ([`waitlist::claim_freed`]): a change that
//!    frees seats settles the waiting list in the same commit — unless its decision settled
//!    the list itself, as one that must serve the list before it decides does (a request, a
//!    late payment meeting a lapsed hold, a larger capacity).
//! 2. **Seat rows follow the bookings** ([`seating::reconcile`]): the rows of a seat map are
//!    rewritten from the holds and blocks the change writes, and a claim on a seat someone
//!    else has is refused as an engine bug.
//!
//! Owns: which rules run, and in what order (the waiting list first: its offers take
//! counted seats, never named ones). May not touch: storage, the clock, the decisions.
//!
//! [`waitlist::claim_freed`]: crate::waitlist
//! [`seating::reconcile`]: crate::seating

use time::OffsetDateTime;

use crate::records::{Change, Loaded, RecordKey};

/// Why [`finish`] could not finish a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// Load these records and decide again (the decision had not loaded what a rule reads).
    Load(Vec<RecordKey>),
    /// The change breaks a rule no lost race explains (an engine bug).
    Bug(String),
}

/// Apply every cross-cutting rule to `change`, decided on `view` at `now`.
///
/// # Errors
/// [`Unfinished::Load`] when a rule needs a record the decision did not load (the caller
/// loads it and decides again); [`Unfinished::Bug`] when the change breaks a rule.
pub(crate) fn finish(view: &impl Loaded, change: &mut Change, now: OffsetDateTime) -> Result<(), Unfinished> {
    crate::waitlist::claim_freed(view, change, now).map_err(|key| Unfinished::Load(vec![key]))?;
    crate::seating::reconcile(view, change, now).map_err(|u| match u {
        crate::seating::Unreconciled::Load(keys) => Unfinished::Load(keys),
        crate::seating::Unreconciled::Bug(why) => Unfinished::Bug(why),
    })
}
