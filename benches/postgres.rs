//! Hold + settle cycles per second on `PostgresStore`, side by side in one run with
//!
//! (a) the naive approach many ticketing apps use — one transaction that locks the
//!     occurrence row (`SELECT … FOR UPDATE`), `COUNT(*)`s the live reservations and
//!     inserts one, then an UPDATE to confirm it — with the same 10,000 existing holds on the
//!     occurrence and the same number of concurrent clients (connections);
//! (b) pgbench's built-in simple-update transaction (`pgbench -N`) on the same server with
//!     the same client count.
//!
//! First all clients hit ONE occurrence (the flash-sale case), then two (every cycle on one
//! of two occurrences), then the same load is spread over 100 occurrences (each with 100
//! existing holds). Ratios are printed, with the targets
//! (>= 5x naive, >= 50% of pgbench TPS), so a noisy machine moves the absolute numbers but
//! less the comparison. A benchmark, not a test: it reports, it does not fail on a target.
//!
//! ```text
//! scripts/with-postgres.sh cargo bench --features postgres --bench postgres
//! SEATHOLD_PG_URL=postgres://… cargo bench --features postgres --bench postgres
//! ```
//!
//! Environment: `SEATHOLD_PG_URL` (required: without it the bench starts nothing, explains,
//! and exits 0), `SEATHOLD_BENCH_QUICK=1` (a short smoke run), `SEATHOLD_BENCH_CLIENTS`
//! (default 8), `SEATHOLD_BENCH_SECS` (seconds per measurement, default 10),
//! `SEATHOLD_BENCH_ONLY` (a comma-separated subset of `checkins,hot,hot2,spread,naive,pgbench`
//! to measure, for profiling one phase; default all), `PGBENCH` (the pgbench binary; default:
//! `$SEATHOLD_PG_BIN/pgbench`, then the PostgreSQL 15 install, then `pgbench` on the PATH).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use seathold::AsyncEngine;
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, OccKey, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::store::postgres::{PostgresOptions, PostgresStore};

const OCC: &str = "bench-gig";
const EXISTING_HOLDS: i64 = 10_000;
/// Occurrences the load is spread over in the second measurement.
const SPREAD: usize = 100;

struct Settings {
    url: String,
    clients: usize,
    secs: f64,
    quick: bool,
    /// The phases to measure (`SEATHOLD_BENCH_ONLY`), or `None` for all.
    only: Option<Vec<String>>,
}

impl Settings {
    fn runs(&self, phase: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|p| p == phase))
    }
}

fn settings() -> Option<Settings> {
    let Ok(url) = std::env::var("SEATHOLD_PG_URL") else {
        println!(
            "benches/postgres: SEATHOLD_PG_URL is not set, so nothing was measured (this bench starts no \
             server). Run it as:\n  scripts/with-postgres.sh cargo bench --features postgres --bench postgres"
        );
        return None;
    };
    let quick = std::env::var("SEATHOLD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let clients = std::env::var("SEATHOLD_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let secs = std::env::var("SEATHOLD_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick {
        1.5
    } else {
        10.0
    });
    let only = std::env::var("SEATHOLD_BENCH_ONLY")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect());
    Some(Settings { url, clients, secs, quick, only })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(s) = settings() else { return Ok(()) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(s))
}

async fn run(s: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let schema = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = PostgresStore::connect(&s.url, PostgresOptions::new(&schema).with_pool_size(s.clients)).await?;
    store.migrate().await?;
    println!(
        "benches/postgres: {} clients, {:.1}s per measurement, one occurrence with {EXISTING_HOLDS} existing holds{}",
        s.clients,
        s.secs,
        if s.quick { " (quick mode)" } else { "" }
    );
    let result = measure_all(&s, &store).await;
    store.drop_schema().await?;
    result
}

async fn measure_all(s: &Settings, store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    if s.runs("hot") || s.runs("hot2") || s.runs("spread") {
        seed_seathold(store).await?;
    }
    if s.runs("naive") {
        seed_naive(store).await?;
    }
    let pgbench = if s.runs("pgbench") { pgbench_init(s, store).await } else { Err("not asked for".to_owned()) };
    if let Err(e) = &pgbench {
        println!("  pgbench: not measured: {e}");
    }
    // Rounds of the three, interleaved, so that a machine busy with something else for a
    // while weighs on all three alike; the medians are compared.
    let rounds = if s.quick { 1 } else { 3 };
    let (mut ours, mut spread, mut naive, mut tps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut two = Vec::new();
    let mut checkins = Vec::new();
    let shown = |v: &[f64], round: usize| v.get(round).map_or("-".to_owned(), |t| format!("{t:.0}"));
    for round in 0..rounds {
        // Once: selling the tickets to scan takes longer than scanning them.
        if round == 0 && s.runs("checkins") {
            checkins.push(check_ins(s, store, round).await?);
        }
        if s.runs("hot") {
            ours.push(seathold_cycles(s, store, round, Load::Hot).await?);
        }
        if s.runs("hot2") {
            two.push(seathold_cycles(s, store, round, Load::TwoHot).await?);
        }
        if s.runs("spread") {
            spread.push(seathold_cycles(s, store, round, Load::Spread).await?);
        }
        if s.runs("naive") {
            naive.push(naive_cycles(s, store, round).await?);
        }
        if let Ok(schema) = &pgbench {
            match pgbench_run(s, schema).await {
                Ok(t) => tps.push(t),
                Err(e) => println!("  pgbench: {e}"),
            }
        }
        println!(
            "  round {}: seathold hot {:>6} cycles/s   two hot {:>6}   spread {:>6}   naive {:>6}   pgbench -N {:>6} tps",
            round + 1,
            shown(&ours, round),
            shown(&two, round),
            shown(&spread, round),
            shown(&naive, round),
            shown(&tps, round),
        );
    }
    if let Ok(schema) = &pgbench {
        let client = store.pool().get().await?;
        let _ = client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#)).await;
    }
    println!();
    if !checkins.is_empty() {
        println!(
            "  check-ins                   {:>8.0} tickets admitted/s (median; each a keyed-credential check and a commit)",
            median(&checkins)
        );
    }
    if !ours.is_empty() {
        println!(
            "  seathold PostgresStore      {:>8.0} hold+settle cycles/s (median), one hot occurrence",
            median(&ours)
        );
    }
    if !two.is_empty() {
        println!(
            "  seathold, two hot           {:>8.0} hold+settle cycles/s (median), every cycle on one of two",
            median(&two)
        );
    }
    if !spread.is_empty() {
        println!(
            "  seathold, spread            {:>8.0} hold+settle cycles/s (median), over {SPREAD} occurrences",
            median(&spread)
        );
    }
    if !naive.is_empty() {
        println!("  naive FOR UPDATE + COUNT    {:>8.0} hold+settle cycles/s (median)", median(&naive));
    }
    if !tps.is_empty() {
        println!(
            "  pgbench -N (simple-update)  {:>8.0} transactions/s (median)   [{}]",
            median(&tps),
            pgbench_command(s, "<schema>")
        );
    }
    if !ours.is_empty() && !naive.is_empty() {
        let vs_naive = median(&ours) / median(&naive);
        println!(
            "  seathold / naive   = {vs_naive:>6.2}x   (target >= 5x: {})",
            if vs_naive >= 5.0 { "met" } else { "NOT met" }
        );
    }
    if !tps.is_empty() && !ours.is_empty() {
        let vs_pgbench = median(&ours) / median(&tps);
        println!(
            "  seathold / pgbench = {:>5.0}%    (target >= 50%: {}; a hot cycle is 2 commits of one occurrence, \
             batched with the other clients' on its row lock; a pgbench -N transaction is 3 plain statements)",
            vs_pgbench * 100.0,
            if vs_pgbench >= 0.5 { "met" } else { "NOT met" }
        );
    }
    if !tps.is_empty() && !spread.is_empty() {
        let spread_vs = median(&spread) / median(&tps);
        println!(
            "  spread / pgbench   = {:>5.0}%    (target >= 70%: {})",
            spread_vs * 100.0,
            if spread_vs >= 0.7 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// Tickets admitted per second: a show's bookings sold (untimed) through the engine, then
/// every client scans its own share of their credentials until the time is up.
async fn check_ins(s: &Settings, store: &PostgresStore, round: usize) -> Result<f64, Box<dyn std::error::Error>> {
    use seathold::tickets::{CheckIn, TicketKey};
    let engine = Arc::new(
        AsyncEngine::new(store.clone()).with_ticket_key(TicketKey::new(vec![7u8; 32])?).with_read_cache(200_000),
    );
    let k = OccKey::new(format!("bench-door-{round}"))?;
    engine.open(&k, OccurrenceConfig::new(u32::MAX, 3600)?.with_tickets(true)).await?;
    // Enough for the measurement at several thousand a second, sold 8 at a time.
    let per_client = ((s.secs + 2.0) * 1_000.0) as usize;
    let price = Money::parse("25.00", "EUR")?;
    let mut tasks = Vec::new();
    for c in 0..s.clients {
        let (engine, k) = (engine.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut creds = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let a = ActorId::new(format!("fan-{c}-{i}")).map_err(|e| e.to_string())?;
                let r = Ref::new(format!("t-{c}-{i}")).map_err(|e| e.to_string())?;
                let req = HoldRequest::new(k.clone(), a.clone(), r.clone(), price);
                engine.request(&req).await.map_err(|e| e.to_string())?;
                let paid = seathold::contract::PaymentResult::paid(k.clone(), a, r.clone());
                match engine.settle(&paid).await.map_err(|e| e.to_string())? {
                    Settlement::Confirmed { .. } => {}
                    other => return Err(format!("selling tickets: unexpected {other:?}")),
                }
                let t = engine.tickets(&k, &r).await.map_err(|e| e.to_string())?;
                creds.push(t.into_iter().next().ok_or("no ticket")?.credential);
            }
            Ok::<Vec<String>, String>(creds)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(Arc::new(t.await??));
    }
    loop {
        let batch = engine.pending_events(10_000).await?;
        if batch.is_empty() {
            break;
        }
        engine.ack_events(&batch.iter().map(|e| e.id).collect::<Vec<_>>()).await?;
    }
    let all = Arc::new(all);
    let rate = drive(s, move |c, i| {
        let (engine, all) = (engine.clone(), all.clone());
        async move {
            let cred = all[c].get(i as usize).ok_or("ran out of tickets to scan")?;
            let door =
                TicketKey::new(vec![7u8; 32]).map_err(|e| e.to_string())?.verify(cred).map_err(|e| e.to_string())?.0;
            match engine.check_in(&door, cred).await.map_err(|e| e.to_string())? {
                CheckIn::Admitted { .. } => Ok(()),
                other => Err(format!("unexpected {other:?}")),
            }
        }
    })
    .await?;
    println!("    (check-ins: {rate:.0}/s)");
    Ok(rate)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The hot occurrence with its existing holds, and the [`SPREAD`] occurrences with the same
/// number of holds shared among them, all placed through the engine (so the records, the
/// counters and the expiry index are exactly what production would have), 8 at a time.
async fn seed_seathold(store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Arc::new(AsyncEngine::new(store.clone()));
    let price = Money::parse("25.00", "EUR")?;
    let mut occs = vec![OccKey::new(OCC)?];
    for i in 0..SPREAD {
        occs.push(spread_key(i)?);
    }
    for k in &occs {
        engine.open(k, OccurrenceConfig::new(u32::MAX, 3600)?).await?;
    }
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < 2 * EXISTING_HOLDS as usize {
                // The first half on the hot occurrence, the second spread.
                let k = if i < EXISTING_HOLDS as usize { OccKey::new(OCC) } else { spread_key(i % SPREAD) }
                    .map_err(|e| e.to_string())?;
                let req = HoldRequest::new(
                    k,
                    ActorId::new(format!("existing-{i}")).map_err(|e| e.to_string())?,
                    Ref::new(format!("r-existing-{i}")).map_err(|e| e.to_string())?,
                    price,
                );
                match engine.request(&req).await.map_err(|e| e.to_string())? {
                    RequestOutcome::AwaitingPayment { .. } => {}
                    other => return Err(format!("seeding: unexpected {other:?}")),
                }
                i += 8;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Their hold_placed events are not what is measured.
    loop {
        let batch = engine.pending_events(10_000).await?;
        if batch.is_empty() {
            break;
        }
        engine.ack_events(&batch.iter().map(|e| e.id).collect::<Vec<_>>()).await?;
    }
    let client = store.pool().get().await?;
    client
        .batch_execute(&format!(r#"ANALYZE "{}".records; ANALYZE "{}".occurrences"#, store.schema(), store.schema()))
        .await?;
    Ok(())
}

/// The key of spread occurrence `i`.
fn spread_key(i: usize) -> Result<OccKey, seathold::contract::IdError> {
    OccKey::new(format!("bench-spread-{i:03}"))
}

/// Run `cycle` on `clients` tasks until the time is up; cycles per second.
async fn drive<F, Fut>(s: &Settings, cycle: F) -> Result<f64, Box<dyn std::error::Error>>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let cycle = Arc::new(cycle);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..s.clients {
        let (cycle, done, stop, measuring) = (cycle.clone(), done.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                cycle(c, i).await?;
                i += 1;
                if measuring.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), String>(())
        }));
    }
    // Warm up (connections, prepared statements, caches), then measure.
    tokio::time::sleep(Duration::from_secs_f64((s.secs / 5.0).min(2.0))).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(s.secs)).await;
    let n = done.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / elapsed)
}

/// Where [`seathold_cycles`] places its cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// All on the hot occurrence.
    Hot,
    /// Each cycle on one of two occurrences, in turn.
    TwoHot,
    /// Each cycle on one of the [`SPREAD`] occurrences, in turn.
    Spread,
}

/// Hold + settle cycles per second, placed as `load` says.
async fn seathold_cycles(
    s: &Settings,
    store: &PostgresStore,
    round: usize,
    load: Load,
) -> Result<f64, Box<dyn std::error::Error>> {
    // One engine for all clients, as one service instance would run it, with a read cache:
    // a request and its settlement each decide on what the engine last read or wrote and
    // commit under the usual guards, without a load round trip.
    let engine = Arc::new(AsyncEngine::new(store.clone()).with_read_cache(200_000));
    let price = Money::parse("25.00", "EUR")?;
    let stats = engine.clone();
    let rate = drive(s, move |c, i| {
        let engine = engine.clone();
        async move {
            let k = match load {
                Load::Hot => OccKey::new(OCC),
                Load::TwoHot if (c + i as usize) % 2 == 0 => OccKey::new(OCC),
                Load::TwoHot => spread_key(0),
                Load::Spread => spread_key((c * 7919 + i as usize) % SPREAD),
            }
            .map_err(|e| e.to_string())?;
            let tag = match load {
                Load::Hot => "h",
                Load::TwoHot => "t",
                Load::Spread => "s",
            };
            let actor = format!("c{c}-{tag}{round}-{i}");
            let r = format!("r-{c}-{tag}{round}-{i}");
            let req = HoldRequest::new(
                k.clone(),
                ActorId::new(&actor).map_err(|e| e.to_string())?,
                Ref::new(&r).map_err(|e| e.to_string())?,
                price,
            );
            match engine.request(&req).await.map_err(|e| e.to_string())? {
                RequestOutcome::AwaitingPayment { .. } => {}
                other => return Err(format!("unexpected {other:?}")),
            }
            // The payment provider's webhook body, as it arrives.
            let body = format!(
                r#"{{"kind":"events.payment","occ_key":"{k}","actor":"{actor}","ref":"{r}","status":"paid","amount":"25.00","currency":"EUR"}}"#
            );
            match engine.settle_json(body.as_bytes()).await.map_err(|e| e.to_string())? {
                Settlement::Confirmed { replayed: false } => Ok(()),
                other => Err(format!("unexpected {other:?}")),
            }
        }
    })
    .await?;
    if let Some(st) = stats.read_cache_stats() {
        println!("    ({load:?}: read cache {} hits, {} misses)", st.hits, st.misses);
    }
    Ok(rate)
}

async fn seed_naive(store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    let sc = store.schema();
    let client = store.pool().get().await?;
    client
        .batch_execute(&format!(
            r#"CREATE TABLE "{sc}".naive_occurrences (occ_key text PRIMARY KEY, capacity bigint NOT NULL);
               CREATE TABLE "{sc}".naive_reservations (
                   id bigserial PRIMARY KEY, occ_key text NOT NULL, actor text NOT NULL, ref text NOT NULL,
                   quantity integer NOT NULL, amount numeric NOT NULL, currency text NOT NULL,
                   state text NOT NULL, expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
               -- Generous to the naive approach: an index that serves its COUNT.
               CREATE INDEX ON "{sc}".naive_reservations (occ_key, state, expires_at);
               CREATE UNIQUE INDEX ON "{sc}".naive_reservations (occ_key, actor, ref);
               INSERT INTO "{sc}".naive_occurrences VALUES ('{OCC}', 4000000000);
               INSERT INTO "{sc}".naive_reservations (occ_key, actor, ref, quantity, amount, currency, state, expires_at)
                   SELECT '{OCC}', 'existing-' || i, 'r-existing-' || i, 1, 25.00, 'EUR', 'held', now() + interval '1 hour'
                     FROM generate_series(1, {EXISTING_HOLDS}) AS i;
               ANALYZE "{sc}".naive_reservations;"#
        ))
        .await?;
    Ok(())
}

async fn naive_cycles(s: &Settings, store: &PostgresStore, round: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let sc = store.schema().to_owned();
    let pool = store.pool().clone();
    drive(s, move |c, i| {
        let (pool, sc) = (pool.clone(), sc.clone());
        async move {
            let e = |e: tokio_postgres::Error| e.to_string();
            let mut client = pool.get().await.map_err(|e| e.to_string())?;
            let actor = format!("c{c}-{round}-{i}");
            let r = format!("r-{c}-{round}-{i}");
            let lock = client
                .prepare_cached(&format!(r#"SELECT capacity FROM "{sc}".naive_occurrences WHERE occ_key = $1 FOR UPDATE"#))
                .await
                .map_err(e)?;
            let count = client
                .prepare_cached(&format!(
                    r#"SELECT coalesce(sum(quantity), 0)::bigint FROM "{sc}".naive_reservations
                        WHERE occ_key = $1 AND (state = 'confirmed' OR (state = 'held' AND expires_at > now()))"#
                ))
                .await
                .map_err(e)?;
            let insert = client
                .prepare_cached(&format!(
                    r#"INSERT INTO "{sc}".naive_reservations (occ_key, actor, ref, quantity, amount, currency, state, expires_at)
                       VALUES ($1, $2, $3, 1, 25.00, 'EUR', 'held', now() + interval '10 minutes') RETURNING id"#
                ))
                .await
                .map_err(e)?;
            let confirm = client
                .prepare_cached(&format!(
                    r#"UPDATE "{sc}".naive_reservations SET state = 'confirmed'
                        WHERE occ_key = $1 AND actor = $2 AND ref = $3 AND state = 'held' AND expires_at > now()"#
                ))
                .await
                .map_err(e)?;
            // Hold: lock the occurrence, count, insert.
            let tx = client.transaction().await.map_err(e)?;
            let capacity: i64 = tx.query_one(&lock, &[&OCC]).await.map_err(e)?.get(0);
            let taken: i64 = tx.query_one(&count, &[&OCC]).await.map_err(e)?.get(0);
            if taken + 1 > capacity {
                return Err("naive: full".into());
            }
            tx.query_one(&insert, &[&OCC, &actor, &r]).await.map_err(e)?;
            tx.commit().await.map_err(e)?;
            // Settle: confirm the reservation.
            let n = client.execute(&confirm, &[&OCC, &actor, &r]).await.map_err(e)?;
            if n != 1 {
                return Err(format!("naive: confirm touched {n} rows"));
            }
            Ok(())
        }
    })
    .await
}

fn pgbench_binary() -> String {
    if let Ok(p) = std::env::var("PGBENCH") {
        return p;
    }
    for dir in
        [std::env::var("SEATHOLD_PG_BIN").ok(), Some("/usr/lib/postgresql/15/bin".to_owned())].into_iter().flatten()
    {
        let p = format!("{dir}/pgbench");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    "pgbench".to_owned()
}

fn pgbench_command(s: &Settings, schema: &str) -> String {
    format!(
        "PGOPTIONS='-c search_path={schema}' pgbench -N -n -c {} -j 2 -T {} (initialized with -i -s {}) $SEATHOLD_PG_URL",
        s.clients,
        pgbench_secs(s),
        pgbench_scale(s)
    )
}

fn pgbench_scale(s: &Settings) -> &'static str {
    if s.quick { "1" } else { "10" }
}

fn pgbench_secs(s: &Settings) -> String {
    (s.secs.round() as u64).max(1).to_string()
}

fn run_pgbench(s: &Settings, schema: &str, args: &[&str]) -> Result<String, String> {
    let bin = pgbench_binary();
    let out = Command::new(&bin)
        .args(args)
        .arg(&s.url)
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{bin} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// pgbench's tables on the same server, in a schema of their own (through `search_path`).
async fn pgbench_init(s: &Settings, store: &PostgresStore) -> Result<String, String> {
    let schema = format!("{}_pgbench", store.schema());
    let client = store.pool().get().await.map_err(|e| e.to_string())?;
    client.batch_execute(&format!(r#"CREATE SCHEMA "{schema}""#)).await.map_err(|e| e.to_string())?;
    run_pgbench(s, &schema, &["-i", "-q", "-s", pgbench_scale(s)])?;
    Ok(schema)
}

/// One pgbench -N run: its TPS.
async fn pgbench_run(s: &Settings, schema: &str) -> Result<f64, String> {
    let clients = s.clients.to_string();
    let secs = pgbench_secs(s);
    let stdout = run_pgbench(s, schema, &["-N", "-n", "-c", &clients, "-j", "2", "-T", &secs])?;
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no tps in pgbench's output: {stdout}"))
}
