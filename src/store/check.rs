//! The commit checks every store shares: does a [`Commit`] apply to the state a store read
//! under its lock, and what does it leave the occurrence as?
//!
//! Owns: [`check_commit`] (clause 2 of the [store contract](super), in its order) and
//! [`NextOccurrence`] (what the store then writes). May not touch: storage. It reads what
//! the caller passes in and returns a verdict; the caller locks, stores and applies.
//!
//! A store that keeps its occurrence and record versions where it can read them under one
//! lock (a mutex, a transaction holding the occurrence's row lock) needs no rule of its own:
//!
//! ```text
//! lock the occurrence
//! next = check_commit(stored occurrence, |key| stored version of key, &commit)?
//! version = next commit sequence number        (clause 7, only if the commit puts a record)
//! next.apply_to(&mut stored occurrence, &commit.deltas)
//! store every Put at `version`, remove every Delete, append the events with new ids
//! unlock
//! ```

use super::{Commit, CommitError, Conflict, OccurrenceGuard, validate_commit};
use crate::catalogue::{Dim, OccurrenceConfig};
use crate::records::{Occurrence, RecordKey, Usage, UsageDelta, Version};

/// What an accepted commit leaves the occurrence as (from [`check_commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a checked commit still has to be applied"]
pub enum NextOccurrence {
    /// The same configuration, with the commit's deltas added to its counters (the common
    /// commit: a hold, a confirmation, a release). [`NextOccurrence::apply_to`] adds them in
    /// place, without copying the occurrence.
    Counters,
    /// Store this instead: a created or reconfigured occurrence (its counters already
    /// include the deltas), or `None`: it stays absent (an `Unchecked` commit for an
    /// occurrence that does not exist stores its records and events, and no occurrence).
    Replace(Option<Occurrence>),
}

impl NextOccurrence {
    /// Make `stored` what the commit leaves it as. `deltas` must be the checked commit's.
    pub fn apply_to(self, stored: &mut Option<Occurrence>, deltas: &[(Dim, UsageDelta)]) {
        match (self, stored) {
            (Self::Counters, Some(o)) => o.counters.add_checked(deltas),
            (Self::Counters, None) => {}
            (Self::Replace(next), stored) => *stored = next,
        }
    }
}

/// Check `commit` against the state a store holds under its lock: `occurrence` as stored,
/// and `version_of(key)` the version of the record stored under `key` (`None`: no record).
/// `version_of` is asked only about keys the commit writes ([`Commit::records`]), each at
/// most once, so a store that must do I/O to answer can read those versions first (one
/// query) and answer from what it read.
/// Everything of clause 2 of the [store contract](super), in this order; the first guard
/// that fails is the answer:
///
/// 1. the commit's shape ([`validate_commit`]): malformed → [`CommitError::Invalid`];
/// 2. the occurrence guard → [`Conflict::Occurrence`];
/// 3. the record guards → [`Conflict::Record`] naming a key whose version differs (of
///    several, the first in (kind, key) order, as their text sorts);
/// 4. the counter guards ([`Commit::unchanged`]), then the room guards
///    ([`Commit::at_least`]), one by one → [`Conflict::Usage`]; a guard on a dimension
///    neither the stored nor the new configuration has → [`CommitError::Invalid`] when its
///    turn comes;
/// 5. the deltas: one on a dimension neither configuration has, or one that takes a counter
///    below zero → [`CommitError::Invalid`] (records and counters were as read, so this is
///    a bug in the decision, not a race);
/// 6. capacity, for each dimension of [`Commit::admits`] in order → [`Conflict::Capacity`];
///    admitting to a dimension the new configuration lacks → [`CommitError::Invalid`];
/// 7. a reconfiguration ([`OccurrenceGuard::Update`]) may drop a dimension only if it counts
///    no seat → otherwise [`Conflict::Occurrence`] (the configuration was decided on a state
///    that has since changed, or must wait for those seats to end).
///
/// Records before counters: counter arithmetic means something only if every record the
/// decision read is as it read it.
///
/// # Errors
/// The first failing guard, as above. Nothing has been written: the caller applies nothing.
pub fn check_commit(
    occurrence: Option<&Occurrence>,
    mut version_of: impl FnMut(&RecordKey) -> Option<Version>,
    commit: &Commit,
) -> Result<NextOccurrence, CommitError> {
    validate_commit(commit).map_err(CommitError::Invalid)?;
    if let (OccurrenceGuard::At(v), Some(occ)) = (&commit.occurrence, occurrence) {
        if occ.config_version == *v && counted_already(occ, commit) {
            return check_counters_in_place(occ, &mut version_of, commit);
        }
    }
    check_replacing(occurrence, &mut version_of, commit).map(NextOccurrence::Replace)
}

/// Whether every dimension the commit names has a counter already: then the counters can
/// be checked and changed in place.
fn counted_already(occ: &Occurrence, c: &Commit) -> bool {
    let counted = |d: &Dim| occ.counters.has(d);
    c.deltas.iter().all(|(d, _)| counted(d))
        && c.admits.iter().all(counted)
        && c.unchanged.iter().all(|(d, _)| counted(d))
        && c.at_least.iter().all(|(d, _)| counted(d))
}

/// The record guards. Of several that fail, the conflict names the first in (kind, key)
/// order, as their text sorts byte by byte: the order a SQL store checks them in, so every
/// store names the same one.
fn check_records(version_of: &mut impl FnMut(&RecordKey) -> Option<Version>, c: &Commit) -> Result<(), CommitError> {
    let mut failed = c.records.iter().filter(|w| version_of(&w.key) != w.expected).map(|w| &w.key);
    let Some(first) = failed.next() else { return Ok(()) };
    let order = |k: &RecordKey| (k.kind().as_str(), k.id());
    let first = failed.fold(first, |a, b| if order(b) < order(a) { b } else { a });
    Err(Conflict::Record { key: first.clone() }.into())
}

/// The counter and room guards, on the counters as they stand before the commit.
fn check_usage(counters: &crate::records::Counters, c: &Commit) -> Result<(), CommitError> {
    for (dim, read) in &c.unchanged {
        if counters.get(dim) != *read {
            return Err(Conflict::Usage { dim: dim.clone() }.into());
        }
    }
    for (dim, taken) in &c.at_least {
        if counters.get(dim).total() < *taken {
            return Err(Conflict::Usage { dim: dim.clone() }.into());
        }
    }
    Ok(())
}

fn check_cap(config: &OccurrenceConfig, dim: &Dim, after: Usage) -> Result<(), CommitError> {
    match config.capacity_of(dim) {
        Some(Some(cap)) if after.total() > cap => Err(Conflict::Capacity { dim: dim.clone() }.into()),
        _ => Ok(()),
    }
}

/// The common commit: same configuration, every dimension already counted.
fn check_counters_in_place(
    occ: &Occurrence,
    version_of: &mut impl FnMut(&RecordKey) -> Option<Version>,
    c: &Commit,
) -> Result<NextOccurrence, CommitError> {
    check_records(version_of, c)?;
    check_usage(&occ.counters, c)?;
    for (dim, d) in &c.deltas {
        if occ.counters.get(dim).plus(d).is_none() {
            return Err(CommitError::Invalid(format!("counter {dim} would go negative")));
        }
    }
    for dim in &c.admits {
        let now = occ.counters.get(dim);
        let after = c.deltas.iter().find(|(d, _)| d == dim).and_then(|(_, u)| now.plus(u)).unwrap_or(now);
        check_cap(&occ.config, dim, after)?;
    }
    Ok(NextOccurrence::Counters)
}

/// A commit that creates or reconfigures the occurrence, counts a dimension for the first
/// time, or asserts nothing about it.
fn check_replacing(
    stored: Option<&Occurrence>,
    version_of: &mut impl FnMut(&RecordKey) -> Option<Version>,
    c: &Commit,
) -> Result<Option<Occurrence>, CommitError> {
    let next = match (&c.occurrence, stored) {
        (OccurrenceGuard::Unchecked, occ) => occ.cloned(),
        (OccurrenceGuard::At(v), Some(occ)) if occ.config_version == *v => Some(occ.clone()),
        (OccurrenceGuard::Create(cfg), None) => Some(Occurrence::new(c.occ_key.clone(), cfg.clone())),
        (OccurrenceGuard::Update { expected, config }, Some(occ)) if occ.config_version == *expected => {
            let mut next = occ.clone();
            next.config = config.clone();
            next.config_version = expected + 1;
            Some(next)
        }
        _ => return Err(Conflict::Occurrence.into()),
    };
    check_records(version_of, c)?;
    let Some(mut occ) = next else {
        // No occurrence: `validate_commit` refused deltas and counter guards on an
        // unchecked commit, so records and events are all there is to store.
        return Ok(None);
    };
    let old = stored.map(|o| &o.config);
    // A dimension of the configuration the commit leaves, or (for one that drops it) of the
    // one it replaces: the commit may empty it first.
    let known = |dim: &Dim| occ.config.capacity_of(dim).is_some() || old.is_some_and(|o| o.capacity_of(dim).is_some());
    // Guard by guard, counter guards first: a stale guard before a guard on no dimension is
    // a conflict, a guard on no dimension first is invalid.
    let unknown = |dim: &Dim| CommitError::Invalid(format!("counter guard on no dimension {dim} at {}", c.occ_key));
    for (dim, read) in &c.unchanged {
        if !known(dim) {
            return Err(unknown(dim));
        }
        if occ.counters.get(dim) != *read {
            return Err(Conflict::Usage { dim: dim.clone() }.into());
        }
    }
    for (dim, taken) in &c.at_least {
        if !known(dim) {
            return Err(unknown(dim));
        }
        if occ.counters.get(dim).total() < *taken {
            return Err(Conflict::Usage { dim: dim.clone() }.into());
        }
    }
    if let Some((dim, _)) = c.deltas.iter().find(|(d, _)| !known(d)) {
        return Err(CommitError::Invalid(format!("no dimension {dim} at {}", c.occ_key)));
    }
    occ.counters = occ
        .counters
        .apply(&c.deltas)
        .map_err(|dim| CommitError::Invalid(format!("counter {dim} would go negative")))?;
    for dim in &c.admits {
        if occ.config.capacity_of(dim).is_none() {
            return Err(CommitError::Invalid(format!("admits to no dimension {dim} at {}", c.occ_key)));
        }
        check_cap(&occ.config, dim, occ.counters.get(dim))?;
    }
    if occ.counters.iter().any(|(d, u)| u.total() > 0 && occ.config.capacity_of(d).is_none()) {
        return Err(Conflict::Occurrence.into());
    }
    let config = occ.config.clone();
    occ.counters.retain(|d| config.capacity_of(d).is_some());
    Ok(Some(occ))
}
