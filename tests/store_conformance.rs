//! The generic store conformance suite (`seathold::conformance`) run against `MemoryStore`:
//! every check, each on a fresh store, named when it fails; and every interleaving of the
//! standard races.

use seathold::MemoryStore;
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
