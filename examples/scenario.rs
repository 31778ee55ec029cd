//! The language-neutral scenario runner of DESIGN.md: one JSON command per line on standard
//! input, one JSON answer per line on standard output, with a manual clock that starts at
//! 2026-01-01T00:00:00Z. A bad command answers `{"status":"error","error":…}` and the run
//! goes on.
//!
//! On the in-memory store by default; with `--store postgres://…` (built with the `postgres`
//! feature) on PostgreSQL, in a fresh schema of its own that is dropped at the end, so every
//! run starts empty. Both go through the same engine code ([`AsyncEngine`]).
//!
//! ```text
//! cargo run --example scenario < ../shared/conformance/basic.jsonl
//! cargo run --features postgres --example scenario -- --store "$SEATHOLD_PG_URL" < …
//! ```

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use seathold::contract::{ActorId, Money, OccKey, OutboxEvent, PaymentResult, Ref};
use seathold::holds::{HoldRequest, OccurrenceConfig, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::{AsyncEngine, ManualClock, MemoryStore};
use serde_json::{Value, json};
use time::macros::datetime;

type Runner<S> = AsyncEngine<S, Arc<ManualClock>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store_url = match args.as_slice() {
        [] => None,
        [flag, url] if flag == "--store" => Some(url.clone()),
        _ => return Err("usage: scenario [--store postgres://…] < commands.jsonl".into()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00:00 UTC)));
    match store_url.as_deref() {
        None | Some("memory") => {
            runtime.block_on(serve(AsyncEngine::with_clock(MemoryStore::new(), clock.clone()), &clock))
        }
        Some(url) => runtime.block_on(postgres::serve(url, clock)),
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use seathold::store::postgres::{PostgresOptions, PostgresStore};

    /// Run on PostgreSQL in a fresh schema, dropped afterwards (also after an I/O error).
    pub(super) async fn serve(url: &str, clock: Arc<ManualClock>) -> Result<(), Box<dyn std::error::Error>> {
        let schema = format!("seathold_scenario_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::connect(url, PostgresOptions::new(schema).with_pool_size(2)).await?;
        store.migrate().await?;
        let result = super::serve(AsyncEngine::with_clock(store.clone(), clock.clone()), &clock).await;
        store.drop_schema().await?;
        result
    }
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    use super::*;

    pub(super) async fn serve(url: &str, _: Arc<ManualClock>) -> Result<(), Box<dyn std::error::Error>> {
        Err(format!("--store {url}: this runner was built without the `postgres` feature (add --features postgres)")
            .into())
    }
}

async fn serve<S: AsyncStore>(engine: Runner<S>, clock: &ManualClock) -> Result<(), Box<dyn std::error::Error>> {
    let stdin = io::stdin();
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(cmd) => run(&engine, clock, &cmd).await.unwrap_or_else(|e| json!({"status": "error", "error": e})),
            Err(e) => json!({"status": "error", "error": format!("command is not JSON: {e}")}),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

fn field<'a>(cmd: &'a Value, name: &str) -> Result<&'a Value, String> {
    cmd.get(name).ok_or_else(|| format!("missing field {name:?}"))
}

fn str_field<'a>(cmd: &'a Value, name: &str) -> Result<&'a str, String> {
    field(cmd, name)?.as_str().ok_or_else(|| format!("field {name:?} must be a string"))
}

fn u64_field(cmd: &Value, name: &str) -> Result<u64, String> {
    field(cmd, name)?.as_u64().ok_or_else(|| format!("field {name:?} must be a non-negative integer"))
}

fn occ_key(cmd: &Value) -> Result<OccKey, String> {
    OccKey::new(str_field(cmd, "occ_key")?).map_err(|e| format!("occ_key {e}"))
}

async fn run<S: AsyncStore>(engine: &Runner<S>, clock: &ManualClock, cmd: &Value) -> Result<Value, String> {
    match str_field(cmd, "op")? {
        "open" => {
            let capacity =
                u32::try_from(u64_field(cmd, "capacity")?).map_err(|_| "capacity is too large".to_string())?;
            let config =
                OccurrenceConfig::new(capacity, u64_field(cmd, "hold_ttl_secs")?).map_err(|e| e.to_string())?;
            engine.open(&occ_key(cmd)?, config).await.map_err(|e| e.to_string())?;
            Ok(json!({"ok": true}))
        }
        "request" => {
            let price =
                Money::parse(str_field(cmd, "amount")?, str_field(cmd, "currency")?).map_err(|e| e.to_string())?;
            let actor = ActorId::new(str_field(cmd, "actor")?).map_err(|e| format!("actor {e}"))?;
            let hold_ref = Ref::new(str_field(cmd, "ref")?).map_err(|e| format!("ref {e}"))?;
            let quantity = match cmd.get("quantity") {
                None => 1,
                Some(q) => {
                    q.as_u64().and_then(|q| u32::try_from(q).ok()).ok_or("quantity must be a small whole number")?
                }
            };
            let req = HoldRequest::new(occ_key(cmd)?, actor, hold_ref, price).with_quantity(quantity);
            Ok(match engine.request(&req).await.map_err(|e| e.to_string())? {
                RequestOutcome::AwaitingPayment { checkout, replayed } => {
                    json!({"status": "awaiting_payment", "request": checkout, "replayed": replayed})
                }
                RequestOutcome::Already { hold_ref, confirmed } => {
                    json!({"status": "already", "ref": hold_ref, "confirmed": confirmed})
                }
                RequestOutcome::Full { capacity } => {
                    json!({"status": "full", "capacity": capacity})
                }
            })
        }
        "settle" => {
            let result = match (cmd.get("result"), cmd.get("wire")) {
                (Some(v), None) => PaymentResult::from_value(v),
                (None, Some(Value::String(raw))) => PaymentResult::from_json(raw.as_bytes()),
                _ => return Err("settle needs exactly one of \"result\" (an object) or \"wire\" (a string)".into()),
            }
            .map_err(|e| e.to_string())?;
            let outcome = engine.settle(&result).await.map_err(|e| e.to_string())?;
            Ok(settlement_json(&outcome))
        }
        "advance" => {
            let secs = field(cmd, "secs")?.as_i64().ok_or("field \"secs\" must be an integer")?;
            clock.advance(time::Duration::seconds(secs));
            Ok(json!({"ok": true}))
        }
        "expire" => Ok(json!({"expired": engine.expire_due(usize::MAX).await.map_err(|e| e.to_string())?})),
        "availability" => {
            let a = engine.availability(&occ_key(cmd)?).await.map_err(|e| e.to_string())?;
            Ok(json!({"capacity": a.capacity, "held": a.held, "confirmed": a.confirmed, "available": a.available}))
        }
        "outbox" => {
            let events: Vec<OutboxEvent> = engine.drain_events(usize::MAX).await.map_err(|e| e.to_string())?;
            Ok(json!({"events": events}))
        }
        other => Err(format!("unknown op {:?}", other.chars().take(64).collect::<String>())),
    }
}

fn settlement_json(s: &Settlement) -> Value {
    match s {
        Settlement::Confirmed { replayed } => json!({"status": "confirmed", "replayed": replayed}),
        Settlement::Released | Settlement::Noop => {
            json!({"status": s.status_str(), "replayed": false})
        }
        Settlement::PaidButNoHold { refund, replayed } => json!({
            "status": "paid_but_no_hold",
            "reason": refund.reason.as_str(),
            "replayed": replayed,
            "refund": {
                "amount": refund.amount,
                "currency": refund.currency,
                "provider_ref": refund.provider_ref,
            },
        }),
        Settlement::Rejected { reason } => {
            json!({"status": "rejected", "reason": reason.as_str(), "replayed": false, "detail": reason.to_string()})
        }
    }
}
