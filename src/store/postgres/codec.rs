//! Between Rust values and rows: records and events as JSON, counters as arrays, and a
//! commit as the JSON document `seathold_apply` takes.

use serde_json::{Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::catalogue::{Dim, OccurrenceConfig};
use crate::contract::{DomainEvent, EventId, OccKey, OutboxEvent};
use crate::records::{Counters, Occurrence, Record, RecordKey, RecordKind, Usage, Versioned, nanos};
use crate::store::{Commit, OccurrenceGuard, StoreError, WriteOp};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| corrupt(format!("column {idx}: {e}")))
}

fn u64_of(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("{what} {v}")))
}

/// The occurrence from a load row (`kind = ''`): config, version, then the counter arrays.
pub(super) fn occurrence_from_row(row: &Row, key: &OccKey) -> Result<Occurrence, StoreError> {
    let version: i64 = get(row, 2)?;
    let config: Value = get(row, 3)?;
    let config: OccurrenceConfig =
        serde_json::from_value(config).map_err(|e| corrupt(format!("occurrence {key}: config: {e}")))?;
    let dims: Vec<String> = get(row, 4)?;
    let cols: [Vec<i64>; 4] = [get(row, 5)?, get(row, 6)?, get(row, 7)?, get(row, 8)?];
    if cols.iter().any(|c| c.len() != dims.len()) {
        return Err(corrupt(format!("occurrence {key}: counter arrays of different lengths")));
    }
    let mut counters = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        let dim = Dim::from_key(d).ok_or_else(|| corrupt(format!("occurrence {key}: dimension {d:?}")))?;
        counters.push((
            dim,
            Usage {
                held: u64_of(cols[0][i], "held")?,
                confirmed: u64_of(cols[1][i], "confirmed")?,
                blocked: u64_of(cols[2][i], "blocked")?,
                offered: u64_of(cols[3][i], "offered")?,
            },
        ));
    }
    Ok(Occurrence {
        key: key.clone(),
        config,
        config_version: u64_of(version, "config version")?,
        counters: Counters::from_vec(counters),
    })
}

/// A record from `kind, key, version, body` starting at column `at`.
pub(super) fn record_from_row(row: &Row, at: usize) -> Result<(RecordKey, Versioned<Record>), StoreError> {
    let kind_s: &str = get(row, at)?;
    let id: &str = get(row, at + 1)?;
    let kind = RecordKind::parse(kind_s).ok_or_else(|| corrupt(format!("record kind {kind_s:?}")))?;
    let key = RecordKey::parse(kind, id).ok_or_else(|| corrupt(format!("record key {kind_s}:{id:?}")))?;
    let version = u64_of(get(row, at + 2)?, "version")?;
    let body: Value = get(row, at + 3)?;
    let value = Record::from_json(kind, body).map_err(|e| corrupt(format!("record {key}: {e}")))?;
    if value.key() != key {
        return Err(corrupt(format!("record stored under {key} has key {}", value.key())));
    }
    Ok((key, Versioned { version, value }))
}

/// An outbox event from `id, body`.
pub(super) fn event_from_row(row: &Row) -> Result<OutboxEvent, StoreError> {
    let id: i64 = get(row, 0)?;
    let body: &str = get(row, 1)?;
    let event = DomainEvent::from_json(body.as_bytes()).map_err(|e| corrupt(format!("event {id}: {e}")))?;
    Ok(OutboxEvent { id: EventId(u64_of(id, "event id")?), event })
}

fn version_json(v: Option<u64>) -> Result<Value, StoreError> {
    match v {
        None => Ok(Value::Null),
        Some(v) => i64::try_from(v).map(Value::from).map_err(|_| corrupt(format!("version {v}"))),
    }
}

fn config_json(config: &OccurrenceConfig) -> (Value, Value, Value) {
    let dims = config.dims();
    (
        serde_json::to_value(config).unwrap_or(Value::Null),
        dims.iter().map(|(d, _)| Value::from(d.to_key())).collect(),
        dims.iter().map(|(_, cap)| cap.map_or(Value::Null, Value::from)).collect(),
    )
}

/// The commit as the JSON document `seathold_apply` reads (see `schema.rs`).
pub(super) fn commit_json(c: &Commit) -> Result<Value, StoreError> {
    let guard = match &c.occurrence {
        OccurrenceGuard::Unchecked => json!({"k": "unchecked"}),
        OccurrenceGuard::At(v) => json!({"k": "at", "v": version_json(Some(*v))?}),
        OccurrenceGuard::Create(config) => {
            let (config, dims, caps) = config_json(config);
            json!({"k": "create", "config": config, "dims": dims, "caps": caps})
        }
        OccurrenceGuard::Update { expected, config } => {
            let (config, dims, caps) = config_json(config);
            json!({"k": "update", "v": version_json(Some(*expected))?, "config": config, "dims": dims, "caps": caps})
        }
    };
    let deltas: Vec<Value> =
        c.deltas.iter().map(|(d, u)| json!([d.to_key(), u.held, u.confirmed, u.blocked, u.offered])).collect();
    let mut writes = Vec::with_capacity(c.records.len());
    for w in &c.records {
        let (op, body, due) = match &w.op {
            WriteOp::Check => ("check", Value::Null, Value::Null),
            WriteOp::Put(r) => {
                let body = r.to_json().map_err(|e| corrupt(format!("record {}: {e}", w.key)))?;
                let due = match r.due() {
                    None => Value::Null,
                    Some(t) => {
                        Value::from(nanos::exact(t).ok_or_else(|| corrupt(format!("due time {t} out of range")))?)
                    }
                };
                ("put", body, due)
            }
            WriteOp::Delete => ("delete", Value::Null, Value::Null),
        };
        writes.push(json!({
            "kind": w.key.kind().as_str(), "key": w.key.id(), "expected": version_json(w.expected)?,
            "op": op, "body": body, "due": due,
        }));
    }
    let mut events = Vec::with_capacity(c.events.len());
    for e in &c.events {
        events.push(serde_json::from_str::<Value>(&e.to_json()).map_err(|e| corrupt(format!("event: {e}")))?);
    }
    Ok(json!({
        "occ": c.occ_key.as_str(), "guard": guard, "deltas": deltas,
        "admits": c.admits.iter().map(Dim::to_key).collect::<Vec<_>>(),
        // A count past a bigint can match no stored counter: -1 never does.
        "unchanged": c.unchanged.iter().map(|(d, u)| {
            let f = |v: u64| i64::try_from(v).unwrap_or(-1);
            json!([d.to_key(), f(u.held), f(u.confirmed), f(u.blocked), f(u.offered)])
        }).collect::<Vec<_>>(),
        // Likewise: no counter reaches past a bigint, so such a floor can never be met.
        "at_least": c.at_least.iter().map(|(d, n)| json!([d.to_key(), i64::try_from(*n).unwrap_or(i64::MAX)]))
            .collect::<Vec<_>>(),
        "writes": writes, "events": events,
    }))
}
