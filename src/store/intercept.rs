//! [`Intercepted`]: any [`Store`] with a hook around each call — to count calls, inject
//! faults (a lost connection before a commit or an acknowledgement of events, a lost answer
//! after one), or run a
//! competing write at the moment a race matters, without re-implementing the trait.
//!
//! Owns: the wrapper and its hook trait. May not touch: the rules, or what the inner store
//! keeps (the hook sees each call and may refuse it or change the answer; the inner store
//! alone applies a commit).

use time::OffsetDateTime;

use super::{Commit, CommitError, Committed, Due, Snapshot, Store, StoreError};
use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Record, RecordKey, RecordKind, Versioned};

/// A store call, as [`Intercept::before`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`Store::load`].
    Load {
        /// The occurrence.
        occ_key: &'a OccKey,
        /// The keys asked for.
        keys: &'a [RecordKey],
    },
    /// [`Store::due`].
    Due {
        /// The occurrence, or every one.
        occ_key: Option<&'a OccKey>,
        /// The instant.
        now: OffsetDateTime,
    },
    /// [`Store::scan`].
    Scan {
        /// The occurrence.
        occ_key: &'a OccKey,
        /// The kind scanned.
        kind: RecordKind,
    },
    /// [`Store::occurrences`].
    Occurrences,
    /// [`Store::commit`] (the hook's [`Intercept::commit`] runs around it too).
    Commit(&'a Commit),
    /// [`Store::pending_events`].
    PendingEvents,
    /// [`Store::ack_events`].
    AckEvents(&'a [EventId]),
}

/// What [`Intercepted`] does around each call. Every method has a default that changes
/// nothing, so a hook implements only what it is for.
pub trait Intercept: Send + Sync {
    /// Before every call. An error is answered instead of making the call (for a commit:
    /// as [`CommitError::Store`], nothing applied).
    fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        let _ = call;
        Ok(())
    }

    /// Around a commit, after [`Intercept::before`] let it through: `apply` hands it to the
    /// inner store. The default applies it and answers what the store answered; a hook may
    /// apply it and then answer an error (a lost acknowledgement), or not apply it at all.
    fn commit(
        &self,
        commit: Commit,
        apply: &dyn Fn(Commit) -> Result<Committed, CommitError>,
    ) -> Result<Committed, CommitError> {
        apply(commit)
    }

    /// Around an acknowledgement, after [`Intercept::before`] let it through: `apply` hands
    /// it to the inner store. As [`Intercept::commit`]: the default applies it; a hook may
    /// apply it and then answer an error, or not apply it at all.
    fn ack_events(
        &self,
        ids: &[EventId],
        apply: &dyn Fn(&[EventId]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        apply(ids)
    }
}

/// A [`Store`] wrapped with an [`Intercept`] hook (see the module docs).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use seathold::store::{Call, Intercept, Intercepted, Store, StoreError};
/// use seathold::{contract::OccKey, MemoryStore};
///
/// #[derive(Default)]
/// struct CountLoads(AtomicUsize);
///
/// impl Intercept for CountLoads {
///     fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
///         if let Call::Load { .. } = call {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         Ok(())
///     }
/// }
///
/// let store = Intercepted::new(MemoryStore::new(), CountLoads::default());
/// store.load(&OccKey::new("gig").unwrap(), &[]).unwrap();
/// assert_eq!(store.hook.0.load(Ordering::Relaxed), 1);
/// ```
#[derive(Debug, Default)]
pub struct Intercepted<S, I> {
    /// The store every call goes on to.
    pub inner: S,
    /// The hook.
    pub hook: I,
}

impl<S, I> Intercepted<S, I> {
    /// `inner`, with `hook` around each call.
    pub fn new(inner: S, hook: I) -> Self {
        Self { inner, hook }
    }
}

impl<S: Store, I: Intercept> Store for Intercepted<S, I> {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        self.hook.before(Call::Load { occ_key, keys })?;
        self.inner.load(occ_key, keys)
    }
    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.hook.before(Call::Due { occ_key, now })?;
        self.inner.due(occ_key, now, limit)
    }
    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        self.hook.before(Call::Scan { occ_key, kind })?;
        self.inner.scan(occ_key, kind, after, limit)
    }
    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        self.hook.before(Call::Occurrences)?;
        self.inner.occurrences(after, limit)
    }
    fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        self.hook.before(Call::Commit(&commit))?;
        self.hook.commit(commit, &|c| self.inner.commit(c))
    }
    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.hook.before(Call::PendingEvents)?;
        self.inner.pending_events(limit)
    }
    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        self.hook.before(Call::AckEvents(ids))?;
        self.hook.ack_events(ids, &|ids| self.inner.ack_events(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::{Call, Intercept, Intercepted};
    use crate::catalogue::OccurrenceConfig;
    use crate::contract::OccKey;
    use crate::store::{Commit, CommitError, Committed, MemoryStore, OccurrenceGuard, Store, StoreError};

    /// Refuses every commit before it is made, or applies it and then loses the answer.
    struct Hook {
        refuse: bool,
    }

    impl Intercept for Hook {
        fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
            match call {
                Call::Commit(_) if self.refuse => Err(StoreError::Unavailable("refused".into())),
                _ => Ok(()),
            }
        }
        fn commit(
            &self,
            commit: Commit,
            apply: &dyn Fn(Commit) -> Result<Committed, CommitError>,
        ) -> Result<Committed, CommitError> {
            apply(commit)?;
            Err(StoreError::Unavailable("answer lost".into()).into())
        }
    }

    fn create(o: &OccKey) -> Commit {
        let config = OccurrenceConfig::new(3, 60).expect("config");
        Commit { occurrence: OccurrenceGuard::Create(config), ..Commit::new(o.clone()) }
    }

    #[test]
    fn a_refused_call_is_not_made_and_a_lost_answer_follows_an_applied_commit() {
        let o = OccKey::new("gig").expect("key");
        let refusing = Intercepted::new(MemoryStore::new(), Hook { refuse: true });
        assert!(matches!(refusing.commit(create(&o)), Err(CommitError::Store(StoreError::Unavailable(_)))));
        assert!(refusing.inner.load(&o, &[]).expect("load").occurrence.is_none(), "refused: nothing applied");

        let losing = Intercepted::new(MemoryStore::new(), Hook { refuse: false });
        assert!(matches!(losing.commit(create(&o)), Err(CommitError::Store(StoreError::Unavailable(_)))));
        assert!(losing.inner.load(&o, &[]).expect("load").occurrence.is_some(), "applied, answer lost");
    }
}
