//! A SQLite store: a `Store` written only against seathold's public API.
//!
//! It shows that the public surface is enough to write a store. It decides nothing: every
//! guard of a commit is checked by `seathold::store::check_commit`, the check every store
//! shares; this file only reads what that check asks for, under one SQLite write
//! transaction, and stores what the commit leaves. What it keeps:
//!
//! - `occurrences`: one row per occurrence, its `Occurrence` as JSON (configuration, config
//!   version, seat counters);
//! - `records`: one row per record, keyed by occurrence, `RecordKind::as_str` and
//!   `RecordKey::id`, with its version, `Record::to_json` and its due time (clause 4: an
//!   index on it finds due records without scanning the others);
//! - `outbox`: events in commit order. `AUTOINCREMENT`, so an id is never reused, not even
//!   after the newest events are acknowledged (clause 5);
//! - `sequence`: one store-wide counter, the version of every record a commit puts. It
//!   never goes back, whatever is deleted, so a version never repeats (clause 7).
//!
//! Scans page in the order of `RecordKey::id` as text (a store-defined order: it is the
//! primary key's, so a page reads only what it returns).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use seathold::contract::{DomainEvent, EventId, OccKey, OutboxEvent};
use seathold::records::nanos;
use seathold::serde_json;
use seathold::store::{
    Commit, CommitError, Committed, Due, Occurrence, Record, RecordKey, RecordKind, Snapshot, StoreError, Version,
    Versioned, WriteOp, check_commit,
};
use seathold::time::OffsetDateTime;

/// The tables, created when missing (so opening an existing file keeps what it holds).
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS occurrences (
        occ_key TEXT PRIMARY KEY,
        body    TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS records (
        occ_key TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        id      TEXT    NOT NULL,
        version INTEGER NOT NULL,
        due     INTEGER,
        body    TEXT    NOT NULL,
        PRIMARY KEY (occ_key, kind, id)
    );
    CREATE INDEX IF NOT EXISTS records_due ON records (due, occ_key, kind, id) WHERE due IS NOT NULL;
    CREATE INDEX IF NOT EXISTS records_occ_due ON records (occ_key, due, kind, id) WHERE due IS NOT NULL;
    CREATE TABLE IF NOT EXISTS outbox (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        occ_key TEXT NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS sequence (
        one     INTEGER PRIMARY KEY CHECK (one = 1),
        version INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO sequence (one, version) VALUES (1, 0);
";

/// A [`seathold::Store`] on one SQLite database (a file, or memory). One connection behind a
/// mutex: every call of this handle runs alone; several handles (or processes) on one file
/// are serialized by SQLite's write lock.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (or create) the store in the SQLite file at `path`. Reopening a file keeps its
    /// occurrences, records, versions and outbox.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or the tables created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::with(Connection::open(path).map_err(unavailable)?)
    }

    /// A new, empty store in memory (gone when dropped).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn with(conn: Connection) -> Result<Self, StoreError> {
        // Another handle on the same file may hold the write lock for a moment: wait for it.
        conn.busy_timeout(Duration::from_secs(5)).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic under the lock leaves no half-applied commit (the transaction rolls back).
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A count or limit as SQLite's integer (a limit past `i64::MAX` is no limit).
fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn version_of_row(v: i64) -> Result<Version, StoreError> {
    Version::try_from(v).map_err(|_| corrupt(format!("version {v}")))
}

fn read_occurrence(tx: &Transaction<'_>, occ_key: &OccKey) -> Result<Option<Occurrence>, StoreError> {
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM occurrences WHERE occ_key = ?1")
        .and_then(|mut st| st.query_row([occ_key.as_str()], |row| row.get(0)).optional())
        .map_err(unavailable)?;
    body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt(format!("occurrence {occ_key}: {e}")))).transpose()
}

/// One record row: kind, id, version, body.
type RecordRow = (String, String, i64, String);

fn record_of_row((kind, id, version, body): RecordRow) -> Result<Versioned<Record>, StoreError> {
    let kind = RecordKind::parse(&kind).ok_or_else(|| corrupt(format!("record kind {kind:?}")))?;
    let key = RecordKey::parse(kind, &id).ok_or_else(|| corrupt(format!("record key {kind}:{id:?}")))?;
    let json = serde_json::from_str(&body).map_err(|e| corrupt(format!("record {key}: {e}")))?;
    let value = Record::from_json(kind, json).map_err(|e| corrupt(format!("record {key}: {e}")))?;
    if !value.has_key(&key) {
        return Err(corrupt(format!("record stored under {key} has key {}", value.key())));
    }
    Ok(Versioned { version: version_of_row(version)?, value })
}

fn read_record(tx: &Transaction<'_>, occ_key: &OccKey, key: &RecordKey) -> Result<Option<RecordRow>, StoreError> {
    tx.prepare_cached("SELECT kind, id, version, body FROM records WHERE occ_key = ?1 AND kind = ?2 AND id = ?3")
        .and_then(|mut st| {
            st.query_row(params![occ_key.as_str(), key.kind().as_str(), key.id()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
        })
        .map_err(unavailable)
}

fn read_version(tx: &Transaction<'_>, occ_key: &OccKey, key: &RecordKey) -> Result<Option<Version>, StoreError> {
    let version: Option<i64> = tx
        .prepare_cached("SELECT version FROM records WHERE occ_key = ?1 AND kind = ?2 AND id = ?3")
        .and_then(|mut st| {
            st.query_row(params![occ_key.as_str(), key.kind().as_str(), key.id()], |row| row.get(0)).optional()
        })
        .map_err(unavailable)?;
    version.map(version_of_row).transpose()
}

/// The rows of `sql` (which selects occ_key, kind, id, version, body), decoded.
fn query_due(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Due>, StoreError> {
    let mut st = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows: Vec<(String, RecordRow)> = st
        .query_map(params, |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))))
        .and_then(Iterator::collect)
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(occ, row)| {
            let occ_key = OccKey::new(&occ).map_err(|e| corrupt(format!("occurrence key {occ:?}: {e}")))?;
            Ok(Due { occ_key, record: record_of_row(row)? })
        })
        .collect()
}

impl seathold::Store for SqliteStore {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        let mut conn = self.lock();
        // A read transaction: one consistent state, even with other handles writing.
        let tx = conn.transaction().map_err(unavailable)?;
        let occurrence = read_occurrence(&tx, occ_key)?;
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            records.push(read_record(&tx, occ_key, key)?.map(record_of_row).transpose()?);
        }
        Ok(Snapshot { occurrence, records })
    }

    fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        let conn = self.lock();
        let (now, limit) = (nanos::of(now), int(limit));
        match occ_key {
            Some(k) => query_due(
                &conn,
                "SELECT occ_key, kind, id, version, body FROM records
                  WHERE occ_key = ?1 AND due <= ?2 ORDER BY due, kind, id LIMIT ?3",
                params![k.as_str(), now, limit],
            ),
            None => query_due(
                &conn,
                "SELECT occ_key, kind, id, version, body FROM records
                  WHERE due <= ?1 ORDER BY due, occ_key, kind, id LIMIT ?2",
                params![now, limit],
            ),
        }
    }

    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        // Without `after`, from the first id (`?3` is then unset); with it, past its id.
        const FIRST: &str = "SELECT kind, id, version, body FROM records
                              WHERE occ_key = ?1 AND kind = ?2 AND ?3 IS NULL ORDER BY id LIMIT ?4";
        const AFTER: &str = "SELECT kind, id, version, body FROM records
                              WHERE occ_key = ?1 AND kind = ?2 AND id > ?3 ORDER BY id LIMIT ?4";
        let conn = self.lock();
        let mut st = conn.prepare_cached(if after.is_some() { AFTER } else { FIRST }).map_err(unavailable)?;
        let rows: Vec<RecordRow> = st
            .query_map(params![occ_key.as_str(), kind.as_str(), after.map(RecordKey::id), int(limit)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .and_then(Iterator::collect)
            .map_err(unavailable)?;
        rows.into_iter().map(record_of_row).collect()
    }

    fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        const FIRST: &str = "SELECT occ_key FROM occurrences WHERE ?1 IS NULL ORDER BY occ_key LIMIT ?2";
        const AFTER: &str = "SELECT occ_key FROM occurrences WHERE occ_key > ?1 ORDER BY occ_key LIMIT ?2";
        let conn = self.lock();
        let mut st = conn.prepare_cached(if after.is_some() { AFTER } else { FIRST }).map_err(unavailable)?;
        let keys: Vec<String> = st
            .query_map(params![after.map(OccKey::as_str), int(limit)], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(unavailable)?;
        keys.iter().map(|k| OccKey::new(k).map_err(|e| corrupt(format!("occurrence key {k:?}: {e}")))).collect()
    }

    fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        let mut conn = self.lock();
        // IMMEDIATE: take the write lock before reading, so nothing changes between the
        // check and the writes (dropping `tx` without `commit` rolls everything back).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        let occ_key = &commit.occ_key;
        let mut occurrence = read_occurrence(&tx, occ_key)?;
        let mut stored: HashMap<&RecordKey, Version> = HashMap::new();
        for w in &commit.records {
            if let Some(version) = read_version(&tx, occ_key, &w.key)? {
                stored.insert(&w.key, version);
            }
        }

        // Every guard, decided by the check all stores share.
        let next = check_commit(occurrence.as_ref(), |key| stored.get(key).copied(), &commit)?;

        let puts = commit.records.iter().any(|w| matches!(w.op, WriteOp::Put(_)));
        let sql = if puts {
            "UPDATE sequence SET version = version + 1 RETURNING version"
        } else {
            "SELECT version FROM sequence"
        };
        let version: i64 = tx.query_row(sql, [], |row| row.get(0)).map_err(unavailable)?;
        let committed = Committed::at(version_of_row(version)?);

        next.apply_to(&mut occurrence, &commit.deltas);
        match &occurrence {
            Some(o) => {
                let body = serde_json::to_string(o).map_err(|e| CommitError::Invalid(format!("occurrence: {e}")))?;
                tx.prepare_cached(
                    "INSERT INTO occurrences (occ_key, body) VALUES (?1, ?2)
                     ON CONFLICT (occ_key) DO UPDATE SET body = excluded.body",
                )
                .and_then(|mut st| st.execute(params![occ_key.as_str(), body]))
                .map_err(unavailable)?;
            }
            None => {
                tx.prepare_cached("DELETE FROM occurrences WHERE occ_key = ?1")
                    .and_then(|mut st| st.execute([occ_key.as_str()]))
                    .map_err(unavailable)?;
            }
        }

        for w in &commit.records {
            let (kind, id) = (w.key.kind().as_str(), w.key.id());
            match &w.op {
                WriteOp::Check => {}
                WriteOp::Put(record) => {
                    let json = record.to_json().map_err(|e| CommitError::Invalid(format!("record {}: {e}", w.key)))?;
                    let due = record.due().map(nanos::of);
                    tx.prepare_cached(
                        "INSERT INTO records (occ_key, kind, id, version, due, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (occ_key, kind, id)
                         DO UPDATE SET version = excluded.version, due = excluded.due, body = excluded.body",
                    )
                    .and_then(|mut st| st.execute(params![occ_key.as_str(), kind, id, version, due, json.to_string()]))
                    .map_err(unavailable)?;
                }
                WriteOp::Delete => {
                    tx.prepare_cached("DELETE FROM records WHERE occ_key = ?1 AND kind = ?2 AND id = ?3")
                        .and_then(|mut st| st.execute(params![occ_key.as_str(), kind, id]))
                        .map_err(unavailable)?;
                }
            }
        }

        for event in &commit.events {
            tx.prepare_cached("INSERT INTO outbox (occ_key, body) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![occ_key.as_str(), event.to_json()]))
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(committed)
    }

    fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached("SELECT id, body FROM outbox ORDER BY id LIMIT ?1").map_err(unavailable)?;
        let rows: Vec<(i64, String)> = st
            .query_map([int(limit)], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|(id, body)| {
                let event = DomainEvent::from_json(body.as_bytes()).map_err(|e| corrupt(format!("event {id}: {e}")))?;
                let id = u64::try_from(id).map_err(|_| corrupt(format!("event id {id}")))?;
                Ok(OutboxEvent { id: EventId(id), event })
            })
            .collect()
    }

    fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        {
            let mut st = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1").map_err(unavailable)?;
            // An id past `i64::MAX` was never issued here: unknown, so ignored.
            for id in ids.iter().filter_map(|id| i64::try_from(id.0).ok()) {
                st.execute([id]).map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)
    }
}
