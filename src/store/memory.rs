//! `MemoryStore`: the embedded default store, all in process memory.
//!
//! Layout: occurrences live in cells, one `Mutex` per occurrence, found through a fixed
//! number of read-mostly shards. Different occurrences never wait on one another's lock;
//! the only state all threads share is the outbox id counter (one atomic add per commit).
//! Each cell keeps its holds, its settlement records, its expiry index (holds bucketed by
//! the second they lapse, stale entries dropped lazily) and its slice of the outbox.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use foldhash::HashMap;
use foldhash::fast::RandomState;
use time::OffsetDateTime;

use super::{Commit, CommitError, Conflict, LoadRequest, Snapshot, Store, StoreError, Versioned};
use crate::contract::{ActorId, EventId, OccKey, OutboxEvent, Ref};
use crate::holds::{Hold, HoldState, Occurrence};
use crate::settlement::SettlementRecord;

const SHARDS: usize = 64;

/// One shard: occurrence key -> that occurrence's cell.
type Shard = RwLock<HashMap<OccKey, Arc<Mutex<Cell>>>>;

/// An in-memory [`Store`]: `Send + Sync`, one lock per occurrence, O(1) work per operation.
///
/// Cost: a request, settlement or per-occurrence lookup touches one occurrence's cell. The
/// cross-occurrence operations — the sweep's `lapsed_holds(None, …)`, `pending_events` and
/// `ack_events` — visit every occurrence's cell once per call, so they cost
/// O(occurrences + results): independent of the number of holds, but not of the number of
/// occurrences.
///
/// Nothing survives the process. Settlement records (one per `paid` result) and ended holds
/// are kept for the life of the store, since they are what answers redeliveries; size a
/// long-running process accordingly, or use a persistent store.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Shard]>,
    shard_hasher: RandomState,
    next_event: AtomicU64,
}

#[derive(Debug, Default)]
struct Cell {
    occurrence: Option<Occurrence>,
    holds: HashMap<ActorId, Versioned<Hold>>,
    /// Held holds by the unix second they lapse in: (expires_at, actor, version written). An
    /// entry is stale, and dropped when met, once its hold record has another version.
    expiry: BTreeMap<i64, Vec<(OffsetDateTime, ActorId, u64)>>,
    settlements: HashMap<(ActorId, Ref), SettlementRecord>,
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

    fn all_cells(&self) -> Vec<Arc<Mutex<Cell>>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(shard.read().unwrap_or_else(PoisonError::into_inner).values().cloned());
        }
        out
    }
}

impl Cell {
    /// Visit the held, lapsed holds of this cell in expiry order (oldest first), dropping
    /// stale index entries on the way; stop when `visit` returns false.
    fn for_each_lapsed(&mut self, now: OffsetDateTime, mut visit: impl FnMut(&Versioned<Hold>) -> bool) {
        let holds = &self.holds;
        let mut emptied = Vec::new();
        let mut stopped = false;
        for (&second, entries) in self.expiry.range_mut(..=now.unix_timestamp()) {
            // One order-preserving pass: drop stale entries, visit due ones.
            entries.retain(|(expires_at, actor, version)| {
                if stopped {
                    return true;
                }
                let current = holds.get(actor).filter(|h| {
                    h.version == *version && h.value.state == HoldState::Held && h.value.expires_at == *expires_at
                });
                match current {
                    None => false,
                    Some(h) if h.value.expires_at <= now => {
                        stopped = !visit(h);
                        true
                    }
                    Some(_) => true,
                }
            });
            if entries.is_empty() {
                emptied.push(second);
            }
            if stopped {
                break;
            }
        }
        for second in emptied {
            self.expiry.remove(&second);
        }
    }

    fn check(&self, c: &Commit) -> Result<(), Conflict> {
        let touches_seats = !c.seats.is_zero() || !c.holds.is_empty();
        if touches_seats {
            let Some(occ) = self.occurrence.as_ref() else {
                return Err(Conflict::UnknownOccurrence);
            };
            let capacity = c.configure.map_or(occ.config.capacity(), |cfg| cfg.capacity());
            let held = occ.held as i128 + i128::from(c.seats.held);
            let confirmed = occ.confirmed as i128 + i128::from(c.seats.confirmed);
            if held < 0 || confirmed < 0 {
                return Err(Conflict::UnknownOccurrence);
            }
            if c.admits_seats() && held + confirmed > i128::from(capacity) {
                return Err(Conflict::Capacity);
            }
        }
        for (i, w) in c.holds.iter().enumerate() {
            if c.holds[..i].iter().any(|o| o.hold.actor == w.hold.actor) {
                return Err(Conflict::HoldChanged { actor: w.hold.actor.clone() });
            }
            if w.hold.occ_key != c.occ_key {
                return Err(Conflict::UnknownOccurrence);
            }
            let found = self.holds.get(&w.hold.actor).map(|h| h.version);
            if found != w.expected {
                return Err(Conflict::HoldChanged { actor: w.hold.actor.clone() });
            }
        }
        if let Some(rec) = &c.settlement {
            if self.settlements.contains_key(&(rec.actor.clone(), rec.hold_ref.clone())) {
                return Err(Conflict::SettlementExists);
            }
        }
        Ok(())
    }

    fn apply(&mut self, c: Commit, first_event_id: u64) {
        if let Some(cfg) = c.configure {
            match &mut self.occurrence {
                Some(occ) => occ.config = cfg,
                None => self.occurrence = Some(Occurrence::new(c.occ_key.clone(), cfg)),
            }
        }
        if let Some(occ) = &mut self.occurrence {
            // `check` proved both results are non-negative.
            occ.held = (occ.held as i128 + i128::from(c.seats.held)) as u64;
            occ.confirmed = (occ.confirmed as i128 + i128::from(c.seats.confirmed)) as u64;
        }
        for w in c.holds {
            let version = w.expected.map_or(1, |v| v + 1);
            if w.hold.state == HoldState::Held {
                let e = w.hold.expires_at;
                // Keep each second's entries sorted by expiry; with a steady clock the new
                // entry goes at the end.
                let bucket = self.expiry.entry(e.unix_timestamp()).or_default();
                let at = bucket.partition_point(|(other, _, _)| *other <= e);
                bucket.insert(at, (e, w.hold.actor.clone(), version));
            }
            match self.holds.entry(w.hold.actor.clone()) {
                Entry::Occupied(mut o) => *o.get_mut() = Versioned { version, value: w.hold },
                Entry::Vacant(v) => {
                    v.insert(Versioned { version, value: w.hold });
                }
            }
        }
        if let Some(rec) = c.settlement {
            self.settlements.insert((rec.actor.clone(), rec.hold_ref.clone()), rec);
        }
        for (i, event) in c.events.into_iter().enumerate() {
            self.outbox.push_back(OutboxEvent { id: EventId(first_event_id + i as u64), event });
        }
    }
}

impl Store for MemoryStore {
    fn load(&self, req: LoadRequest<'_>) -> Result<Snapshot, StoreError> {
        let Some(cell) = self.cell(req.occ_key) else {
            return Ok(Snapshot::default());
        };
        let cell = lock(&cell);
        let hold = req.actor.and_then(|a| cell.holds.get(a).cloned());
        let settlement = match (req.actor, req.settlement_ref) {
            (Some(a), Some(r)) if !cell.settlements.is_empty() => {
                cell.settlements.get(&(a.clone(), r.clone())).cloned()
            }
            _ => None,
        };
        Ok(Snapshot { occurrence: cell.occurrence.clone(), hold, settlement })
    }

    fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Versioned<Hold>>, StoreError> {
        let mut out = Vec::new();
        let cells = match occ_key {
            Some(k) => self.cell(k).into_iter().collect(),
            None => self.all_cells(),
        };
        for cell in cells {
            if out.len() >= limit {
                break;
            }
            lock(&cell).for_each_lapsed(now, |h| {
                out.push(h.clone());
                out.len() < limit
            });
        }
        Ok(out)
    }

    fn lapsed_seats(&self, occ_key: &OccKey, now: OffsetDateTime) -> Result<u64, StoreError> {
        let Some(cell) = self.cell(occ_key) else {
            return Ok(0);
        };
        let mut seats = 0u64;
        lock(&cell).for_each_lapsed(now, |h| {
            seats += u64::from(h.value.quantity);
            true
        });
        Ok(seats)
    }

    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let cell = self.cell_or_create(&commit.occ_key);
        let mut cell = lock(&cell);
        cell.check(&commit)?;
        let first = if commit.events.is_empty() {
            0
        } else {
            self.next_event.fetch_add(commit.events.len() as u64, Ordering::Relaxed)
        };
        cell.apply(commit, first);
        Ok(())
    }

    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut out = Vec::new();
        for cell in self.all_cells() {
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
        for cell in self.all_cells() {
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
        }
        Ok(())
    }
}
