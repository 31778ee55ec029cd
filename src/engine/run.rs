//! The one engine loop every operation runs: load -> decide (pure) -> commit, and on a lost
//! race (a [`Conflict`](crate::store::Conflict)) load and decide again, a bounded number of
//! times. Generic over [`AsyncStore`]; the blocking engine runs the same futures.

use time::OffsetDateTime;

use super::cache::ReadCache;
use super::error::OpError;
use crate::contract::OccKey;
use crate::operation::Operation;
use crate::records::{Change, Loaded, Occurrence, Record, RecordKey, Step, Versioned};
use crate::store::{AsyncStore, Commit, CommitError, OccurrenceGuard, RecordWrite, StoreError, WriteOp};

/// The records one attempt loaded, by key: a few, so a vector searched linearly, with a
/// hash index added once it grows (a decision that loaded many due records).
#[derive(Debug, Default)]
struct Records {
    /// The keys loaded, and beside each (same index) what was found.
    keys: crate::records::Keys,
    values: Vec<Option<Versioned<Record>>>,
    index: Option<foldhash::HashMap<RecordKey, usize>>,
}

/// Past this many entries, the records get a hash index.
const INDEX_FROM: usize = 16;

impl Records {
    /// The first load, kept as the store returned it (its vectors become the view's: no
    /// copy of the records) unless a key repeats.
    fn first(keys: crate::records::Keys, values: Vec<Option<Versioned<Record>>>) -> Self {
        let distinct = keys.len() <= INDEX_FROM && keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k));
        if distinct && keys.len() == values.len() {
            return Self { keys, values, index: None };
        }
        let mut r = Self::default();
        for (k, v) in keys.into_iter().zip(values) {
            r.insert_if_absent(k, v);
        }
        r
    }

    fn position(&self, key: &RecordKey) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(key).copied(),
            None => self.keys.iter().position(|k| k == key),
        }
    }

    fn get(&self, key: &RecordKey) -> Option<&Option<Versioned<Record>>> {
        self.position(key).map(|i| &self.values[i])
    }

    fn contains_key(&self, key: &RecordKey) -> bool {
        self.position(key).is_some()
    }

    /// Add `key` as loaded (keeping an earlier load of it).
    fn insert_if_absent(&mut self, key: RecordKey, value: Option<Versioned<Record>>) {
        if self.contains_key(&key) {
            return;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), self.keys.len());
        }
        self.keys.push(key);
        self.values.push(value);
        if self.index.is_none() && self.keys.len() > INDEX_FROM {
            self.index = Some(self.keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect());
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// What one attempt of an operation has loaded: the [`Loaded`] a decision reads.
#[derive(Debug)]
pub(crate) struct View {
    occurrence: Option<Occurrence>,
    records: Records,
    due: Option<(Vec<Record>, bool)>,
    rounds: u32,
    /// Keys a decision read without having loaded them. Not `None` for "absent": the engine
    /// loads them and decides again, so a forgotten preload (the waiting list a seat-freeing
    /// decision must see) costs a round trip instead of deciding on a record it never saw.
    missed: std::sync::Mutex<Vec<RecordKey>>,
}

impl Loaded for View {
    fn occurrence(&self) -> Option<&Occurrence> {
        self.occurrence.as_ref()
    }
    fn get(&self, key: &RecordKey) -> Option<&Record> {
        match self.records.get(key) {
            Some(found) => found.as_ref().map(|r| &r.value),
            None => {
                let mut missed = self.missed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !missed.contains(key) {
                    missed.push(key.clone());
                }
                None
            }
        }
    }
    fn is_loaded(&self, key: &RecordKey) -> bool {
        self.records.contains_key(key)
    }
    fn due(&self) -> Option<(&[Record], bool)> {
        self.due.as_ref().map(|(d, complete)| (d.as_slice(), *complete))
    }
}

/// Whether the occurrence (its configuration or counters) changed since `view` read it.
async fn moved<S: AsyncStore>(store: &S, occ_key: &OccKey, view: &View) -> Result<bool, StoreError> {
    Ok(store.load(occ_key, &[]).await?.occurrence != view.occurrence)
}

/// The most extra load rounds one decision may ask for (a decision asking for more is a bug).
const MAX_ROUNDS: u32 = 16;

/// How many times, process-wide, a decision read a record it had not loaded (each cost an
/// extra load round): zero unless a decision forgot a key among its preloads. Tests assert
/// it stays zero, so a forgotten preload is seen, not absorbed.
static UNPLANNED_LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn count_unplanned_load() {
    UNPLANNED_LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many times in this process a decision read a record its operation had not loaded,
/// and the engine loaded it and decided again. Stays 0 unless an operation's preload list
/// is missing a key it reads (a bug worth reporting: it costs a round trip each time).
pub fn unplanned_loads() -> u64 {
    UNPLANNED_LOADS.load(std::sync::atomic::Ordering::Relaxed)
}

impl View {
    fn add(&mut self, keys: Vec<RecordKey>, found: Vec<Option<Versioned<Record>>>) {
        for (k, r) in keys.into_iter().zip(found) {
            self.records.insert_if_absent(k, r);
        }
    }

    /// The guarded commit of `change`: every record loaded is checked at the version read
    /// (and written if the change puts it), the occurrence at its config version.
    fn commit(&self, occ_key: &OccKey, change: Change) -> Result<Commit, StoreError> {
        let occurrence = match (&self.occurrence, change.config) {
            (None, None) => OccurrenceGuard::Unchecked,
            (None, Some(config)) => OccurrenceGuard::Create(config),
            (Some(o), None) => OccurrenceGuard::At(o.config_version),
            (Some(o), Some(config)) => OccurrenceGuard::Update { expected: o.config_version, config },
        };
        let mut records = Vec::with_capacity(self.records.len());
        // Which loaded records the change writes; the others are guarded by a `Check`.
        let mut written: smallvec::SmallVec<[bool; 16]> = smallvec::smallvec![false; self.records.len()];
        let mut version_of = |key: &RecordKey, what: &str| match self.records.position(key) {
            Some(i) => {
                written[i] = true;
                Ok(self.records.values[i].as_ref().map(|r| r.version))
            }
            None => Err(StoreError::Internal(format!("a decision {what} {key} without reading it"))),
        };
        for rec in change.puts {
            let key = rec.key();
            let expected = version_of(&key, "wrote")?;
            records.push(RecordWrite { key, expected, op: WriteOp::Put(rec) });
        }
        for key in change.deletes {
            let expected = version_of(&key, "deleted")?;
            records.push(RecordWrite { expected, key, op: WriteOp::Delete });
        }
        let loaded = self.records.keys.iter().zip(&self.records.values);
        for ((key, loaded), _) in loaded.zip(&written).filter(|(_, w)| !**w) {
            records.push(RecordWrite {
                key: key.clone(),
                expected: loaded.as_ref().map(|r| r.version),
                op: WriteOp::Check,
            });
        }
        Ok(Commit {
            occ_key: occ_key.clone(),
            occurrence,
            deltas: change.deltas.into_few(),
            admits: change.admits,
            unchanged: change.unchanged,
            at_least: change.at_least,
            records,
            events: change.events,
        })
    }
}

/// Run `op` to its answer: load, decide, commit; on a conflict, again (up to `attempts`).
///
/// With a [`ReadCache`], the first attempt may decide on the cached occurrence instead of a
/// load (see [`cache`](super::cache) for why that is safe): its write is committed under the
/// usual guards; its answer, or a lost guard, sends the operation to a normal attempt. That
/// speculative attempt does not count against `attempts`.
pub(crate) async fn run<S: AsyncStore, O: Operation>(
    store: &S,
    op: &O,
    now: OffsetDateTime,
    attempts: u32,
    cache: Option<&ReadCache>,
) -> Result<O::Output, OpError<O::Refusal>> {
    let occ_key = op.occ_key();
    let tries = attempts.saturating_add(u32::from(cache.is_some()));
    'attempt: for attempt in 0..tries {
        let keys = op.keys();
        let cached = cache.filter(|_| attempt == 0).and_then(|c| c.view(occ_key, &keys));
        let speculative = cached.is_some();
        let snap = match cached {
            Some(snap) => snap,
            None => {
                let snap = store.load(occ_key, &keys).await?;
                if let Some(c) = cache {
                    c.loaded(occ_key, snap.occurrence.as_ref(), &keys, &snap.records);
                }
                snap
            }
        };
        let (occurrence, found) = (snap.occurrence, snap.records);
        let records = Records::first(keys, found);
        let mut view = View { occurrence, records, due: None, rounds: 0, missed: Default::default() };
        loop {
            let missed = |c: Option<&ReadCache>| {
                if let Some(c) = c {
                    c.count(false);
                }
            };
            let decided = op.decide(&view, now);
            let unread = std::mem::take(view.missed.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner));
            if !unread.is_empty() {
                // The decision read records it had not loaded: whatever it decided, it decided
                // blind. Load them and decide again.
                view.rounds += 1;
                if view.rounds > MAX_ROUNDS {
                    return Err(StoreError::Internal("a decision kept reading records it never loaded".into()).into());
                }
                count_unplanned_load();
                let snap = store.load(occ_key, &unread).await?;
                view.add(unread, snap.records);
                continue;
            }
            let step = match decided {
                // No guard checks an answer or a refusal: one decided on the cache is
                // decided again on a load.
                Err(_) if speculative => {
                    missed(cache);
                    continue 'attempt;
                }
                Err(refusal) => {
                    // Like an answer (below): a refusal read in several rounds stands only if
                    // the occurrence did not move in between (`Locked` decided on a held
                    // seat whose lapsed hold a sweep expired after the counters were read).
                    if view.rounds > 0 && view.due.is_some() && moved(store, occ_key, &view).await? {
                        continue 'attempt;
                    }
                    return Err(OpError::Refused(refusal));
                }
                Ok(step) => step,
            };
            match step {
                Step::Answer(_) if speculative => {
                    missed(cache);
                    continue 'attempt;
                }
                Step::Answer(out) => {
                    // An answer read in several rounds is trusted only if the occurrence did
                    // not move in between (a sweep can expire the lapsed holds a `Full` was
                    // decided on after the counters were read).
                    if view.rounds > 0 && view.due.is_some() && moved(store, occ_key, &view).await? {
                        continue 'attempt;
                    }
                    return Ok(out);
                }
                Step::Write(mut change, out) => {
                    // The rules that cut across operations (the waiting list's claim on
                    // freed seats, seat rows following bookings): applied here, once.
                    match crate::finish::finish(&view, &mut change, now) {
                        Ok(()) => {}
                        Err(crate::finish::Unfinished::Load(keys)) => {
                            view.rounds += 1;
                            if view.rounds > MAX_ROUNDS {
                                return Err(StoreError::Internal("a rule kept missing records".into()).into());
                            }
                            // Seat rows are known only once the change is; the waiting list
                            // belonged among the operation's preloads.
                            if keys.contains(&RecordKey::Waitlist) {
                                count_unplanned_load();
                            }
                            let snap = store.load(occ_key, &keys).await?;
                            view.add(keys, snap.records);
                            continue;
                        }
                        Err(crate::finish::Unfinished::Bug(why)) => return Err(StoreError::Internal(why).into()),
                    }
                    let commit = view.commit(occ_key, change)?;
                    // Nothing reads the view past here (every way on answers or starts a new
                    // attempt): dropped now, the counters it copied are no longer shared
                    // when the store adds the commit's deltas to its own.
                    drop(view);
                    let update = cache.and_then(|c| c.prepare(&commit));
                    let result = store.commit(commit).await;
                    if let Some(c) = cache {
                        if speculative {
                            c.count(result.is_ok());
                        }
                        match (&result, update) {
                            (Ok(done), Some(u)) => c.apply(u, done.version),
                            _ => c.forget(occ_key),
                        }
                    }
                    match result {
                        Ok(_) => return Ok(out),
                        Err(CommitError::Conflict(_)) => continue 'attempt,
                        Err(CommitError::Invalid(why)) => return Err(StoreError::Internal(why).into()),
                        Err(CommitError::Store(e)) => return Err(e.into()),
                    }
                }
                Step::Load(keys) => {
                    view.rounds += 1;
                    let keys: Vec<RecordKey> = keys.into_iter().filter(|k| !view.records.contains_key(k)).collect();
                    if view.rounds > MAX_ROUNDS || keys.is_empty() {
                        return Err(StoreError::Internal("a decision kept asking for records".into()).into());
                    }
                    let snap = store.load(occ_key, &keys).await?;
                    view.add(keys, snap.records);
                }
                Step::LoadDue(limit) => {
                    view.rounds += 1;
                    if view.rounds > MAX_ROUNDS {
                        return Err(StoreError::Internal("a decision kept asking for due records".into()).into());
                    }
                    let due = store.due(Some(occ_key), now, limit).await?;
                    let complete = due.len() < limit;
                    let mut records = Vec::with_capacity(due.len());
                    for d in due {
                        records.push(d.record.value.clone());
                        view.records.insert_if_absent(d.record.value.key(), Some(d.record));
                    }
                    view.due = Some((records, complete));
                }
            }
        }
    }
    Err(OpError::Contention { attempts })
}
