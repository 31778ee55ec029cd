//! Between Rust values and rows: records and events as JSON, counters as arrays.

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::catalogue::{Dim, OccurrenceConfig};
use crate::contract::{DomainEvent, EventId, OccKey, OutboxEvent};
use crate::records::{Counters, Occurrence, Record, RecordKey, RecordKind, Usage, Versioned};
use crate::store::StoreError;

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
    Ok(Occurrence {
        key: key.clone(),
        config,
        config_version: u64_of(version, "config version")?,
        counters: counters_from_row(row, 4, key)?,
    })
}

/// An occurrence's counters from its `dims, held, confirmed, blocked, offered` columns,
/// starting at column `at`.
pub(super) fn counters_from_row(row: &Row, at: usize, key: &OccKey) -> Result<Counters, StoreError> {
    let dims: Vec<&str> = get(row, at)?;
    let cols: [Vec<i64>; 4] = [get(row, at + 1)?, get(row, at + 2)?, get(row, at + 3)?, get(row, at + 4)?];
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
    Ok(Counters::from_vec(counters))
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
