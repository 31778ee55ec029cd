//! What is particular to `PostgresStore`, on a live server (`SEATHOLD_PG_URL`): migrations,
//! exact timestamps, the sweep's lease, error mapping, and the guards under concurrency.

use crate::postgres_support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use postgres_support::{fresh_schema, fresh_store, pg_url, store_in, with_app_name};
use seathold::catalogue::{Dim, OccurrenceConfig};
use seathold::contract::{ActorId, EventKind, Money, OccKey, PaymentResult, Ref};
use seathold::holds::{Hold, HoldRequest, HoldState, RequestOutcome};
use seathold::records::{Record, RecordKey, UsageDelta};
use seathold::settlement::Settlement;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::store::{
    AsyncStore, Commit, CommitError, Committed, Conflict, OccurrenceGuard, RecordWrite, StoreError, WriteOp,
};
use seathold::{AsyncEngine, ManualClock, OpError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-06-01 12:00:00.123456789 UTC);

fn occ(s: &str) -> OccKey {
    OccKey::new(s).unwrap()
}

fn actor(s: &str) -> ActorId {
    ActorId::new(s).unwrap()
}

fn hold(k: &OccKey, who: &str, expires_at: OffsetDateTime) -> Hold {
    Hold {
        occ_key: k.clone(),
        actor: actor(who),
        hold_ref: Ref::new(format!("r-{who}")).unwrap(),
        quantity: 1,
        price: Money::parse("25.00", "EUR").unwrap(),
        lines: Default::default(),
        metadata: None,
        placed_at: expires_at - Duration::seconds(600),
        expires_at,
        state: HoldState::Held,
        ended_at: None,
        tickets: Vec::new(),
        revived: false,
        first_expires_at: None,
        cancelled_seats: 0,
        cancellations: 0,
        refunded: None,
        seat_ids: seathold::seating::SeatList::new(),
    }
}

fn key(h: &Hold) -> RecordKey {
    RecordKey::Booking(h.hold_ref.clone())
}

async fn open(store: &PostgresStore, k: &OccKey, capacity: u32) {
    let c = Commit {
        occurrence: OccurrenceGuard::Create(OccurrenceConfig::new(capacity, 600).unwrap()),
        ..Commit::new(k.clone())
    };
    store.commit(c).await.unwrap();
}

/// Place `h` as a raw commit: one held seat under the capacity guard, the booking inserted.
async fn place(store: &PostgresStore, h: &Hold) -> Result<Committed, CommitError> {
    let c = Commit {
        occurrence: OccurrenceGuard::At(1),
        deltas: vec![(Dim::Total, UsageDelta::held(h.quantity))].into(),
        admits: vec![Dim::Total].into(),
        records: vec![RecordWrite { key: key(h), expected: None, op: WriteOp::Put(Record::Booking(h.clone())) }],
        ..Commit::new(h.occ_key.clone())
    };
    store.commit(c).await
}

async fn booking(store: &PostgresStore, k: &OccKey, h: &Hold) -> Option<seathold::records::Versioned<Record>> {
    store.load(k, &[key(h)]).await.unwrap().records.into_iter().next().flatten()
}

fn names(due: &[seathold::store::Due]) -> Vec<String> {
    due.iter()
        .map(|d| match &d.record.value {
            Record::Booking(h) => h.actor.to_string(),
            other => format!("{:?}", other.key()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_safe_to_race() {
    let Some(url) = pg_url("migrate_is_idempotent_and_safe_to_race") else { return };
    let schema = fresh_schema("migrate");
    let a = store_in(&url, &schema, 2).await;
    let k = occ("m");
    open(&a, &k, 5).await;
    let placed = place(&a, &hold(&k, "x", T0)).await.unwrap().version;
    // Several instances starting at once, each migrating: no error, nothing lost.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (url.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            let s = PostgresStore::connect(&url, PostgresOptions::new(schema).with_pool_size(1)).await.unwrap();
            s.migrate().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    a.migrate().await.unwrap();
    let x = hold(&k, "x", T0);
    let snap = a.load(&k, &[key(&x)]).await.unwrap();
    assert_eq!(snap.occurrence.unwrap().counters.get(&Dim::Total).held, 1);
    assert_eq!(snap.records[0].as_ref().unwrap().version, placed);
    a.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_round_trip_to_the_nanosecond_and_lapse_exactly() {
    let Some(url) = pg_url("timestamps_round_trip_to_the_nanosecond_and_lapse_exactly") else { return };
    let store = fresh_store(&url, "time", 2).await;
    let k = occ("t");
    open(&store, &k, 10).await;
    // Two holds one nanosecond apart, inside one microsecond.
    let a = hold(&k, "a", T0);
    let b = hold(&k, "b", T0 + Duration::nanoseconds(1));
    place(&store, &a).await.unwrap();
    place(&store, &b).await.unwrap();
    let got = booking(&store, &k, &a).await.unwrap();
    assert_eq!(got.value, Record::Booking(a.clone()), "a hold reads back exactly, nanoseconds included");

    let lapsed = |now| {
        let store = store.clone();
        let k = k.clone();
        async move { names(&store.due(Some(&k), now, 10).await.unwrap()) }
    };
    assert_eq!(lapsed(T0 - Duration::nanoseconds(1)).await, Vec::<String>::new());
    assert_eq!(lapsed(T0).await, vec!["a".to_string()], "expires_at <= now, to the nanosecond");
    assert_eq!(lapsed(T0 + Duration::nanoseconds(1)).await, vec!["a".to_string(), "b".to_string()]);

    // The rules agree with the store at the boundary: at T0 the hold of `a` is lapsed and
    // frees its seat for a request; `b`'s is live and blocks.
    let clock = Arc::new(ManualClock::new(T0));
    let engine = AsyncEngine::with_clock(store.clone(), clock.clone());
    let avail = engine.availability(&k).await.unwrap();
    assert_eq!((avail.held, avail.available), (1, 9));

    // Out of the stored range: refused before anything is sent, not truncated.
    let far = hold(&k, "far", datetime!(2300-01-01 00:00:00 UTC));
    assert!(matches!(place(&store, &far).await, Err(CommitError::Store(StoreError::Corrupt(_)))));
    store.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweepers_of_different_instances_take_disjoint_batches() {
    let Some(url) = pg_url("sweepers_of_different_instances_take_disjoint_batches") else { return };
    let schema = fresh_schema("sweep");
    let one = store_in(&url, &schema, 2).await;
    let lease = StdDuration::from_millis(400);
    let two = PostgresStore::connect(&url, PostgresOptions { sweep_lease: lease, ..PostgresOptions::new(&schema) })
        .await
        .unwrap();
    let k = occ("s");
    open(&one, &k, 100).await;
    for i in 0..10 {
        place(&one, &hold(&k, &format!("h{i:02}"), T0 - Duration::seconds(100 - i))).await.unwrap();
    }
    let a = one.due(None, T0, 4).await.unwrap();
    assert_eq!(names(&a), ["h00", "h01", "h02", "h03"], "oldest first");
    let b = two.due(None, T0, 4).await.unwrap();
    assert_eq!(names(&b), ["h04", "h05", "h06", "h07"], "another instance's sweep takes the next batch");
    // A store sees its own claim again (a sweep retried after an error finds its batch).
    assert_eq!(names(&one.due(None, T0, 4).await.unwrap()), ["h00", "h01", "h02", "h03"]);
    let c = two.due(None, T0, 100).await.unwrap();
    assert_eq!(names(&c), ["h04", "h05", "h06", "h07", "h08", "h09"]);
    // The per-occurrence view ignores leases (it serves requests and availability).
    assert_eq!(one.due(Some(&k), T0, 100).await.unwrap().len(), 10);
    // Once the other store's lease runs out, its holds are anyone's again.
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    // `one`'s own lease (30 s) still keeps `two` off h00..h03.
    let d = two.due(None, T0, 100).await.unwrap();
    assert_eq!(names(&d), ["h04", "h05", "h06", "h07", "h08", "h09"]);
    let three = PostgresStore::connect(&url, PostgresOptions::new(&schema)).await.unwrap();
    assert_eq!(names(&three.due(None, T0, 100).await.unwrap()), Vec::<String>::new(), "all leased");

    // Writing a hold (here: expiring it) clears its lease.
    let engine = AsyncEngine::with_clock(one.clone(), ManualClock::new(T0));
    assert_eq!(engine.expire_due(100).await.unwrap(), 4);
    assert!(names(&one.due(Some(&k), T0, 100).await.unwrap()).iter().all(|n| n.as_str() >= "h04"));
    one.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_hold_under_concurrent_commits() {
    let Some(url) = pg_url("guards_hold_under_concurrent_commits") else { return };
    let store = fresh_store(&url, "guards", 16).await;
    let k = occ("g");
    open(&store, &k, 7).await;
    // 64 different actors race for 7 seats through raw commits: exactly 7 win, the rest see
    // Conflict::Capacity.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move { place(&store, &hold(&k, &format!("a{i}"), T0)).await }));
    }
    let (mut won, mut full) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(CommitError::Conflict(Conflict::Capacity { dim: Dim::Total })) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((won, full), (7, 57));
    let a0 = store.load(&k, &[key(&hold(&k, "a0", T0))]).await.unwrap().records[0].as_ref().map(|r| r.version);
    // 16 writers race to update one hold at the version it was placed at: exactly one wins, the others are told
    // whose hold changed.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = hold(&k, "a0", T0 + Duration::seconds(i));
            h.state = HoldState::Released;
            let c = Commit {
                occurrence: OccurrenceGuard::At(1),
                deltas: vec![(Dim::Total, UsageDelta::held(1).negated())].into(),
                records: vec![RecordWrite { key: key(&h), expected: a0, op: WriteOp::Put(Record::Booking(h)) }],
                ..Commit::new(k)
            };
            store.commit(c).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(CommitError::Conflict(Conflict::Record { key })) if key == &RecordKey::Booking(Ref::new("r-a0").unwrap())),
            "{r:?}"
        );
    }
    let o = store.load(&k, &[]).await.unwrap();
    assert_eq!(o.occurrence.unwrap().counters.get(&Dim::Total).held, 6);
    store.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_unavailable_and_the_pool_recovers() {
    let Some(url) = pg_url("a_lost_connection_is_unavailable_and_the_pool_recovers") else { return };
    // Nothing listens on port 1: connecting fails as Unavailable, quickly.
    let refused = PostgresStore::connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        PostgresOptions { timeout: StdDuration::from_secs(2), ..PostgresOptions::default() },
    )
    .await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
    assert!(matches!(
        PostgresStore::connect(&url, PostgresOptions::new("Bad-Name")).await,
        Err(StoreError::Unavailable(_))
    ));

    // Its own application_name, so that only its connections are killed below.
    let app = fresh_schema("seathold_lost");
    let store = store_in(&with_app_name(&url, &app), &fresh_schema("lost"), 2).await;
    let clock = Arc::new(ManualClock::new(T0));
    let engine = AsyncEngine::with_clock(store.clone(), clock.clone());
    let k = occ("l");
    engine.open(&k, OccurrenceConfig::new(3, 600).unwrap()).await.unwrap();
    let req = HoldRequest::new(k.clone(), actor("u"), Ref::new("r1").unwrap(), Money::parse("5", "EUR").unwrap());
    assert!(matches!(engine.request(&req).await.unwrap(), RequestOutcome::AwaitingPayment { replayed: false, .. }));
    // Kill every connection of this store's pool from outside.
    let admin = PostgresStore::connect(&url, PostgresOptions::new("admin").with_pool_size(1)).await.unwrap();
    let killed = admin
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(killed >= 1);
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    // The next operations may fail as Unavailable (never as anything else), then succeed.
    let paid = PaymentResult::paid(k.clone(), actor("u"), Ref::new("r1").unwrap());
    let mut outcome = None;
    for _ in 0..5 {
        match engine.settle(&paid).await {
            Ok(s) => {
                outcome = Some(s);
                break;
            }
            Err(OpError::Store(StoreError::Unavailable(_))) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(outcome, Some(Settlement::Confirmed { replayed: false }));
    // Redelivered: the replay.
    assert_eq!(engine.settle(&paid).await.unwrap(), Settlement::Confirmed { replayed: true });
    let again = engine.request(&req).await;
    assert!(matches!(again, Ok(RequestOutcome::Already { confirmed: true, .. })), "{again:?}");
    let events = engine.drain_events(100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.type_str()).collect();
    assert_eq!(kinds, ["hold_placed", "hold_confirmed"]);
    assert!(matches!(events[1].event.kind, EventKind::HoldConfirmed { quantity: 1, revived: false }));
    store.drop_schema().await.unwrap();
}

/// The store keeps parsed configurations by (occurrence, config version). A schema dropped
/// and migrated again under the same store starts the occurrence again at version 1 with
/// another configuration: the store must decide on the new one, not the one it kept (here a
/// capacity of 1 kept, 3 now: the second hold must be placed, not refused for capacity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_occurrence_is_decided_on_its_new_configuration() {
    let Some(url) = pg_url("a_recreated_occurrence_is_decided_on_its_new_configuration") else {
        return;
    };
    let store = fresh_store(&url, "recreated", 2).await;
    let gig = OccKey::new("gig").expect("occ key");
    let price = Money::parse("25.00", "EUR").expect("money");
    let req = |a: &str, r: &str| {
        HoldRequest::new(gig.clone(), ActorId::new(a).expect("actor"), Ref::new(r).expect("ref"), price)
    };
    let placed = |o: &RequestOutcome| matches!(o, RequestOutcome::AwaitingPayment { .. });

    let engine = AsyncEngine::new(store.clone());
    engine.open(&gig, OccurrenceConfig::new(1, 600).expect("config")).await.expect("open");
    assert!(placed(&engine.request(&req("ann", "r1")).await.expect("request")));

    store.drop_schema().await.expect("drop");
    store.migrate().await.expect("migrate again");
    let engine = AsyncEngine::new(store.clone());
    engine.open(&gig, OccurrenceConfig::new(3, 600).expect("config")).await.expect("open again");
    assert!(placed(&engine.request(&req("bob", "r2")).await.expect("request")));
    assert!(placed(&engine.request(&req("cat", "r3")).await.expect("request")), "capacity 3 now: a second hold fits");
    store.drop_schema().await.expect("drop the test schema");
}
