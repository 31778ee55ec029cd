//! The generic store conformance suite (`seathold::store::conformance`) run against
//! `MemoryStore`: once whole, and once per check so a failure names the broken check.

use seathold::MemoryStore;
use seathold::store::conformance::{self, block_on};

#[test]
fn memory_store_passes_the_whole_suite() {
    conformance::run_all_blocking(MemoryStore::new);
}

#[test]
fn memory_store_passes_the_whole_suite_async() {
    block_on(conformance::run_all(async || MemoryStore::new()));
}

macro_rules! one_check {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                block_on(conformance::$name(&MemoryStore::new()));
            }
        )*
    };
}

one_check!(
    check_unknown_occurrence_loads_empty,
    check_configure_keeps_counters,
    check_round_trip,
    check_capacity_guard,
    check_capacity_lowered_refuses_nothing_non_positive,
    check_capacity_guard_on_a_placement_with_non_positive_net,
    check_hold_version_guards,
    check_settlement_insert_if_absent,
    check_settlement_for_unknown_occurrence,
    check_unknown_occurrence_guard,
    check_failed_guard_writes_nothing,
    check_lapsed_holds_exact,
    check_lapsed_holds_oldest_first_within_a_second,
    check_lapsed_seats,
    check_outbox_order,
    check_outbox_ack,
    check_engine_capacity,
    check_engine_lapse_and_sweep,
    check_engine_retry_after_lost_ack,
);

/// The suite also accepts a store shared behind an `Arc` (every `Arc<impl Store>` is a store).
#[test]
fn arc_memory_store_passes_the_whole_suite() {
    conformance::run_all_blocking(|| std::sync::Arc::new(MemoryStore::new()));
}
