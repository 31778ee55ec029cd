//! A database created by seathold 0.1's schema (version 1), with holds, settlement records
//! and pending events in it, is migrated in place by this version's `migrate()` and keeps
//! working with nothing lost: the same counters, the same events (ids and bytes), every
//! hold still answering its payments, every accounted payment still replaying. And a
//! database at version 4 (the last with the PL/pgSQL commit function), dumped from that
//! version's code with its data, migrated to this one.

use crate::postgres_support;

use std::sync::Arc;

use postgres_support::{fresh_schema, pg_url, store_with};
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, NoHoldReason, OccKey, PaymentResult, ProviderRef, Ref};
use seathold::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use seathold::records::nanos;
use seathold::settlement::Settlement;
use seathold::store::StoreError;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::{AsyncEngine, ManualClock, OpError};
use time::Duration;
use time::macros::datetime;

const V1_SCHEMA: &str = include_str!("fixtures/schema_v1.sql");

fn id<T: TryFrom<&'static str>>(s: &'static str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).expect("a valid id")
}

/// Create `schema` as seathold 0.1's `migrate()` did, and fill it as 0.1's engine would have
/// left it: ann paid r1, bob holds r2 (live), cat's r3 expired, a refund was answered for a
/// payment under r9 that named no hold, and five events are pending.
async fn create_v1(store: &PostgresStore) {
    let s = store.schema();
    let t0 = nanos::of(datetime!(2026-12-01 19:00 UTC));
    let min = 60_000_000_000i64;
    let client = store.pool().get().await.expect("a connection");
    client.batch_execute(&V1_SCHEMA.replace("__SCHEMA__", s)).await.expect("the 0.1 schema");
    let sql = format!(
        r#"
        INSERT INTO "{s}".occurrences (occ_key, capacity, hold_ttl_secs, held, confirmed) VALUES ('gig', 5, 600, 1, 1);
        INSERT INTO "{s}".holds (occ_key, actor, version, hold_ref, quantity, amount, currency, attempt,
                                 placed_at_ns, expires_at_ns, state, ended_at_ns) VALUES
            ('gig', 'ann', 2, 'r1', 1, '25.00', 'EUR', 1, {t0}, {t0} + 10 * {min}, 'confirmed', {t0} + {min}),
            ('gig', 'bob', 1, 'r2', 1, '25.00', 'EUR', 1, {t0} + 2 * {min}, {t0} + 12 * {min}, 'held', NULL),
            ('gig', 'cat', 3, 'r3', 2, '50.00', 'EUR', 2, {t0}, {t0} + 10 * {min}, 'expired', {t0} + 10 * {min});
        INSERT INTO "{s}".settlements (occ_key, actor, hold_ref, outcome, reason, amount, currency, provider_ref,
                                       settled_at_ns) VALUES
            ('gig', 'zed', 'r9', 'refund', 'no_hold', '5.00', 'EUR', 'pi_zed', {t0} + 3 * {min});
        INSERT INTO "{s}".outbox (kind, occ_key, actor, hold_ref, at_ns, quantity, amount, currency, expires_at_ns,
                                  reason, provider_ref) VALUES
            ('hold_placed', 'gig', 'ann', 'r1', {t0}, 1, '25.00', 'EUR', {t0} + 10 * {min}, NULL, NULL),
            ('hold_confirmed', 'gig', 'ann', 'r1', {t0} + {min} + 123456789, 1, NULL, NULL, NULL, NULL, NULL),
            ('hold_placed', 'gig', 'bob', 'r2', {t0} + 2 * {min}, 1, '25.00', 'EUR', {t0} + 12 * {min}, NULL, NULL),
            ('refund_required', 'gig', 'zed', 'r9', {t0} + 3 * {min}, NULL, '5.00', 'EUR', NULL, 'no_hold', 'pi_zed'),
            ('hold_expired', 'gig', 'cat', 'r3', {t0} + 10 * {min}, 2, NULL, NULL, NULL, NULL, NULL);
        "#
    );
    client.batch_execute(&sql).await.expect("0.1 data");
}

/// What 0.1's `OutboxEvent::to_json` wrote for those five events, minus the ids.
const EVENTS_V1: [&str; 5] = [
    r#""type":"hold_placed","occ_key":"gig","actor":"ann","ref":"r1","at":"2026-12-01T19:00:00Z","quantity":1,"amount":"25.00","currency":"EUR","expires_at":"2026-12-01T19:10:00Z"}"#,
    r#""type":"hold_confirmed","occ_key":"gig","actor":"ann","ref":"r1","at":"2026-12-01T19:01:00.123456789Z","quantity":1}"#,
    r#""type":"hold_placed","occ_key":"gig","actor":"bob","ref":"r2","at":"2026-12-01T19:02:00Z","quantity":1,"amount":"25.00","currency":"EUR","expires_at":"2026-12-01T19:12:00Z"}"#,
    r#""type":"refund_required","occ_key":"gig","actor":"zed","ref":"r9","at":"2026-12-01T19:03:00Z","reason":"no_hold","amount":"5.00","currency":"EUR","provider_ref":"pi_zed"}"#,
    r#""type":"hold_expired","occ_key":"gig","actor":"cat","ref":"r3","at":"2026-12-01T19:10:00Z","quantity":2}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated_in_place_with_nothing_lost() {
    let Some(url) = pg_url("a_version_1_database_is_migrated_in_place_with_nothing_lost") else {
        return;
    };
    let schema = fresh_schema("upgrade");
    let store = PostgresStore::connect(&url, PostgresOptions::new(&schema)).await.expect("connect");
    create_v1(&store).await;
    store.migrate().await.expect("migrate from version 1");
    store.migrate().await.expect("migrate again: a no-op");

    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 19:05 UTC)));
    let engine = AsyncEngine::with_clock(store.clone(), clock.clone());
    let gig: OccKey = id("gig");

    // The same configuration and counters.
    let occ = engine.occurrence(&gig).await.expect("the occurrence survived");
    assert_eq!(occ.config, OccurrenceConfig::new(5, 600).expect("config"));
    let a = engine.availability(&gig).await.expect("availability");
    assert_eq!((a.capacity, a.held, a.confirmed, a.available), (5, 1, 1, 3));

    // The same pending events: same ids, same bytes.
    let events = engine.pending_events(100).await.expect("events");
    assert_eq!(events.len(), 5, "every pending event survived");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    for (e, want) in events.iter().zip(EVENTS_V1) {
        assert_eq!(e.to_json(), format!(r#"{{"id":{},{want}"#, e.id), "event {} changed on the wire", e.id);
    }

    // Every accounted payment still replays: ann's confirmation (0.1 kept no record for it),
    // zed's refund.
    let paid = |who: &'static str, r: &'static str| PaymentResult::paid(gig.clone(), id(who), id(r));
    assert_eq!(engine.settle(&paid("ann", "r1")).await.expect("settle"), Settlement::Confirmed { replayed: true });
    match engine.settle(&paid("zed", "r9").with_provider_ref(id::<ProviderRef>("pi_zed"))).await.expect("settle") {
        Settlement::PaidButNoHold { refund, replayed: true } => {
            assert_eq!(refund.reason, NoHoldReason::NoHold);
            assert_eq!(refund.amount.map(|a| a.to_string()), Some("5.00".to_owned()));
        }
        other => panic!("zed's refund must replay, got {other:?}"),
    }
    // bob's live hold is still his and still payable; cat's ended one answers as expired.
    assert_eq!(engine.settle(&paid("bob", "r2")).await.expect("settle"), Settlement::Confirmed { replayed: false });
    match engine.settle(&paid("cat", "r3")).await.expect("settle") {
        Settlement::PaidButNoHold { refund, replayed: false } => assert_eq!(refund.reason, NoHoldReason::Expired),
        other => panic!("a payment for cat's expired hold is a refund, got {other:?}"),
    }
    // Refs used in 0.1 stay used; actors keep their bookings.
    let price = Money::parse("25.00", "EUR").expect("money");
    let req = |who: &'static str, r: &'static str| HoldRequest::new(gig.clone(), id(who), id(r), price);
    match engine.request(&req("cat", "r3")).await {
        Err(OpError::Refused(RequestRefusal::RefUsed)) => {}
        other => panic!("a ref used in 0.1 is still used: {other:?}"),
    }
    match engine.request(&req("ann", "r5")).await.expect("request") {
        RequestOutcome::Already { hold_ref, confirmed: true, .. } => assert_eq!(hold_ref, id::<Ref>("r1")),
        other => panic!("ann's 0.1 booking still answers Already: {other:?}"),
    }
    assert!(matches!(
        engine.request(&req("cat", "r4")).await.expect("request"),
        RequestOutcome::AwaitingPayment { .. }
    ));
    let a = engine.availability(&gig).await.expect("availability");
    assert_eq!((a.held, a.confirmed), (1, 2));
    clock.advance(Duration::minutes(20));
    assert_eq!(engine.expire_due(100).await.expect("sweep"), 1, "cat's new hold lapses and is swept");
    let _: ActorId = id("ann");

    store.drop_schema().await.expect("drop the test schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_newer_than_the_code_is_refused() {
    let Some(url) = pg_url("a_database_newer_than_the_code_is_refused") else {
        return;
    };
    let store = store_with(&url, PostgresOptions::new(fresh_schema("newer"))).await;
    let client = store.pool().get().await.expect("a connection");
    client
        .batch_execute(&format!(r#"UPDATE "{}".seathold_meta SET schema_version = 99"#, store.schema()))
        .await
        .expect("pretend a newer version migrated it");
    match store.migrate().await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("99"), "{msg}"),
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
    store.drop_schema().await.expect("drop the test schema");
}

const V4_SCHEMA: &str = include_str!("fixtures/schema_v4.sql");

/// A database at schema version 4 — the last whose commits ran in the PL/pgSQL function
/// `seathold_apply` — with a paid booking, a live hold and pending events, is migrated in
/// place: the function is gone, nothing else changed, and the store keeps working on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_database_is_migrated_and_its_commit_function_dropped() {
    let Some(url) = pg_url("a_version_4_database_is_migrated_and_its_commit_function_dropped") else {
        return;
    };
    let schema = fresh_schema("upgrade_v4");
    let store = PostgresStore::connect(&url, PostgresOptions::new(&schema)).await.expect("connect");
    let client = store.pool().get().await.expect("a connection");
    client.batch_execute(&V4_SCHEMA.replace("__SCHEMA__", &schema)).await.expect("the version 4 database");
    let functions = |name: &'static str| {
        let (client, schema) = (&client, &schema);
        async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                      WHERE n.nspname = $1 AND p.proname = $2",
                    &[schema, &name],
                )
                .await
                .expect("pg_proc");
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(functions("seathold_apply").await, 1, "the fixture is a version 4 database");
    store.migrate().await.expect("migrate from version 4");
    store.migrate().await.expect("migrate again: a no-op");
    let version: i32 = client
        .query_one(&format!(r#"SELECT schema_version FROM "{schema}".seathold_meta"#), &[])
        .await
        .expect("the schema version")
        .get(0);
    assert_eq!(version, PostgresStore::schema_version());
    assert_eq!(functions("seathold_apply").await, 0, "the commit rules left the database");

    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 19:05 UTC)));
    let engine = AsyncEngine::with_clock(store.clone(), clock.clone());
    let gig: OccKey = id("gig");
    let a = engine.availability(&gig).await.expect("availability");
    assert_eq!((a.capacity, a.held, a.confirmed, a.available), (5, 1, 1, 3));
    let events = engine.pending_events(100).await.expect("events");
    let kept: Vec<(u64, &str, &str)> = events
        .iter()
        .map(|e| (e.id.0, e.event.actor.as_str(), e.event.hold_ref.as_ref().map_or("", |r| r.as_str())))
        .collect();
    assert_eq!(kept, [(1, "ann", "r1"), (2, "ann", "r1"), (3, "bob", "r2")], "the pending events, ids kept");

    // ann's payment replays; bob's live hold is paid; a new hold is placed.
    let paid = |who: &'static str, r: &'static str| PaymentResult::paid(gig.clone(), id(who), id(r));
    assert_eq!(engine.settle(&paid("ann", "r1")).await.expect("settle"), Settlement::Confirmed { replayed: true });
    assert_eq!(engine.settle(&paid("bob", "r2")).await.expect("settle"), Settlement::Confirmed { replayed: false });
    let price = Money::parse("25.00", "EUR").expect("money");
    assert!(matches!(
        engine.request(&HoldRequest::new(gig.clone(), id("cat"), id("r3"), price)).await.expect("request"),
        RequestOutcome::AwaitingPayment { .. }
    ));
    let a = engine.availability(&gig).await.expect("availability");
    assert_eq!((a.held, a.confirmed), (1, 2));
    // Versions written after the migration come from the same sequence: never one a key had.
    let bookings = seathold::store::AsyncStore::scan(&store, &gig, seathold::store::RecordKind::Booking, None, 10)
        .await
        .expect("scan");
    let r2 = bookings.iter().find(|b| b.value.key().to_string().ends_with("r2")).expect("bob's booking");
    assert!(r2.version > 4_294_967_299, "bob's booking was rewritten at a fresh version: {}", r2.version);

    drop(client);
    store.drop_schema().await.expect("drop the test schema");
}
