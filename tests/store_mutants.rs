//! Mutation testing of the conformance suite. `KitStore` is a small store written only
//! against the public API, deciding every commit with the shared `store::check_commit`: it
//! must pass the whole suite, the threaded flash sale and every interleaving. Then it is
//! broken one clause of the store contract at a time (a *mutant*), and the suite must fail
//! each mutant, naming the check that caught it. A check no mutant fails proves nothing;
//! a mutant no check fails is a clause the suite does not hold stores to.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use seathold::conformance::{self, FlashSale, block_on, interleave};
use seathold::contract::{EventId, OccKey, OutboxEvent};
use seathold::store::{
    Commit, CommitError, Committed, Conflict, Due, NextOccurrence, Occurrence, OccurrenceGuard, Record, RecordKey,
    RecordKind, RecordWrite, Snapshot, Store, StoreError, Version, Versioned, WriteOp, check_commit,
};
use time::OffsetDateTime;

/// One deliberate break of the store contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutant {
    /// The store as it should be.
    None,
    /// Clause 1: guards checked under the lock, writes applied under it again later (a
    /// check-then-write in two steps).
    TwoStepCommit,
    /// Clause 1: each record write applied as soon as its own guard holds (a conditional
    /// update per row, no transaction), so a later failing guard leaves the earlier writes.
    WritesBeforeGuards,
    /// Clause 2: the capacity guard skipped.
    NoCapacityGuard,
    /// Clause 2: record versions not compared.
    NoRecordGuard,
    /// Clause 2: counter guards (`unchanged`) skipped.
    NoCounterGuard,
    /// Clause 2: room guards (`at_least`) skipped.
    NoRoomGuard,
    /// Clause 2, the order: "a counter would go negative" judged before the record guards,
    /// so a lost race looks like a bug.
    ArithmeticFirst,
    /// Clause 2: a reconfiguration that drops a dimension in use answered as a capacity
    /// conflict instead of an occurrence conflict.
    WrongConflictOnDroppedDimension,
    /// Clause 3: `scan` forgets to filter by occurrence (a missing `WHERE occ_key = …`).
    ScanAcrossOccurrences,
    /// Clause 4: the expiry index keeps a record's first due time when it is rewritten.
    DueIgnoresRewrites,
    /// Clause 5: `ack_events` deletes nothing.
    AckKeepsEvents,
    /// Clause 5: outbox ids counted from the events still pending (as SQLite's `INTEGER
    /// PRIMARY KEY` without `AUTOINCREMENT` does), so an acknowledged id comes back.
    ReuseEventIds,
    /// Clause 7: a put stored at "the old version + 1, or 1 if new".
    VersionPlusOne,
}

#[derive(Default)]
struct State {
    occurrences: BTreeMap<OccKey, Occurrence>,
    records: BTreeMap<(OccKey, RecordKey), Versioned<Record>>,
    /// The due time the expiry index files each record under.
    due: BTreeMap<(OccKey, RecordKey), OffsetDateTime>,
    outbox: BTreeMap<u64, OutboxEvent>,
    /// The last record version issued, store-wide (clause 7).
    seq: Version,
    /// The last event id issued (clause 5).
    last_event: u64,
}

struct KitStore {
    state: Mutex<State>,
    mutant: Mutant,
}

impl KitStore {
    fn new(mutant: Mutant) -> Self {
        Self { state: Mutex::new(State::default()), mutant }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The commit as a mutant of clause 2 sees it: with the guard it skips removed.
    fn weakened(&self, st: &State, mut c: Commit) -> Commit {
        match self.mutant {
            Mutant::NoCapacityGuard => c.admits.clear(),
            Mutant::NoCounterGuard => c.unchanged.clear(),
            Mutant::NoRoomGuard => c.at_least.clear(),
            Mutant::NoRecordGuard => {
                for w in &mut c.records {
                    w.expected = st.records.get(&(c.occ_key.clone(), w.key.clone())).map(|r| r.version);
                }
            }
            _ => {}
        }
        c
    }

    fn check(&self, st: &State, c: &Commit) -> Result<NextOccurrence, CommitError> {
        if self.mutant == Mutant::ArithmeticFirst {
            if let Some(occ) = st.occurrences.get(&c.occ_key) {
                if occ.counters.apply(&c.deltas).is_err() {
                    return Err(CommitError::Invalid("counter would go negative".into()));
                }
            }
        }
        let verdict = check_commit(
            st.occurrences.get(&c.occ_key),
            |k| st.records.get(&(c.occ_key.clone(), k.clone())).map(|r| r.version),
            c,
        );
        match verdict {
            Err(CommitError::Conflict(Conflict::Occurrence))
                if self.mutant == Mutant::WrongConflictOnDroppedDimension
                    && matches!(c.occurrence, OccurrenceGuard::Update { .. }) =>
            {
                Err(Conflict::Capacity { dim: seathold::catalogue::Dim::Total }.into())
            }
            v => v,
        }
    }

    fn apply(&self, st: &mut State, c: Commit, next: NextOccurrence) -> Committed {
        if c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_))) {
            st.seq += 1;
        }
        let version = st.seq;
        let mut occ = st.occurrences.remove(&c.occ_key);
        next.apply_to(&mut occ, &c.deltas);
        if let Some(occ) = occ {
            st.occurrences.insert(c.occ_key.clone(), occ);
        }
        self.write_records(st, &c.occ_key, c.records, version);
        for event in c.events {
            let id = match self.mutant {
                Mutant::ReuseEventIds => st.outbox.keys().next_back().map_or(1, |last| last + 1),
                _ => {
                    st.last_event += 1;
                    st.last_event
                }
            };
            st.outbox.insert(id, OutboxEvent { id: EventId(id), event });
        }
        Committed::at(version)
    }

    fn write_records(&self, st: &mut State, occ: &OccKey, writes: Vec<RecordWrite>, version: Version) {
        for RecordWrite { key, op, .. } in writes {
            let k = (occ.clone(), key);
            match op {
                WriteOp::Check => {}
                WriteOp::Put(record) => {
                    let version = match (self.mutant, st.records.get(&k)) {
                        (Mutant::VersionPlusOne, Some(old)) => old.version + 1,
                        (Mutant::VersionPlusOne, None) => 1,
                        _ => version,
                    };
                    let keep_first_due = self.mutant == Mutant::DueIgnoresRewrites && st.records.contains_key(&k);
                    if !keep_first_due {
                        match record.due() {
                            Some(t) => st.due.insert(k.clone(), t),
                            None => st.due.remove(&k),
                        };
                    }
                    st.records.insert(k, Versioned { version, value: record });
                }
                WriteOp::Delete => {
                    st.records.remove(&k);
                    st.due.remove(&k);
                }
            }
        }
    }
}

impl Store for KitStore {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        let st = self.lock();
        Ok(Snapshot {
            occurrence: st.occurrences.get(occ_key).cloned(),
            records: keys.iter().map(|k| st.records.get(&(occ_key.clone(), k.clone())).cloned()).collect(),
        })
    }

    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        // A test store: it scans its index rather than keeping one ordered by time.
        let st = self.lock();
        let mut due: Vec<_> = st
            .due
            .iter()
            .filter(|((o, _), t)| **t <= now && occ_key.is_none_or(|k| k == o))
            .map(|((o, k), t)| (*t, o.clone(), k.clone()))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit)
            .filter_map(|(_, o, k)| st.records.get(&(o.clone(), k)).map(|r| Due { occ_key: o, record: r.clone() }))
            .collect())
    }

    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        let st = self.lock();
        let mut found: Vec<_> = st
            .records
            .iter()
            .filter(|((o, k), _)| (o == occ_key || self.mutant == Mutant::ScanAcrossOccurrences) && k.kind() == kind)
            .map(|((_, k), r)| (k.clone(), r.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let start = after.map_or(0, |a| found.iter().position(|(k, _)| k == a).map_or(found.len(), |i| i + 1));
        Ok(found.into_iter().skip(start).take(limit).map(|(_, r)| r).collect())
    }

    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        let st = self.lock();
        Ok(st.occurrences.keys().filter(|k| after.is_none_or(|a| *k > a)).take(limit).cloned().collect())
    }

    fn commit(&self, c: Commit) -> Result<Committed, CommitError> {
        match self.mutant {
            Mutant::TwoStepCommit => {
                let next = {
                    let st = self.lock();
                    self.check(&st, &c)?
                };
                // The round trip between a store's read and its write (a SELECT, then an
                // UPDATE on another statement).
                std::thread::sleep(std::time::Duration::from_micros(20));
                let mut st = self.lock();
                Ok(self.apply(&mut st, c, next))
            }
            Mutant::WritesBeforeGuards => {
                let mut st = self.lock();
                let version = st.seq + 1;
                for w in &c.records {
                    let found = st.records.get(&(c.occ_key.clone(), w.key.clone())).map(|r| r.version);
                    if found != w.expected {
                        return Err(Conflict::Record { key: w.key.clone() }.into());
                    }
                    self.write_records(&mut st, &c.occ_key, vec![w.clone()], version);
                }
                let rest = Commit { records: Vec::new(), ..c };
                let next = self.check(&st, &rest)?;
                st.seq = version;
                Ok(self.apply(&mut st, rest, next))
            }
            _ => {
                let mut st = self.lock();
                let c = self.weakened(&st, c);
                let next = self.check(&st, &c)?;
                Ok(self.apply(&mut st, c, next))
            }
        }
    }

    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(self.lock().outbox.values().take(limit).cloned().collect())
    }

    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        if self.mutant != Mutant::AckKeepsEvents {
            let mut st = self.lock();
            for id in ids {
                st.outbox.remove(&id.0);
            }
        }
        Ok(())
    }
}

fn failures_of(mutant: Mutant) -> Vec<String> {
    conformance::run_all_blocking_report(|| KitStore::new(mutant)).iter().map(|f| f.check.to_owned()).collect()
}

#[test]
fn the_kit_store_passes_the_suite_the_flash_sale_and_the_interleavings() {
    let failures = conformance::run_all_blocking_report(|| KitStore::new(Mutant::None));
    assert!(failures.is_empty(), "{failures:#?}");
    let report = conformance::flash_sale(&KitStore::new(Mutant::None), &FlashSale::default().with_buyers(1000));
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.placed > 0 && report.full > 0 && report.lost_acks > 0 && report.refunds > 0, "{report}");
    // Up to 40 orderings a race: the exhaustive runs are on the crate's own stores and the
    // SQLite example; this store only has to show it is a fair baseline for its mutants.
    let store = KitStore::new(Mutant::None);
    for sc in interleave::scenarios() {
        let r = block_on(interleave::explore(&store, &sc, Some(40)));
        assert!(r.schedules > 1, "{}: a race with one ordering is no race", r.scenario);
    }
}

/// Each mutant, and the check that must catch it. The list is the suite's coverage of the
/// store contract: the docs of `seathold::conformance` name the same pairs.
const CAUGHT_BY: &[(Mutant, &str)] = &[
    (Mutant::TwoStepCommit, "check_flash_sale"),
    (Mutant::WritesBeforeGuards, "check_failed_guard_writes_nothing"),
    (Mutant::NoCapacityGuard, "check_capacity_guard"),
    (Mutant::NoRecordGuard, "check_record_guards"),
    (Mutant::NoCounterGuard, "check_counter_guard"),
    (Mutant::NoRoomGuard, "check_room_guard"),
    (Mutant::ArithmeticFirst, "check_guard_order"),
    (Mutant::WrongConflictOnDroppedDimension, "check_dropped_dimension_in_use"),
    (Mutant::ScanAcrossOccurrences, "check_scan_pages"),
    (Mutant::DueIgnoresRewrites, "check_due_follows_writes"),
    (Mutant::AckKeepsEvents, "check_outbox_ack"),
    (Mutant::ReuseEventIds, "check_event_ids_never_repeat_after_ack"),
    (Mutant::VersionPlusOne, "check_versions_never_repeat"),
];

#[test]
fn every_mutant_fails_the_suite_by_the_check_of_its_clause() {
    let mut missed = Vec::new();
    for (mutant, check) in CAUGHT_BY {
        let failed = failures_of(*mutant);
        println!("{mutant:?}: failed {failed:?}");
        if !failed.iter().any(|f| f == check) {
            missed.push(format!("{mutant:?} was not caught by {check} (failed: {failed:?})"));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

/// The two mutants the one-call-at-a-time checks cannot see are caught by the threaded
/// flash sale on its own, every time it runs, not by luck of the schedule.
#[test]
fn the_flash_sale_alone_catches_a_two_step_commit_and_reused_event_ids() {
    for mutant in [Mutant::TwoStepCommit, Mutant::ReuseEventIds] {
        for round in 0..3 {
            let report = conformance::flash_sale(&KitStore::new(mutant), &FlashSale::default());
            println!("{mutant:?}, round {round}: {report}");
            assert!(!report.violations.is_empty(), "{mutant:?}, round {round}: the flash sale passed: {report}");
        }
    }
}
