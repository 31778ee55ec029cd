//! The sharded race workload, shared by `tests/postgres_sharded.rs` (its in-process tasks)
//! and `examples/postgres_sharded_worker.rs` (the second OS process): buyers over several
//! occurrences — so over both shards — who request, pay (sometimes twice, sometimes late),
//! fail or abandon, writing every paid intent and answer to a ledger for the audit. A ref
//! names its occurrence (`o<i>-…`).

use std::sync::Arc;
use std::time::Duration;

use seathold::contract::{ActorId, Money, OccKey, PaymentResult, ProviderRef, Ref};
use seathold::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use seathold::settlement::Settlement;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::store::{ShardedStore, StoreError};
use seathold::{AsyncEngine, OpError};

use super::race::Ledger;

pub const OCCS: u64 = 8;
pub const CAPACITY: u32 = 40;
pub const TTL_SECS: u64 = 1;
pub const URLS_ENV: &str = "SEATHOLD_SHARD_URLS";

pub type Engine = AsyncEngine<ShardedStore<PostgresStore>>;

/// The occurrence a ref names.
pub fn occ_of(r: &str) -> OccKey {
    let i = r.strip_prefix('o').and_then(|x| x.split_once('-')).map_or("0", |(i, _)| i);
    OccKey::new(format!("shard-occ-{i}")).unwrap()
}

/// A sharded store over `urls` (one shard each), every shard in `schema`, migrated.
pub async fn sharded_store(urls: &[String], schema: &str) -> ShardedStore<PostgresStore> {
    let mut shards = Vec::new();
    for url in urls {
        let s =
            PostgresStore::connect(url, PostgresOptions::new(schema).with_pool_size(8)).await.expect("connect a shard");
        s.migrate().await.expect("migrate a shard");
        shards.push(s);
    }
    ShardedStore::new(shards).expect("shards")
}

async fn retrying<T, R: std::fmt::Debug, F: std::future::Future<Output = Result<T, OpError<R>>>>(
    mut op: impl FnMut() -> F,
) -> Result<T, R> {
    for attempt in 0..1000u64 {
        match op().await {
            Ok(t) => return Ok(t),
            Err(OpError::Store(StoreError::Unavailable(_)) | OpError::Contention { .. }) => {
                tokio::time::sleep(Duration::from_millis(5 + attempt.min(20) * 5)).await;
            }
            Err(OpError::Refused(r)) => return Err(r),
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("the store stayed unavailable");
}

pub fn answer_str(s: &Settlement) -> String {
    match s {
        Settlement::Confirmed { replayed } => format!("confirmed {replayed}"),
        Settlement::PaidButNoHold { refund, replayed } => format!("refund:{} {replayed}", refund.reason),
        other => format!("{} false", other.status_str()),
    }
}

pub async fn pay(e: &Engine, ledger: &dyn Ledger, actor: &str, r: &str, provider: &str) {
    ledger.intent(actor, &format!("{r}|{provider}"));
    let result = PaymentResult::paid(occ_of(r), ActorId::new(actor).unwrap(), Ref::new(r).unwrap())
        .with_provider_ref(ProviderRef::new(provider).unwrap());
    let s = retrying(|| e.settle(&result)).await.unwrap_or_else(|e| panic!("settle refused: {e:?}"));
    ledger.answer(actor, &format!("{r}|{provider}"), &answer_str(&s));
}

/// One worker task: `iterations` checkout attempts over every occurrence.
pub async fn worker(e: Arc<Engine>, ledger: Arc<dyn Ledger>, seed: u64, iterations: u32) {
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(seed);
    let mut next = move |n: u64| rand::Rng::random_range(&mut rng, 0..n);
    let price = Money::parse("25.00", "EUR").unwrap();
    for _ in 0..iterations {
        let actor = format!("a{}", next(200));
        let r = format!("o{}-{}-{seed}", next(OCCS), uuid::Uuid::new_v4().simple());
        let q = HoldRequest::new(occ_of(&r), ActorId::new(&actor).unwrap(), Ref::new(&r).unwrap(), price);
        let fate = next(100);
        match retrying(|| e.request(&q)).await {
            Ok(RequestOutcome::AwaitingPayment { .. }) => match fate {
                0..50 => pay(&e, &*ledger, &actor, &r, &format!("pi_{r}")).await,
                50..60 => {
                    pay(&e, &*ledger, &actor, &r, &format!("pi_{r}")).await;
                    pay(&e, &*ledger, &actor, &r, &format!("pi2_{r}")).await;
                }
                60..75 => {
                    let failed =
                        PaymentResult::failed(occ_of(&r), ActorId::new(&actor).unwrap(), Ref::new(&r).unwrap());
                    let _ = retrying(|| e.settle(&failed)).await;
                }
                75..85 => {
                    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 50)).await;
                    pay(&e, &*ledger, &actor, &r, &format!("pi_{r}")).await;
                }
                _ => {}
            },
            Ok(_) | Err(RequestRefusal::RefUsed) => {}
            Err(other) => panic!("request {q:?}: {other:?}"),
        }
    }
}

pub async fn run_workers(e: Arc<Engine>, ledger: Arc<dyn Ledger>, tasks: u64, iterations: u32, seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        set.spawn(worker(e.clone(), ledger.clone(), seed * 1000 + t, iterations));
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}
