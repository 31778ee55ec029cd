//! Clause 7: a version names one state, forever — it never repeats for a key, also after the
//! record is deleted and created again, so a guard taken on the old record fails against the
//! new one.

use std::collections::BTreeSet;

use super::atomic::every_kind;
use super::fixtures::*;
use crate::records::{Record, RecordKey, Version};
use crate::store::{AsyncStore, Commit, CommitError, Conflict, RecordWrite, WriteOp};

const CLAUSE: &str = "store contract 7 (versions never repeat)";

fn conflict_on(e: CommitError, key: &RecordKey) {
    match e {
        CommitError::Conflict(Conflict::Record { key: k }) => {
            assert_eq!(&k, key, "{CLAUSE}: the conflict names another key")
        }
        e => panic!("{CLAUSE}: a guard at a version of a deleted record passed, or failed oddly: {e}"),
    }
}

/// For every kind of record: put, update, delete, create again (three rounds), and no version
/// is ever seen twice for the key; also when other records of the occurrence are written in
/// between, and when the occurrence does not exist (an unchecked commit).
pub async fn check_versions_never_repeat<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let missing = occ("nowhere");
    for (occ_key, checked) in [(&o, true), (&missing, false)] {
        let base =
            |occ_key: &crate::contract::OccKey| if checked { at(occ_key, 1) } else { Commit::new(occ_key.clone()) };
        for (i, rec) in every_kind(occ_key).into_iter().enumerate() {
            let key = rec.key();
            let mut seen: BTreeSet<Version> = BTreeSet::new();
            let mut fresh = |v: Version, what: &str| {
                assert!(v >= 1, "{CLAUSE}: version {v} of {key} is below 1");
                assert!(seen.insert(v), "{CLAUSE}: {what} stored {key} at version {v}, which it had before");
            };
            for round in 0..3 {
                let v = commit_ok(s, Commit { records: vec![put(rec.clone(), None)], ..base(occ_key) }, CLAUSE).await;
                fresh(v.version, if round == 0 { "a create" } else { "a re-create after a delete" });
                let got = get(s, occ_key, &key).await.map(|r| r.version);
                assert_eq!(got, Some(v.version), "{CLAUSE}: {key} is not at the version its commit answered");
                // Another record written in between must not make the next version repeat.
                let other = Record::Actor(actor_record(occ_key, &format!("other-{i}-{round}")));
                commit_ok(s, Commit { records: vec![put(other, None)], ..base(occ_key) }, CLAUSE).await;
                let u =
                    commit_ok(s, Commit { records: vec![put(rec.clone(), Some(v.version))], ..base(occ_key) }, CLAUSE)
                        .await;
                fresh(u.version, "an update");
                let del = RecordWrite { key: key.clone(), expected: Some(u.version), op: WriteOp::Delete };
                commit_ok(s, Commit { records: vec![del], ..base(occ_key) }, CLAUSE).await;
                assert!(get(s, occ_key, &key).await.is_none(), "{CLAUSE}: a Delete left {key}");
            }
        }
    }
}

/// The race where a stale unblock oversold: a guard taken on a record that
/// was since deleted and created again fails — a `Delete`, a `Put` and a `Check` at the old
/// version, for every kind of record — and the new record is untouched.
pub async fn check_stale_guard_after_recreate<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    for rec in every_kind(&o) {
        let key = rec.key();
        let old = commit_ok(s, Commit { records: vec![put(rec.clone(), None)], ..at(&o, 1) }, CLAUSE).await.version;
        let del = |v| RecordWrite { key: key.clone(), expected: Some(v), op: WriteOp::Delete };
        commit_ok(s, Commit { records: vec![del(old)], ..at(&o, 1) }, CLAUSE).await;
        let new = commit_ok(s, Commit { records: vec![put(rec.clone(), None)], ..at(&o, 1) }, CLAUSE).await.version;
        assert_ne!(new, old, "{CLAUSE}: {key} re-created at the version it had before the delete");
        for stale in [
            del(old),
            RecordWrite { key: key.clone(), expected: Some(old), op: WriteOp::Check },
            RecordWrite { key: key.clone(), expected: Some(old), op: WriteOp::Put(rec.clone()) },
        ] {
            conflict_on(commit_err(s, Commit { records: vec![stale], ..at(&o, 1) }, CLAUSE).await, &key);
        }
        let got = get(s, &o, &key).await.unwrap_or_else(|| panic!("{CLAUSE}: a stale guard removed {key}"));
        assert_eq!(got.version, new, "{CLAUSE}: a stale guard changed {key}");
        commit_ok(s, Commit { records: vec![del(new)], ..at(&o, 1) }, CLAUSE).await;
    }
}
