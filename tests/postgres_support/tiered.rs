//! The tiered race workload: random multi-line orders over tier caps and overlapping pools,
//! with a per-actor limit, run by `tests/catalogue_orders.rs` (its own tasks) and by the
//! second OS process it spawns (`examples/postgres_tiered_worker.rs`), 16 connections each.
//! Beside the shared accounting audit (`audit::audit`, over the `total` dimension and every
//! payment), an SQL audit of every capacity dimension: each within its cap, each counter
//! equal to the sums over the booking records' lines.
//!
//! Included with `#[path]` beside `postgres_support` (it refers to `crate::postgres_support`),
//! so the shared module needs no change.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seathold::AsyncEngine;
use seathold::catalogue::{Dim, Line, OccurrenceConfig, Pool, Tier};
use seathold::contract::{ActorId, Money, OccKey, PaymentResult, PoolName, Ref, TierName};
use seathold::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::{OpError, RequestError, SettleError};

use crate::postgres_support::audit::{Paid, audit};
use crate::postgres_support::race::{Ledger, LedgerLine, MemLedger, answer_str, parse_ledger_line};
use crate::postgres_support::{fresh_schema, store_with, with_app_name};
use crate::rng::Rng;

pub const WORKER_ENV: &str = "SEATHOLD_TIERED_WORKER";
pub const OCC: &str = "tiered-gig";
pub const TTL_SECS: u64 = 1;
pub const ACTORS: u64 = 120;
/// Connections per process, and tasks per process (one per connection).
pub const CONNECTIONS: usize = 16;
pub const ITERATIONS: u32 = 24;
pub const SWEEP_LEASE: Duration = Duration::from_secs(2);
const TIERS: [&str; 4] = ["a", "b", "c", "d"];

/// capacity 600; pools p1 250, p2 220; a 10 [p1]; b 15, cap 100 [p1, p2]; c 20 [p2]; d 25,
/// cap 80; at most 6 seats per actor (repeat purchases). Sized so the pools sell out about
/// half-way through the run: the second half races for the last seats.
pub fn config() -> OccurrenceConfig {
    let eur = |s: &str| Money::parse(s, "EUR").unwrap();
    let pool = |s: &str| PoolName::new(s).unwrap();
    let tier = |s: &str, price: &str| Tier::new(TierName::new(s).unwrap(), eur(price));
    OccurrenceConfig::new(600, TTL_SECS)
        .unwrap()
        .with_tiers(vec![
            tier("a", "10.00").with_pools(vec![pool("p1")]),
            tier("b", "15.00").with_capacity(100).with_pools(vec![pool("p1"), pool("p2")]),
            tier("c", "20.00").with_pools(vec![pool("p2")]),
            tier("d", "25.00").with_capacity(80),
        ])
        .with_pools(vec![Pool { pool: pool("p1"), capacity: 250 }, Pool { pool: pool("p2"), capacity: 220 }])
        .with_max_per_actor(6)
}

pub type Engine = AsyncEngine<PostgresStore>;

/// A store for one race participant: `CONNECTIONS` pooled connections, its own application
/// name, a short sweep lease.
pub async fn tiered_store(url: &str, schema: &str, app: &str) -> PostgresStore {
    let options =
        PostgresOptions { sweep_lease: SWEEP_LEASE, ..PostgresOptions::new(schema).with_pool_size(CONNECTIONS) };
    store_with(&with_app_name(url, app), options).await
}

async fn settle(engine: &Engine, result: &PaymentResult) -> Settlement {
    for attempt in 0..600u64 {
        match engine.settle(result).await {
            Ok(s) => return s,
            Err(SettleError::Store(_) | SettleError::Contention { .. }) => {
                tokio::time::sleep(Duration::from_millis(5 + attempt.min(20) * 5)).await;
            }
            Err(e) => panic!("settle {result:?}: {e}"),
        }
    }
    panic!("settle {result:?}: the store stayed unavailable");
}

/// `None`: the ref turned out to be used (a lost acknowledgement whose hold already ended).
async fn request(engine: &Engine, req: &HoldRequest) -> Option<RequestOutcome> {
    for attempt in 0..600u64 {
        match engine.request(req).await {
            Ok(o) => return Some(o),
            Err(RequestError::Store(_) | RequestError::Contention { .. }) => {
                tokio::time::sleep(Duration::from_millis(5 + attempt.min(20) * 5)).await;
            }
            Err(OpError::Refused(RequestRefusal::RefUsed)) => return None,
            Err(e) => panic!("request {req:?}: {e}"),
        }
    }
    panic!("request {req:?}: the store stayed unavailable");
}

async fn send_paid(engine: &Engine, ledger: &dyn Ledger, actor: &ActorId, r: &Ref) {
    ledger.intent(actor.as_str(), r.as_str());
    let s = settle(engine, &PaymentResult::paid(OccKey::new(OCC).unwrap(), actor.clone(), r.clone())).await;
    ledger.answer(actor.as_str(), r.as_str(), &answer_str(&s));
}

async fn send_copies(engine: &Arc<Engine>, ledger: &Arc<dyn Ledger>, actor: &ActorId, r: &Ref, copies: u64) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..copies {
        let (engine, ledger, actor, r) = (engine.clone(), ledger.clone(), actor.clone(), r.clone());
        set.spawn(async move { send_paid(&engine, &*ledger, &actor, &r).await });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// One task: `iterations` random multi-line orders by random actors, each with a fate.
pub async fn worker(engine: Arc<Engine>, ledger: Arc<dyn Ledger>, seed: u64, iterations: u32) {
    let mut rng = Rng::new(seed);
    let k = OccKey::new(OCC).unwrap();
    for _ in 0..iterations {
        let actor = ActorId::new(format!("t{}", rng.below(ACTORS))).unwrap();
        let r = Ref::new(format!("{}-{}", uuid::Uuid::new_v4().simple(), seed % 1000)).unwrap();
        let lines: Vec<Line> = (0..1 + rng.below(3))
            .map(|_| Line { tier: TierName::new(TIERS[rng.below(4) as usize]).unwrap(), quantity: 1 })
            .collect();
        let req = HoldRequest::lines(k.clone(), actor.clone(), r.clone(), lines);
        let fate = rng.below(100);
        match request(&engine, &req).await {
            Some(RequestOutcome::AwaitingPayment { .. }) => match fate {
                0..45 => send_paid(&engine, &*ledger, &actor, &r).await,
                45..60 => {
                    let failed = PaymentResult::failed(k.clone(), actor.clone(), r.clone());
                    let s = settle(&engine, &failed).await;
                    assert!(matches!(s, Settlement::Released | Settlement::Noop), "{s:?}");
                }
                60..68 => {
                    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 50)).await;
                    send_copies(&engine, &ledger, &actor, &r, 1 + rng.below(2)).await;
                }
                68..80 => {}
                _ => send_copies(&engine, &ledger, &actor, &r, 2 + rng.below(2)).await,
            },
            Some(RequestOutcome::Already { hold_ref, confirmed: false, .. }) if fate < 40 => {
                send_paid(&engine, &*ledger, &actor, &hold_ref).await;
            }
            Some(RequestOutcome::LimitReached { .. }) if fate < 10 => {
                let stray = Ref::new(format!("stray-{}", uuid::Uuid::new_v4().simple())).unwrap();
                send_paid(&engine, &*ledger, &actor, &stray).await;
            }
            Some(RequestOutcome::Full { .. }) => tokio::time::sleep(Duration::from_millis(2)).await,
            _ => {}
        }
        if rng.below(20) == 0 {
            let _ = engine.expire_due(20).await;
        }
    }
}

/// Run `tasks` workers on one store and wait for them.
pub async fn run_workers(engine: Arc<Engine>, ledger: Arc<dyn Ledger>, tasks: u64, iterations: u32, seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        set.spawn(worker(engine.clone(), ledger.clone(), seed * 1000 + t, iterations));
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The SQL audit of every dimension
// ---------------------------------------------------------------------------------------------

/// What the dimensions audit saw, per dimension: (held, confirmed, cap).
pub type DimsReport = BTreeMap<String, (i64, i64, Option<i64>)>;

/// Every dimension within its cap, and every counter (held, confirmed; blocked and offered
/// are zero here) equal to the sums over the booking records' lines.
pub async fn audit_dims(store: &PostgresStore, occ: &str) -> DimsReport {
    let s = store.schema();
    let client = store.pool().get().await.expect("an audit connection");
    let row = client
        .query_one(
            &format!(
                r#"SELECT dims, caps, held, confirmed, blocked, offered FROM "{s}".occurrences WHERE occ_key = $1"#
            ),
            &[&occ],
        )
        .await
        .expect("counters");
    let dims: Vec<String> = row.get(0);
    let caps: Vec<Option<i64>> = row.get(1);
    let (held, confirmed, blocked, offered): (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) =
        (row.get(2), row.get(3), row.get(4), row.get(5));
    let mut report = DimsReport::new();
    for i in 0..dims.len() {
        let used = held[i] + confirmed[i] + blocked[i] + offered[i];
        if let Some(cap) = caps[i] {
            assert!(used <= cap, "{}: oversold: {used} > cap {cap}", dims[i]);
        }
        assert_eq!((blocked[i], offered[i]), (0, 0), "{}: nothing is blocked or offered in this race", dims[i]);
        report.insert(dims[i].clone(), (held[i], confirmed[i], caps[i]));
    }
    // Seats per tier and state, from the booking records' lines.
    let rows = client
        .query(
            &format!(
                r#"SELECT l->>'tier', b.body->>'state', sum((l->>'quantity')::bigint)::bigint
                     FROM "{s}".records b CROSS JOIN LATERAL jsonb_array_elements(b.body->'lines') l
                    WHERE b.occ_key = $1 AND b.kind = 'booking' AND b.body->>'state' IN ('held', 'confirmed')
                    GROUP BY 1, 2"#
            ),
            &[&occ],
        )
        .await
        .expect("seats per tier");
    let config = config();
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in rows {
        let (tier, state, seats): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        let tier = TierName::new(&tier).unwrap();
        let mut touched = vec![Dim::Total, Dim::Tier(tier.clone())];
        touched.extend(config.tier(&tier).expect("a tier of the configuration").pools.iter().cloned().map(Dim::Pool));
        for d in touched {
            let e = expected.entry(d.to_key()).or_default();
            match state.as_str() {
                "held" => e.0 += seats,
                _ => e.1 += seats,
            }
        }
    }
    for (dim, (h, c, _)) in &report {
        assert_eq!(
            (*h, *c),
            expected.get(dim).copied().unwrap_or_default(),
            "{dim}: counters differ from the bookings"
        );
    }
    for dim in expected.keys() {
        assert!(report.contains_key(dim), "{dim}: counted by bookings, missing from the occurrence");
    }
    report
}

/// Poll every dimension while the race runs: each within its cap at every instant.
fn watch_dims(store: PostgresStore, stop: Arc<Mutex<bool>>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let sql = format!(
            r#"SELECT count(*) FILTER (WHERE x.c IS NOT NULL AND x.h + x.cf + x.bl + x.o > x.c)
                 FROM "{}".occurrences o,
                      unnest(o.caps, o.held, o.confirmed, o.blocked, o.offered) AS x(c, h, cf, bl, o)
                WHERE o.occ_key = $1"#,
            store.schema()
        );
        let mut polls = 0;
        while !*stop.lock().unwrap() {
            if let Ok(client) = store.pool().get().await {
                if let Ok(row) = client.query_one(&sql, &[&OCC]).await {
                    let over: i64 = row.get(0);
                    assert_eq!(over, 0, "a dimension was oversold at an instant");
                    polls += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        polls
    })
}

// ---------------------------------------------------------------------------------------------
// The two-process race
// ---------------------------------------------------------------------------------------------

/// Start `examples/postgres_tiered_worker.rs` (built beside the test binaries by
/// `cargo test --all-features`; alone by `cargo build --features postgres --example
/// postgres_tiered_worker`).
fn spawn_worker(url: &str, schema: &str, app: &str, tasks: u64, iterations: u32, seed: u64) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let worker = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(format!("postgres_tiered_worker{}", std::env::consts::EXE_SUFFIX)))
        .expect("target/<profile>/examples");
    assert!(
        worker.exists(),
        "{} is missing: build it with `cargo build --features postgres --example postgres_tiered_worker` \
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

/// Redeliver every paid result someone meant to send (a replay if it was answered), then let
/// every hold lapse and sweep until nothing is held.
async fn recover(engine: &Engine, ledger: &[LedgerLine]) -> Vec<LedgerLine> {
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
    for (actor, r) in &intents {
        let result = PaymentResult::paid(k.clone(), ActorId::new(actor).unwrap(), Ref::new(r).unwrap());
        let s = settle(engine, &result).await;
        if answered.contains(&(actor.clone(), r.clone())) {
            assert!(s.is_replay(), "a redelivered payment must be answered as a replay: {actor} {r} {s:?}");
        }
        lines.push(LedgerLine::Answer { actor: actor.clone(), r: r.clone(), answer: answer_str(&s) });
    }
    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 100)).await;
    let deadline = Instant::now() + SWEEP_LEASE * 5;
    loop {
        match engine.expire_due(500).await {
            Ok(0) => {
                let held = engine.availability(&k).await.map(|a| a.held).unwrap_or(1);
                let due = engine.store().due(Some(&k), time::OffsetDateTime::now_utc(), 1).await;
                if held == 0 && due.is_ok_and(|d| d.is_empty()) {
                    break;
                }
                assert!(Instant::now() < deadline, "lapsed holds were never swept");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    lines
}

/// This process's 16 tasks on 16 connections and a second process's 16 on 16 race for the
/// seats of one tiered occurrence; then the audits.
pub async fn race_two_processes(url: &str) {
    let started = Instant::now();
    let app = fresh_schema("seathold_tiered");
    let schema = fresh_schema("tiered");
    let engine = Arc::new(AsyncEngine::new(tiered_store(url, &schema, &app).await));
    engine.open(&OccKey::new(OCC).unwrap(), config()).await.unwrap();

    let tasks = CONNECTIONS as u64;
    let mut child = spawn_worker(url, &schema, &format!("{app}_w"), tasks, ITERATIONS, 2);
    let out = child.stdout.take().unwrap();
    let child_lines = Arc::new(Mutex::new(Vec::new()));
    let child_done = Arc::new(Mutex::new(false));
    let reader = {
        let (lines, done) = (child_lines.clone(), child_done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.ends_with("WORKER DONE") {
                    *done.lock().unwrap() = true;
                } else if let Some(entry) = parse_ledger_line(&line) {
                    lines.lock().unwrap().push(entry);
                }
            }
        })
    };
    let stop = Arc::new(Mutex::new(false));
    let watcher = watch_dims(engine.store().clone(), stop.clone());

    let ledger = Arc::new(MemLedger::default());
    run_workers(engine.clone(), ledger.clone(), tasks, ITERATIONS, 1).await;
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "the worker process failed: {status}");
    assert!(*child_done.lock().unwrap(), "the worker process did not finish its run");
    *stop.lock().unwrap() = true;
    let polls = watcher.await.unwrap();

    let mut all = ledger.lines.lock().unwrap().clone();
    all.extend(child_lines.lock().unwrap().iter().cloned());
    all.extend(recover(&engine, &all).await);
    let mut intents = BTreeSet::new();
    let mut answers: BTreeMap<Paid, Vec<String>> = BTreeMap::new();
    for l in &all {
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
    let report = audit(engine.store(), OCC, &intents, &answers, true).await;
    let dims = audit_dims(engine.store(), OCC).await;
    eprintln!(
        "tiered race (2 processes x {CONNECTIONS} connections): {report:?}; dimensions (held, confirmed, cap) \
         {dims:?}; {polls} capacity polls; in {:.1?}",
        started.elapsed()
    );
    assert!(
        report.paid_refs > 150 && report.refunds > 0 && report.confirmed_seats > 0,
        "the race exercised too little"
    );
    assert!(dims.values().filter(|(_, c, _)| *c > 0).count() >= 5, "too few dimensions were sold: {dims:?}");
    engine.store().drop_schema().await.unwrap();
}
