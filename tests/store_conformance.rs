//! The generic store conformance suite (`seathold::conformance`) run against `MemoryStore`:
//! every check, each on a fresh store, named when it fails; and every interleaving of the
//! standard races.

use seathold::MemoryStore;
use seathold::conformance::interleave::Warmth;
use seathold::conformance::{self, block_on, interleave};

#[test]
fn memory_store_passes_every_check() {
    for check in conformance::checks::<MemoryStore>() {
        block_on(conformance::run_one(&check, &MemoryStore::new()));
    }
}

#[test]
fn memory_store_passes_the_whole_suite_blocking_and_async() {
    conformance::run_all_blocking(MemoryStore::new);
    block_on(conformance::run_all(async || MemoryStore::new()));
}

/// The suite also accepts a store shared behind an `Arc` (every `Arc<impl Store>` is a store).
#[test]
fn arc_memory_store_passes_the_whole_suite() {
    conformance::run_all_blocking(|| std::sync::Arc::new(MemoryStore::new()));
}

/// Every ordering of every standard race, exhaustively, on one store.
#[test]
fn memory_store_every_interleaving_of_the_standard_races() {
    let store = MemoryStore::new();
    let mut total = 0;
    for sc in interleave::scenarios() {
        let report = block_on(interleave::explore(&store, &sc, None));
        assert!(report.exhaustive, "{}: not every ordering ran", report.scenario);
        assert!(report.schedules > 1, "{}: a race with one ordering is no race", report.scenario);
        println!("{}: {} orderings (longest {} store calls)", report.scenario, report.schedules, report.longest);
        total += report.schedules;
    }
    println!("{total} orderings in all");
    // Every decision of every ordering read only records its operation loaded.
    assert_eq!(seathold::unplanned_loads(), 0, "a decision read a record its operation never loaded");
}

/// The same races with every racer's engine keeping a read cache: warmed with the setup's
/// records, every ordering (first attempts decide on the cache, stale where another racer
/// got there first); warmed with the occurrence only (every setup record guessed absent),
/// up to 400 orderings a race. Every invariant holds in every one.
#[test]
fn memory_store_every_interleaving_of_the_standard_races_through_read_caches() {
    let (mut total, mut hits, mut misses) = (0, 0, 0);
    // One store for both explorations: each names its occurrences apart, so the second never
    // meets the first's bookings and payments.
    let store = MemoryStore::new();
    for (warmth, bound) in [(Warmth::Setup, None), (Warmth::Occurrence, Some(400))] {
        for sc in interleave::scenarios() {
            let report = block_on(interleave::explore_with_read_cache(&store, &sc, bound, warmth));
            assert!(bound.is_some() || report.exhaustive, "{}: not every ordering ran", report.scenario);
            println!(
                "{} (read caches, {warmth:?}): {} orderings, {:?}",
                report.scenario, report.schedules, report.read_cache
            );
            total += report.schedules;
            hits += report.read_cache.hits;
            misses += report.read_cache.misses;
        }
    }
    assert!(hits > 0 && misses > 0, "the caches were not exercised both ways: {hits} hits, {misses} misses");
    println!("{total} orderings in all, through read caches");
}

/// A store sharded over three memory stores passes the suite too (routing, merged sweep and
/// outbox, interleaved event ids).
#[test]
fn a_sharded_memory_store_passes_the_whole_suite() {
    let fresh = || seathold::store::ShardedStore::new(vec![MemoryStore::new(), MemoryStore::new(), MemoryStore::new()]);
    block_on(conformance::run_all(async || fresh().expect("three shards")));
    let store = fresh().expect("three shards");
    for sc in interleave::scenarios() {
        assert!(block_on(interleave::explore(&store, &sc, None)).exhaustive);
    }
}
