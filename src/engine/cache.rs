//! The engine's read cache (opt-in, [`AsyncEngine::with_read_cache`]): what this engine last
//! read or committed, per occurrence, so an operation can decide without a load round trip.
//!
//! Owns: the cached occurrences and records, and the rule for trusting them — never for an
//! answer, only for a write, which the store's guards then validate. May not touch: the
//! rules, the store.
//!
//! Why that is safe, and when it pays: [`AsyncEngine::with_read_cache`].
//!
//!
//! [`AsyncEngine::with_read_cache`]: super::AsyncEngine::with_read_cache

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::contract::OccKey;
use crate::records::{Counters, Occurrence, Record, RecordKey, Versioned};
use crate::store::{Commit, OccurrenceGuard, Snapshot, WriteOp};

/// The cache: occurrences by key, each with the records read or written last.
#[derive(Debug)]
pub(crate) struct ReadCache {
    inner: Mutex<Inner>,
    max_records: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How often the read cache saved a load: see
/// [`AsyncEngine::read_cache_stats`](super::AsyncEngine::read_cache_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadCacheStats {
    /// Operations whose first attempt decided on the cache and committed: a load saved.
    pub hits: u64,
    /// Operations whose first attempt decided on the cache and then had to load after all
    /// (a lost guard, or an answer with nothing to write).
    pub misses: u64,
}

#[derive(Debug, Default)]
struct Inner {
    occurrences: HashMap<OccKey, Cached>,
    records: usize,
}

#[derive(Debug)]
struct Cached {
    occurrence: Occurrence,
    records: HashMap<RecordKey, Option<Versioned<Record>>>,
}

/// What a commit will make of the cache once it has applied (prepared before the commit is
/// handed to the store).
#[derive(Debug)]
pub(crate) struct Update {
    occ_key: OccKey,
    occurrence: Option<Occurrence>,
    records: Vec<(RecordKey, Option<Versioned<Record>>)>,
}

impl ReadCache {
    /// A cache of at most `max_records` records (all occurrences together); past that it
    /// starts again empty.
    pub(crate) fn new(max_records: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_records: max_records.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Count a speculative attempt's end: committed (`true`) or fallen back to a load.
    pub(crate) fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> ReadCacheStats {
        ReadCacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The cache is only ever a guess: after a panic elsewhere, a poisoned one is as good.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The occurrence and `keys` as cached (unknown records as absent), or `None` if the
    /// occurrence is not cached.
    pub(crate) fn view(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Option<Snapshot> {
        let inner = self.lock();
        let c = inner.occurrences.get(occ_key)?;
        // Not at an occurrence with a waiting list: see `AsyncEngine::with_read_cache`.
        if matches!(c.records.get(&RecordKey::Waitlist), Some(Some(_))) {
            return None;
        }
        let records = keys.iter().map(|k| c.records.get(k).cloned().flatten()).collect();
        // Counters as if nothing were taken: see `AsyncEngine::with_read_cache`.
        let occurrence = Occurrence { counters: Counters::default(), ..c.occurrence.clone() };
        Some(Snapshot { occurrence: Some(occurrence), records })
    }

    /// Remember what a load read.
    pub(crate) fn loaded(
        &self,
        occ_key: &OccKey,
        occurrence: Option<&Occurrence>,
        keys: &[RecordKey],
        records: &[Option<Versioned<Record>>],
    ) {
        let mut inner = self.lock();
        let Some(occ) = occurrence else {
            inner.forget(occ_key);
            return;
        };
        let added = {
            let c = inner
                .occurrences
                .entry(occ_key.clone())
                .or_insert_with(|| Cached { occurrence: occ.clone(), records: HashMap::new() });
            c.occurrence = occ.clone();
            let before = c.records.len();
            for (k, r) in keys.iter().zip(records) {
                c.records.insert(k.clone(), r.clone());
            }
            c.records.len() - before
        };
        inner.grew(added, self.max_records);
    }

    /// What `commit` will make of the cache, to [`apply`](Self::apply) once it committed.
    /// `None` when the cache cannot follow it (it then forgets the occurrence).
    pub(crate) fn prepare(&self, commit: &Commit) -> Option<Update> {
        let inner = self.lock();
        let cached = inner.occurrences.get(&commit.occ_key).map(|c| &c.occurrence);
        let mut occurrence = match (&commit.occurrence, cached) {
            (OccurrenceGuard::At(_) | OccurrenceGuard::Unchecked, Some(o)) => o.clone(),
            (OccurrenceGuard::Create(config), _) => Occurrence::new(commit.occ_key.clone(), config.clone()),
            (OccurrenceGuard::Update { expected, config }, Some(o)) => {
                let mut next = o.clone();
                next.config = config.clone();
                next.config_version = expected + 1;
                next
            }
            _ => return None,
        };
        // Counters are not cached (a view never uses them).
        occurrence.counters = Counters::default();
        let records = commit
            .records
            .iter()
            .filter_map(|w| match &w.op {
                WriteOp::Check => None,
                // The version is the store's to choose; `apply` fills it in.
                WriteOp::Put(r) => Some((w.key.clone(), Some(Versioned { version: 0, value: r.clone() }))),
                WriteOp::Delete => Some((w.key.clone(), None)),
            })
            .collect();
        Some(Update { occ_key: commit.occ_key.clone(), occurrence: Some(occurrence), records })
    }

    /// Apply what a commit that applied changed; its puts are stored at `version`.
    pub(crate) fn apply(&self, mut update: Update, version: crate::records::Version) {
        for (_, r) in &mut update.records {
            if let Some(r) = r {
                r.version = version;
            }
        }
        let mut inner = self.lock();
        let Some(occ) = update.occurrence else {
            inner.forget(&update.occ_key);
            return;
        };
        let added = {
            let c = inner
                .occurrences
                .entry(update.occ_key)
                .or_insert_with(|| Cached { occurrence: occ.clone(), records: HashMap::new() });
            c.occurrence = occ;
            let before = c.records.len();
            c.records.extend(update.records);
            c.records.len() - before
        };
        inner.grew(added, self.max_records);
    }

    /// Forget `occ_key` (after a lost guard or a failed store call).
    pub(crate) fn forget(&self, occ_key: &OccKey) {
        self.lock().forget(occ_key);
    }
}

impl Inner {
    fn forget(&mut self, occ_key: &OccKey) {
        if let Some(c) = self.occurrences.remove(occ_key) {
            self.records = self.records.saturating_sub(c.records.len());
        }
    }

    fn grew(&mut self, added: usize, max: usize) {
        self.records += added;
        if self.records > max {
            self.occurrences.clear();
            self.records = 0;
        }
    }
}
