//! Every integration test, in one test binary: one link and one build of what the files
//! share (the support modules, the engine and stores instantiated once), instead of one
//! binary per file. Each file under `tests/` is a module here and reads as before; run one
//! with `cargo test --all-features --test suite -- <file>::` (for example
//! `-- postgres_crash::`).

#[macro_use]
mod part2_support;
mod common;
#[path = "common/model.rs"]
mod model_support;
#[cfg(feature = "postgres")]
mod postgres_support;
#[path = "common/rng.rs"]
mod rng;
#[cfg(feature = "postgres")]
#[path = "postgres_support/tiered.rs"]
mod tiered;

mod after_sale;
#[cfg(feature = "tokio")]
mod background;
mod bad_input;
mod capacity_race;
mod catalogue_orders;
mod decisions;
mod exactly_once;
mod examples_run;
mod faults;
#[cfg(all(feature = "http", feature = "postgres"))]
mod http_api;
mod model;
mod part3;
#[cfg(feature = "postgres")]
mod postgres_agrees;
#[cfg(feature = "postgres")]
mod postgres_conformance;
#[cfg(feature = "postgres")]
mod postgres_crash;
#[cfg(feature = "postgres")]
mod postgres_model;
#[cfg(feature = "postgres")]
mod postgres_races;
#[cfg(feature = "postgres")]
mod postgres_sharded;
#[cfg(feature = "postgres")]
mod postgres_store;
#[cfg(feature = "postgres")]
mod postgres_upgrade;
mod read_cache;
mod retention;
mod scenario_files;
mod seating;
mod seating_model;
mod serde_outcomes;
mod store_conformance;
mod store_mutants;
mod stress;
#[cfg(all(feature = "http", feature = "postgres"))]
mod ticket_service;
mod truth_table;
mod webhooks;
mod wire;
