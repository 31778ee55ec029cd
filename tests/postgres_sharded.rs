//! Scale-out across PostgreSQL servers: a `ShardedStore` over two throwaway servers on
//! loopback (`SEATHOLD_PG_URL`'s and one this test starts) passes the conformance suite and
//! the standard races, and a two-process race over eight occurrences — spread over both
//! shards — oversells nothing and accounts every payment exactly once, audited in SQL on the
//! shard each occurrence lives on.

use crate::postgres_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres_support::audit::{Paid, audit};
use postgres_support::race::{LedgerLine, MemLedger, parse_ledger_line};
use postgres_support::server::Server;
use postgres_support::sharded::{CAPACITY, OCCS, TTL_SECS, URLS_ENV, answer_str, occ_of, run_workers, sharded_store};
use postgres_support::{fresh_schema, pg_url};
use seathold::AsyncEngine;
use seathold::catalogue::OccurrenceConfig;
use seathold::conformance::{self, interleave};
use seathold::contract::{ActorId, OccKey, PaymentResult, ProviderRef, Ref};
use seathold::store::postgres::PostgresStore;
use seathold::store::{AsyncStore, ShardedStore};

async fn two_servers(test: &str) -> Option<(String, Server)> {
    let url = pg_url(test)?;
    let second = tokio::task::spawn_blocking(|| Server::new(&[])).await.expect("start a second server");
    Some((url, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_store_passes_every_check_and_the_standard_races() {
    let Some((url, second)) = two_servers("a_sharded_store_passes_every_check_and_the_standard_races").await else {
        return;
    };
    let urls = vec![url, second.url()];
    for check in conformance::checks::<ShardedStore<PostgresStore>>() {
        let store = sharded_store(&urls, &fresh_schema("shconf")).await;
        conformance::run_one(&check, &store).await;
        for s in store.shards() {
            s.drop_schema().await.expect("drop");
        }
    }
    let store = sharded_store(&urls, &fresh_schema("shrace")).await;
    for sc in interleave::scenarios() {
        let report = interleave::explore(&store, &sc, Some(150)).await;
        assert!(report.schedules > 1, "{report:?}");
    }
    // The routing really spreads occurrences.
    let spread: Vec<usize> =
        (0..OCCS).map(|i| store.shard_of(&OccKey::new(format!("shard-occ-{i}")).unwrap())).collect();
    assert!(spread.contains(&0) && spread.contains(&1), "eight occurrences on one shard: {spread:?}");
    for s in store.shards() {
        s.drop_schema().await.expect("drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_through_a_sharded_store() {
    let Some((url, second)) = two_servers("two_processes_race_through_a_sharded_store").await else {
        return;
    };
    let urls = vec![url, second.url()];
    let schema = fresh_schema("shard");
    let engine = Arc::new(AsyncEngine::new(sharded_store(&urls, &schema).await));
    for i in 0..OCCS {
        engine
            .open(&OccKey::new(format!("shard-occ-{i}")).unwrap(), OccurrenceConfig::new(CAPACITY, TTL_SECS).unwrap())
            .await
            .expect("open");
    }
    // The second process.
    let exe = std::env::current_exe().expect("test binary");
    let worker = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|p| p.join("examples").join(format!("postgres_sharded_worker{}", std::env::consts::EXE_SUFFIX)))
        .expect("examples dir");
    assert!(worker.exists(), "{} is missing: `cargo test --all-features` builds it", worker.display());
    let mut child = Command::new(worker)
        .env("SEATHOLD_SHARD_WORKER", format!("{schema};8;40;2"))
        .env(URLS_ENV, urls.join(";"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the worker");
    let out = child.stdout.take().expect("stdout");
    let child_lines = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(false));
    let reader = {
        let (lines, done) = (child_lines.clone(), done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.ends_with("WORKER DONE") {
                    *done.lock().unwrap() = true;
                } else if let Some(l) = parse_ledger_line(&line) {
                    lines.lock().unwrap().push(l);
                }
            }
        })
    };
    let ledger = Arc::new(MemLedger::default());
    run_workers(engine.clone(), ledger.clone(), 8, 40, 1).await;
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    reader.join().unwrap();
    assert!(status.success() && *done.lock().unwrap(), "the worker process failed: {status}");

    // Redeliver every payment (a provider's retries), let every hold lapse, sweep both shards.
    let mut all = ledger.lines.lock().unwrap().clone();
    all.extend(child_lines.lock().unwrap().iter().cloned());
    let split = |r: &str| -> (String, String) {
        let (r, p) = r.split_once('|').expect("ref|provider");
        (r.to_owned(), p.to_owned())
    };
    let mut intents: BTreeSet<Paid> = BTreeSet::new();
    let mut answers: BTreeMap<Paid, Vec<String>> = BTreeMap::new();
    for l in &all {
        match l {
            LedgerLine::Intent { actor, r } => {
                let (r, p) = split(r);
                intents.insert(Paid { actor: actor.clone(), r, provider_ref: Some(p) });
            }
            LedgerLine::Answer { actor, r, answer } => {
                let (r, p) = split(r);
                answers
                    .entry(Paid { actor: actor.clone(), r, provider_ref: Some(p) })
                    .or_default()
                    .push(answer.clone());
            }
        }
    }
    for id in &intents {
        let result = PaymentResult::paid(occ_of(&id.r), ActorId::new(&id.actor).unwrap(), Ref::new(&id.r).unwrap())
            .with_provider_ref(ProviderRef::new(id.provider_ref.as_deref().unwrap()).unwrap());
        let s = engine.settle(&result).await.expect("redeliver");
        assert!(s.is_replay(), "{id:?}: a redelivery must replay, got {s:?}");
        answers.entry(id.clone()).or_default().push(answer_str(&s));
    }
    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 100)).await;
    while engine.expire_due(1000).await.expect("sweep") > 0 {}
    let store = engine.store();
    let mut paid = 0;
    for i in 0..OCCS {
        let occ = format!("shard-occ-{i}");
        let k = OccKey::new(&occ).unwrap();
        let shard = &store.shards()[store.shard_of(&k)];
        let mine = |p: &Paid| occ_of(&p.r) == k;
        let ints: BTreeSet<Paid> = intents.iter().filter(|p| mine(p)).cloned().collect();
        let ans: BTreeMap<Paid, Vec<String>> =
            answers.iter().filter(|(p, _)| mine(p)).map(|(p, a)| (p.clone(), a.clone())).collect();
        let report = audit(shard, &occ, &ints, &ans, true).await;
        paid += report.paid_refs;
        // Nothing of this occurrence on the other shard.
        let other = &store.shards()[1 - store.shard_of(&k)];
        assert!(other.load(&k, &[]).await.unwrap().occurrence.is_none(), "{occ} exists on the wrong shard");
    }
    for s in store.shards() {
        assert!(!s.occurrences(None, 100).await.unwrap().is_empty(), "a shard got no occurrence");
    }
    assert!(paid > 100, "the race exercised too little: {paid} payments");
    eprintln!("sharded race: {paid} payments over {OCCS} occurrences on 2 servers");
    for s in store.shards() {
        s.drop_schema().await.expect("drop");
    }
}
