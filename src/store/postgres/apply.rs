//! Applying a batch of one occurrence's commits in one transaction: lock the occurrence, read
//! what the commits guard, decide each with the shared [`check_commit`], write what passed.
//!
//! Owns: the SQL conversation of a commit (two round trips of pipelined plain statements).
//! May not touch: the rules. Every guard is [`check_commit`]'s, the same code `MemoryStore`
//! and the SQLite store run, so the three stores cannot disagree on a verdict; this module
//! only makes sure the state it hands to `check_commit` is the newest committed one and
//! stays so until its own writes commit.
//!
//! ```text
//! round trip 1   BEGIN
//!                lock:     the occurrence row, FOR NO KEY UPDATE    (waits for the lock)
//!                versions: the guarded records' versions, and one fresh version per
//!                          commit that puts                          (a new snapshot,
//!                                                                     taken after the lock)
//! (a missing occurrence: its advisory lock, then lock and versions again)
//! decide         check_commit, commit by commit, each on what the ones before it left
//! round trip 2   write:    occurrence, puts, deletes, events in one statement
//!                COMMIT                                             (ROLLBACK if nothing to write)
//! ```
//!
//! Why this is safe in READ COMMITTED: every commit of an occurrence locks its row (or, while
//! it is missing, its advisory lock) before reading anything, and holds it until it ends. The
//! versions statement runs after the lock statement returned, so its snapshot sees every
//! commit that held the lock before; none can write the occurrence's records until this
//! transaction ends. The statements of a round trip are sent in order without waiting for
//! each other's answers (tokio-postgres pipelines requests in the order they are first
//! polled; `join` polls in argument order), and the server runs them in the order sent.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use futures_util::future::{join, join3};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::CallError;
use super::codec::{counters_from_row, get};
use super::schema::Statements;
use crate::catalogue::OccurrenceConfig;
use crate::contract::OccKey;
use crate::records::{Occurrence, RecordKey, Version, nanos};
use crate::store::{Commit, CommitError, Committed, StoreError, WriteOp, check_commit};

/// An answer for each commit of a batch, in order.
pub(super) type Answers = Vec<Result<Committed, CommitError>>;

/// Parsed configurations by occurrence, at the config version they were read at: the lock
/// statement sends an occurrence's configuration only when its version is not the one
/// remembered here, so a batch neither transfers nor parses it (a seating plan's runs to
/// megabytes). A configuration never changes without its version changing.
#[derive(Debug, Default)]
pub(super) struct Configs(Mutex<HashMap<OccKey, (i64, OccurrenceConfig)>>);

/// How many occurrences' configurations [`Configs`] keeps before starting afresh.
const CONFIGS_KEPT: usize = 4_096;

impl Configs {
    fn version_of(&self, occ: &OccKey) -> i64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(occ).map_or(-1, |(v, _)| *v)
    }

    fn get(&self, occ: &OccKey, version: i64) -> Option<OccurrenceConfig> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(occ).filter(|(v, _)| *v == version).map(|(_, c)| c.clone())
    }

    fn remember(&self, occ: &OccKey, version: i64, config: &OccurrenceConfig) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CONFIGS_KEPT && !map.contains_key(occ) {
            map.clear();
        }
        map.insert(occ.clone(), (version, config.clone()));
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// What the lock statement read: the occurrence (`None`: it does not exist).
fn occurrence_from_lock(row: Option<Row>, occ: &OccKey, configs: &Configs) -> Result<Option<Occurrence>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let version: i64 = get(&row, 0)?;
    let config = match get::<Option<serde_json::Value>>(&row, 1)? {
        Some(json) => {
            let config: OccurrenceConfig =
                serde_json::from_value(json).map_err(|e| corrupt(format!("occurrence {occ}: config: {e}")))?;
            configs.remember(occ, version, &config);
            config
        }
        None => configs.get(occ, version).ok_or_else(|| {
            corrupt(format!("occurrence {occ}: configuration {version} sent as known, but not known"))
        })?,
    };
    Ok(Some(Occurrence {
        key: occ.clone(),
        config,
        config_version: u64::try_from(version).map_err(|_| corrupt(format!("occurrence {occ}: version {version}")))?,
        counters: counters_from_row(&row, 2, occ)?,
    }))
}

/// The versions statement's rows: each guarded key's version (by its position in `keys`,
/// 1-based; absent keys have no row), and the fresh versions (position `NULL`).
fn versions_from_rows(
    rows: &[Row],
    keys: &[&RecordKey],
) -> Result<(HashMap<RecordKey, Option<Version>>, Vec<Version>), StoreError> {
    let mut stored: HashMap<RecordKey, Option<Version>> = keys.iter().map(|k| ((*k).clone(), None)).collect();
    let mut fresh = Vec::new();
    for row in rows {
        let at: Option<i64> = get(row, 0)?;
        let version: i64 = get(row, 1)?;
        let version = u64::try_from(version).map_err(|_| corrupt(format!("record version {version}")))?;
        match at {
            None => fresh.push(version),
            Some(i) => {
                let key = usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .ok_or_else(|| corrupt(format!("versions answered for key {i} of {}", keys.len())))?;
                stored.insert((*key).clone(), Some(version));
            }
        }
    }
    Ok((stored, fresh))
}

/// A record put as the write statement takes it.
struct Put {
    version: i64,
    body: String,
    due: Option<i64>,
}

/// Each put's body and expiry, encoded before the commit is decided: a record that cannot be
/// written is the commit's answer, and nothing of it is applied.
fn encode_puts(c: &Commit) -> Result<Vec<Option<(String, Option<i64>)>>, StoreError> {
    c.records
        .iter()
        .map(|w| match &w.op {
            WriteOp::Put(r) => {
                let body = r.to_json().map_err(|e| corrupt(format!("record {}: {e}", w.key)))?.to_string();
                let due = match r.due() {
                    None => None,
                    Some(t) => Some(nanos::exact(t).ok_or_else(|| corrupt(format!("due time {t} out of range")))?),
                };
                Ok(Some((body, due)))
            }
            WriteOp::Check | WriteOp::Delete => Ok(None),
        })
        .collect()
}

/// What the batch leaves behind, to write in one statement: each record's last write (a key
/// written by two commits of the batch is written once), the events in order.
#[derive(Default)]
struct Writes {
    records: HashMap<RecordKey, Option<Put>>,
    order: Vec<RecordKey>,
    events: Vec<String>,
}

impl Writes {
    fn record(&mut self, key: &RecordKey, put: Option<Put>) {
        if self.records.insert(key.clone(), put).is_none() {
            self.order.push(key.clone());
        }
    }
}

/// Run `commits` (one occurrence's, in order) in one transaction on `client`. `Err` only when
/// the batch as a whole failed (nothing of it applied, unless the failure was the `COMMIT`'s
/// own: then the caller cannot know).
pub(super) async fn apply_batch(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    configs: &Configs,
    occ: &OccKey,
    commits: &[Commit],
) -> Result<Answers, CallError> {
    let lock = client.prepare_cached(&sql.lock).await.map_err(CallError::Db)?;
    let versions = client.prepare_cached(&sql.versions).await.map_err(CallError::Db)?;
    let write = client.prepare_cached(&sql.write).await.map_err(CallError::Db)?;

    let mut keys: Vec<&RecordKey> = commits.iter().flat_map(|c| c.records.iter().map(|w| &w.key)).collect();
    keys.sort_unstable();
    keys.dedup();
    let kinds: Vec<&str> = keys.iter().map(|k| k.kind().as_str()).collect();
    let ids: Vec<String> = keys.iter().map(|k| k.id()).collect();
    let putting = commits.iter().filter(|c| c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_)))).count();
    let putting = i64::try_from(putting).unwrap_or(i64::MAX);
    let known = configs.version_of(occ);

    // Round trip 1: begin, lock, read.
    let (begin, locked, read) = join3(
        client.batch_execute("BEGIN"),
        client.query_opt(&lock, &[&occ.as_str(), &known]),
        client.query(&versions, &[&occ.as_str(), &kinds, &ids, &putting]),
    )
    .await;
    begin.map_err(CallError::Db)?;
    let (mut locked, mut read) = (locked.map_err(CallError::Db)?, read.map_err(CallError::Db)?);
    let (_, fresh) = versions_from_rows(&read, &keys).map_err(CallError::Store)?;
    if locked.is_none() {
        // No occurrence row to lock: take the key's advisory lock (a create and every other
        // commit of a missing occurrence take turns on it), then read again after it.
        let advisory = client.prepare_cached(&sql.advisory).await.map_err(CallError::Db)?;
        let (taken, again, reread) = join3(
            client.execute(&advisory, &[&occ.as_str()]),
            client.query_opt(&lock, &[&occ.as_str(), &known]),
            client.query(&versions, &[&occ.as_str(), &kinds, &ids, &0i64]),
        )
        .await;
        taken.map_err(CallError::Db)?;
        locked = again.map_err(CallError::Db)?;
        read = reread.map_err(CallError::Db)?;
    }
    let (mut stored, _) = versions_from_rows(&read, &keys).map_err(CallError::Store)?;
    let before = occurrence_from_lock(locked, occ, configs).map_err(CallError::Store)?;

    // Decide, commit by commit, on what the ones before left.
    let mut occurrence = before.clone();
    let mut fresh = fresh.into_iter();
    let mut writes = Writes::default();
    let mut answers = Vec::with_capacity(commits.len());
    for c in commits {
        let encoded = match encode_puts(c) {
            Ok(e) => e,
            Err(e) => {
                answers.push(Err(e.into()));
                continue;
            }
        };
        let next = match check_commit(occurrence.as_ref(), |k| stored.get(k).copied().flatten(), c) {
            Ok(next) => next,
            Err(e) => {
                answers.push(Err(e));
                continue;
            }
        };
        let version = if encoded.iter().any(Option::is_some) {
            match fresh.next() {
                Some(v) => v,
                None => return Err(CallError::Store(StoreError::Internal("too few fresh versions drawn".into()))),
            }
        } else {
            0
        };
        let at = i64::try_from(version).map_err(|_| CallError::Store(corrupt(format!("version {version}"))))?;
        next.apply_to(&mut occurrence, &c.deltas);
        for (w, put) in c.records.iter().zip(encoded) {
            match (&w.op, put) {
                (WriteOp::Put(_), Some((body, due))) => {
                    stored.insert(w.key.clone(), Some(version));
                    writes.record(&w.key, Some(Put { version: at, body, due }));
                }
                (WriteOp::Delete, _) => {
                    stored.insert(w.key.clone(), None);
                    writes.record(&w.key, None);
                }
                _ => {}
            }
        }
        writes.events.extend(c.events.iter().map(|e| e.to_json()));
        answers.push(Ok(Committed::at(version)));
    }

    // Round trip 2: write, commit.
    let occ_op = match (&before, &occurrence) {
        (_, None) => "",
        (None, Some(_)) => "create",
        (Some(b), Some(a)) if b.config_version != a.config_version => "update",
        (Some(b), Some(a)) if b.counters != a.counters => "counters",
        (Some(_), Some(_)) => "",
    };
    if occ_op.is_empty() && writes.order.is_empty() && writes.events.is_empty() {
        client.batch_execute("ROLLBACK").await.map_err(CallError::Db)?;
        return Ok(answers);
    }
    let params = WriteParams::new(occ, occ_op, occurrence.as_ref(), &writes).map_err(CallError::Store)?;
    let (written, committed) = join(client.execute(&write, &params.as_sql()), client.batch_execute("COMMIT")).await;
    written.map_err(CallError::Db)?;
    // The writes were accepted; if the COMMIT's answer is lost, nobody knows whether it was
    // applied.
    committed.map_err(CallError::Unknown)?;
    Ok(answers)
}

/// The write statement's parameters (see `Statements::write`).
struct WriteParams<'a> {
    occ: &'a str,
    op: &'static str,
    config: Option<String>,
    config_version: i64,
    dims: Vec<String>,
    caps: Vec<Option<i64>>,
    counts: [Vec<i64>; 4],
    put_kinds: Vec<&'static str>,
    put_keys: Vec<String>,
    put_versions: Vec<i64>,
    put_bodies: Vec<&'a str>,
    put_dues: Vec<Option<i64>>,
    del_kinds: Vec<&'static str>,
    del_keys: Vec<String>,
    events: &'a [String],
}

impl<'a> WriteParams<'a> {
    fn new(occ: &'a OccKey, op: &'static str, o: Option<&Occurrence>, w: &'a Writes) -> Result<Self, StoreError> {
        let big = |v: u64, what: &str| i64::try_from(v).map_err(|_| corrupt(format!("{what} {v} past a bigint")));
        let mut p = WriteParams {
            occ: occ.as_str(),
            op,
            config: None,
            config_version: 0,
            dims: Vec::new(),
            caps: Vec::new(),
            counts: Default::default(),
            put_kinds: Vec::new(),
            put_keys: Vec::new(),
            put_versions: Vec::new(),
            put_bodies: Vec::new(),
            put_dues: Vec::new(),
            del_kinds: Vec::new(),
            del_keys: Vec::new(),
            events: &w.events,
        };
        if let Some(o) = o.filter(|_| !op.is_empty()) {
            if op != "counters" {
                p.config = Some(serde_json::to_string(&o.config).map_err(|e| corrupt(format!("config: {e}")))?);
            }
            p.config_version = big(o.config_version, "config version")?;
            // Every dimension of the configuration, in its order, counted or not.
            for (dim, cap) in o.config.dims() {
                let u = o.counters.get(&dim);
                p.dims.push(dim.to_key());
                p.caps.push(cap.map(|c| big(c, "capacity")).transpose()?);
                for (col, v) in p.counts.iter_mut().zip([u.held, u.confirmed, u.blocked, u.offered]) {
                    col.push(big(v, "counter")?);
                }
            }
        }
        for key in &w.order {
            match w.records.get(key) {
                Some(Some(put)) => {
                    p.put_kinds.push(key.kind().as_str());
                    p.put_keys.push(key.id());
                    p.put_versions.push(put.version);
                    p.put_bodies.push(&put.body);
                    p.put_dues.push(put.due);
                }
                Some(None) => {
                    p.del_kinds.push(key.kind().as_str());
                    p.del_keys.push(key.id());
                }
                None => {}
            }
        }
        Ok(p)
    }

    fn as_sql(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.occ,
            &self.op,
            &self.config,
            &self.config_version,
            &self.dims,
            &self.caps,
            &self.counts[0],
            &self.counts[1],
            &self.counts[2],
            &self.counts[3],
            &self.put_kinds,
            &self.put_keys,
            &self.put_versions,
            &self.put_bodies,
            &self.put_dues,
            &self.del_kinds,
            &self.del_keys,
            &self.events,
        ]
    }
}
