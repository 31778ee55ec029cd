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
//!                ... and the next batch's round trip 1 right behind (Session::close)
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

use std::future::Future;

use futures_util::future::{join, join3};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

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
    /// Its occurrence has no row and the batch holds others: not decided here; apply it in a
    /// batch of its own occurrence.
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
/// megabytes). A configuration never changes without its version changing — but a version
/// number is not unique across the life of a database: an occurrence dropped with its schema
/// (or rolled back by a restore) and created again starts at version 1 with another
/// configuration. So the map is emptied by `drop_schema` and `migrate`, and a database
/// restored under running stores needs them restarted (or `migrate()` called): the store
/// docs say so.
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

    /// Forget every configuration: the database may have been dropped or restored, and a
    /// version number may now name another configuration.
    pub(super) fn forget_all(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
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

/// The version stored under each slot a batch guards (`None`: no record), as the batch
/// leaves them so far.
type Stored = HashMap<Slot, Option<Version>>;

/// A put's body and expiry (nanoseconds), encoded.
type Encoded = (String, Option<i64>);

/// The versions statement's rows: each guarded key's version (by its position in `keys`,
/// 1-based; absent keys have no row), and the fresh versions (position `NULL`).
fn versions_from_rows(rows: &[Row], keys: &[(&OccKey, &RecordKey)]) -> Result<(Stored, Vec<Version>), StoreError> {
    let mut stored: Stored = keys.iter().map(|(o, k)| (((*o).clone(), (*k).clone()), None)).collect();
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
fn encode_puts(c: &Commit) -> Result<Vec<Option<Encoded>>, StoreError> {
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

/// What a batch's first round trip asks: its occurrences and guarded records, in key order.
struct Reads<'c> {
    occ_keys: Vec<&'c OccKey>,
    occ_names: Vec<&'c str>,
    known: Vec<i64>,
    keys: Vec<(&'c OccKey, &'c RecordKey)>,
    key_occs: Vec<&'c str>,
    kinds: Vec<&'static str>,
    ids: Vec<String>,
    /// Fresh versions to draw: one per commit that puts a record.
    putting: i64,
}

impl<'c> Reads<'c> {
    fn new(commits: &'c [Commit], configs: &Configs) -> Self {
        let mut occ_keys: Vec<&OccKey> = commits.iter().map(|c| &c.occ_key).collect();
        occ_keys.sort_unstable();
        occ_keys.dedup();
        let mut keys: Vec<(&OccKey, &RecordKey)> =
            commits.iter().flat_map(|c| c.records.iter().map(move |w| (&c.occ_key, &w.key))).collect();
        keys.sort_unstable();
        keys.dedup();
        let putting = commits.iter().filter(|c| c.records.iter().any(|w| matches!(w.op, WriteOp::Put(_)))).count();
        Reads {
            occ_names: occ_keys.iter().map(|k| k.as_str()).collect(),
            known: occ_keys.iter().map(|k| configs.version_of(k)).collect(),
            occ_keys,
            key_occs: keys.iter().map(|(o, _)| o.as_str()).collect(),
            kinds: keys.iter().map(|(_, k)| k.kind().as_str()).collect(),
            ids: keys.iter().map(|(_, k)| k.id()).collect(),
            keys,
            putting: i64::try_from(putting).unwrap_or(i64::MAX),
        }
    }
}

/// A batch decided: an answer per commit and, if anything passed, what to write.
pub(super) struct Decided {
    answers: Answers,
    write: Option<WriteParams>,
}

/// One pooled connection's statements, for the batches it runs.
pub(super) struct Session<'a> {
    client: &'a deadpool_postgres::Client,
    sql: &'a Statements,
    configs: &'a Configs,
    lock: Statement,
    versions: Statement,
    write: Statement,
}

impl<'a> Session<'a> {
    pub(super) async fn new(
        client: &'a deadpool_postgres::Client,
        sql: &'a Statements,
        configs: &'a Configs,
    ) -> Result<Session<'a>, CallError> {
        Ok(Session {
            lock: client.prepare_cached(&sql.lock).await.map_err(CallError::Db)?,
            versions: client.prepare_cached(&sql.versions).await.map_err(CallError::Db)?,
            write: client.prepare_cached(&sql.write).await.map_err(CallError::Db)?,
            client,
            sql,
            configs,
        })
    }

    fn begin(&self) -> impl Future<Output = Result<(), tokio_postgres::Error>> + '_ {
        self.client.batch_execute("BEGIN")
    }

    async fn lock(&self, r: &Reads<'_>) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query(&self.lock, &[&r.occ_names, &r.known]).await
    }

    async fn versions(&self, r: &Reads<'_>, putting: &i64) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query(&self.versions, &[&r.key_occs, &r.kinds, &r.ids, putting]).await
    }

    /// The first round trip of `commits` (BEGIN, lock, versions) and their decision.
    pub(super) async fn open(&self, commits: &[Commit]) -> Result<Decided, CallError> {
        let reads = Reads::new(commits, self.configs);
        let (begin, locked, read) = join3(self.begin(), self.lock(&reads), self.versions(&reads, &reads.putting)).await;
        begin.map_err(CallError::Db)?;
        self.decide(commits, &reads, locked.map_err(CallError::Db)?, read.map_err(CallError::Db)?).await
    }

    /// The last round trip of `decided` (its write and COMMIT, or a ROLLBACK if it writes
    /// nothing), with the first round trip of `next`, if any, sent right behind it: the next
    /// batch's locks are taken the moment this one's are released, without waiting for its
    /// answer to come back. `done` gets `decided`'s result (its answers, once committed) as
    /// soon as it is known, before `next`'s reads are back, so its callers can send their
    /// next commits in time for the batch after; the result is `next`'s decision.
    pub(super) async fn close(
        &self,
        decided: Decided,
        next: Option<&[Commit]>,
        done: impl FnOnce(Result<Answers, CallError>),
    ) -> Option<Result<Decided, CallError>> {
        let Decided { answers, write } = decided;
        let committing = write.is_some();
        let this = async {
            let written = async {
                match &write {
                    Some(p) => self.client.execute(&self.write, &p.as_sql()).await.map(|_| ()),
                    None => Ok(()),
                }
            };
            let (w, e) = join(written, self.client.batch_execute(if committing { "COMMIT" } else { "ROLLBACK" })).await;
            done(finished(answers, w, e, committing));
        };
        let Some(next) = next else {
            this.await;
            return None;
        };
        let reads = Reads::new(next, self.configs);
        let ((), (begin, locked, read)) =
            join(this, join3(self.begin(), self.lock(&reads), self.versions(&reads, &reads.putting))).await;
        Some(match (begin, locked, read) {
            (Ok(()), Ok(locked), Ok(read)) => self.decide(next, &reads, locked, read).await,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(CallError::Db(e)),
        })
    }

    /// Decide `commits` on what round trip 1 read: commit by commit, each on what the ones
    /// before it left. A batch of one occurrence without a row takes the key's advisory lock
    /// (holding no row, it may) and reads again; in a batch of several, commits of an
    /// occurrence without a row are [`Answer::Deferred`].
    async fn decide(
        &self,
        commits: &[Commit],
        reads: &Reads<'_>,
        mut locked: Vec<Row>,
        mut read: Vec<Row>,
    ) -> Result<Decided, CallError> {
        let (_, fresh) = versions_from_rows(&read, &reads.keys).map_err(CallError::Store)?;
        let single = reads.occ_keys.len() == 1;
        if single && locked.is_empty() {
            // No occurrence row to lock: take the key's advisory lock (a create and every
            // other commit of a missing occurrence take turns on it), then read again after it.
            let take = self.client.prepare_cached(&self.sql.advisory).await.map_err(CallError::Db)?;
            let none = 0i64;
            let (taken, again, reread) = join3(
                self.client.execute(&take, &[&reads.occ_names[0]]),
                self.lock(reads),
                self.versions(reads, &none),
            )
            .await;
            taken.map_err(CallError::Db)?;
            locked = again.map_err(CallError::Db)?;
            read = reread.map_err(CallError::Db)?;
        }
        let (mut stored, _) = versions_from_rows(&read, &reads.keys).map_err(CallError::Store)?;
        let mut occs: HashMap<OccKey, Occ> = HashMap::with_capacity(reads.occ_keys.len());
        for row in &locked {
            let o = occurrence_from_lock(row, self.configs).map_err(CallError::Store)?;
            occs.insert(o.key.clone(), Occ { before: Some(o.clone()), now: Some(o) });
        }
        if single && occs.is_empty() {
            occs.insert(reads.occ_keys[0].clone(), Occ { before: None, now: None });
        }

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
        let params = WriteParams::new(occs, writes).map_err(CallError::Store)?;
        Ok(Decided { answers, write: (!params.is_empty()).then_some(params) })
    }
}

/// A batch's answers once its last round trip came back: `written` the write statement's
/// result, `ended` the COMMIT's (or ROLLBACK's).
fn finished(
    answers: Answers,
    written: Result<(), tokio_postgres::Error>,
    ended: Result<(), tokio_postgres::Error>,
    committing: bool,
) -> Result<Answers, CallError> {
    // A refused write aborted the transaction: its COMMIT rolled back, nothing applied.
    written.map_err(CallError::Db)?;
    match ended {
        Ok(()) => Ok(answers),
        // The writes were accepted; if the COMMIT's answer is lost, nobody knows whether it
        // was applied.
        Err(e) if committing => Err(CallError::Unknown(e)),
        Err(e) => Err(CallError::Db(e)),
    }
}

/// Run `commits` (in order) alone in one transaction on `client` (see [`Session::decide`]).
/// `Err` only when the batch as a whole failed (nothing of it applied, unless the failure
/// was the `COMMIT`'s own: then the caller cannot know).
pub(super) async fn apply_batch(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    configs: &Configs,
    commits: &[Commit],
) -> Result<Answers, CallError> {
    let session = Session::new(client, sql, configs).await?;
    let decided = session.open(commits).await?;
    let mut result = None;
    session.close(decided, None, |r| result = Some(r)).await;
    result.unwrap_or_else(|| Err(CallError::Store(StoreError::Internal("a batch ended without a result".into()))))
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
struct WriteParams {
    occ_keys: Vec<String>,
    occ_ops: Vec<&'static str>,
    configs: Vec<Option<String>>,
    config_versions: Vec<i64>,
    dims: Vec<String>,
    caps: Vec<String>,
    counts: [Vec<String>; 4],
    put_occs: Vec<String>,
    put_kinds: Vec<&'static str>,
    put_keys: Vec<String>,
    put_versions: Vec<i64>,
    put_bodies: Vec<String>,
    put_dues: Vec<Option<i64>>,
    del_occs: Vec<String>,
    del_kinds: Vec<&'static str>,
    del_keys: Vec<String>,
    event_occs: Vec<String>,
    events: Vec<String>,
}

impl WriteParams {
    fn new(occs: HashMap<OccKey, Occ>, w: Writes) -> Result<Self, StoreError> {
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
            p.occ_keys.push(key.as_str().to_owned());
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
        let Writes { mut records, order, events } = w;
        for slot in order {
            let Some(write) = records.remove(&slot) else { continue };
            let (occ, key) = slot;
            match write {
                Some(put) => {
                    p.put_occs.push(occ.as_str().to_owned());
                    p.put_kinds.push(key.kind().as_str());
                    p.put_keys.push(key.id());
                    p.put_versions.push(put.version);
                    p.put_bodies.push(put.body);
                    p.put_dues.push(put.due);
                }
                None => {
                    p.del_occs.push(occ.as_str().to_owned());
                    p.del_kinds.push(key.kind().as_str());
                    p.del_keys.push(key.id());
                }
            }
        }
        for (occ, body) in events {
            p.event_occs.push(occ.as_str().to_owned());
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
