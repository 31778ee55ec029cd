//! The SQLite store of this crate (a `Store` written only against seathold's
//! public API) held to the contract: the whole conformance suite, every interleaving of the
//! standard races, and a file reopened by a new handle keeping its records, its versions
//! (clause 7) and its outbox ids (clause 5).

use seathold::Store;
use seathold::catalogue::OccurrenceConfig;
use seathold::conformance::{self, block_on, interleave};
use seathold::contract::{ActorId, DomainEvent, EventId, EventKind, OccKey, Ref};
use seathold::holds::ActorRecord;
use seathold::records::nanos;
use seathold::store::{
    Commit, CommitError, Conflict, OccurrenceGuard, Record, RecordKey, RecordWrite, Version, WriteOp,
};
use seathold_sqlite::SqliteStore;

fn fresh() -> SqliteStore {
    SqliteStore::open_in_memory().expect("an in-memory SQLite store")
}

#[test]
fn sqlite_store_passes_the_whole_suite() {
    conformance::run_all_blocking(fresh);
}

/// Every ordering of every standard race, exhaustively, on one store.
#[test]
fn sqlite_store_every_interleaving_of_the_standard_races() {
    let store = fresh();
    let mut total = 0;
    for report in block_on(interleave::explore_all(&store, None)) {
        assert!(report.exhaustive, "{}: not every ordering ran", report.scenario);
        assert!(report.schedules > 1, "{}: a race with one ordering is no race", report.scenario);
        println!("{}: {} orderings (longest {} store calls)", report.scenario, report.schedules, report.longest);
        total += report.schedules;
    }
    println!("{total} orderings in all");
}

/// A file in the test's temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir();
        let path =
            dir.join(format!("seathold-sqlite-{name}-{}-{:?}.db", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn actor_put(occ: &OccKey, who: &str, expected: Option<Version>) -> RecordWrite {
    let actor = ActorId::new(who).expect("actor id");
    RecordWrite {
        key: RecordKey::Actor(actor.clone()),
        expected,
        op: WriteOp::Put(Record::Actor(ActorRecord::new(occ.clone(), actor))),
    }
}

fn released(occ: &OccKey, hold_ref: &str) -> DomainEvent {
    DomainEvent {
        occ_key: occ.clone(),
        actor: ActorId::new("a").expect("actor id"),
        hold_ref: Some(Ref::new(hold_ref).expect("ref")),
        at: nanos::at(1_800_000_000_000_000_000),
        kind: EventKind::HoldReleased { quantity: 1 },
        metadata: None,
    }
}

fn commit(s: &SqliteStore, c: Commit) -> Version {
    s.commit(c).unwrap_or_else(|e| panic!("commit: {e}")).version
}

fn acked_all(s: &SqliteStore) -> Vec<EventId> {
    let ids: Vec<EventId> = s.pending_events(1000).expect("pending").iter().map(|e| e.id).collect();
    s.ack_events(&ids).expect("ack");
    assert!(s.pending_events(1000).expect("pending").is_empty(), "acknowledged events came back");
    ids
}

/// A commit at config version 1 of `occ` writing `records` and appending `events`.
fn at1(occ: &OccKey, records: Vec<RecordWrite>, events: Vec<DomainEvent>) -> Commit {
    Commit { occurrence: OccurrenceGuard::At(1), records, events: events.into(), ..Commit::new(occ.clone()) }
}

/// A new handle on the same file keeps the occurrence, the records and their versions; a
/// version is never issued twice (the newest record deleted before reopening and created
/// again after gets a greater version than it had, not "the greatest left + 1": clause 7);
/// and outbox ids are never reused, after acknowledgements (AUTOINCREMENT) and after
/// reopening (clause 5).
#[test]
fn a_reopened_file_keeps_records_versions_and_outbox_ids() {
    let file = TempFile::new("reopen");
    let occ = OccKey::new("gig").expect("occ key");
    let config = OccurrenceConfig::new(10, 600).expect("config");
    let kept = RecordKey::Actor(ActorId::new("kept").expect("actor id"));
    let gone = RecordKey::Actor(ActorId::new("gone").expect("actor id"));

    let (before, v_kept, v_gone, acked) = {
        let s = SqliteStore::open(&file.0).expect("open");
        commit(&s, Commit { occurrence: OccurrenceGuard::Create(config.clone()), ..Commit::new(occ.clone()) });
        let v_kept = commit(&s, at1(&occ, vec![actor_put(&occ, "kept", None)], vec![released(&occ, "r1")]));
        let v_gone = commit(&s, at1(&occ, vec![actor_put(&occ, "gone", None)], vec![released(&occ, "r2")]));
        assert!(v_gone > v_kept, "version {v_gone} after {v_kept}");
        let delete = RecordWrite { key: gone.clone(), expected: Some(v_gone), op: WriteOp::Delete };
        commit(&s, at1(&occ, vec![delete], vec![released(&occ, "r3")]));
        // The newest events acknowledged: ids SQLite would hand out again without AUTOINCREMENT.
        let acked = acked_all(&s);
        assert_eq!(acked.len(), 3);
        let snapshot = s.load(&occ, &[kept.clone(), gone.clone()]).expect("load");
        assert!(snapshot.records[1].is_none(), "the deleted record is still there");
        (snapshot, v_kept, v_gone, acked)
    };

    // A new handle on the same file.
    let s = SqliteStore::open(&file.0).expect("reopen");
    let after = s.load(&occ, &[kept.clone(), gone.clone()]).expect("load");
    assert_eq!(after, before, "the reopened store does not hold what was committed");
    let occurrence = after.occurrence.expect("the occurrence survives reopening");
    assert_eq!((occurrence.config, occurrence.config_version), (config, 1));
    assert_eq!(after.records[0].as_ref().map(|r| r.version), Some(v_kept));
    assert_eq!(s.occurrences(None, 10).expect("occurrences"), vec![occ.clone()]);
    assert!(s.pending_events(10).expect("pending").is_empty(), "acknowledged events came back after reopening");

    // The deleted record created again: a version greater than every one issued before.
    let v_again = commit(&s, at1(&occ, vec![actor_put(&occ, "gone", None)], vec![released(&occ, "r4")]));
    assert!(v_again > v_gone, "version {v_again} issued after reopening (the deleted record had {v_gone})");
    // A stale guard on the old record fails against the new one.
    let stale = RecordWrite { key: gone.clone(), expected: Some(v_gone), op: WriteOp::Delete };
    match s.commit(at1(&occ, vec![stale], Vec::new())) {
        Err(CommitError::Conflict(Conflict::Record { key })) => assert_eq!(key, gone),
        other => panic!("a guard on the deleted record's version against the re-created one: {other:?}"),
    }
    let new_ids = acked_all(&s);
    assert_eq!(new_ids.len(), 1);
    let newest_before = acked.iter().max().copied().expect("ids");
    assert!(new_ids[0] > newest_before, "event id {} reused after acks and reopening", new_ids[0]);

    // Once more, with the outbox empty: ids and versions still only go up.
    drop(s);
    let s = SqliteStore::open(&file.0).expect("reopen again");
    let v_last = commit(&s, at1(&occ, vec![actor_put(&occ, "kept", Some(v_kept))], vec![released(&occ, "r5")]));
    assert!(v_last > v_again, "version {v_last} not past {v_again}");
    let last = acked_all(&s);
    assert!(last[0] > new_ids[0], "event id {} reused after a second reopening", last[0]);
}

/// Two handles open on one file at once: one sequence of versions, one outbox, each sees
/// what the other committed.
#[test]
fn two_handles_on_one_file_share_versions_and_the_outbox() {
    let file = TempFile::new("two-handles");
    let occ = OccKey::new("gig").expect("occ key");
    let (a, b) = (SqliteStore::open(&file.0).expect("open a"), SqliteStore::open(&file.0).expect("open b"));
    commit(
        &a,
        Commit {
            occurrence: OccurrenceGuard::Create(OccurrenceConfig::new(1, 600).expect("config")),
            ..Commit::new(occ.clone())
        },
    );
    let v1 = commit(&a, at1(&occ, vec![actor_put(&occ, "x", None)], vec![released(&occ, "r1")]));
    // `b` guards "no record" (as if it read before `a` put): it loses, and writes nothing.
    match b.commit(at1(&occ, vec![actor_put(&occ, "x", None)], vec![released(&occ, "lost")])) {
        Err(CommitError::Conflict(Conflict::Record { .. })) => {}
        other => panic!("a second handle overwrote a record it did not read: {other:?}"),
    }
    let v2 = commit(&b, at1(&occ, vec![actor_put(&occ, "x", Some(v1))], vec![released(&occ, "r2")]));
    assert!(v2 > v1, "two handles issued version {v2} after {v1}");
    let key = RecordKey::Actor(ActorId::new("x").expect("actor id"));
    assert_eq!(a.load(&occ, &[key]).expect("load").records[0].as_ref().map(|r| r.version), Some(v2));
    let ids: Vec<EventId> = a.pending_events(10).expect("pending").iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 2, "one outbox: {ids:?}");
    b.ack_events(&ids).expect("ack");
    assert!(
        a.pending_events(10).expect("pending").is_empty(),
        "an acknowledgement through one handle did not hold for the other"
    );
}
