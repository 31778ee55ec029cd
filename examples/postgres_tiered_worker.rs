//! The second OS process of the tiered two-process race in `tests/catalogue_orders.rs`: runs
//! the tiered workload (`tests/postgres_support/tiered.rs`) against the schema it is given,
//! 16 connections, and writes its ledger (every paid intent, every answer) to standard output
//! for the test's audit. Not meant to be run by hand.
//!
//! ```text
//! SEATHOLD_PG_URL=postgres://… SEATHOLD_TIERED_WORKER="schema;app_name;tasks;iterations;seed" \
//!     target/debug/examples/postgres_tiered_worker
//! ```

#[path = "../tests/postgres_support/mod.rs"]
mod postgres_support;
#[path = "../tests/common/rng.rs"]
mod rng;
#[path = "../tests/postgres_support/tiered.rs"]
mod tiered;

use std::sync::Arc;

use postgres_support::race::StdoutLedger;
use seathold::AsyncEngine;
use tiered::{WORKER_ENV, run_workers, tiered_store};

fn main() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        eprintln!(
            "postgres_tiered_worker: set {WORKER_ENV}=\"schema;app_name;tasks;iterations;seed\" and SEATHOLD_PG_URL"
        );
        std::process::exit(2);
    };
    let fields: Vec<&str> = spec.split(';').collect();
    let [schema, app, tasks, iterations, seed] = fields.as_slice() else {
        eprintln!("postgres_tiered_worker: bad {WORKER_ENV}: {spec}");
        std::process::exit(2);
    };
    let (Ok(tasks), Ok(iterations), Ok(seed)) = (tasks.parse(), iterations.parse(), seed.parse()) else {
        eprintln!("postgres_tiered_worker: tasks, iterations and seed must be numbers: {spec}");
        std::process::exit(2);
    };
    let Ok(url) = std::env::var("SEATHOLD_PG_URL") else {
        eprintln!("postgres_tiered_worker: SEATHOLD_PG_URL is not set");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let Ok(runtime) = runtime else {
        eprintln!("postgres_tiered_worker: cannot start a tokio runtime");
        std::process::exit(1);
    };
    runtime.block_on(async {
        let engine = Arc::new(AsyncEngine::new(tiered_store(&url, schema, app).await));
        run_workers(engine, Arc::new(StdoutLedger), tasks, iterations, seed).await;
    });
    println!("WORKER DONE");
}
