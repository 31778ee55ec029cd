//! Races and faults on a real database (`SEATHOLD_PG_URL`).
//!
//! Many tokio tasks over many pooled connections, in TWO OS processes (this test and the
//! worker process `examples/postgres_race_worker.rs`, sharing the workload in
//! `tests/postgres_support/race.rs`), race for the seats of
//! one occurrence, with random payment results: paid, failed, late, abandoned, duplicated
//! (also across processes), and paid under refs that were never issued. Afterwards an SQL
//! audit proves:
//!
//! - `held + confirmed <= capacity`, and the counters equal the sums over the hold rows;
//! - every paid (actor, ref) any worker sent is accounted exactly once: either its hold is
//!   confirmed under that ref with exactly one `hold_confirmed` event, or it has exactly one
//!   refund record and exactly one `refund_required` event — never both, never neither;
//!   nothing is accounted that nobody paid; every answer a worker got agrees, and at most one
//!   of them was not a replay;
//! - every placed hold ends in exactly one terminal event; no event is doubled or orphaned.
//!
//! The second test then kills a worker process mid-run (`Child::kill`) and terminates the
//! workers' database connections (`pg_terminate_backend`) again and again, and proves the
//! same audit after recovery: operations retried after `Unavailable` (as a service and a
//! payment provider do), the killed worker's unanswered payments redelivered, and a sweep.

use crate::postgres_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres_support::audit::{AuditReport, Paid};
use postgres_support::race::*;
use postgres_support::{fresh_schema, pg_url, store_in};
use seathold::AsyncEngine;
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, OccKey, PaymentResult, Ref};
use seathold::store::AsyncStore;
use seathold::store::postgres::PostgresStore;

/// Start the worker process: `examples/postgres_race_worker.rs`, which `cargo test` builds
/// beside the test binaries (`cargo build --features postgres --example postgres_race_worker`
/// builds it alone).
fn spawn_worker(url: &str, schema: &str, app: &str, tasks: u64, iterations: u32, seed: u64) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let worker = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(format!("postgres_race_worker{}", std::env::consts::EXE_SUFFIX)))
        .expect("target/<profile>/examples");
    assert!(
        worker.exists(),
        "{} is missing: build it with `cargo build --features postgres --example postgres_race_worker` \
         (`cargo test --all-features` builds it)",
        worker.display()
    );
    Command::new(worker)
        .env(WORKER_ENV, format!("{schema};{app};{tasks};{iterations};{seed}"))
        .env("SEATHOLD_PG_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a worker process")
}

/// A worker process's ledger lines, whether it said it finished, and the thread reading them.
type ChildLedger = (Arc<Mutex<Vec<LedgerLine>>>, Arc<Mutex<bool>>, std::thread::JoinHandle<()>);

/// Collect a worker process's ledger lines as they come (on a thread).
fn collect_ledger(child: &mut Child) -> ChildLedger {
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(false));
    let (l, d) = (lines.clone(), done.clone());
    let handle = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.ends_with("WORKER DONE") {
                *d.lock().unwrap() = true;
            } else if let Some(entry) = parse_ledger_line(&line) {
                l.lock().unwrap().push(entry);
            }
        }
    });
    (lines, done, handle)
}

// ---------------------------------------------------------------------------------------------
// Setup, recovery and the audit
// ---------------------------------------------------------------------------------------------

async fn setup(url: &str, prefix: &str, app: &str) -> (String, Arc<Engine>) {
    let schema = fresh_schema(prefix);
    let engine = Arc::new(AsyncEngine::new(race_store(url, &schema, app).await));
    engine.open(&OccKey::new(OCC).unwrap(), OccurrenceConfig::new(CAPACITY, TTL_SECS).unwrap()).await.unwrap();
    (schema, engine)
}

/// Poll the counters while the race runs: the capacity guard holds at every instant.
fn watch_capacity(store: PostgresStore, stop: Arc<Mutex<bool>>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let sql = format!(
            r#"SELECT held[array_position(dims, 'total')], confirmed[array_position(dims, 'total')],
                      caps[array_position(dims, 'total')]
                 FROM "{}".occurrences WHERE occ_key = $1"#,
            store.schema()
        );
        let mut polls = 0;
        while !*stop.lock().unwrap() {
            if let Ok(client) = store.pool().get().await {
                if let Ok(row) = client.query_one(&sql, &[&OCC]).await {
                    let (h, c, cap): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                    assert!(h + c <= cap, "oversold at an instant: held {h} + confirmed {c} > capacity {cap}");
                    polls += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        polls
    })
}

/// Redeliver every paid result some worker meant to send (the provider retries until it
/// has an answer; one already answered must be answered as a replay), then let every hold
/// lapse and sweep until nothing is held. Returns the redeliveries' answers and how many
/// holds the sweep expired.
async fn recover(engine: &Engine, ledger: &[LedgerLine]) -> (Vec<LedgerLine>, usize) {
    let mut intents = BTreeSet::new();
    let mut answered = BTreeSet::new();
    for l in ledger {
        match l {
            LedgerLine::Intent { actor, r } => intents.insert((actor.clone(), r.clone())),
            LedgerLine::Answer { actor, r, .. } => answered.insert((actor.clone(), r.clone())),
        };
    }
    let k = OccKey::new(OCC).unwrap();
    let mut lines = Vec::new();
    for (a, r) in &intents {
        let result = PaymentResult::paid(k.clone(), ActorId::new(a).unwrap(), Ref::new(r).unwrap());
        let s = settle(engine, &result).await;
        if answered.contains(&(a.clone(), r.clone())) {
            assert!(s.is_replay(), "a redelivered payment must be answered as a replay: {a} {r} {s:?}");
        }
        lines.push(LedgerLine::Answer { actor: a.clone(), r: r.clone(), answer: answer_str(&s) });
    }
    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 100)).await;
    let k = OccKey::new(OCC).unwrap();
    let deadline = Instant::now() + SWEEP_LEASE * 5;
    let mut swept = 0;
    loop {
        match engine.expire_due(500).await {
            Ok(0) => {
                // Holds a killed sweeper had claimed come free when its lease runs out.
                if engine.availability(&k).await.map(|a| a.held).unwrap_or(1) == 0
                    && engine
                        .store()
                        .due(Some(&k), time::OffsetDateTime::now_utc(), 1)
                        .await
                        .is_ok_and(|d| d.is_empty())
                {
                    break;
                }
                assert!(Instant::now() < deadline, "lapsed holds were never swept");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(n) => swept += n,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    (lines, swept)
}

/// The audit of the shared SQL module, fed the workers' ledgers.
async fn audit(store: &PostgresStore, ledger: &[LedgerLine]) -> AuditReport {
    let mut intents = BTreeSet::new();
    let mut answers: BTreeMap<Paid, Vec<String>> = BTreeMap::new();
    for l in ledger {
        match l {
            LedgerLine::Intent { actor, r } => {
                intents.insert(Paid { actor: actor.clone(), r: r.clone(), provider_ref: None });
            }
            LedgerLine::Answer { actor, r, answer } => {
                answers
                    .entry(Paid { actor: actor.clone(), r: r.clone(), provider_ref: None })
                    .or_default()
                    .push(answer.clone());
            }
        }
    }
    postgres_support::audit::audit(store, OCC, &intents, &answers, true).await
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_two_processes_race_without_overselling_or_losing_a_payment() {
    let Some(url) = pg_url("tasks_and_two_processes_race_without_overselling_or_losing_a_payment") else { return };
    let started = Instant::now();
    let app = fresh_schema("seathold_race");
    let (schema, engine) = setup(&url, "race", &app).await;
    let mut child = spawn_worker(&url, &schema, &format!("{app}_w"), 8, 30, 2);
    let (child_lines, child_done, reader) = collect_ledger(&mut child);
    let stop = Arc::new(Mutex::new(false));
    let watcher = watch_capacity(engine.store().clone(), stop.clone());

    let ledger = Arc::new(MemLedger::default());
    run_workers(engine.clone(), ledger.clone(), 8, 30, 1).await;
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "the worker process failed: {status}");
    assert!(*child_done.lock().unwrap(), "the worker process did not finish its run");
    *stop.lock().unwrap() = true;
    let polls = watcher.await.unwrap();

    let mut all = ledger.lines.lock().unwrap().clone();
    all.extend(child_lines.lock().unwrap().iter().cloned());
    let (redelivered, swept) = recover(&engine, &all).await;
    all.extend(redelivered);
    let report = audit(engine.store(), &all).await;
    eprintln!("race: {report:?}, {polls} capacity polls, {swept} swept at the end, in {:.1?}", started.elapsed());
    assert!(report.paid_refs > 50 && report.refunds > 0 && report.confirmed_seats > 0, "the race exercised too little");
    engine.store().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_dropped_connections_leave_nothing_inconsistent() {
    let Some(url) = pg_url("a_killed_worker_and_dropped_connections_leave_nothing_inconsistent") else { return };
    let started = Instant::now();
    let app = fresh_schema("seathold_fault");
    let (schema, engine) = setup(&url, "fault", &app).await;
    // A worker with far more work than it will be allowed to finish.
    let mut child = spawn_worker(&url, &schema, &format!("{app}_w"), 8, 10_000, 4);
    let (child_lines, _, reader) = collect_ledger(&mut child);
    let stop = Arc::new(Mutex::new(false));
    let watcher = watch_capacity(engine.store().clone(), stop.clone());

    // Chaos: terminate every connection of both processes' pools, again and again.
    let admin = store_in(&url, &schema, 1).await;
    let chaos_stop = Arc::new(Mutex::new(false));
    let chaos = {
        let (stop, like) = (chaos_stop.clone(), format!("{app}%"));
        tokio::spawn(async move {
            let mut killed = 0i64;
            while !*stop.lock().unwrap() {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Ok(client) = admin.pool().get().await {
                    if let Ok(row) = client
                        .query_one(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                              WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
                            &[&like],
                        )
                        .await
                    {
                        killed += row.get::<_, i64>(0);
                    }
                }
            }
            killed
        })
    };

    let ledger = Arc::new(MemLedger::default());
    let ours = tokio::spawn(run_workers(engine.clone(), ledger.clone(), 8, 40, 3));
    // Kill the worker process mid-run, whatever it is doing.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    child.kill().expect("kill the worker process");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the worker should have been killed, not have finished");
    reader.join().unwrap();
    ours.await.unwrap();
    *chaos_stop.lock().unwrap() = true;
    let killed = chaos.await.unwrap();
    *stop.lock().unwrap() = true;
    let polls = watcher.await.unwrap();

    let mut all = ledger.lines.lock().unwrap().clone();
    let child_lines = child_lines.lock().unwrap().clone();
    let unanswered = {
        let answered: BTreeSet<(String, String)> = child_lines
            .iter()
            .filter_map(|l| match l {
                LedgerLine::Answer { actor, r, .. } => Some((actor.clone(), r.clone())),
                LedgerLine::Intent { .. } => None,
            })
            .collect();
        child_lines
            .iter()
            .filter(|l| matches!(l, LedgerLine::Intent { actor, r } if !answered.contains(&(actor.clone(), r.clone()))))
            .count()
    };
    all.extend(child_lines);
    let (redelivered, swept) = recover(&engine, &all).await;
    all.extend(redelivered);
    let report = audit(engine.store(), &all).await;
    eprintln!(
        "faults: {report:?}; {killed} connections terminated, worker killed with {unanswered} payments \
         unanswered, {polls} capacity polls, {swept} swept at the end, in {:.1?}",
        started.elapsed()
    );
    assert!(killed > 0, "no connection was terminated: the fault was not injected");
    assert!(report.paid_refs > 20, "the run exercised too little");
    engine.store().drop_schema().await.unwrap();
}
