//! `PostgresStore` passes the same generic conformance suite as `MemoryStore`, each check on
//! a fresh, empty schema of one live server (`SEATHOLD_PG_URL`), and every ordering of the
//! standard races (`seathold::conformance::interleave`). The interleavings run with
//! asynchronous commit (see `without_waiting_for_flush`): they test what each ordering
//! decides, thousands of commits one after another; what survives a crash is
//! `tests/postgres_crash.rs`'s subject.

use crate::postgres_support;

use postgres_support::{fresh_store, pg_url, without_waiting_for_flush};
use seathold::conformance::{self, interleave};
use seathold::store::postgres::PostgresStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_every_check() {
    let Some(url) = pg_url("postgres_store_passes_every_check") else {
        return;
    };
    for check in conformance::checks::<PostgresStore>() {
        let store = fresh_store(&url, "conf", 4).await;
        conformance::run_one(&check, &store).await;
        store.drop_schema().await.expect("drop the test schema");
    }
}

/// Every ordering of the store calls of every standard race, on one schema (each ordering on
/// an occurrence of its own). `SEATHOLD_INTERLEAVE_BOUND` caps the orderings per race (unset:
/// all of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_every_interleaving_of_the_standard_races() {
    let Some(url) = pg_url("postgres_store_every_interleaving_of_the_standard_races") else {
        return;
    };
    let bound = std::env::var("SEATHOLD_INTERLEAVE_BOUND").ok().and_then(|b| b.parse().ok());
    let store = fresh_store(&without_waiting_for_flush(&url), "interleave", 4).await;
    let mut total = 0;
    for sc in interleave::scenarios() {
        let t = std::time::Instant::now();
        let report = interleave::explore(&store, &sc, bound).await;
        assert!(report.schedules > 1, "{}: a race with one ordering is no race", report.scenario);
        println!(
            "{}: {} orderings{} in {:.1}s (longest {} store calls)",
            report.scenario,
            report.schedules,
            if report.exhaustive { ", all of them" } else { " (bounded)" },
            t.elapsed().as_secs_f64(),
            report.longest
        );
        total += report.schedules;
    }
    println!("{total} orderings in all");
    store.drop_schema().await.expect("drop the test schema");
}

/// The races through read caches warmed with the setup's records (see
/// `tests/store_conformance.rs`), every ordering, on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_every_interleaving_through_read_caches() {
    let Some(url) = pg_url("postgres_store_every_interleaving_through_read_caches") else {
        return;
    };
    let store = fresh_store(&without_waiting_for_flush(&url), "interleave_cached", 4).await;
    let (mut total, mut hits) = (0, 0);
    for sc in interleave::scenarios() {
        let report = interleave::explore_with_read_cache(&store, &sc, None, interleave::Warmth::Setup).await;
        assert!(report.exhaustive, "{}: not every ordering ran", report.scenario);
        total += report.schedules;
        hits += report.read_cache.hits;
    }
    assert!(hits > 0, "no racer decided on its cache");
    println!("{total} orderings through read caches, {hits} speculative commits");
    store.drop_schema().await.expect("drop the test schema");
}

/// The threaded flash sale (`conformance::flash_sale_async`) on PostgreSQL: buyer threads,
/// a sweeper and a relay outside the runtime, each entering it; lost acknowledgements; then
/// the audit (counters = bookings, nothing oversold, each payment and each hold accounted
/// once, every event delivered once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_survives_the_threaded_flash_sale() {
    let Some(url) = pg_url("postgres_store_survives_the_threaded_flash_sale") else {
        return;
    };
    let store = fresh_store(&url, "flash", 8).await;
    let handle = tokio::runtime::Handle::current();
    let enter = |body: &mut dyn FnMut()| {
        let _in_runtime = handle.enter();
        body();
    };
    let sale = conformance::FlashSale::default().with_buyers(300);
    let report = tokio::task::block_in_place(|| conformance::flash_sale_async(&store, &sale, &enter));
    println!("{report}");
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.placed > 0 && report.lost_acks > 0 && report.events > 0, "the sale did not run: {report}");
    store.drop_schema().await.expect("drop the test schema");
}
