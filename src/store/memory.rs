//! `MemoryStore`: the embedded default store, all in process memory.
//!
//! Layout: occurrences live in cells, one `Mutex` per occurrence, found through a fixed
//! number of read-mostly shards. Different occurrences never wait on one another's lock;
//! the only state all threads share is the outbox id counter (one atomic add per commit).
//! Each cell keeps its occurrence, its records in a hash map, its expiry index (records by
//! due time, kept in step with every write) and its slice of the outbox.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use foldhash::HashMap;
use foldhash::fast::RandomState;
use time::OffsetDateTime;

use super::{
    Commit, CommitError, Conflict, Due, OccurrenceGuard, Snapshot, Store, StoreError, WriteOp, validate_commit,
};
use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Occurrence, Record, RecordKey, RecordKind, Versioned};

const SHARDS: usize = 64;

/// One shard: occurrence key -> that occurrence's cell.
type Shard = RwLock<HashMap<OccKey, Arc<Mutex<Cell>>>>;

/// An in-memory [`Store`]: `Send + Sync`, one lock per occurrence, O(1) work per operation.
///
/// Cost: a request, settlement or per-occurrence lookup touches one occurrence's cell. The
/// cross-occurrence operations — the sweep's `due(None, …)`, `pending_events`, `ack_events`
/// and `occurrences` — visit every occurrence's cell once per call, so they cost
/// O(occurrences + results): independent of the number of holds, but not of the number of
/// occurrences. `scan` sorts the records of one kind of one occurrence.
///
/// Nothing survives the process. Ended holds and payment records are kept for the life of
/// the store, since they are what answers redeliveries; size a long-running process
/// accordingly, or use a persistent store.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Shard]>,
    shard_hasher: RandomState,
    next_event: AtomicU64,
}

#[derive(Debug, Default)]
struct Cell {
    occurrence: Option<Occurrence>,
    records: HashMap<RecordKey, Versioned<Record>>,
    /// The expiry index: every record with a due time, by (due time, key).
    due: BTreeSet<(OffsetDateTime, RecordKey)>,
    outbox: VecDeque<OutboxEvent>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cell lock can only come from a bug in this file; the cell's
    // data is still consistent (commits validate before they mutate), so keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect(),
            shard_hasher: RandomState::default(),
            next_event: AtomicU64::new(1),
        }
    }

    fn shard(&self, key: &OccKey) -> &Shard {
        &self.shards[(self.shard_hasher.hash_one(key) as usize) % SHARDS]
    }

    fn cell(&self, key: &OccKey) -> Option<Arc<Mutex<Cell>>> {
        let shard = self.shard(key).read().unwrap_or_else(PoisonError::into_inner);
        shard.get(key).cloned()
    }

    fn cell_or_create(&self, key: &OccKey) -> Arc<Mutex<Cell>> {
        if let Some(cell) = self.cell(key) {
            return cell;
        }
        let mut shard = self.shard(key).write().unwrap_or_else(PoisonError::into_inner);
        shard.entry(key.clone()).or_default().clone()
    }

    fn all_cells(&self) -> Vec<(OccKey, Arc<Mutex<Cell>>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            out.extend(shard.iter().map(|(k, c)| (k.clone(), c.clone())));
        }
        out
    }
}

impl Cell {
    /// Append up to `limit` of this occurrence's records due at `now`, oldest first.
    fn due_upto(&self, occ_key: &OccKey, now: OffsetDateTime, limit: usize, out: &mut Vec<Due>) {
        let due = self.due.iter().take_while(|(t, _)| *t <= now).take(limit);
        out.extend(
            due.filter_map(|(_, key)| self.records.get(key))
                .map(|r| Due { occ_key: occ_key.clone(), record: r.clone() }),
        );
    }

    /// Check every guard; on success, the occurrence as the commit leaves it.
    fn check(&self, c: &Commit) -> Result<Option<Occurrence>, CommitError> {
        let next_occ = match (&c.occurrence, &self.occurrence) {
            (OccurrenceGuard::Unchecked, occ) => occ.clone(),
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
        // Record guards before the counters: arithmetic on counters means something only if
        // every record the commit decided from is as it was read (a counter going negative
        // after that is a bug, not a race).
        for w in &c.records {
            let found = self.records.get(&w.key).map(|r| r.version);
            if found != w.expected {
                return Err(Conflict::Record { key: w.key.clone() }.into());
            }
        }
        let next_occ = match next_occ {
            Some(mut occ) => {
                if !c.deltas.is_empty() {
                    // A dimension of the configuration the commit leaves, or (for one that
                    // drops it) of the one it replaces: the commit may empty it first.
                    let old = self.occurrence.as_ref().map(|o| &o.config);
                    for (dim, _) in &c.deltas {
                        let known =
                            occ.config.capacity_of(dim).is_some() || old.is_some_and(|o| o.capacity_of(dim).is_some());
                        if !known {
                            return Err(CommitError::Invalid(format!("no dimension {dim} at {}", c.occ_key)));
                        }
                    }
                    occ.counters = occ
                        .counters
                        .apply(&c.deltas)
                        .map_err(|dim| CommitError::Invalid(format!("counter {dim} would go negative")))?;
                    if c.admits {
                        // A dimension the commit frees is never refused (lowering a cap
                        // revokes nothing), even when it stays over its cap.
                        for (dim, _) in c.deltas.iter().filter(|(_, u)| u.net() >= 0) {
                            if let Some(Some(cap)) = occ.config.capacity_of(dim) {
                                if occ.counters.get(dim).total() > cap {
                                    return Err(Conflict::Capacity { dim: dim.clone() }.into());
                                }
                            }
                        }
                    }
                }
                // Dimensions a new configuration drops must count nothing.
                if occ.counters.iter().any(|(d, u)| u.total() > 0 && occ.config.capacity_of(d).is_none()) {
                    return Err(Conflict::Occurrence.into());
                }
                let config = occ.config.clone();
                occ.counters.retain(|d| config.capacity_of(d).is_some());
                Some(occ)
            }
            None if c.deltas.is_empty() => None,
            None => return Err(Conflict::Occurrence.into()),
        };
        Ok(next_occ)
    }

    fn apply(&mut self, c: Commit, occ: Option<Occurrence>, first_event_id: u64) {
        self.occurrence = occ;
        for w in c.records {
            let version = w.expected.map_or(1, |v| v + 1);
            let old_due = self.records.get(&w.key).and_then(|r| r.value.due());
            match w.op {
                WriteOp::Check => continue,
                WriteOp::Put(record) => {
                    let new_due = record.due();
                    if old_due != new_due {
                        if let Some(t) = old_due {
                            self.due.remove(&(t, w.key.clone()));
                        }
                        if let Some(t) = new_due {
                            self.due.insert((t, w.key.clone()));
                        }
                    }
                    self.records.insert(w.key, Versioned { version, value: record });
                }
                WriteOp::Delete => {
                    if let Some(t) = old_due {
                        self.due.remove(&(t, w.key.clone()));
                    }
                    self.records.remove(&w.key);
                }
            }
        }
        for (i, event) in c.events.into_iter().enumerate() {
            self.outbox.push_back(OutboxEvent { id: EventId(first_event_id + i as u64), event });
        }
    }
}

impl Store for MemoryStore {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        let Some(cell) = self.cell(occ_key) else {
            return Ok(Snapshot { occurrence: None, records: vec![None; keys.len()] });
        };
        let cell = lock(&cell);
        Ok(Snapshot {
            occurrence: cell.occurrence.clone(),
            records: keys.iter().map(|k| cell.records.get(k).cloned()).collect(),
        })
    }

    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        let mut out = Vec::new();
        match occ_key {
            Some(k) => {
                if let Some(cell) = self.cell(k) {
                    lock(&cell).due_upto(k, now, limit, &mut out);
                }
            }
            None => {
                // The oldest `limit` across occurrences: up to `limit` from each, cut back to
                // the oldest `limit` whenever twice that has gathered.
                let oldest_first = |out: &mut Vec<Due>| {
                    out.sort_by_key(|d| d.record.value.due());
                    out.truncate(limit);
                };
                for (k, cell) in self.all_cells() {
                    lock(&cell).due_upto(&k, now, limit, &mut out);
                    if out.len() >= limit.saturating_mul(2) {
                        oldest_first(&mut out);
                    }
                }
                oldest_first(&mut out);
            }
        }
        Ok(out)
    }

    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        let Some(cell) = self.cell(occ_key) else { return Ok(Vec::new()) };
        let cell = lock(&cell);
        let mut found: Vec<(&RecordKey, &Versioned<Record>)> =
            cell.records.iter().filter(|(k, _)| k.kind() == kind && after.is_none_or(|a| *k > a)).collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        Ok(found.into_iter().take(limit).map(|(_, r)| r.clone()).collect())
    }

    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        let mut keys: Vec<OccKey> = self
            .all_cells()
            .into_iter()
            .filter(|(k, c)| after.is_none_or(|a| k > a) && lock(c).occurrence.is_some())
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.truncate(limit);
        Ok(keys)
    }

    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        validate_commit(&commit).map_err(CommitError::Invalid)?;
        let cell = self.cell_or_create(&commit.occ_key);
        let mut cell = lock(&cell);
        let occ = cell.check(&commit)?;
        let first = if commit.events.is_empty() {
            0
        } else {
            self.next_event.fetch_add(commit.events.len() as u64, Ordering::Relaxed)
        };
        cell.apply(commit, occ, first);
        Ok(())
    }

    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut out = Vec::new();
        for (_, cell) in self.all_cells() {
            out.extend(lock(&cell).outbox.iter().take(limit).cloned());
        }
        out.sort_unstable_by_key(|e| e.id);
        out.truncate(limit);
        Ok(out)
    }

    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        let mut left: HashSet<EventId> = ids.iter().copied().collect();
        if left.is_empty() {
            return Ok(());
        }
        for (_, cell) in self.all_cells() {
            let mut cell = lock(&cell);
            while cell.outbox.front().is_some_and(|e| left.remove(&e.id)) {
                cell.outbox.pop_front();
            }
            if !left.is_empty() && !cell.outbox.is_empty() {
                // Out-of-order acknowledgements: the cell's outbox is sorted by id.
                left.retain(|id| match cell.outbox.binary_search_by_key(id, |e| e.id) {
                    Ok(i) => {
                        cell.outbox.remove(i);
                        false
                    }
                    Err(_) => true,
                });
            }
            if left.is_empty() {
                break;
            }
            // Shrink a drained outbox's buffer so acknowledged events give their memory back.
            if cell.outbox.is_empty() && cell.outbox.capacity() > 64 {
                cell.outbox.shrink_to_fit();
            }
        }
        Ok(())
    }
}
