//! `MemoryStore`: the embedded default store, all in process memory.
//!
//! Layout: occurrences live in cells, one `Mutex` per occurrence, found through a fixed
//! number of read-mostly shards. Different occurrences never wait on one another's lock;
//! the only state all threads share is the outbox id counter (one atomic add per commit).
//! Each cell keeps its occurrence, its records in a hash map, its expiry index (records by
//! due time, kept in step with every write) and its slice of the outbox.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use foldhash::HashMap;
use foldhash::fast::RandomState;
use time::OffsetDateTime;

use super::{
    Commit, CommitError, Committed, Due, NextOccurrence, RecordWrite, Snapshot, Store, StoreError, WriteOp,
    check_commit,
};
use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Occurrence, Record, RecordKey, RecordKind, Version, Versioned};

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
    /// Records boxed: the map's slots stay small (a key, a version, a pointer), so growing
    /// the map moves little, and a rewrite of a record reuses its allocation.
    records: HashMap<RecordKey, Versioned<Stored>>,
    /// The expiry index: every record with a due time, by (due time, key).
    due: BTreeSet<(i128, RecordKey)>,
    outbox: VecDeque<OutboxEvent>,
    /// The last version a commit stored records at (clause 7): every commit that puts a
    /// record takes the next one. The cell outlives every record it deletes, so a version
    /// never repeats for a key.
    seq: Version,
}

/// A due time as the expiry index orders it: nanoseconds since the epoch (exact, and cheaper
/// to compare than an `OffsetDateTime`).
fn due_key(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

fn unboxed(r: &Versioned<Stored>) -> Versioned<Record> {
    Versioned { version: r.version, value: r.value.to_record() }
}

/// A record as a cell keeps it: boxed, each kind at its own size (a `Box<Record>` would
/// take the largest kind's size for every record).
#[derive(Debug)]
enum Stored {
    Booking(Box<crate::holds::Hold>),
    Actor(Box<crate::holds::ActorRecord>),
    Payment(Box<crate::settlement::PaymentRecord>),
    /// A stadium keeps one per row for the whole sale.
    Row(Box<crate::seating::SeatRow>),
    Other(Box<Record>),
}

impl Stored {
    fn new(r: Record) -> Self {
        match r {
            Record::Booking(h) => Self::Booking(Box::new(h)),
            Record::Actor(a) => Self::Actor(Box::new(a)),
            Record::Payment(p) => Self::Payment(Box::new(p)),
            Record::SeatRow(r) => Self::Row(Box::new(r)),
            other => Self::Other(Box::new(other)),
        }
    }

    /// Overwrite with `r`, reusing the box when the kind is the same (keys fix the kind).
    fn set(&mut self, r: Record) {
        match (self, r) {
            (Self::Booking(b), Record::Booking(h)) => **b = h,
            (Self::Actor(b), Record::Actor(a)) => **b = a,
            (Self::Payment(b), Record::Payment(p)) => **b = p,
            (Self::Row(b), Record::SeatRow(r)) => **b = r,
            (Self::Other(b), r) => **b = r,
            (this, r) => *this = Self::new(r),
        }
    }

    fn to_record(&self) -> Record {
        match self {
            Self::Booking(h) => Record::Booking(crate::holds::Hold::clone(h)),
            Self::Actor(a) => Record::Actor(crate::holds::ActorRecord::clone(a)),
            Self::Payment(p) => Record::Payment(crate::settlement::PaymentRecord::clone(p)),
            Self::Row(r) => Record::SeatRow(crate::seating::SeatRow::clone(r)),
            Self::Other(r) => Record::clone(r),
        }
    }

    fn due(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Booking(h) => h.due(),
            Self::Other(r) => r.due(),
            Self::Actor(_) | Self::Payment(_) | Self::Row(_) => None,
        }
    }
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
        let now = due_key(now);
        let due = self.due.iter().take_while(|(t, _)| *t <= now).take(limit);
        out.extend(
            due.filter_map(|(_, key)| self.records.get(key).map(unboxed))
                .map(|record| Due { occ_key: occ_key.clone(), record }),
        );
    }

    fn apply(&mut self, c: Commit, occ: NextOccurrence, first_event_id: u64) -> Committed {
        if c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_))) {
            self.seq += 1;
        }
        let version = self.seq;
        occ.apply_to(&mut self.occurrence, &c.deltas);
        for RecordWrite { key, op, .. } in c.records {
            match op {
                WriteOp::Check => {}
                WriteOp::Put(record) => {
                    let new_due = record.due().map(due_key);
                    match self.records.entry(key) {
                        Entry::Occupied(mut e) => {
                            let old_due = e.get().value.due().map(due_key);
                            if old_due != new_due {
                                if let Some(t) = old_due {
                                    self.due.remove(&(t, e.key().clone()));
                                }
                                if let Some(t) = new_due {
                                    self.due.insert((t, e.key().clone()));
                                }
                            }
                            let slot = e.get_mut();
                            slot.version = version;
                            slot.value.set(record);
                        }
                        Entry::Vacant(e) => {
                            if let Some(t) = new_due {
                                self.due.insert((t, e.key().clone()));
                            }
                            e.insert(Versioned { version, value: Stored::new(record) });
                        }
                    }
                }
                WriteOp::Delete => {
                    if let Some(old) = self.records.remove(&key) {
                        if let Some(t) = old.value.due() {
                            self.due.remove(&(due_key(t), key));
                        }
                    }
                }
            }
        }
        for (i, event) in c.events.into_iter().enumerate() {
            self.outbox.push_back(OutboxEvent { id: EventId(first_event_id + i as u64), event });
        }
        Committed::at(version)
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
            records: keys.iter().map(|k| cell.records.get(k).map(unboxed)).collect(),
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
                // Ties (the same due time) go by occurrence, then key: the same answer
                // whatever the order the cells happen to be visited in.
                let oldest_first = |out: &mut Vec<Due>| {
                    out.sort_by_cached_key(|d| (d.record.value.due(), d.occ_key.clone(), d.record.value.key()));
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
        let mut found: Vec<(&RecordKey, &Versioned<Stored>)> =
            cell.records.iter().filter(|(k, _)| k.kind() == kind && after.is_none_or(|a| *k > a)).collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        Ok(found.into_iter().take(limit).map(|(_, r)| unboxed(r)).collect())
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

    fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        let cell = self.cell_or_create(&commit.occ_key);
        let mut cell = lock(&cell);
        let occ = check_commit(cell.occurrence.as_ref(), |k| cell.records.get(k).map(|r| r.version), &commit)?;
        let first = if commit.events.is_empty() {
            0
        } else {
            self.next_event.fetch_add(commit.events.len() as u64, Ordering::Relaxed)
        };
        Ok(cell.apply(commit, occ, first))
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
            // Acknowledged events give their memory back: a buffer mostly empty shrinks.
            let (len, cap) = (cell.outbox.len(), cell.outbox.capacity());
            if cap > 64 && len < cap / 4 {
                cell.outbox.shrink_to(len.saturating_mul(2));
            }
            if left.is_empty() {
                break;
            }
        }
        Ok(())
    }
}
