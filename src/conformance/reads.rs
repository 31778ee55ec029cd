//! Clause 3: loads, scans and listings return exactly what was committed.

use super::fixtures::*;
use crate::records::{Record, RecordKey, RecordKind};
use crate::store::{AsyncStore, Commit};

const CLAUSE: &str = "store contract 3 (reads)";

/// An unknown occurrence loads as none, every key asked for as absent, in order.
pub async fn check_load_absent<S: AsyncStore>(s: &S) {
    let o = occ("nowhere");
    let keys = [RecordKey::Booking(r("a")), RecordKey::Waitlist, RecordKey::Actor(actor("x"))];
    let snap = load(s, &o, &keys).await;
    assert!(snap.occurrence.is_none(), "{CLAUSE}: an unknown occurrence loaded as present");
    assert_eq!(snap.records.len(), 3, "{CLAUSE}: one entry per key asked for");
    assert!(snap.records.iter().all(Option::is_none), "{CLAUSE}: records of an empty store");
    let snap = load(s, &o, &[]).await;
    assert!(snap.records.is_empty(), "{CLAUSE}: no keys, no entries");
    // Present and absent keys keep their places.
    let g = occ("gig");
    commit_ok(s, create(&g, config(1)), CLAUSE).await;
    let rec = Record::Actor(actor_record(&g, "b"));
    commit_ok(s, Commit { records: vec![put(rec.clone(), None)], ..at(&g, 1) }, CLAUSE).await;
    let snap = load(s, &g, &[RecordKey::Actor(actor("a")), rec.key(), RecordKey::Actor(actor("c"))]).await;
    assert!(snap.records[0].is_none() && snap.records[2].is_none(), "{CLAUSE}: absent keys loaded as present");
    assert_eq!(snap.records[1].as_ref().map(|r| &r.value), Some(&rec), "{CLAUSE}: a present key out of place");
}

/// `scan` pages through every record of one kind of one occurrence, each once, nothing else.
pub async fn check_scan_pages<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    let other = occ("other");
    commit_ok(s, create(&o, config(100)), CLAUSE).await;
    commit_ok(s, create(&other, config(100)), CLAUSE).await;
    let mut puts = Vec::new();
    for i in 0..25 {
        puts.push(put(Record::Booking(hold(&o, &format!("a{i}"), &format!("r{i:02}"), 1, T0)), None));
        puts.push(put(Record::Actor(actor_record(&o, &format!("a{i}"))), None));
    }
    commit_ok(s, Commit { records: puts, ..at(&o, 1) }, CLAUSE).await;
    let stray = put(Record::Booking(hold(&other, "z", "r99", 1, T0)), None);
    commit_ok(s, Commit { records: vec![stray], ..at(&other, 1) }, CLAUSE).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.scan(&o, RecordKind::Booking, after.as_ref(), 10).await.unwrap_or_else(|e| panic!("scan: {e}"));
        assert!(page.len() <= 10, "{CLAUSE}: scan returned more than its limit");
        for rec in &page {
            assert_eq!(rec.value.key().kind(), RecordKind::Booking, "{CLAUSE}: scan returned another kind");
        }
        after = page.last().map(|r| r.value.key());
        let n = page.len();
        seen.extend(page.into_iter().map(|r| r.value.key()));
        if n < 10 {
            break;
        }
    }
    let mut want: Vec<RecordKey> = (0..25).map(|i| RecordKey::Booking(r(&format!("r{i:02}")))).collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "{CLAUSE}: scan must return each booking of the occurrence exactly once");
}

/// `occurrences` lists keys in ascending order, paged by `after`, only those that exist.
pub async fn check_occurrences_listing<S: AsyncStore>(s: &S) {
    for k in ["c", "a", "b", "d"] {
        commit_ok(s, create(&occ(k), config(1)), CLAUSE).await;
    }
    // Records of an occurrence that does not exist do not make it listed.
    let ghost = occ("bb");
    commit_ok(
        s,
        Commit { records: vec![put(Record::Actor(actor_record(&ghost, "x")), None)], ..Commit::new(ghost) },
        CLAUSE,
    )
    .await;
    let first = s.occurrences(None, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, vec![occ("a"), occ("b")], "{CLAUSE}: first page");
    let rest = s.occurrences(first.last(), 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest, vec![occ("c"), occ("d")], "{CLAUSE}: second page");
}
