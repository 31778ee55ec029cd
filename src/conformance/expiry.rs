//! Clause 4: the expiry index finds exactly the records due, oldest first, and follows every
//! write.

use time::Duration;

use super::fixtures::*;
use crate::holds::HoldState;
use crate::records::{Record, RecordKey};
use crate::store::{AsyncStore, Commit, RecordWrite, WriteOp};

const CLAUSE: &str = "store contract 4 (expiry index)";

async fn due_refs<S: AsyncStore>(
    s: &S,
    o: Option<&crate::contract::OccKey>,
    now: time::OffsetDateTime,
    limit: usize,
) -> Vec<String> {
    s.due(o, now, limit)
        .await
        .unwrap_or_else(|e| panic!("due: {e}"))
        .into_iter()
        .map(|d| d.record.value.key().id())
        .collect()
}

/// Exactly the records with `due() <= now`, oldest first, `limit` respected; per occurrence
/// or across occurrences.
pub async fn check_due_exact<S: AsyncStore>(s: &S) {
    let (a, b) = (occ("a"), occ("b"));
    commit_ok(s, create(&a, config(100)), CLAUSE).await;
    commit_ok(s, create(&b, config(100)), CLAUSE).await;
    let m = |n| T0 + Duration::minutes(n);
    let mut confirmed = hold(&a, "c", "ra-conf", 1, m(1));
    confirmed.state = HoldState::Confirmed;
    let puts = vec![
        put(Record::Booking(hold(&a, "x", "ra3", 1, m(3))), None),
        put(Record::Booking(hold(&a, "y", "ra1", 1, m(1))), None),
        put(Record::Booking(hold(&a, "z", "ra9", 1, m(9))), None),
        put(Record::Booking(confirmed), None),
        put(Record::Actor(actor_record(&a, "x")), None),
    ];
    commit_ok(s, Commit { records: puts, ..at(&a, 1) }, CLAUSE).await;
    commit_ok(
        s,
        Commit { records: vec![put(Record::Booking(hold(&b, "w", "rb2", 1, m(2))), None)], ..at(&b, 1) },
        CLAUSE,
    )
    .await;
    assert_eq!(due_refs(s, Some(&a), m(0), 10).await, Vec::<String>::new(), "{CLAUSE}: nothing is due yet");
    assert_eq!(
        due_refs(s, Some(&a), m(3), 10).await,
        vec!["ra1", "ra3"],
        "{CLAUSE}: due at exactly its time, oldest first"
    );
    assert_eq!(due_refs(s, Some(&a), m(10), 1).await, vec!["ra1"], "{CLAUSE}: limit");
    assert_eq!(due_refs(s, Some(&a), m(10), 10).await, vec!["ra1", "ra3", "ra9"], "{CLAUSE}: only held holds are due");
    let all = due_refs(s, None, m(10), 10).await;
    assert_eq!(all, vec!["ra1", "rb2", "ra3", "ra9"], "{CLAUSE}: across occurrences, oldest first");
    for limit in 1..=3 {
        assert_eq!(
            due_refs(s, None, m(10), limit).await,
            all[..limit],
            "{CLAUSE}: a limited sweep takes the oldest across occurrences, not the first occurrence's"
        );
    }
}

/// A write that changes a record's due time moves it in the index; a write that ends it (or a
/// delete) takes it out.
pub async fn check_due_follows_writes<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(10)), CLAUSE).await;
    let m = |n| T0 + Duration::minutes(n);
    let h1 = hold(&o, "x", "r1", 1, m(1));
    let h2 = hold(&o, "y", "r2", 1, m(2));
    let v1 = commit_ok(
        s,
        Commit {
            records: vec![put(Record::Booking(h1.clone()), None), put(Record::Booking(h2.clone()), None)],
            ..at(&o, 1)
        },
        CLAUSE,
    )
    .await
    .version;
    let mut later = h1.clone();
    later.expires_at = m(5);
    let mut ended = h2.clone();
    ended.state = HoldState::Released;
    let v2 = commit_ok(
        s,
        Commit {
            records: vec![put(Record::Booking(later), Some(v1)), put(Record::Booking(ended), Some(v1))],
            ..at(&o, 1)
        },
        CLAUSE,
    )
    .await
    .version;
    assert_eq!(
        due_refs(s, Some(&o), m(4), 10).await,
        Vec::<String>::new(),
        "{CLAUSE}: the index did not follow writes"
    );
    assert_eq!(due_refs(s, Some(&o), m(5), 10).await, vec!["r1"], "{CLAUSE}: a moved due time");
    let del = RecordWrite { key: RecordKey::Booking(r("r1")), expected: Some(v2), op: WriteOp::Delete };
    commit_ok(s, Commit { records: vec![del], ..at(&o, 1) }, CLAUSE).await;
    assert!(due_refs(s, None, m(60), 10).await.is_empty(), "{CLAUSE}: a deleted record is still due");
}

/// "Oldest first" holds at sub-second resolution.
pub async fn check_due_oldest_first_within_a_second<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(10)), CLAUSE).await;
    let t = |ms| T0 + Duration::milliseconds(ms);
    let puts = vec![
        put(Record::Booking(hold(&o, "x", "r-900", 1, t(900))), None),
        put(Record::Booking(hold(&o, "y", "r-100", 1, t(100))), None),
        put(Record::Booking(hold(&o, "z", "r-500", 1, t(500))), None),
    ];
    commit_ok(s, Commit { records: puts, ..at(&o, 1) }, CLAUSE).await;
    assert_eq!(
        due_refs(s, Some(&o), t(999), 10).await,
        vec!["r-100", "r-500", "r-900"],
        "{CLAUSE}: order within a second"
    );
    assert_eq!(
        due_refs(s, None, t(999), 2).await,
        vec!["r-100", "r-500"],
        "{CLAUSE}: order within a second, all occurrences"
    );
}
