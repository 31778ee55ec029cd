//! Clause 2: guards checked at commit time — the occurrence, each record's version, the
//! capacity of every dimension a seat-admitting commit touches, counter guards — and malformed commits
//! refused as invalid, not as conflicts.

use super::fixtures::*;
use crate::catalogue::Dim;
use crate::records::{Record, RecordKey, UsageDelta};
use crate::store::{AsyncStore, Commit, CommitError, Conflict, Few, OccurrenceGuard, RecordWrite, WriteOp};

const CLAUSE: &str = "store contract 2 (guards)";

fn is_occurrence_conflict(e: &CommitError) -> bool {
    matches!(e, CommitError::Conflict(Conflict::Occurrence))
}

/// `At(v)`, `Create`, `Update` and `Unchecked` as the contract says.
pub async fn check_occurrence_guards<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    let e = commit_err(s, at(&o, 1), CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: At on a missing occurrence: {e}");
    // Records and events of a missing occurrence (a refund for an unknown key) need no guard.
    let c = Commit {
        records: vec![put(Record::Actor(actor_record(&o, "zed")), None)],
        events: vec![event(&o, "zed", "z1", 1)].into(),
        ..Commit::new(o.clone())
    };
    commit_ok(s, c, CLAUSE).await;
    commit_ok(s, create(&o, config(3)), CLAUSE).await;
    let e = commit_err(s, create(&o, config(3)), CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: Create on an existing occurrence: {e}");
    let e = commit_err(s, at(&o, 2), CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: At with a wrong version: {e}");
    let upd =
        |v| Commit { occurrence: OccurrenceGuard::Update { expected: v, config: config(4) }, ..Commit::new(o.clone()) };
    let e = commit_err(s, upd(2), CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: Update with a wrong version: {e}");
    commit_ok(s, upd(1), CLAUSE).await;
    commit_ok(s, at(&o, 2), CLAUSE).await;
    let e = commit_err(s, Commit { deltas: vec![(total(), held(1))].into(), ..Commit::new(o.clone()) }, CLAUSE).await;
    assert!(matches!(e, CommitError::Invalid(_)), "{CLAUSE}: seat deltas without an occurrence guard: {e}");
}

/// `expected: None` / `Some(v)`, for `Check`, `Put` and `Delete`; a put is stored at the
/// version its commit answers, a new one at every put; a `Check` writes nothing.
pub async fn check_record_guards<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(3)), CLAUSE).await;
    let rec = Record::Actor(actor_record(&o, "ann"));
    let key = rec.key();
    let w = |expected, op| RecordWrite { key: key.clone(), expected, op };
    let conflict_on = |e: CommitError| match e {
        CommitError::Conflict(Conflict::Record { key: k }) => {
            assert_eq!(k, key, "{CLAUSE}: conflict names another key")
        }
        e => panic!("{CLAUSE}: expected a record conflict, got {e}"),
    };
    conflict_on(commit_err(s, Commit { records: vec![w(Some(1), WriteOp::Check)], ..at(&o, 1) }, CLAUSE).await);
    commit_ok(s, Commit { records: vec![w(None, WriteOp::Check)], ..at(&o, 1) }, CLAUSE).await;
    assert!(get(s, &o, &key).await.is_none(), "{CLAUSE}: a Check wrote a record");
    let v1 = commit_ok(s, Commit { records: vec![put(rec.clone(), None)], ..at(&o, 1) }, CLAUSE).await.version;
    assert!(v1 >= 1, "{CLAUSE}: versions start at 1");
    conflict_on(commit_err(s, Commit { records: vec![put(rec.clone(), None)], ..at(&o, 1) }, CLAUSE).await);
    commit_ok(s, Commit { records: vec![w(Some(v1), WriteOp::Check)], ..at(&o, 1) }, CLAUSE).await;
    assert_eq!(
        get(s, &o, &key).await.map(|r| r.version),
        Some(v1),
        "{CLAUSE}: a put is at the version its commit answered, and a Check keeps it"
    );
    let mut next = actor_record(&o, "ann");
    next.holds = 7;
    let v2 = commit_ok(s, Commit { records: vec![put(Record::Actor(next.clone()), Some(v1))], ..at(&o, 1) }, CLAUSE)
        .await
        .version;
    let got = get(s, &o, &key).await.unwrap_or_else(|| panic!("{CLAUSE}: record lost"));
    assert_eq!(
        (got.version, got.value),
        (v2, Record::Actor(next)),
        "{CLAUSE}: a Put stores at the version its commit answers"
    );
    assert_ne!(v2, v1, "{CLAUSE}: a Put must change the version");
    conflict_on(commit_err(s, Commit { records: vec![w(Some(v1), WriteOp::Delete)], ..at(&o, 1) }, CLAUSE).await);
    commit_ok(s, Commit { records: vec![w(Some(v2), WriteOp::Delete)], ..at(&o, 1) }, CLAUSE).await;
    assert!(get(s, &o, &key).await.is_none(), "{CLAUSE}: Delete left the record");
}

/// A commit is refused when a dimension it admits seats to would pass its cap — also when its
/// net change there is zero (a hold replacing lapsed ones) or negative (a hold placed while
/// more lapsed seats are expired) — and only then; a dimension it does not admit to is never
/// refused (lowering a capacity revokes nothing).
pub async fn check_capacity_guard<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(3)), CLAUSE).await;
    let seats = |n, admits: bool| Commit {
        deltas: vec![(total(), held(n))].into(),
        admits: if admits { vec![total()].into() } else { Few::new() },
        ..at(&o, 1)
    };
    commit_ok(s, seats(3, true), CLAUSE).await;
    match commit_err(s, seats(1, true), CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { dim }) => assert_eq!(dim, Dim::Total, "{CLAUSE}: wrong dimension"),
        e => panic!("{CLAUSE}: expected a capacity conflict, got {e}"),
    }
    // Lower the capacity under what is held: admitting nothing stays allowed...
    let c = Commit { occurrence: OccurrenceGuard::Update { expected: 1, config: config(1) }, ..Commit::new(o.clone()) };
    commit_ok(s, c, CLAUSE).await;
    let confirm = Commit {
        deltas: vec![(total(), UsageDelta { held: -1, confirmed: 1, ..UsageDelta::default() })].into(),
        ..at(&o, 2)
    };
    commit_ok(s, confirm, CLAUSE).await;
    // ...but a placement of net zero (one held seat replacing another) is guarded.
    let replace = Commit { deltas: vec![(total(), held(0))].into(), admits: vec![total()].into(), ..at(&o, 2) };
    match commit_err(s, replace, CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { .. }) => {}
        e => panic!("{CLAUSE}: an admitting commit over capacity (net 0) must conflict, got {e}"),
    }
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    let u = occ.counters.get(&Dim::Total);
    assert_eq!((u.held, u.confirmed), (2, 1), "{CLAUSE}: refused commits changed counters");
}

/// A dimension a commit admits seats to must end within its cap however many seats the same
/// commit frees on it: a hold of 2 placed while 3 lapsed seats are expired, at an occurrence
/// whose capacity was lowered to 1, would leave 2 seats held on a capacity of 1. (Found by
/// the read-cache differential test: a rule that exempted dimensions with a negative net
/// change let exactly this through.)
pub async fn check_admitted_dimension_fits_whatever_is_freed<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(3)), CLAUSE).await;
    commit_ok(s, Commit { deltas: vec![(total(), held(3))].into(), admits: vec![total()].into(), ..at(&o, 1) }, CLAUSE)
        .await;
    let c = Commit { occurrence: OccurrenceGuard::Update { expected: 1, config: config(1) }, ..Commit::new(o.clone()) };
    commit_ok(s, c, CLAUSE).await;
    // Free 3, admit 2: net -1, and 2 > 1.
    let swap = Commit { deltas: vec![(total(), held(-1))].into(), admits: vec![total()].into(), ..at(&o, 2) };
    match commit_err(s, swap, CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { dim }) => assert_eq!(dim, Dim::Total, "{CLAUSE}: wrong dimension"),
        e => panic!("{CLAUSE}: admitting past the cap while freeing more must conflict, got {e}"),
    }
    // Freeing alone is never refused, even over the cap.
    commit_ok(s, Commit { deltas: vec![(total(), held(-1))].into(), ..at(&o, 2) }, CLAUSE).await;
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    assert_eq!(occ.counters.get(&Dim::Total).held, 2, "{CLAUSE}: counters after a refused and an applied commit");
}

/// A tier's own cap and a pool's cap are guarded like the total.
pub async fn check_capacity_guard_per_dimension<S: AsyncStore>(s: &S) {
    let o = occ("show");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let a = [Dim::Total, Dim::Tier(tier("a")), Dim::Pool(pool("p"))];
    let seats =
        |n| Commit { deltas: a.iter().map(|d| (d.clone(), held(n))).collect(), admits: a.to_vec().into(), ..at(&o, 1) };
    commit_ok(s, seats(3), CLAUSE).await;
    match commit_err(s, seats(1), CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { dim }) => {
            assert_eq!(dim, Dim::Pool(pool("p")), "{CLAUSE}: the pool (cap 3) is what is full");
        }
        e => panic!("{CLAUSE}: expected a capacity conflict on the pool, got {e}"),
    }
    // Tier b is uncapped and counts against the total only: 7 more fit, 8 do not.
    let b = |n| Commit {
        deltas: vec![(Dim::Total, held(n)), (Dim::Tier(tier("b")), held(n))].into(),
        admits: vec![Dim::Total, Dim::Tier(tier("b"))].into(),
        ..at(&o, 1)
    };
    match commit_err(s, b(8), CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { dim }) => assert_eq!(dim, Dim::Total, "{CLAUSE}: wrong dimension"),
        e => panic!("{CLAUSE}: expected a capacity conflict on the total, got {e}"),
    }
    commit_ok(s, b(7), CLAUSE).await;
}

/// A dimension the commit only frees is not guarded, even when the commit admits seats elsewhere
/// and the freed dimension stays over a lowered cap (lowering a cap revokes nothing: a
/// cancellation there must still be able to hand its seat to someone else).
pub async fn check_freed_dimension_over_its_cap<S: AsyncStore>(s: &S) {
    let o = occ("show");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let a = [Dim::Total, Dim::Tier(tier("a")), Dim::Pool(pool("p"))];
    commit_ok(
        s,
        Commit { deltas: a.iter().map(|d| (d.clone(), held(3))).collect(), admits: a.to_vec().into(), ..at(&o, 1) },
        CLAUSE,
    )
    .await;
    // Pool p goes down to 1 seat under its 3 held ones.
    let lower = tiered().with_pools(vec![crate::catalogue::Pool { pool: pool("p"), capacity: 1 }]);
    let c = Commit { occurrence: OccurrenceGuard::Update { expected: 1, config: lower }, ..Commit::new(o.clone()) };
    commit_ok(s, c, CLAUSE).await;
    // One seat of tier a freed, one of tier b admitted: the pool is still over its cap (2 > 1)
    // but it only sheds seats, so the commit applies.
    let mv = Commit {
        deltas: vec![
            (Dim::Total, held(0)),
            (Dim::Tier(tier("a")), held(-1)),
            (Dim::Pool(pool("p")), held(-1)),
            (Dim::Tier(tier("b")), held(1)),
        ]
        .into(),
        admits: vec![Dim::Total, Dim::Tier(tier("b"))].into(),
        ..at(&o, 2)
    };
    commit_ok(s, mv, CLAUSE).await;
    // Admitting into the over-cap pool is still refused.
    let into =
        Commit { deltas: a.iter().map(|d| (d.clone(), held(1))).collect(), admits: a.to_vec().into(), ..at(&o, 2) };
    match commit_err(s, into, CLAUSE).await {
        CommitError::Conflict(Conflict::Capacity { dim }) => {
            assert_eq!(dim, Dim::Pool(pool("p")), "{CLAUSE}: the pool is what is over its cap")
        }
        e => panic!("{CLAUSE}: expected a capacity conflict on the pool, got {e}"),
    }
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    assert_eq!(occ.counters.get(&Dim::Pool(pool("p"))).held, 2, "{CLAUSE}: the freed seat is not counted out");
}

/// A counter guard holds a dimension's counters, as they stand before the commit, to
/// exactly what the decision read (all four fields; a dimension never counted counts zero):
/// otherwise [`Conflict::Usage`] naming the dimension, with nothing written. It is judged
/// before the commit's own deltas. (A price locked while seats are held, a tier whose pools
/// change, and a waiting list judged to have no room are decided from what the counters did
/// *not* hold: the guard makes that reading part of the commit.)
pub async fn check_counter_guard<S: AsyncStore>(s: &S) {
    use crate::records::Usage;
    let o = occ("show");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let b = Dim::Tier(tier("b"));
    let held_n = |n| Usage { held: n, ..Usage::default() };
    // A tier never touched counts zero.
    commit_ok(s, Commit { unchanged: vec![(b.clone(), Usage::default())], ..at(&o, 1) }, CLAUSE).await;
    let two = Commit {
        deltas: vec![(Dim::Total, held(2)), (b.clone(), held(2))].into(),
        admits: vec![Dim::Total, b.clone()].into(),
        ..at(&o, 1)
    };
    commit_ok(s, two, CLAUSE).await;
    let usage_conflict = |e: CommitError, what: &str| match e {
        CommitError::Conflict(Conflict::Usage { dim }) => assert_eq!(dim, b, "{CLAUSE}: {what}: wrong dimension"),
        e => panic!("{CLAUSE}: {what}: expected a counter conflict, got {e}"),
    };
    // Stale in either direction: fewer or more seats than read.
    for stale in [Usage::default(), held_n(1), held_n(3)] {
        let e = commit_err(s, Commit { unchanged: vec![(b.clone(), stale)], ..at(&o, 1) }, CLAUSE).await;
        usage_conflict(e, &format!("read {stale:?}, held 2"));
    }
    // Judged before the commit's own deltas, and a refused commit writes nothing.
    let rec = Record::Actor(actor_record(&o, "ann"));
    let free_one = |read| Commit {
        deltas: vec![(Dim::Total, held(-1)), (b.clone(), held(-1))].into(),
        unchanged: vec![(b.clone(), read)],
        records: vec![put(rec.clone(), None)],
        ..at(&o, 1)
    };
    usage_conflict(commit_err(s, free_one(held_n(1)), CLAUSE).await, "the counters after the deltas are not the guard");
    assert!(get(s, &o, &rec.key()).await.is_none(), "{CLAUSE}: a commit that failed a counter guard wrote a record");
    commit_ok(s, free_one(held_n(2)), CLAUSE).await;
    // Every field is compared, not only the held seats.
    let sell = UsageDelta { held: -1, confirmed: 1, ..UsageDelta::default() };
    commit_ok(s, Commit { deltas: vec![(Dim::Total, sell), (b.clone(), sell)].into(), ..at(&o, 1) }, CLAUSE).await;
    let e = commit_err(s, Commit { unchanged: vec![(b.clone(), Usage::default())], ..at(&o, 1) }, CLAUSE).await;
    usage_conflict(e, "one sold, none held: not the empty reading");
    let sold = Usage { confirmed: 1, ..Usage::default() };
    commit_ok(s, Commit { unchanged: vec![(b.clone(), sold)], ..at(&o, 1) }, CLAUSE).await;
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    let u = occ.counters.get(&b);
    assert_eq!((u.held, u.confirmed), (0, 1), "{CLAUSE}: counters after refused and applied guarded commits");
    // A guard on a dimension the occurrence does not have is malformed, not a conflict.
    let e =
        commit_err(s, Commit { unchanged: vec![(Dim::Tier(tier("zz")), Usage::default())], ..at(&o, 1) }, CLAUSE).await;
    assert!(matches!(e, CommitError::Invalid(_)), "{CLAUSE}: a counter guard on no dimension must be invalid, not {e}");
}

/// A room guard holds a dimension to at least the seats taken that the decision read (all
/// four counters, before the commit's deltas): seats taken meanwhile pass, seats freed
/// meanwhile are [`Conflict::Usage`] with nothing written. (A waiting entry judged not to
/// fit must not miss a seat another commit freed.)
pub async fn check_room_guard<S: AsyncStore>(s: &S) {
    let o = occ("show");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let b = Dim::Tier(tier("b"));
    let take = |n: i64| Commit {
        deltas: vec![(Dim::Total, held(n)), (b.clone(), held(n))].into(),
        admits: if n > 0 { vec![Dim::Total, b.clone()].into() } else { Few::new() },
        ..at(&o, 1)
    };
    commit_ok(s, Commit { at_least: vec![(b.clone(), 0)], ..at(&o, 1) }, CLAUSE).await;
    commit_ok(s, take(2), CLAUSE).await;
    let room_conflict = |e: CommitError, what: &str| match e {
        CommitError::Conflict(Conflict::Usage { dim }) => assert_eq!(dim, b, "{CLAUSE}: {what}: wrong dimension"),
        e => panic!("{CLAUSE}: {what}: expected a counter conflict, got {e}"),
    };
    room_conflict(commit_err(s, Commit { at_least: vec![(b.clone(), 3)], ..at(&o, 1) }, CLAUSE).await, "2 taken < 3");
    // Seats taken since the reading pass...
    commit_ok(s, take(1), CLAUSE).await;
    commit_ok(s, Commit { at_least: vec![(b.clone(), 2)], ..at(&o, 1) }, CLAUSE).await;
    // ...seats freed since do not, and nothing of the refused commit is written.
    commit_ok(s, take(-2), CLAUSE).await;
    let rec = Record::Actor(actor_record(&o, "ann"));
    let guarded = Commit { at_least: vec![(b.clone(), 2)], records: vec![put(rec.clone(), None)], ..at(&o, 1) };
    room_conflict(commit_err(s, guarded, CLAUSE).await, "1 taken < 2");
    assert!(get(s, &o, &rec.key()).await.is_none(), "{CLAUSE}: a commit that failed a room guard wrote a record");
    // Judged before the commit's own deltas: freeing the last seat under a guard of 1 passes.
    commit_ok(s, Commit { at_least: vec![(b.clone(), 1)], ..take(-1) }, CLAUSE).await;
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    assert_eq!(occ.counters.get(&b).total(), 0, "{CLAUSE}: counters after refused and applied guarded commits");
    let e = commit_err(s, Commit { at_least: vec![(Dim::Tier(tier("zz")), 0)], ..at(&o, 1) }, CLAUSE).await;
    assert!(matches!(e, CommitError::Invalid(_)), "{CLAUSE}: a room guard on no dimension must be invalid, not {e}");
}

/// A new configuration may drop a dimension only if it counts nothing.
pub async fn check_dropped_dimension_in_use<S: AsyncStore>(s: &S) {
    let o = occ("show");
    commit_ok(s, create(&o, tiered()), CLAUSE).await;
    let c = Commit {
        deltas: vec![(Dim::Total, held(1)), (Dim::Tier(tier("b")), held(1))].into(),
        admits: vec![Dim::Total, Dim::Tier(tier("b"))].into(),
        ..at(&o, 1)
    };
    commit_ok(s, c, CLAUSE).await;
    let without_b = tiered().with_tiers(tiered().tiers().iter().filter(|t| t.tier != tier("b")).cloned().collect());
    let upd =
        |v, cfg| Commit { occurrence: OccurrenceGuard::Update { expected: v, config: cfg }, ..Commit::new(o.clone()) };
    let e = commit_err(s, upd(1, without_b.clone()), CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: dropping a dimension in use must conflict: {e}");
    let c = Commit { deltas: vec![(Dim::Total, held(-1)), (Dim::Tier(tier("b")), held(-1))].into(), ..at(&o, 1) };
    commit_ok(s, c, CLAUSE).await;
    commit_ok(s, upd(1, without_b), CLAUSE).await;
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    assert_eq!(occ.counters.get(&Dim::Tier(tier("b"))).total(), 0, "{CLAUSE}: dropped dimension still counts");
}

/// Malformed commits are `Invalid` (not retryable) and write nothing.
pub async fn check_invalid_commits<S: AsyncStore>(s: &S) {
    let o = occ("gig");
    commit_ok(s, create(&o, config(3)), CLAUSE).await;
    let rec = Record::Actor(actor_record(&o, "ann"));
    let bad = [
        ("a counter going negative", Commit { deltas: vec![(total(), held(-1))].into(), ..at(&o, 1) }),
        ("a key written twice", Commit { records: vec![put(rec.clone(), None), put(rec.clone(), None)], ..at(&o, 1) }),
        (
            "a record put under another key",
            Commit {
                records: vec![RecordWrite {
                    key: RecordKey::Actor(actor("bob")),
                    expected: None,
                    op: WriteOp::Put(rec.clone()),
                }],
                ..at(&o, 1)
            },
        ),
        (
            "a dimension the configuration lacks",
            Commit { deltas: vec![(Dim::Tier(tier("zz")), held(1))].into(), ..at(&o, 1) },
        ),
    ];
    for (what, c) in bad {
        match commit_err(s, c, CLAUSE).await {
            CommitError::Invalid(_) => {}
            e => panic!("{CLAUSE}: {what} must be refused as invalid, not {e}"),
        }
    }
    assert!(get(s, &o, &rec.key()).await.is_none(), "{CLAUSE}: an invalid commit wrote a record");
    let occ = load(s, &o, &[]).await.occurrence.unwrap_or_else(|| panic!("lost"));
    assert_eq!(occ.counters.get(&Dim::Total).total(), 0, "{CLAUSE}: an invalid commit changed counters");
}

/// When several guards fail, the first in the contract's order is the answer (the order of
/// [`check_commit`](crate::store::check_commit)): occurrence, then records, then counter and
/// room guards, then the deltas' arithmetic, then capacity. In particular a stale decision
/// whose deltas would take a counter below zero is a record conflict (a race: retry), not
/// an invalid commit (a bug: give up).
pub async fn check_guard_order<S: AsyncStore>(s: &S) {
    use crate::records::Usage;
    let o = occ("order");
    commit_ok(s, create(&o, config(2)), CLAUSE).await;
    let rec = Record::Actor(actor_record(&o, "ann"));
    let key = rec.key();
    let stale_record = RecordWrite { key: key.clone(), expected: Some(7), op: WriteOp::Delete };
    let is_record = |e: &CommitError| matches!(e, CommitError::Conflict(Conflict::Record { key: k }) if *k == key);
    // Occurrence before records.
    let e = commit_err(s, Commit { records: vec![stale_record.clone()], ..at(&o, 9) }, CLAUSE).await;
    assert!(is_occurrence_conflict(&e), "{CLAUSE}: occurrence guard first, got {e}");
    // Records before the counters' arithmetic: freeing a seat nobody holds, decided on a
    // record that is not there.
    let e = commit_err(
        s,
        Commit { deltas: vec![(total(), held(-1))].into(), records: vec![stale_record.clone()], ..at(&o, 1) },
        CLAUSE,
    )
    .await;
    assert!(is_record(&e), "{CLAUSE}: a stale record before a negative counter, got {e}");
    // Records before counter and room guards.
    let stale_usage = Usage { held: 5, ..Usage::default() };
    let e = commit_err(
        s,
        Commit {
            unchanged: vec![(total(), stale_usage)],
            at_least: vec![(total(), 5)],
            records: vec![stale_record],
            ..at(&o, 1)
        },
        CLAUSE,
    )
    .await;
    assert!(is_record(&e), "{CLAUSE}: a stale record before the counter guards, got {e}");
    // Counter guards before arithmetic and capacity.
    let e = commit_err(
        s,
        Commit {
            deltas: vec![(total(), held(-1))].into(),
            unchanged: vec![(total(), stale_usage)],
            admits: vec![total()].into(),
            ..at(&o, 1)
        },
        CLAUSE,
    )
    .await;
    assert!(
        matches!(e, CommitError::Conflict(Conflict::Usage { .. })),
        "{CLAUSE}: a counter guard before a negative counter, got {e}"
    );
    // Arithmetic before capacity: a malformed commit is invalid even over the cap.
    let e = commit_err(
        s,
        Commit {
            deltas: vec![(total(), UsageDelta { held: 3, confirmed: -1, ..UsageDelta::default() })].into(),
            admits: vec![total()].into(),
            ..at(&o, 1)
        },
        CLAUSE,
    )
    .await;
    assert!(matches!(e, CommitError::Invalid(_)), "{CLAUSE}: a negative counter before capacity, got {e}");
    // And nothing of the refused commits was written.
    let snap = load(s, &o, std::slice::from_ref(&key)).await;
    let occurrence = snap.occurrence.unwrap_or_else(|| panic!("{CLAUSE}: the occurrence vanished"));
    assert_eq!(occurrence.counters.get(&total()), Usage::default(), "{CLAUSE}: a refused commit changed counters");
}
