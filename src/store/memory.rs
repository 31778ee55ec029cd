//! `MemoryStore`: the embedded default store, all in process memory.
//!
//! Layout: occurrences live in cells, one `Mutex` per occurrence, found through a fixed
//! number of read-mostly shards. Different occurrences never wait on one another's lock;
//! the only state all threads share is the outbox id counter (one atomic add per commit).
//! Each cell keeps its occurrence, its records (bookings and actor summaries in maps keyed by
//! their id alone, every other kind by its key; the commonest bodies in per-kind slabs), its
//! expiry index (records by due time, kept in step with every write) and its slice of the
//! outbox.

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
use crate::contract::{ActorId, EventId, OccKey, OutboxEvent, Ref};
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
    records: Kept,
    /// The expiry index: every record with a due time, by (due time, key).
    due: BTreeSet<(i128, DueKey)>,
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

/// Records of one kind, kept in chunks: placing a record costs no allocation of its own (a
/// chunk is allocated once per many records, chunks growing from 8 to 1,024 slots), a freed
/// slot is reused, and a record is kept at its own size (a `Box<Record>` would take the
/// largest kind's size, and one allocation, for every record).
#[derive(Debug)]
struct Slab<T> {
    /// Chunk `i` holds up to `8 << min(i, 7)` slots; never reallocated once made.
    chunks: Vec<Vec<Option<T>>>,
    /// Freed slots, reused first.
    free: Vec<u32>,
}

/// Slots per chunk, at most: a slot id is `chunk * CHUNK_MAX + offset`.
const CHUNK_MAX: u32 = 1024;

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> u32 {
        if let Some(id) = self.free.pop() {
            *self.slot_mut(id) = Some(value);
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == c.capacity()) {
            let size = (8u32 << self.chunks.len().min(7)).min(CHUNK_MAX) as usize;
            self.chunks.push(Vec::with_capacity(size));
        }
        let chunk = self.chunks.len() - 1;
        let last = &mut self.chunks[chunk];
        last.push(Some(value));
        // Fewer than 2^22 chunks on any machine this runs on (2^32 slots).
        chunk as u32 * CHUNK_MAX + (last.len() as u32 - 1)
    }

    fn slot_mut(&mut self, id: u32) -> &mut Option<T> {
        &mut self.chunks[(id / CHUNK_MAX) as usize][(id % CHUNK_MAX) as usize]
    }

    fn get(&self, id: u32) -> &T {
        match &self.chunks[(id / CHUNK_MAX) as usize][(id % CHUNK_MAX) as usize] {
            Some(v) => v,
            None => unreachable!("a slab slot is read only while its record is in the map"),
        }
    }

    fn get_mut(&mut self, id: u32) -> &mut T {
        match self.slot_mut(id) {
            Some(v) => v,
            None => unreachable!("a slab slot is written only while its record is in the map"),
        }
    }

    fn remove(&mut self, id: u32) {
        *self.slot_mut(id) = None;
        self.free.push(id);
    }
}

/// Where a cell keeps the bodies of its most numerous record kinds (one per hold or
/// payment, or a stadium's rows): each kind in a slab of its own.
#[derive(Debug, Default)]
struct Bodies {
    bookings: Slab<crate::holds::Hold>,
    actors: Slab<crate::holds::ActorRecord>,
    payments: Slab<crate::settlement::PaymentRecord>,
}

/// A record other than a booking or an actor summary (those are in maps of their own), as a
/// cell keeps it: a payment as a slot in its slab, the rest boxed at their own size.
#[derive(Debug)]
enum Stored {
    Payment(u32),
    /// A stadium keeps one per row for the whole sale; rows are few per write.
    Row(Box<crate::seating::SeatRow>),
    Other(Box<Record>),
}

impl Stored {
    fn new(r: Record, b: &mut Bodies) -> Self {
        match r {
            Record::Payment(p) => Self::Payment(b.payments.insert(p)),
            Record::SeatRow(r) => Self::Row(Box::new(r)),
            other => Self::Other(Box::new(other)),
        }
    }

    /// Overwrite with `r`, in place when the kind is the same (keys fix the kind).
    fn set(&mut self, r: Record, b: &mut Bodies) {
        match (&mut *self, r) {
            (Self::Payment(id), Record::Payment(p)) => *b.payments.get_mut(*id) = p,
            (Self::Row(x), Record::SeatRow(r)) => **x = r,
            (Self::Other(x), r) => **x = r,
            (_, r) => {
                self.free(b);
                *self = Self::new(r, b);
            }
        }
    }

    /// Give its slot back (the record is being removed or replaced).
    fn free(&self, b: &mut Bodies) {
        match self {
            Self::Payment(id) => b.payments.remove(*id),
            Self::Row(_) | Self::Other(_) => {}
        }
    }

    fn to_record(&self, b: &Bodies) -> Record {
        match self {
            Self::Payment(id) => Record::Payment(b.payments.get(*id).clone()),
            Self::Row(r) => Record::SeatRow(crate::seating::SeatRow::clone(r)),
            Self::Other(r) => Record::clone(r),
        }
    }

    fn due(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Other(r) => r.due(),
            Self::Payment(_) | Self::Row(_) => None,
        }
    }
}

/// A key of the expiry index: a booking (what nearly every due record is) by its ref alone,
/// any other kind boxed — 24 bytes instead of a `RecordKey`'s 56. Ordered as the
/// `RecordKey`s they stand for: bookings (the first kind) first, by ref.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum DueKey {
    Booking(Ref),
    Other(Box<RecordKey>),
}

impl DueKey {
    fn of(key: &RecordKey) -> Self {
        match key {
            RecordKey::Booking(r) => Self::Booking(r.clone()),
            k => Self::Other(Box::new(k.clone())),
        }
    }
}

/// One occurrence's records. The two every hold has — its booking and its actor's summary —
/// are kept by their id alone (a 16-byte shared name, not a 56-byte `RecordKey`) with their
/// bodies in slabs; every other kind by its key.
#[derive(Debug, Default)]
struct Kept {
    bookings: HashMap<Ref, Versioned<u32>>,
    actors: HashMap<ActorId, Versioned<u32>>,
    others: HashMap<RecordKey, Versioned<Stored>>,
    bodies: Bodies,
}

impl Kept {
    fn booking(&self, v: &Versioned<u32>) -> Versioned<Record> {
        Versioned { version: v.version, value: Record::Booking(self.bodies.bookings.get(v.value).clone()) }
    }

    fn actor(&self, v: &Versioned<u32>) -> Versioned<Record> {
        Versioned { version: v.version, value: Record::Actor(self.bodies.actors.get(v.value).clone()) }
    }

    fn other(&self, v: &Versioned<Stored>) -> Versioned<Record> {
        Versioned { version: v.version, value: v.value.to_record(&self.bodies) }
    }

    fn version(&self, key: &RecordKey) -> Option<Version> {
        match key {
            RecordKey::Booking(r) => self.bookings.get(r).map(|v| v.version),
            RecordKey::Actor(a) => self.actors.get(a).map(|v| v.version),
            k => self.others.get(k).map(|v| v.version),
        }
    }

    fn get(&self, key: &RecordKey) -> Option<Versioned<Record>> {
        match key {
            RecordKey::Booking(r) => self.bookings.get(r).map(|v| self.booking(v)),
            RecordKey::Actor(a) => self.actors.get(a).map(|v| self.actor(v)),
            k => self.others.get(k).map(|v| self.other(v)),
        }
    }

    fn get_due(&self, key: &DueKey) -> Option<Versioned<Record>> {
        match key {
            DueKey::Booking(r) => self.bookings.get(r).map(|v| self.booking(v)),
            DueKey::Other(k) => self.get(k),
        }
    }

    /// Store `record` under `key` (its own key) at `version`; answers the due time of the
    /// record it replaced, if it replaced one that had one.
    fn put(&mut self, key: &RecordKey, version: Version, record: Record) -> Option<OffsetDateTime> {
        match (key, record) {
            (RecordKey::Booking(r), Record::Booking(h)) => match self.bookings.entry(r.clone()) {
                Entry::Occupied(mut e) => {
                    let slot = e.get_mut();
                    slot.version = version;
                    let body = self.bodies.bookings.get_mut(slot.value);
                    let old = body.due();
                    *body = h;
                    old
                }
                Entry::Vacant(e) => {
                    e.insert(Versioned { version, value: self.bodies.bookings.insert(h) });
                    None
                }
            },
            (RecordKey::Actor(a), Record::Actor(x)) => match self.actors.entry(a.clone()) {
                Entry::Occupied(mut e) => {
                    let slot = e.get_mut();
                    slot.version = version;
                    *self.bodies.actors.get_mut(slot.value) = x;
                    None
                }
                Entry::Vacant(e) => {
                    e.insert(Versioned { version, value: self.bodies.actors.insert(x) });
                    None
                }
            },
            // Any other kind (and, never in a valid commit, a record under another kind's key).
            (key, record) => match self.others.get_mut(key) {
                Some(slot) => {
                    let old = slot.value.due();
                    slot.version = version;
                    slot.value.set(record, &mut self.bodies);
                    old
                }
                None => {
                    let value = Stored::new(record, &mut self.bodies);
                    self.others.insert(key.clone(), Versioned { version, value });
                    None
                }
            },
        }
    }

    /// Remove the record under `key`: `None` if there was none, else its due time.
    fn delete(&mut self, key: &RecordKey) -> Option<Option<OffsetDateTime>> {
        match key {
            RecordKey::Booking(r) => self.bookings.remove(r).map(|v| {
                let due = self.bodies.bookings.get(v.value).due();
                self.bodies.bookings.remove(v.value);
                due
            }),
            RecordKey::Actor(a) => self.actors.remove(a).map(|v| {
                self.bodies.actors.remove(v.value);
                None
            }),
            k => self.others.remove(k).map(|v| {
                let due = v.value.due();
                v.value.free(&mut self.bodies);
                due
            }),
        }
    }

    /// Up to `limit` records of `kind` with keys after `after`, in key order.
    fn scan(&self, kind: RecordKind, after: Option<&RecordKey>, limit: usize) -> Vec<Versioned<Record>> {
        let after_ok = |k: &RecordKey| after.is_none_or(|a| k > a);
        match kind {
            RecordKind::Booking => {
                let mut found: Vec<(RecordKey, &Versioned<u32>)> = self
                    .bookings
                    .iter()
                    .map(|(r, v)| (RecordKey::Booking(r.clone()), v))
                    .filter(|(k, _)| after_ok(k))
                    .collect();
                found.sort_by(|a, b| a.0.cmp(&b.0));
                found.into_iter().take(limit).map(|(_, v)| self.booking(v)).collect()
            }
            RecordKind::Actor => {
                let mut found: Vec<(RecordKey, &Versioned<u32>)> = self
                    .actors
                    .iter()
                    .map(|(a, v)| (RecordKey::Actor(a.clone()), v))
                    .filter(|(k, _)| after_ok(k))
                    .collect();
                found.sort_by(|a, b| a.0.cmp(&b.0));
                found.into_iter().take(limit).map(|(_, v)| self.actor(v)).collect()
            }
            kind => {
                let mut found: Vec<(&RecordKey, &Versioned<Stored>)> =
                    self.others.iter().filter(|(k, _)| k.kind() == kind && after_ok(k)).collect();
                found.sort_by(|a, b| a.0.cmp(b.0));
                found.into_iter().take(limit).map(|(_, v)| self.other(v)).collect()
            }
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
            due.filter_map(|(_, key)| self.records.get_due(key)).map(|record| Due { occ_key: occ_key.clone(), record }),
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
                    let old_due = self.records.put(&key, version, record).map(due_key);
                    if old_due != new_due {
                        let dk = DueKey::of(&key);
                        if let Some(t) = old_due {
                            self.due.remove(&(t, dk.clone()));
                        }
                        if let Some(t) = new_due {
                            self.due.insert((t, dk));
                        }
                    }
                }
                WriteOp::Delete => {
                    if let Some(Some(t)) = self.records.delete(&key) {
                        self.due.remove(&(due_key(t), DueKey::of(&key)));
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
            records: keys.iter().map(|k| cell.records.get(k)).collect(),
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
        Ok(cell.records.scan(kind, after, limit))
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
        let occ = check_commit(cell.occurrence.as_ref(), |k| cell.records.version(k), &commit)?;
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

#[cfg(test)]
mod tests {
    use super::{DueKey, Slab};
    use crate::contract::{BlockName, OpKey, Ref};
    use crate::records::RecordKey;

    #[test]
    fn expiry_index_keys_order_as_the_record_keys_they_stand_for() {
        let r = |s: &str| Ref::new(s).expect("ref");
        let keys = vec![
            RecordKey::Waitlist,
            RecordKey::Booking(r("r-2")),
            RecordKey::Block(BlockName::new("vip").expect("name")),
            RecordKey::Booking(r("r-10")),
            RecordKey::Op(OpKey::new("k").expect("key")),
            RecordKey::Booking(r("a")),
        ];
        let mut by_record = keys.clone();
        by_record.sort();
        let mut by_due: Vec<DueKey> = keys.iter().map(DueKey::of).collect();
        by_due.sort();
        assert_eq!(by_due, by_record.iter().map(DueKey::of).collect::<Vec<_>>());
    }

    #[test]
    fn a_slab_keeps_every_value_at_its_slot_across_chunks_and_reuses_freed_slots() {
        let mut s: Slab<u64> = Slab::default();
        let ids: Vec<u32> = (0..5_000u64).map(|v| s.insert(v)).collect();
        // Chunks grow 8, 16, …, 1,024: 5,000 values need 11 of them, none reallocated.
        assert_eq!(s.chunks.len(), 11);
        assert!(s.chunks.iter().all(|c| c.len() <= c.capacity() && c.capacity() <= 1_024));
        for (v, id) in ids.iter().enumerate() {
            assert_eq!(*s.get(*id), v as u64);
        }
        s.remove(ids[7]);
        s.remove(ids[4_000]);
        *s.get_mut(ids[8]) = 88;
        // Freed slots are taken before the last chunk grows; the others keep their values.
        let a = s.insert(100_000);
        let b = s.insert(100_001);
        assert_eq!([a, b].iter().filter(|x| **x == ids[7] || **x == ids[4_000]).count(), 2);
        assert_eq!((*s.get(a), *s.get(b)), (100_000, 100_001));
        assert_eq!(*s.get(ids[8]), 88);
        assert_eq!(*s.get(ids[4_999]), 4_999);
        assert_eq!(s.chunks.len(), 11);
    }
}
