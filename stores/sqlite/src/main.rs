//! A second store, on SQLite, written only against seathold's public API (`lib.rs`), held
//! to the same contract as the built-in ones:
//!
//! ```sh
//! cargo run --release -p seathold-sqlite
//! ```
//!
//! It runs the whole conformance suite on it (every check, then the threaded flash sale),
//! every interleaving of the standard races, and then sells a seat on a file-backed store
//! and reopens the file to show what survived. Copy it to hold your own store to the
//! contract: replace `SqliteStore` with yours.

use std::time::Instant;

use seathold::catalogue::OccurrenceConfig;
use seathold::conformance::{self, block_on, interleave};
use seathold::contract::{ActorId, Money, OccKey, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::{Engine, Store};
use seathold_sqlite::SqliteStore;

fn fresh() -> SqliteStore {
    SqliteStore::open_in_memory().expect("an in-memory SQLite store")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The conformance suite: each check on a fresh, empty store.
    let started = Instant::now();
    let checks = conformance::checks::<SqliteStore>().len();
    let failures = conformance::run_all_blocking_report(fresh);
    for f in &failures {
        eprintln!("FAILED {f}");
    }
    if !failures.is_empty() {
        return Err(format!("{} conformance check(s) failed", failures.len()).into());
    }
    println!("conformance: {checks} checks and the threaded flash sale passed in {:.1?}", started.elapsed());
    let sale = conformance::flash_sale(&fresh(), &conformance::FlashSale::default());
    println!("flash sale: {sale}");

    // Every ordering of every standard race, on one store.
    let started = Instant::now();
    let store = fresh();
    let reports = block_on(interleave::explore_all(&store, None));
    let mut total = 0;
    for report in &reports {
        assert!(report.exhaustive, "{}: not every ordering ran", report.scenario);
        println!("  {}: {} orderings", report.scenario, report.schedules);
        total += report.schedules;
    }
    println!("interleavings: {total} orderings of {} races passed in {:.1?}", reports.len(), started.elapsed());

    // A file-backed store: sell a seat, reopen the file, and find it still there.
    let path = std::env::temp_dir().join(format!("seathold-sqlite-example-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let gig = OccKey::new("gig-2026-12-01")?;
    {
        let engine = Engine::new(SqliteStore::open(&path)?);
        engine.open(&gig, OccurrenceConfig::new(2, 600)?)?;
        let req =
            HoldRequest::new(gig.clone(), ActorId::new("user-42")?, Ref::new("r-1")?, Money::parse("25.00", "EUR")?);
        match engine.request(&req)? {
            RequestOutcome::AwaitingPayment { .. } => {}
            other => return Err(format!("unexpected answer {other:?}").into()),
        }
    }
    let reopened = Engine::new(SqliteStore::open(&path)?);
    let a = reopened.availability(&gig)?;
    let events = reopened.store().pending_events(100)?;
    println!(
        "reopened {}: {} held, {} of {} left, {} events waiting in the outbox",
        path.display(),
        a.held,
        a.available,
        a.capacity,
        events.len()
    );
    assert_eq!((a.held, a.available), (1, 1), "the hold did not survive reopening");
    drop(reopened);
    let _ = std::fs::remove_file(&path);
    println!("sqlite store: ok");
    Ok(())
}
