//! The language-neutral scenario runner: one JSON command per line on standard
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
//!
//! Besides the runner's standard commands (Parts 1 to 3) it understands `abandon` (`occ_key`,
//! `actor`, `ref`), `extend` (`occ_key`, `ref`, `secs`), `leave_waitlist` (`occ_key`, `actor`,
//! `tier?`) and `ledger` (`occ_key`), and `open` takes `max_extension_secs`. Every write of
//! Part 2 (`check_in`, `cancel`, `block`, `unblock`, `waitlist`, `leave_waitlist`,
//! `set_price`, `extend`, `abandon`) takes an `op_key`: a repeat answers the first answer
//! with `"replayed": true`; the same key with another command answers an error.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use seathold::Clock;
use seathold::catalogue::{Availability, BlockOutcome, LatePayment, Line, OccurrenceConfig, Pool, Tier};
use seathold::contract::{
    ActorId, BlockName, Metadata, Money, OccKey, OpKey, OutboxEvent, PaymentResult, PoolName, Ref, TierName,
};
use seathold::holds::{CancelOutcome, HoldRequest, RequestOutcome};
use seathold::seating::{SeatChoice, SeatId, SeatMap};
use seathold::settlement::Settlement;
use seathold::store::AsyncStore;
use seathold::tickets::TicketKey;
use seathold::webhooks::{Headers, Verifier, WebhookSecret};
use seathold::{AsyncEngine, ManualClock, MemoryStore, OpError};
use serde_json::{Value, json};
use time::macros::datetime;

type Runner<S> = AsyncEngine<S, Arc<ManualClock>>;

/// The runner's ticket key: fixed, so runs are reproducible (a service keeps its own secret).
const TICKET_KEY: &[u8; 32] = b"scenario-runner-ticket-key-32-by";

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
        None | Some("memory") => runtime.block_on(serve(engine(MemoryStore::new(), &clock)?, &clock)),
        Some(url) => runtime.block_on(postgres::serve(url, clock)),
    }
}

fn engine<S: AsyncStore>(store: S, clock: &Arc<ManualClock>) -> Result<Runner<S>, Box<dyn std::error::Error>> {
    Ok(AsyncEngine::with_clock(store, clock.clone()).with_ticket_key(TicketKey::new(TICKET_KEY.to_vec())?))
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
        let result = super::serve(engine(store.clone(), &clock)?, &clock).await;
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
    let mut state = State::default();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(cmd) => {
                run(&engine, clock, &mut state, &cmd).await.unwrap_or_else(|e| json!({"status": "error", "error": e}))
            }
            Err(e) => json!({"status": "error", "error": format!("command is not JSON: {e}")}),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

/// What the runner remembers between commands.
#[derive(Default)]
struct State {
    /// The verifier for signed webhooks, from the last valid `webhook_secrets`.
    verifier: Option<Verifier>,
}

fn field<'a>(cmd: &'a Value, name: &str) -> Result<&'a Value, String> {
    cmd.get(name).filter(|v| !v.is_null()).ok_or_else(|| format!("missing field {name:?}"))
}

fn str_field<'a>(cmd: &'a Value, name: &str) -> Result<&'a str, String> {
    field(cmd, name)?.as_str().ok_or_else(|| format!("field {name:?} must be a string"))
}

fn opt_str<'a>(cmd: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match cmd.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| format!("field {name:?} must be a string")),
    }
}

fn u64_field(cmd: &Value, name: &str) -> Result<u64, String> {
    field(cmd, name)?.as_u64().ok_or_else(|| format!("field {name:?} must be a non-negative integer"))
}

fn u32_field(cmd: &Value, name: &str) -> Result<u32, String> {
    u32::try_from(u64_field(cmd, name)?).map_err(|_| format!("field {name:?} is too large"))
}

fn opt_u64(cmd: &Value, name: &str) -> Result<Option<u64>, String> {
    match cmd.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("field {name:?} must be a non-negative integer")),
    }
}

fn occ_key(cmd: &Value) -> Result<OccKey, String> {
    OccKey::new(str_field(cmd, "occ_key")?).map_err(|e| format!("occ_key {e}"))
}

fn actor(cmd: &Value) -> Result<ActorId, String> {
    ActorId::new(str_field(cmd, "actor")?).map_err(|e| format!("actor {e}"))
}

fn hold_ref(cmd: &Value) -> Result<Ref, String> {
    Ref::new(str_field(cmd, "ref")?).map_err(|e| format!("ref {e}"))
}

fn tier_field(cmd: &Value, name: &str) -> Result<Option<TierName>, String> {
    opt_str(cmd, name)?.map(|t| TierName::new(t).map_err(|e| format!("tier {e}"))).transpose()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The command's `op_key`, if it has one.
fn op_key(cmd: &Value) -> Result<Option<OpKey>, String> {
    opt_str(cmd, "op_key")?.map(|k| OpKey::new(k).map_err(|e| format!("op_key {e}"))).transpose()
}

/// An answer with `"replayed"` set when the write under an operation key only replayed.
fn marked(mut answer: Value, replayed: bool) -> Value {
    if let Some(o) = answer.as_object_mut() {
        o.insert("replayed".into(), json!(replayed));
    }
    answer
}

fn config(cmd: &Value) -> Result<OccurrenceConfig, String> {
    let mut config =
        OccurrenceConfig::new(u32_field(cmd, "capacity")?, u64_field(cmd, "hold_ttl_secs")?).map_err(err)?;
    if let Some(tiers) = cmd.get("tiers").filter(|v| !v.is_null()) {
        let tiers = tiers.as_array().ok_or("field \"tiers\" must be a list")?;
        let mut out = Vec::with_capacity(tiers.len());
        for t in tiers {
            let name = TierName::new(str_field(t, "tier")?).map_err(|e| format!("tier {e}"))?;
            let price = Money::parse(str_field(t, "price")?, str_field(t, "currency")?).map_err(err)?;
            let mut tier = Tier::new(name, price);
            if let Some(cap) = opt_u64(t, "capacity")? {
                tier = tier.with_capacity(u32::try_from(cap).map_err(|_| "tier capacity is too large")?);
            }
            if let Some(pools) = t.get("pools").filter(|v| !v.is_null()) {
                let pools = pools.as_array().ok_or("field \"pools\" of a tier must be a list")?;
                let names = pools
                    .iter()
                    .map(|p| p.as_str().ok_or("pool names are strings").map(PoolName::new))
                    .collect::<Result<Result<Vec<_>, _>, _>>()?
                    .map_err(|e| format!("pool {e}"))?;
                tier = tier.with_pools(names);
            }
            match t.get("lock_price_while_held") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => tier = tier.locking_price_while_held(),
                Some(_) => return Err("lock_price_while_held must be true or false".into()),
            }
            out.push(tier);
        }
        config = config.with_tiers(out);
    }
    if let Some(pools) = cmd.get("pools").filter(|v| !v.is_null()) {
        let pools = pools.as_object().ok_or("field \"pools\" must be an object of capacities")?;
        let mut out = Vec::with_capacity(pools.len());
        for (name, cap) in pools {
            let capacity =
                cap.as_u64().and_then(|c| u32::try_from(c).ok()).ok_or("pool capacities are whole numbers")?;
            out.push(Pool { pool: PoolName::new(name).map_err(|e| format!("pool {e}"))?, capacity });
        }
        config = config.with_pools(out);
    }
    if let Some(max) = opt_u64(cmd, "max_per_actor")? {
        config = config.with_max_per_actor(u32::try_from(max).map_err(|_| "max_per_actor is too large")?);
    }
    match opt_str(cmd, "late_payment")? {
        None | Some("refund") => {}
        Some("revive") => config = config.with_late_payment(LatePayment::Revive),
        Some(other) => return Err(format!("late_payment must be \"refund\" or \"revive\", not {other:?}")),
    }
    if let Some(secs) = opt_u64(cmd, "offer_ttl_secs")? {
        config = config.with_offer_ttl_secs(secs).map_err(err)?;
    }
    match cmd.get("issue_tickets") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => config = config.with_tickets(*b),
        Some(_) => return Err("issue_tickets must be true or false".into()),
    }
    if let Some(secs) = opt_u64(cmd, "max_extension_secs")? {
        config = config.with_max_extension_secs(secs).map_err(err)?;
    }
    // Part 3: the seller's price of a seat, at an occurrence without tiers.
    match (opt_str(cmd, "price")?, opt_str(cmd, "currency")?) {
        (None, None) => {}
        (Some(p), Some(c)) => config = config.with_seat_price(Money::parse(p, c).map_err(err)?),
        _ => return Err("price and currency go together".into()),
    }
    // Part 4: a seat map.
    if let Some(map) = cmd.get("seating").filter(|v| !v.is_null()) {
        config = config.with_seating(serde_json::from_value::<SeatMap>(map.clone()).map_err(err)?);
    }
    Ok(config)
}

fn seat_ids(v: &Value) -> Result<Vec<SeatId>, String> {
    let ids = v.as_array().ok_or("field \"seat_ids\" must be a list")?;
    ids.iter().map(|s| SeatId::parse(s.as_str().ok_or("seat ids are strings")?).map_err(err)).collect()
}

fn request(cmd: &Value) -> Result<HoldRequest, String> {
    let (occ, who, r) = (occ_key(cmd)?, actor(cmd)?, hold_ref(cmd)?);
    let seated = match (cmd.get("seat_ids").filter(|v| !v.is_null()), cmd.get("best").filter(|v| !v.is_null())) {
        (Some(ids), None) => Some(SeatChoice::Chosen(seat_ids(ids)?)),
        (None, Some(best)) => Some(SeatChoice::Best {
            tier: TierName::new(str_field(best, "tier")?).map_err(|e| format!("tier {e}"))?,
            quantity: u32_field(best, "quantity")?,
        }),
        (None, None) => None,
        _ => return Err("seat_ids and best go alone".into()),
    };
    let mut req = match cmd.get("lines").filter(|v| !v.is_null()) {
        _ if seated.is_some() => {
            let choice = seated.ok_or("unreachable")?;
            let mut req = HoldRequest::seated(occ, who, r, choice);
            match (opt_str(cmd, "amount")?, opt_str(cmd, "currency")?) {
                (None, None) => {}
                (Some(a), Some(c)) => req = req.expecting(Money::parse(a, c).map_err(err)?),
                _ => return Err("amount and currency go together".into()),
            }
            req
        }
        Some(lines) => {
            let lines = lines.as_array().ok_or("field \"lines\" must be a list")?;
            let lines = lines
                .iter()
                .map(|l| {
                    Ok(Line {
                        tier: TierName::new(str_field(l, "tier")?).map_err(|e| format!("tier {e}"))?,
                        quantity: u32_field(l, "quantity")?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut req = HoldRequest::lines(occ, who, r, lines);
            match (opt_str(cmd, "amount")?, opt_str(cmd, "currency")?) {
                (None, None) => {}
                (Some(a), Some(c)) => req = req.expecting(Money::parse(a, c).map_err(err)?),
                _ => return Err("amount and currency go together".into()),
            }
            req
        }
        None => {
            let quantity = match cmd.get("quantity") {
                None | Some(Value::Null) => 1,
                Some(q) => {
                    q.as_u64().and_then(|q| u32::try_from(q).ok()).ok_or("quantity must be a small whole number")?
                }
            };
            // The amount may be left out where the occurrence has the seller's price.
            match (opt_str(cmd, "amount")?, opt_str(cmd, "currency")?) {
                (None, None) => HoldRequest::seats(occ, who, r, quantity),
                (Some(a), Some(c)) => {
                    HoldRequest::new(occ, who, r, Money::parse(a, c).map_err(err)?).with_quantity(quantity)
                }
                _ => return Err("amount and currency go together".into()),
            }
        }
    };
    if let Some(md) = cmd.get("metadata").filter(|v| !v.is_null()) {
        req = req.with_metadata(Metadata::from_value(md).map_err(err)?);
    }
    Ok(req)
}

fn request_json(outcome: RequestOutcome) -> Value {
    match outcome {
        RequestOutcome::AwaitingPayment { checkout, replayed, seat_ids } => {
            let mut v = json!({"status": "awaiting_payment", "request": checkout, "replayed": replayed});
            if !seat_ids.is_empty() {
                v["seat_ids"] = json!(seat_ids);
            }
            v
        }
        RequestOutcome::Confirmed { hold_ref, replayed, seat_ids } => {
            let mut v = json!({"status": "confirmed", "ref": hold_ref, "replayed": replayed});
            if !seat_ids.is_empty() {
                v["seat_ids"] = json!(seat_ids);
            }
            v
        }
        RequestOutcome::SeatTaken { seat } => json!({"status": "seat_taken", "seat": seat}),
        RequestOutcome::SingleGap { seat } => json!({"status": "single_gap", "seat": seat}),
        RequestOutcome::Already { hold_ref, confirmed, checkout } => {
            json!({"status": "already", "ref": hold_ref, "confirmed": confirmed, "request": checkout})
        }
        RequestOutcome::Full { capacity, tier, short } => {
            json!({"status": "full", "capacity": capacity, "tier": tier, "short": short.to_key()})
        }
        RequestOutcome::PriceChanged { price } => {
            json!({"status": "price_changed", "amount": price.amount, "currency": price.currency})
        }
        RequestOutcome::LimitReached { max_per_actor } => json!({"status": "limit", "max_per_actor": max_per_actor}),
        other => json!({"status": "unknown", "detail": format!("{other:?}")}),
    }
}

fn availability_json(a: &Availability) -> Value {
    let mut v = json!({
        "capacity": a.capacity, "held": a.held, "confirmed": a.confirmed, "available": a.available,
        "blocked": a.blocked, "offered": a.offered,
    });
    if !a.tiers.is_empty() {
        let tiers: BTreeMap<&str, Value> = a
            .tiers
            .iter()
            .map(|(t, ta)| (t.as_str(), json!({"available": ta.available, "held": ta.held, "confirmed": ta.confirmed})))
            .collect();
        v["tiers"] = json!(tiers);
    }
    v
}

/// `$ticket:K:R:i`: the credential of the i-th ticket of booking R at K.
async fn credential<S: AsyncStore>(engine: &Runner<S>, c: &str) -> Result<String, String> {
    let Some(name) = c.strip_prefix("$ticket:") else { return Ok(c.to_owned()) };
    let (kr, i) = name.rsplit_once(':').ok_or("$ticket:K:R:i names a ticket")?;
    let (k, r) = kr.split_once(':').ok_or("$ticket:K:R:i names a ticket")?;
    let i: usize = i.parse().map_err(|_| "the ticket index is a number")?;
    let occ = OccKey::new(k).map_err(err)?;
    let r = Ref::new(r).map_err(err)?;
    let tickets = engine.tickets(&occ, &r).await.map_err(err)?;
    // A ticket that does not exist (yet) has no credential: scan something that names none.
    Ok(tickets.get(i).map_or_else(|| format!("no-ticket-{i}"), |t| t.credential.clone()))
}

async fn run<S: AsyncStore>(
    engine: &Runner<S>,
    clock: &ManualClock,
    state: &mut State,
    cmd: &Value,
) -> Result<Value, String> {
    // The writes of Part 2, each optionally under an operation key (Part 3).
    let key = op_key(cmd)?;
    let w = match &key {
        Some(k) => engine.with_op_key(k),
        None => engine.without_op_key(),
    };
    match str_field(cmd, "op")? {
        "open" => match engine.open(&occ_key(cmd)?, config(cmd)?).await {
            Ok(()) => Ok(json!({"ok": true})),
            // A reopen that reprices a tier locked while held is refused as `set_price` is.
            Err(OpError::Refused(seathold::OpenRefusal::Config(seathold::catalogue::ConfigError::PriceLocked(_)))) => {
                Ok(json!({"status": "locked"}))
            }
            Err(e) => Err(err(e)),
        },
        "request" => Ok(request_json(engine.request(&request(cmd)?).await.map_err(err)?)),
        "settle" => {
            let result = match (cmd.get("result"), cmd.get("wire"), cmd.get("headers")) {
                (Some(v), None, None) => PaymentResult::from_value(v).map_err(err)?,
                (None, Some(Value::String(raw)), None) => PaymentResult::from_json(raw.as_bytes()).map_err(err)?,
                (None, Some(Value::String(raw)), Some(headers)) => signed(state, clock, headers, raw)?,
                _ => return Err("settle needs exactly one of \"result\" (an object) or \"wire\" (a string)".into()),
            };
            let outcome = engine.settle(&result).await.map_err(err)?;
            Ok(settlement_json(&outcome))
        }
        "webhook_secrets" => {
            // Checked whole before anything changes: a bad list leaves the secrets in force.
            let secrets = field(cmd, "secrets")?.as_array().ok_or("field \"secrets\" must be a list")?;
            let secrets = secrets
                .iter()
                .map(|s| s.as_str().ok_or_else(|| "secrets are strings".to_owned()))
                .map(|s| s.and_then(|s| WebhookSecret::parse(s).map_err(|e| e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            state.verifier = Some(Verifier::new(secrets).map_err(|e| e.to_string())?);
            Ok(json!({"ok": true}))
        }
        "advance" => {
            // Time only moves forward.
            let secs = field(cmd, "secs")?.as_u64().ok_or("field \"secs\" must be a non-negative integer")?;
            let secs = i64::try_from(secs).map_err(|_| "field \"secs\" is too large".to_owned())?;
            clock.advance(time::Duration::seconds(secs));
            Ok(json!({"ok": true}))
        }
        "expire" => Ok(json!({"expired": engine.expire_due(usize::MAX).await.map_err(err)?})),
        "availability" => Ok(availability_json(&engine.availability(&occ_key(cmd)?).await.map_err(err)?)),
        "outbox" => {
            let events: Vec<OutboxEvent> = engine.drain_events(usize::MAX).await.map_err(err)?;
            Ok(json!({"events": events}))
        }
        "set_price" => {
            let tier = TierName::new(str_field(cmd, "tier")?).map_err(|e| format!("tier {e}"))?;
            let occ = occ_key(cmd)?;
            let currency = match opt_str(cmd, "currency")? {
                Some(c) => c.to_owned(),
                None => {
                    let o = engine.occurrence(&occ).await.map_err(err)?;
                    o.config
                        .tier(&tier)
                        .map(|t| t.price.currency.to_string())
                        .ok_or_else(|| format!("unknown tier {tier}"))?
                }
            };
            let price = Money::parse(str_field(cmd, "price")?, &currency).map_err(err)?;
            match w.set_price(&occ, &tier, price).await {
                Ok(r) => Ok(marked(json!({"ok": true}), r.replayed)),
                Err(OpError::Refused(seathold::PriceRefusal::Price(seathold::catalogue::SetPriceError::Locked(_)))) => {
                    Ok(json!({"status": "locked"}))
                }
                Err(e) => Err(err(e)),
            }
        }
        "block" | "unblock" => {
            let occ = occ_key(cmd)?;
            let block = BlockName::new(str_field(cmd, "block")?).map_err(|e| format!("block {e}"))?;
            let outcome = if str_field(cmd, "op")? == "block" {
                match cmd.get("seat_ids").filter(|v| !v.is_null()) {
                    Some(ids) => w.block_seats(&occ, &block, &seat_ids(ids)?).await,
                    None => {
                        let tier = tier_field(cmd, "tier")?;
                        w.block(&occ, &block, u32_field(cmd, "seats")?, tier.as_ref()).await
                    }
                }
            } else {
                w.unblock(&occ, &block).await
            }
            .map_err(err)?;
            let answer = match outcome.answer {
                BlockOutcome::Full => json!({"status": "full"}),
                BlockOutcome::Blocked => json!({"ok": true, "status": "blocked"}),
                BlockOutcome::SeatTaken { seat } => json!({"status": "seat_taken", "seat": seat}),
                _ => json!({"ok": true, "status": "unblocked"}),
            };
            Ok(marked(answer, outcome.replayed))
        }
        "seat_map" => {
            let map = engine.seat_map(&occ_key(cmd)?).await.map_err(err)?.ok_or("the occurrence has no seat map")?;
            let mut sections = serde_json::Map::new();
            for (section, rows) in map.sections {
                let rows: serde_json::Map<String, Value> =
                    rows.into_iter().map(|(row, seats)| (row.to_string(), Value::String(seats))).collect();
                sections.insert(section.to_string(), Value::Object(rows));
            }
            Ok(json!({"sections": sections}))
        }
        "tickets" => {
            let tickets = match engine.tickets(&occ_key(cmd)?, &hold_ref(cmd)?).await {
                Ok(t) => t,
                Err(OpError::Refused(seathold::TicketRefusal::UnknownBooking)) => Vec::new(),
                Err(e) => return Err(err(e)),
            };
            Ok(json!({"tickets": tickets}))
        }
        "check_in" => {
            // From v3 the door names the occurrence it admits to.
            let door = occ_key(cmd)?;
            let c = credential(engine, str_field(cmd, "credential")?).await?;
            let got = w.check_in(&door, &c).await.map_err(err)?;
            // Every answer but `invalid` names the ticket (`ticket`, `index`, `tier`).
            Ok(marked(json!(got.answer), got.replayed))
        }
        "cancel" => {
            let tickets: Option<Vec<u32>> = match cmd.get("tickets").filter(|v| !v.is_null()) {
                None => None,
                Some(v) => Some(
                    v.as_array()
                        .ok_or("field \"tickets\" must be a list of indices")?
                        .iter()
                        .map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or("ticket indices are numbers"))
                        .collect::<Result<_, _>>()?,
                ),
            };
            let (occ, r) = (occ_key(cmd)?, hold_ref(cmd)?);
            let got = match opt_str(cmd, "refund")? {
                None => w.cancel(&occ, &r, tickets.as_deref()).await,
                Some(amount) => {
                    // In the booking's currency (a refund is never in another).
                    let booking = engine.booking(&occ, &r).await.map_err(err)?;
                    let currency = booking.map_or_else(|| "EUR".to_owned(), |b| b.price.currency.to_string());
                    let refund = Money::parse(amount, opt_str(cmd, "currency")?.unwrap_or(&currency)).map_err(err)?;
                    w.cancel_refunding(&occ, &r, tickets.as_deref(), refund).await
                }
            }
            .map_err(err)?;
            let answer = match got.answer {
                CancelOutcome::Cancelled { refund, seats, provider_ref } => json!({
                    "status": "cancelled", "amount": refund.amount, "currency": refund.currency, "seats": seats,
                    "provider_ref": provider_ref,
                }),
                CancelOutcome::CheckedIn { ticket } => json!({"status": "checked_in", "ticket": ticket}),
                _ => json!({"status": "noop"}),
            };
            Ok(marked(answer, got.replayed))
        }
        "waitlist" => {
            let tier = tier_field(cmd, "tier")?;
            let seats = u32_field(cmd, "seats")?;
            let j = w.join_waitlist(&occ_key(cmd)?, &actor(cmd)?, tier.as_ref(), seats).await.map_err(err)?;
            let answer = json!({"status": "waiting", "position": j.answer.position, "offered": j.answer.offered});
            Ok(marked(answer, j.replayed))
        }
        "waitlist_of" => {
            let wl = engine.waitlist_of(&occ_key(cmd)?).await.map_err(err)?;
            Ok(json!(wl))
        }
        "leave_waitlist" => {
            let tier = tier_field(cmd, "tier")?;
            let left = w.leave_waitlist(&occ_key(cmd)?, &actor(cmd)?, tier.as_ref()).await.map_err(err)?;
            Ok(marked(json!({"status": if left.answer { "left" } else { "noop" }}), left.replayed))
        }
        "abandon" => {
            let got = w.abandon(&occ_key(cmd)?, &actor(cmd)?, &hold_ref(cmd)?).await.map_err(err)?;
            let answer = json!(got.answer).as_str().map_or_else(|| json!({"status": "noop"}), |s| json!({"status": s}));
            Ok(marked(answer, got.replayed))
        }
        "extend" => {
            let secs = i64::try_from(u64_field(cmd, "secs")?).map_err(|_| "secs is too large")?;
            let got = w.extend(&occ_key(cmd)?, &hold_ref(cmd)?, time::Duration::seconds(secs)).await.map_err(err)?;
            Ok(marked(json!({"status": "extended", "request": got.answer}), got.replayed))
        }
        "ledger" => Ok(json!(engine.ledger(&occ_key(cmd)?).await.map_err(err)?)),
        other => Err(format!("unknown op {:?}", other.chars().take(64).collect::<String>())),
    }
}

/// A signed webhook: verified against the secrets given by `webhook_secrets`, on the
/// runner's clock, before anything is parsed.
fn signed(state: &State, clock: &ManualClock, headers: &Value, raw: &str) -> Result<PaymentResult, String> {
    let headers = headers.as_object().ok_or("bad signature: \"headers\" must be an object")?;
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str());
    let verifier = state.verifier.as_ref().ok_or("bad signature: no webhook secrets were given")?;
    verifier
        .verify(&Headers::from_lookup(get), raw.as_bytes(), clock.now())
        .map_err(|e| format!("bad signature: {e}"))?;
    PaymentResult::from_json(raw.as_bytes()).map_err(err)
}

fn settlement_json(s: &Settlement) -> Value {
    match s {
        Settlement::Confirmed { replayed } => json!({"status": "confirmed", "replayed": replayed}),
        Settlement::PaidButNoHold { refund, replayed } => json!({
            "status": "paid_but_no_hold",
            "reason": refund.reason.as_str(),
            "replayed": replayed,
            "amount": refund.amount,
            "currency": refund.currency,
            "refund": {
                "amount": refund.amount,
                "currency": refund.currency,
                "provider_ref": refund.provider_ref,
            },
        }),
        Settlement::Rejected { reason } => {
            json!({"status": "rejected", "reason": reason.as_str(), "replayed": false, "detail": reason.to_string()})
        }
        other => json!({"status": other.status_str(), "replayed": false}),
    }
}
