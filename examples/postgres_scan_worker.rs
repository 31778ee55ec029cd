//! One door scanner of the two-process check-in race in `tests/after_sale.rs`: at an agreed
//! instant it scans every credential it is given, several times at once on its own
//! connections, and prints one line per scan (`SCAN <i> <status>`). The test spawns two of
//! them on the same credentials and checks each ticket was admitted exactly once. Not meant
//! to be run by hand.
//!
//! ```text
//! SEATHOLD_PG_URL=postgres://… \
//! SEATHOLD_SCAN_WORKER="schema;ticket_key_hex;start_unix_ms;copies;credential,credential,…" \
//!     target/debug/examples/postgres_scan_worker
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seathold::AsyncEngine;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::tickets::{CheckIn, TicketKey};

const WORKER_ENV: &str = "SEATHOLD_SCAN_WORKER";

fn fail(why: &str) -> ! {
    eprintln!("postgres_scan_worker: {why}");
    std::process::exit(2);
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn main() {
    let spec = std::env::var(WORKER_ENV).unwrap_or_else(|_| fail(&format!("set {WORKER_ENV} and SEATHOLD_PG_URL")));
    let fields: Vec<&str> = spec.split(';').collect();
    let [schema, key, start_ms, copies, credentials] = fields.as_slice() else { fail(&format!("bad {WORKER_ENV}")) };
    let key = unhex(key).and_then(|k| TicketKey::new(k).ok()).unwrap_or_else(|| fail("bad ticket key"));
    let start_ms: u128 = start_ms.parse().unwrap_or_else(|_| fail("bad start instant"));
    let copies: usize = copies.parse().unwrap_or_else(|_| fail("bad copies"));
    let credentials: Vec<String> = credentials.split(',').map(str::to_owned).collect();
    let url = std::env::var("SEATHOLD_PG_URL").unwrap_or_else(|_| fail("SEATHOLD_PG_URL is not set"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|_| fail("cannot start a tokio runtime"));
    runtime.block_on(async {
        let options = PostgresOptions::new(*schema).with_pool_size(copies.clamp(1, 16));
        let store = PostgresStore::connect(&url, options).await.unwrap_or_else(|e| fail(&format!("connect: {e}")));
        let door_key = Arc::new(key.clone());
        let engine = Arc::new(AsyncEngine::new(store).with_ticket_key(key));
        // Warm every connection of the pool, so the scans start together.
        let mut warm = tokio::task::JoinSet::new();
        for _ in 0..copies {
            let e = engine.clone();
            warm.spawn(async move { e.occurrences(None, 1).await.map(|_| ()) });
        }
        while let Some(done) = warm.join_next().await {
            done.unwrap_or_else(|_| fail("warm-up panicked")).unwrap_or_else(|e| fail(&format!("warm-up: {e}")));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        if start_ms > now {
            tokio::time::sleep(Duration::from_millis((start_ms - now) as u64)).await;
        }
        let mut scans = tokio::task::JoinSet::new();
        for (i, c) in credentials.iter().enumerate() {
            for _ in 0..copies {
                let (e, c, door_key) = (engine.clone(), c.clone(), door_key.clone());
                scans.spawn(async move {
                    for attempt in 0..200u64 {
                        let door = match door_key.verify(&c) {
                            Ok((occ, _, _)) => occ,
                            Err(_) => fail("a credential to scan does not verify"),
                        };
                        match e.check_in(&door, &c).await {
                            Ok(answer) => return (i, answer),
                            Err(err) if err.is_retryable() => {
                                tokio::time::sleep(Duration::from_millis(5 + attempt.min(20) * 5)).await;
                            }
                            Err(err) => fail(&format!("check_in: {err}")),
                        }
                    }
                    fail("check_in kept failing")
                });
            }
        }
        while let Some(done) = scans.join_next().await {
            let (i, answer) = done.unwrap_or_else(|_| fail("a scan panicked"));
            let status = match answer {
                CheckIn::Admitted { .. } => "admitted",
                CheckIn::AlreadyCheckedIn { .. } => "already_checked_in",
                CheckIn::Cancelled { .. } => "cancelled",
                _ => "invalid",
            };
            println!("SCAN\t{i}\t{status}");
        }
    });
    println!("SCANNER DONE");
}
