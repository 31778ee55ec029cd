//! The second OS process of `tests/postgres_sharded.rs`: runs the sharded workload through a
//! `ShardedStore` over the servers it is given and writes its ledger to standard output.
//! Not meant to be run by hand.
//!
//! ```text
//! SEATHOLD_SHARD_URLS="postgres://…;postgres://…" SEATHOLD_SHARD_WORKER="schema;tasks;iterations;seed" \
//!     target/debug/examples/postgres_sharded_worker
//! ```

#[path = "../tests/postgres_support/mod.rs"]
mod postgres_support;
#[path = "../tests/common/rng.rs"]
mod rng;

use std::sync::Arc;

use postgres_support::race::StdoutLedger;
use postgres_support::sharded::{URLS_ENV, run_workers, sharded_store};
use seathold::AsyncEngine;

fn main() {
    let (Ok(spec), Ok(urls)) = (std::env::var("SEATHOLD_SHARD_WORKER"), std::env::var(URLS_ENV)) else {
        eprintln!("postgres_sharded_worker: set SEATHOLD_SHARD_WORKER=\"schema;tasks;iterations;seed\" and {URLS_ENV}");
        std::process::exit(2);
    };
    let fields: Vec<&str> = spec.split(';').collect();
    let [schema, tasks, iterations, seed] = fields.as_slice() else {
        eprintln!("postgres_sharded_worker: bad spec {spec}");
        std::process::exit(2);
    };
    let (Ok(tasks), Ok(iterations), Ok(seed)) = (tasks.parse(), iterations.parse(), seed.parse()) else {
        eprintln!("postgres_sharded_worker: numbers expected: {spec}");
        std::process::exit(2);
    };
    let urls: Vec<String> = urls.split(';').map(str::to_owned).collect();
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else {
        eprintln!("postgres_sharded_worker: cannot start a runtime");
        std::process::exit(1);
    };
    runtime.block_on(async {
        let engine = Arc::new(AsyncEngine::new(sharded_store(&urls, schema).await));
        run_workers(engine, Arc::new(StdoutLedger), tasks, iterations, seed).await;
    });
    println!("WORKER DONE");
}
