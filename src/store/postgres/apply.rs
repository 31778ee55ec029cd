//! Applying a batch of commits in one transaction: lock their occurrences, read what the
//! commits guard, decide each with the shared [`check_commit`], write what passed.
//!
//! Owns: the SQL conversation of a commit (two round trips of pipelined plain statements).
//! May not touch: the rules. Every guard is [`check_commit`]'s, the same code `MemoryStore`
//! and the SQLite store run, so the three stores cannot disagree on a verdict; this module
//! only makes sure the state it hands to `check_commit` is the newest committed one and
//! stays so until its own writes commit.
//!
//! ```text
//! round trip 1   BEGIN
//!                lock:     the occurrences' rows, FOR NO KEY UPDATE, in key order
//!                                                                    (waits for the locks)
//!                versions: the guarded records' versions, and one fresh version per
//!                          commit that puts                          (a new snapshot,
//!                                                                     taken after the locks)
//! decide         check_commit, commit by commit, each on what the ones before it left
//! round trip 2   write:    occurrences, puts, deletes, events in one statement
//!                COMMIT                                             (ROLLBACK if nothing to write)
//! ```
//!
//! Why this is safe in READ COMMITTED: every commit of an occurrence locks its row (or, while
//! it is missing, its advisory lock) before reading anything, and holds it until it ends. The
//! versions statement runs after the lock statement returned, so its snapshot sees every
//! commit that held the locks before; none can write those occurrences' records until this
//! transaction ends. The statements of a round trip are sent in order without waiting for
//! each other's answers (tokio-postgres pipelines requests in the order they are first
//! polled; `join` polls in argument order), and the server runs them in the order sent.
//!
//! Why no deadlock: a batch of several occurrences locks only rows that exist, all in one
//! statement, in key order; commits of an occurrence without a row are left out of it
//! ([`Answer::Deferred`]) and applied afterwards in a batch of their own occurrence, which
//! holds that occurrence's advisory lock and then at most its row. Every transaction takes
//! rows in the same order, and none waits for an advisory lock while holding a row.

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

/// What became of one commit of a batch.
#[derive(Debug)]
pub(super) enum Answer {
    /// Decided (and, if `Ok`, applied once the batch committed).
    Done(Result<Committed, CommitError>),
    /// Its occurrence has no row: not decided here; apply it in a batch of its occurrence.
    Deferred,
}

impl Answer {
    /// The decided answer; a deferred commit here is a bug.
    pub(super) fn done(self) -> Result<Committed, CommitError> {
        match self {
            Self::Done(r) => r,
            Self::Deferred => Err(StoreError::Internal("a commit went unanswered".into()).into()),
        }
    }
}

/// An answer for each commit of a batch, in order.
pub(super) type Answers = Vec<Answer>;

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

/// One row of the lock statement: the occurrence (key, config version, configuration unless
/// known, counters).
fn occurrence_from_lock(row: &Row, configs: &Configs) -> Result<Occurrence, StoreError> {
    let key: &str = get(row, 0)?;
    let occ = OccKey::new(key).map_err(|e| corrupt(format!("occ_key {key:?}: {e}")))?;
    let version: i64 = get(row, 1)?;
    let config = match get::<Option<serde_json::Value>>(row, 2)? {
        Some(json) => {
            let config: OccurrenceConfig =
                serde_json::from_value(json).map_err(|e| corrupt(format!("occurrence {occ}: config: {e}")))?;
            configs.remember(&occ, version, &config);
            config
        }
        None => configs.get(&occ, version).ok_or_else(|| {
            corrupt(format!("occurrence {occ}: configuration {version} sent as known, but not known"))
        })?,
    };
    Ok(Occurrence {
        config,
        config_version: u64::try_from(version).map_err(|_| corrupt(format!("occurrence {occ}: version {version}")))?,
        counters: counters_from_row(row, 3, &occ)?,
        key: occ,
    })
}

/// A record of an occurrence.
type Slot = (OccKey, RecordKey);

/// The versions statement's rows: each guarded key's version (by its position in `keys`,
/// 1-based; absent keys have no row), and the fresh versions (position `NULL`).
fn versions_from_rows(
    rows: &[Row],
    keys: &[(&OccKey, &RecordKey)],
) -> Result<(HashMap<Slot, Option<Version>>, Vec<Version>), StoreError> {
    let mut stored: HashMap<Slot, Option<Version>> =
        keys.iter().map(|(o, k)| (((*o).clone(), (*k).clone()), None)).collect();
    let mut fresh = Vec::new();
    for row in rows {
        let at: Option<i64> = get(row, 0)?;
        let version: i64 = get(row, 1)?;
        let version = u64::try_from(version).map_err(|_| corrupt(format!("record version {version}")))?;
        match at {
            None => fresh.push(version),
            Some(i) => {
                let (o, k) = usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .ok_or_else(|| corrupt(format!("versions answered for key {i} of {}", keys.len())))?;
                stored.insert(((*o).clone(), (*k).clone()), Some(version));
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
    records: HashMap<Slot, Option<Put>>,
    order: Vec<Slot>,
    events: Vec<(OccKey, String)>,
}

impl Writes {
    fn record(&mut self, slot: Slot, put: Option<Put>) {
        if let Some(old) = self.records.get_mut(&slot) {
            *old = put;
        } else {
            self.records.insert(slot.clone(), put);
            self.order.push(slot);
        }
    }
}

/// One occurrence of the batch: as locked, and as the commits decided so far leave it.
struct Occ {
    before: Option<Occurrence>,
    now: Option<Occurrence>,
}

/// Run `commits` (in order) in one transaction on `client`. With `advisory`, the batch must
/// be of one occurrence, and a missing occurrence is locked by its key's advisory lock;
/// without, commits of missing occurrences are [`Answer::Deferred`]. `Err` only when the
/// batch as a whole failed (nothing of it applied, unless the failure was the `COMMIT`'s
/// own: then the caller cannot know).
pub(super) async fn apply_batch(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    configs: &Configs,
    commits: &[Commit],
    advisory: bool,
) -> Result<Answers, CallError> {
    let lock = client.prepare_cached(&sql.lock).await.map_err(CallError::Db)?;
    let versions = client.prepare_cached(&sql.versions).await.map_err(CallError::Db)?;
    let write = client.prepare_cached(&sql.write).await.map_err(CallError::Db)?;

    let mut occ_keys: Vec<&OccKey> = commits.iter().map(|c| &c.occ_key).collect();
    occ_keys.sort_unstable();
    occ_keys.dedup();
    if advisory && occ_keys.len() > 1 {
        return Err(CallError::Store(StoreError::Internal("advisory locks for a batch of several occurrences".into())));
    }
    let occ_names: Vec<&str> = occ_keys.iter().map(|k| k.as_str()).collect();
    let known: Vec<i64> = occ_keys.iter().map(|k| configs.version_of(k)).collect();
    let mut keys: Vec<(&OccKey, &RecordKey)> =
        commits.iter().flat_map(|c| c.records.iter().map(move |w| (&c.occ_key, &w.key))).collect();
    keys.sort_unstable();
    keys.dedup();
    let key_occs: Vec<&str> = keys.iter().map(|(o, _)| o.as_str()).collect();
    let kinds: Vec<&str> = keys.iter().map(|(_, k)| k.kind().as_str()).collect();
    let ids: Vec<String> = keys.iter().map(|(_, k)| k.id()).collect();
    let putting = commits.iter().filter(|c| c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_)))).count();
    let putting = i64::try_from(putting).unwrap_or(i64::MAX);

    // Round trip 1: begin, lock, read.
    let (begin, locked, read) = join3(
        client.batch_execute("BEGIN"),
        client.query(&lock, &[&occ_names, &known]),
        client.query(&versions, &[&key_occs, &kinds, &ids, &putting]),
    )
    .await;
    begin.map_err(CallError::Db)?;
    let (mut locked, mut read) = (locked.map_err(CallError::Db)?, read.map_err(CallError::Db)?);
    let (_, fresh) = versions_from_rows(&read, &keys).map_err(CallError::Store)?;
    if advisory && locked.is_empty() {
        // No occurrence row to lock: take the key's advisory lock (a create and every other
        // commit of a missing occurrence take turns on it), then read again after it.
        let take = client.prepare_cached(&sql.advisory).await.map_err(CallError::Db)?;
        let (taken, again, reread) = join3(
            client.execute(&take, &[&occ_names[0]]),
            client.query(&lock, &[&occ_names, &known]),
            client.query(&versions, &[&key_occs, &kinds, &ids, &0i64]),
        )
        .await;
        taken.map_err(CallError::Db)?;
        locked = again.map_err(CallError::Db)?;
        read = reread.map_err(CallError::Db)?;
    }
    let (mut stored, _) = versions_from_rows(&read, &keys).map_err(CallError::Store)?;
    let mut occs: HashMap<OccKey, Occ> = HashMap::with_capacity(occ_keys.len());
    for row in &locked {
        let o = occurrence_from_lock(row, configs).map_err(CallError::Store)?;
        occs.insert(o.key.clone(), Occ { before: Some(o.clone()), now: Some(o) });
    }
    if advisory && occs.is_empty() {
        occs.insert(occ_keys[0].clone(), Occ { before: None, now: None });
    }

    // Decide, commit by commit, on what the ones before left.
    let mut fresh = fresh.into_iter();
    let mut writes = Writes::default();
    let mut answers = Vec::with_capacity(commits.len());
    for c in commits {
        let Some(occ) = occs.get_mut(&c.occ_key) else {
            answers.push(Answer::Deferred);
            continue;
        };
        let encoded = match encode_puts(c) {
            Ok(e) => e,
            Err(e) => {
                answers.push(Answer::Done(Err(e.into())));
                continue;
            }
        };
        let version_of = |k: &RecordKey| stored.get(&(c.occ_key.clone(), k.clone())).copied().flatten();
        let next = match check_commit(occ.now.as_ref(), version_of, c) {
            Ok(next) => next,
            Err(e) => {
                answers.push(Answer::Done(Err(e)));
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
        next.apply_to(&mut occ.now, &c.deltas);
        for (w, put) in c.records.iter().zip(encoded) {
            let slot = (c.occ_key.clone(), w.key.clone());
            match (&w.op, put) {
                (WriteOp::Put(_), Some((body, due))) => {
                    stored.insert(slot.clone(), Some(version));
                    writes.record(slot, Some(Put { version: at, body, due }));
                }
                (WriteOp::Delete, _) => {
                    stored.insert(slot.clone(), None);
                    writes.record(slot, None);
                }
                _ => {}
            }
        }
        writes.events.extend(c.events.iter().map(|e| (c.occ_key.clone(), e.to_json())));
        answers.push(Answer::Done(Ok(Committed::at(version))));
    }

    // Round trip 2: write, commit.
    let params = WriteParams::new(&occs, &writes).map_err(CallError::Store)?;
    if params.is_empty() {
        client.batch_execute("ROLLBACK").await.map_err(CallError::Db)?;
        return Ok(answers);
    }
    let (written, committed) = join(client.execute(&write, &params.as_sql()), client.batch_execute("COMMIT")).await;
    written.map_err(CallError::Db)?;
    // The writes were accepted; if the COMMIT's answer is lost, nobody knows whether it was
    // applied.
    committed.map_err(CallError::Unknown)?;
    Ok(answers)
}

/// An array literal of `items` (each quoted), for an array of arrays of different lengths,
/// which PostgreSQL's arrays cannot hold: sent as text, cast in the statement.
fn array_literal<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in item.to_string().chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The write statement's parameters (see `Statements::write`), one array per column.
#[derive(Default)]
struct WriteParams<'a> {
    occ_keys: Vec<&'a str>,
    occ_ops: Vec<&'static str>,
    configs: Vec<Option<String>>,
    config_versions: Vec<i64>,
    dims: Vec<String>,
    caps: Vec<String>,
    counts: [Vec<String>; 4],
    put_occs: Vec<&'a str>,
    put_kinds: Vec<&'static str>,
    put_keys: Vec<String>,
    put_versions: Vec<i64>,
    put_bodies: Vec<&'a str>,
    put_dues: Vec<Option<i64>>,
    del_occs: Vec<&'a str>,
    del_kinds: Vec<&'static str>,
    del_keys: Vec<String>,
    event_occs: Vec<&'a str>,
    events: Vec<&'a str>,
}

impl<'a> WriteParams<'a> {
    fn new(occs: &'a HashMap<OccKey, Occ>, w: &'a Writes) -> Result<Self, StoreError> {
        let big = |v: u64, what: &str| i64::try_from(v).map_err(|_| corrupt(format!("{what} {v} past a bigint")));
        let mut p = WriteParams::default();
        for (key, occ) in occs {
            let op = match (&occ.before, &occ.now) {
                (_, None) => continue,
                (None, Some(_)) => "create",
                (Some(b), Some(a)) if b.config_version != a.config_version => "update",
                (Some(b), Some(a)) if b.counters != a.counters => "counters",
                (Some(_), Some(_)) => continue,
            };
            let Some(o) = &occ.now else { continue };
            p.occ_keys.push(key.as_str());
            p.occ_ops.push(op);
            p.configs.push(if op == "counters" {
                None
            } else {
                Some(serde_json::to_string(&o.config).map_err(|e| corrupt(format!("config: {e}")))?)
            });
            p.config_versions.push(big(o.config_version, "config version")?);
            // Every dimension of the configuration, in its order, counted or not.
            let dims = o.config.dims();
            let mut counts: [Vec<i64>; 4] = Default::default();
            let mut caps = Vec::with_capacity(dims.len());
            for (dim, cap) in &dims {
                let u = o.counters.get(dim);
                for (col, v) in counts.iter_mut().zip([u.held, u.confirmed, u.blocked, u.offered]) {
                    col.push(big(v, "counter")?);
                }
                caps.push(match cap {
                    Some(c) => big(*c, "capacity")?.to_string(),
                    None => "NULL".to_owned(),
                });
            }
            p.dims.push(array_literal(dims.iter().map(|(d, _)| d.to_key())));
            // NULL unquoted: a cap of none.
            p.caps.push(format!("{{{}}}", caps.join(",")));
            for (col, c) in p.counts.iter_mut().zip(counts) {
                col.push(format!("{{{}}}", c.iter().map(i64::to_string).collect::<Vec<_>>().join(",")));
            }
        }
        for slot in &w.order {
            let (occ, key) = slot;
            match w.records.get(slot) {
                Some(Some(put)) => {
                    p.put_occs.push(occ.as_str());
                    p.put_kinds.push(key.kind().as_str());
                    p.put_keys.push(key.id());
                    p.put_versions.push(put.version);
                    p.put_bodies.push(&put.body);
                    p.put_dues.push(put.due);
                }
                Some(None) => {
                    p.del_occs.push(occ.as_str());
                    p.del_kinds.push(key.kind().as_str());
                    p.del_keys.push(key.id());
                }
                None => {}
            }
        }
        for (occ, body) in &w.events {
            p.event_occs.push(occ.as_str());
            p.events.push(body);
        }
        Ok(p)
    }

    fn is_empty(&self) -> bool {
        self.occ_keys.is_empty() && self.put_keys.is_empty() && self.del_keys.is_empty() && self.events.is_empty()
    }

    fn as_sql(&self) -> [&(dyn ToSql + Sync); 21] {
        [
            &self.occ_keys,
            &self.occ_ops,
            &self.configs,
            &self.config_versions,
            &self.dims,
            &self.caps,
            &self.counts[0],
            &self.counts[1],
            &self.counts[2],
            &self.counts[3],
            &self.put_occs,
            &self.put_kinds,
            &self.put_keys,
            &self.put_versions,
            &self.put_bodies,
            &self.put_dues,
            &self.del_occs,
            &self.del_kinds,
            &self.del_keys,
            &self.event_occs,
            &self.events,
        ]
    }
}
