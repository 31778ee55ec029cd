//! The race workload shared by `tests/postgres_races.rs` (its in-process tasks) and
//! `examples/postgres_race_worker.rs` (the second OS process it spawns): tasks that buy,
//! pay, fail, abandon and redeliver, writing every paid intent and every answer to a ledger
//! the audit reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::store::postgres::{PostgresOptions, PostgresStore};
use seathold::{AsyncEngine, RequestError, SettleError};

use super::{store_with, with_app_name};
use crate::rng::Rng;

pub const WORKER_ENV: &str = "SEATHOLD_RACE_WORKER";
pub const OCC: &str = "race-gig";
pub const CAPACITY: u32 = 150;
pub const TTL_SECS: u64 = 1;
pub const ACTORS: u64 = 400;
/// Short, so that a killed worker's claim on a sweep batch does not hold recovery up long.
pub const SWEEP_LEASE: Duration = Duration::from_secs(2);

/// A store for a race participant: its own application name (for the chaos task to find its
/// connections), a short sweep lease.
pub async fn race_store(url: &str, schema: &str, app: &str) -> PostgresStore {
    let options = PostgresOptions { sweep_lease: SWEEP_LEASE, ..PostgresOptions::new(schema).with_pool_size(8) };
    store_with(&with_app_name(url, app), options).await
}

// ---------------------------------------------------------------------------------------------
// The worker: used by the test process's own tasks and by the spawned worker process.
// ---------------------------------------------------------------------------------------------

/// What a worker tells the auditor: every paid result it is about to send (`intent`), and
/// every answer it got.
pub trait Ledger: Send + Sync {
    fn intent(&self, actor: &str, r: &str);
    fn answer(&self, actor: &str, r: &str, answer: &str);
}

/// In the test process: kept in memory.
#[derive(Default)]
pub struct MemLedger {
    pub lines: Mutex<Vec<LedgerLine>>,
}

#[derive(Debug, Clone)]
pub enum LedgerLine {
    Intent { actor: String, r: String },
    Answer { actor: String, r: String, answer: String },
}

impl Ledger for MemLedger {
    fn intent(&self, actor: &str, r: &str) {
        self.lines.lock().unwrap().push(LedgerLine::Intent { actor: actor.into(), r: r.into() });
    }
    fn answer(&self, actor: &str, r: &str, answer: &str) {
        self.lines.lock().unwrap().push(LedgerLine::Answer { actor: actor.into(), r: r.into(), answer: answer.into() });
    }
}

/// In a worker process: one line per entry on standard output, flushed at once, so the
/// parent has every intent the worker wrote before it was killed.
pub struct StdoutLedger;

impl Ledger for StdoutLedger {
    fn intent(&self, actor: &str, r: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LEDGER\tintent\t{actor}\t{r}");
        let _ = out.flush();
    }
    fn answer(&self, actor: &str, r: &str, answer: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LEDGER\tanswer\t{actor}\t{r}\t{answer}");
        let _ = out.flush();
    }
}

pub fn parse_ledger_line(line: &str) -> Option<LedgerLine> {
    // The test harness may have printed on the same line ("test … ... ") before us.
    let (_, entry) = line.split_once("LEDGER\t")?;
    let mut f = entry.split('\t');
    match (f.next()?, f.next()?, f.next()?) {
        ("intent", a, r) => Some(LedgerLine::Intent { actor: a.into(), r: r.into() }),
        ("answer", a, r) => Some(LedgerLine::Answer { actor: a.into(), r: r.into(), answer: f.next()?.into() }),
        _ => None,
    }
}

pub type Engine = AsyncEngine<PostgresStore>;

pub fn answer_str(s: &Settlement) -> String {
    match s {
        Settlement::Confirmed { replayed } => format!("confirmed {replayed}"),
        Settlement::PaidButNoHold { refund, replayed } => format!("refund:{} {replayed}", refund.reason),
        other => format!("{} false", other.status_str()),
    }
}

/// Settle, retrying while the store is unavailable or contended (a provider redelivers
/// until it gets an answer).
pub async fn settle(engine: &Engine, result: &PaymentResult) -> Settlement {
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

/// Request, retrying while the store is unavailable or contended; `None` if the ref turned
/// out to be used (a lost acknowledgement whose hold ended before the retry).
pub async fn request(engine: &Engine, req: &HoldRequest) -> Option<RequestOutcome> {
    for attempt in 0..600u64 {
        match engine.request(req).await {
            Ok(o) => return Some(o),
            Err(RequestError::Store(_) | RequestError::Contention { .. }) => {
                tokio::time::sleep(Duration::from_millis(5 + attempt.min(20) * 5)).await;
            }
            Err(seathold::OpError::Refused(seathold::holds::RequestRefusal::RefUsed)) => return None,
            Err(e) => panic!("request {req:?}: {e}"),
        }
    }
    panic!("request {req:?}: the store stayed unavailable");
}

pub async fn send_paid(engine: &Engine, ledger: &dyn Ledger, actor: &ActorId, r: &Ref) {
    ledger.intent(actor.as_str(), r.as_str());
    let s = settle(engine, &PaymentResult::paid(OccKey::new(OCC).unwrap(), actor.clone(), r.clone())).await;
    ledger.answer(actor.as_str(), r.as_str(), &answer_str(&s));
}

/// Deliver one paid result `copies` times at once (a provider's duplicate deliveries).
pub async fn send_paid_copies(engine: &Arc<Engine>, ledger: &Arc<dyn Ledger>, actor: &ActorId, r: &Ref, copies: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..copies {
        let (engine, ledger, actor, r) = (engine.clone(), ledger.clone(), actor.clone(), r.clone());
        set.spawn(async move { send_paid(&engine, &*ledger, &actor, &r).await });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// One worker task: `iterations` checkout attempts by random actors, each with a random fate.
pub async fn worker(engine: Arc<Engine>, ledger: Arc<dyn Ledger>, seed: u64, iterations: u32) {
    let mut rng = Rng::new(seed);
    let k = OccKey::new(OCC).unwrap();
    let price = Money::parse("25.00", "EUR").unwrap();
    for _ in 0..iterations {
        let actor = ActorId::new(format!("a{}", rng.below(ACTORS))).unwrap();
        let r = Ref::new(format!("{}-{}", uuid::Uuid::new_v4().simple(), seed % 1000)).unwrap();
        let quantity = if rng.below(5) == 0 { 2 } else { 1 };
        let req = HoldRequest::new(k.clone(), actor.clone(), r.clone(), price).with_quantity(quantity);
        let fate = rng.below(100);
        match request(&engine, &req).await {
            Some(RequestOutcome::AwaitingPayment { .. }) => match fate {
                // Paid at once.
                0..45 => send_paid(&engine, &*ledger, &actor, &r).await,
                // Failed (sometimes redelivered).
                45..60 => {
                    let failed = PaymentResult::failed(k.clone(), actor.clone(), r.clone());
                    let first = settle(&engine, &failed).await;
                    assert!(matches!(first, Settlement::Released | Settlement::Noop), "{first:?}");
                    if fate % 2 == 0 {
                        assert_eq!(settle(&engine, &failed).await, Settlement::Noop);
                    }
                }
                // Paid after the hold lapsed: a refund (or, if a duplicate beat it, a replay).
                60..68 => {
                    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 50)).await;
                    send_paid_copies(&engine, &ledger, &actor, &r, 1 + rng.below(2) as usize).await;
                }
                // Abandoned: the sweep or a later request expires it.
                68..80 => {}
                // Paid, delivered two or three times at once.
                _ => send_paid_copies(&engine, &ledger, &actor, &r, 2 + rng.below(2) as usize).await,
            },
            // Someone else's checkout for this actor is in flight: sometimes its payment is
            // delivered from here too (a duplicate, racing the owner's, across processes).
            Some(RequestOutcome::Already { hold_ref, confirmed: false, .. }) if fate < 40 => {
                send_paid(&engine, &*ledger, &actor, &hold_ref).await;
            }
            // A payment under a ref this side never issued.
            Some(RequestOutcome::Already { confirmed: true, .. }) if fate < 15 => {
                let stray = Ref::new(format!("stray-{}", uuid::Uuid::new_v4().simple())).unwrap();
                send_paid_copies(&engine, &ledger, &actor, &stray, 1 + rng.below(2) as usize).await;
            }
            Some(RequestOutcome::Full { .. }) => tokio::time::sleep(Duration::from_millis(2)).await,
            _ => {}
        }
        if rng.below(20) == 0 {
            // Every worker sweeps now and then: several sweepers, disjoint batches.
            let _ = engine.expire_due(20).await;
        }
    }
}

/// Run `tasks` worker tasks on one store and wait for them.
pub async fn run_workers(engine: Arc<Engine>, ledger: Arc<dyn Ledger>, tasks: u64, iterations: u32, seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        set.spawn(worker(engine.clone(), ledger.clone(), seed * 1000 + t, iterations));
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}
