//! `PostgresStore`: an [`AsyncStore`] on PostgreSQL, for one database shared by many service
//! instances (cargo feature `postgres`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use seathold::AsyncEngine;
//! use seathold::store::postgres::{PostgresOptions, PostgresStore};
//!
//! let store = PostgresStore::connect("postgres://app@localhost/app", PostgresOptions::default()).await?;
//! store.migrate().await?; // idempotent: run it at every start
//! let engine = AsyncEngine::new(store);
//! # let _ = engine; Ok(()) }
//! ```
//!
//! Built on `tokio-postgres` with a `deadpool-postgres` pool, so it runs on a tokio runtime.
//!
//! # How it keeps the store contract
//!
//! - **The rules are the crate's, decided under the row lock.** A commit is plain prepared
//!   statements: `BEGIN`, lock the occurrence's row (`FOR NO KEY UPDATE`), read the
//!   versions of the records it guards; decide with [`check_commit`](super::check_commit) —
//!   the function `MemoryStore` and the SQLite store run, so no guard is written twice —;
//!   then write the occurrence, records and events in one statement and `COMMIT`. The
//!   commits waiting at the same moment, of any occurrences, are applied in one transaction
//!   (rows locked in key order; each commit still decided and answered on its own, on what
//!   the ones before it left): a row lock is held until the WAL flush, so one commit per
//!   transaction would cap a hot occurrence at one commit per flush. One task keeps a
//!   connection while commits keep coming and sends a batch's first round trip right behind
//!   the previous batch's last, so a batch costs one round trip and one flush. One batch at a
//!   time waits for the slowest of its rows' locks (another instance's batch, say), other
//!   occurrences of the batch included. A failed guard is [`CommitError::Conflict`], a
//!   malformed commit [`CommitError::Invalid`]; a connection or I/O failure is
//!   [`StoreError::Unavailable`] (the commit may or may not have been applied; retrying the
//!   whole operation is safe). [`load`](AsyncStore::load) is one query.
//! - **Guards on O(1) rows, at write time.** The occurrence row carries the configuration
//!   (with its version) and the counters of every dimension; records live in one table keyed
//!   by (occurrence, kind, key) with a version. No operation reads a whole occurrence.
//! - **READ COMMITTED is enough** (the store sets it on each connection, whatever the
//!   server's default): every commit first locks its occurrence's row (`FOR NO KEY UPDATE`;
//!   for a missing occurrence, an advisory lock on its key), and a locking read in READ
//!   COMMITTED returns the newest committed version of the row after waiting for its lock.
//!   Every commit that could write the same records holds that lock until it ends, so the
//!   record versions, read by the next statement with a fresh snapshot, are the newest and
//!   stay so until the commit ends; there are no serialization failures to retry.
//! - **Locks taken first, in one order**: the occurrence rows, in key order, in one
//!   statement (records are then written with no other commit of those occurrences in
//!   flight); a missing occurrence's advisory lock only by a batch of that occurrence alone,
//!   which holds no other row. The sweep's claim never waits (`SKIP LOCKED`). No deadlocks.
//! - **Expiry index.** `records.due_ns`, from [`Record::due`](crate::records::Record::due),
//!   with partial indexes. [`due`](AsyncStore::due) for the sweep (`occ_key: None`) claims
//!   its batch with `FOR UPDATE SKIP LOCKED` and a short lease (not part of the version), so
//!   several sweepers — one per service instance — take disjoint batches.
//! - **Outbox order.** Event ids are drawn while the occurrence is locked, so within one
//!   occurrence they increase in commit order.
//! - **Parsed configurations are kept** by (occurrence, config version), so a commit neither
//!   transfers nor parses one it has seen. A version number is not unique across a
//!   database's life: an occurrence dropped and created again (a dropped schema, a restored
//!   backup) starts again at version 1. [`drop_schema`](PostgresStore::drop_schema) and
//!   [`migrate`](PostgresStore::migrate) forget them; after restoring a database under
//!   running instances, restart them (or call `migrate()`).
//! - **Exact time.** Times in records are `bigint` nanoseconds since the epoch, so a hold's
//!   expiry round-trips exactly and the store's idea of "lapsed" is the rules'.
//! - **Numbered migrations.** `migrate()` reads the schema version, applies each migration
//!   after it in one transaction (under an advisory lock, so instances starting together take
//!   turns), and refuses a database newer than this code. Version 1 (seathold 0.1) is
//!   converted in place by version 2, nothing lost; versions 3 and 5 change no table (3
//!   taught the old PL/pgSQL commit function counter guards, 5 drops it), so older code
//!   refuses to reinstall its own. Stop instances of an older version before migrating: an
//!   old instance left running gets an error from every commit (its function is gone),
//!   never a wrong answer.
//!
//! Schema: see `schema.rs` (tables `occurrences`, `records`, `outbox`, `seathold_meta`; view
//! `records_readable`). Give each test its own schema on one server for isolation.

mod apply;
mod codec;
mod schema;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

use self::apply::{Answer, Answers, Configs, Session, apply_batch};
use self::codec::{event_from_row, get, occurrence_from_row, record_from_row};
use self::schema::{SCHEMA_VERSION, Statements, bootstrap_sql, functions_sql, migration, valid_schema_name};
use super::{AsyncStore, Commit, CommitError, Committed, Due, Snapshot, StoreError, validate_commit};
use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Record, RecordKey, RecordKind, Versioned, nanos};

pub use deadpool_postgres;
pub use tokio_postgres;

/// How to connect: the schema to use and the pool's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The schema holding seathold's tables: 1 to 63 lower-case ASCII letters, digits and
    /// `_`, not starting with a digit or `pg_`. Default `seathold`.
    pub schema: String,
    /// Connections in the pool (at least 1). Default 16.
    pub pool_size: usize,
    /// How long the sweep's claim on a batch of due records keeps other sweepers off it.
    /// Default 30 seconds.
    pub sweep_lease: Duration,
    /// How long to wait for a pooled connection (or a new one) before answering
    /// [`StoreError::Unavailable`]. Default 10 seconds.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "seathold".to_owned(),
            pool_size: 16,
            sweep_lease: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresOptions {
    /// The defaults, in schema `schema`.
    pub fn new(schema: impl Into<String>) -> Self {
        Self { schema: schema.into(), ..Self::default() }
    }

    /// The same options with `pool_size` connections.
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }
}

/// A PostgreSQL [`AsyncStore`]: cheap to clone (clones share the pool), `Send + Sync`. See
/// the [module docs](self) for how it keeps the store contract.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: Arc<str>,
    sql: Arc<Statements>,
    /// This store's identity as a sweeper (for the sweep lease).
    sweeper: uuid::Uuid,
    lease_ms: f64,
    combiner: Arc<Combiner>,
    /// Configurations already parsed, so a commit's lock statement need not send them.
    configs: Arc<Configs>,
}

/// Commits waiting to be sent, and how many tasks are sending batches of them.
#[derive(Debug, Default)]
struct Combiner {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    pending: Vec<Pending>,
    sending: usize,
}

#[derive(Debug)]
struct Pending {
    commit: Commit,
    reply: Reply,
}

/// Where a commit's answer goes.
type Reply = oneshot::Sender<Result<Committed, CommitError>>;

/// The most commits applied in one transaction.
const MAX_BATCH: usize = 64;

/// How many tasks send batches at once. Each batch is a transaction with one WAL flush, so
/// a few batches of many commits flush far less often than a transaction per commit. One:
/// measured against two on the hot bench, a second pipeline's batch only waits on the
/// first's row lock, and both batches come out smaller (README, PostgreSQL performance).
const IN_FLIGHT: usize = 1;

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("schema", &self.schema).field("pool", &self.pool.status()).finish()
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn bad_config(msg: String) -> StoreError {
    StoreError::Unavailable(msg.into())
}

fn store_error(e: tokio_postgres::Error) -> StoreError {
    unavailable(e)
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Connect to the database at `url` (a `postgres://` URL or a `key=value` string) with a
    /// pool of `options.pool_size` connections. One connection is opened now, so a wrong URL
    /// fails here. Does not touch the schema: call [`migrate`](Self::migrate).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL or the options are invalid or the server
    /// cannot be reached.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(unavailable)?;
        // Every guard is re-checked on the locked row at write time, so READ COMMITTED is
        // enough; pin it whatever the server's default, so no serialization failures appear.
        let mut opts = config.get_options().unwrap_or_default().to_owned();
        opts.push_str(" -c default_transaction_isolation=read\\ committed");
        config.options(opts.trim());
        if config.get_application_name().is_none() {
            config.application_name("seathold");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| bad_config(format!("cannot build the pool: {e}")))?;
        let store = Self::from_pool(pool, options)?;
        drop(store.pool.get().await.map_err(unavailable)?);
        Ok(store)
    }

    /// A store over an existing pool. The connections should use READ COMMITTED (the
    /// default); `pool_size` and `timeout` in `options` are ignored.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the schema name is not acceptable.
    pub fn from_pool(pool: Pool, options: PostgresOptions) -> Result<Self, StoreError> {
        if !valid_schema_name(&options.schema) {
            return Err(bad_config(format!(
                "schema name {:?} must be 1 to 63 lower-case ASCII letters, digits and _, \
                 not starting with a digit or pg_",
                options.schema
            )));
        }
        let lease_ms = (options.sweep_lease.as_secs_f64() * 1000.0).max(1.0);
        Ok(Self {
            sql: Arc::new(Statements::new(&options.schema)),
            schema: options.schema.into(),
            pool,
            sweeper: uuid::Uuid::new_v4(),
            lease_ms,
            combiner: Arc::default(),
            configs: Arc::default(),
        })
    }

    /// Bring the schema up to this version: create it if absent, apply every numbered
    /// migration after the database's version (converting existing data in place), and
    /// replace the functions. Idempotent, one transaction, and safe to run from several
    /// instances at once (they take turns on an advisory lock).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database failed; [`StoreError::Corrupt`] if the
    /// database's schema is newer than this code (run the newer code, or restore).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.configs.forget_all();
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
            &[&format!("seathold.migrate.{}", self.schema)],
        )
        .await
        .map_err(store_error)?;
        tx.batch_execute(&bootstrap_sql(&self.schema)).await.map_err(store_error)?;
        let row = tx
            .query_opt(&format!(r#"SELECT schema_version FROM "{}".seathold_meta"#, self.schema), &[])
            .await
            .map_err(store_error)?;
        let current: i32 = match row {
            Some(r) => get(&r, 0)?,
            None => 0,
        };
        if current > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the database's seathold schema is version {current}, newer than this code's {SCHEMA_VERSION}"
            )));
        }
        for v in (current + 1)..=SCHEMA_VERSION {
            let sql = migration(&self.schema, v)
                .ok_or_else(|| StoreError::Internal(format!("no migration to schema version {v}")))?;
            tx.batch_execute(&sql).await.map_err(store_error)?;
        }
        tx.batch_execute(&functions_sql(&self.schema)).await.map_err(store_error)?;
        tx.execute(
            &format!(
                r#"INSERT INTO "{}".seathold_meta (singleton, schema_version) VALUES (true, $1)
                   ON CONFLICT (singleton) DO UPDATE SET schema_version = EXCLUDED.schema_version"#,
                self.schema
            ),
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// The schema version this code migrates to.
    pub fn schema_version() -> i32 {
        SCHEMA_VERSION
    }

    /// Drop this store's schema and everything in it (for tests).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database failed.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        self.configs.forget_all();
        let client = self.pool.get().await.map_err(unavailable)?;
        let dropped = client
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema))
            .await
            .map_err(store_error);
        self.configs.forget_all();
        dropped
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection pool (for audits, health checks and tests).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// The next batch of queued commits. When none is queued, `None`; with `leaving`, the
    /// caller is a sending task about to end, and is no longer counted.
    fn take(&self, leaving: bool) -> Option<(Vec<Commit>, Vec<Reply>)> {
        let mut q = self.combiner.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.pending.is_empty() {
            if leaving {
                q.sending -= 1;
            }
            return None;
        }
        let n = q.pending.len().min(MAX_BATCH);
        Some(q.pending.drain(..n).map(|p| (p.commit, p.reply)).unzip())
    }

    /// Send the queued commits, a batch at a time, until none is left. Runs as its own task
    /// (at most [`IN_FLIGHT`] at once), so a caller that stops waiting never strands the
    /// others' commits.
    async fn drain(self) {
        while let Some((commits, replies)) = self.take(true) {
            self.session(commits, replies).await;
        }
    }

    /// Batches on one connection for as long as commits keep coming, each batch's first
    /// round trip sent right behind the last round trip of the one before (see
    /// [`Session::close`]): a batch costs one round trip, not two.
    async fn session(&self, mut commits: Vec<Commit>, mut replies: Vec<Reply>) {
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return self.settle(commits, replies, Err(CallError::Pool(e))),
        };
        let session = match Session::new(&client, &self.sql, &self.configs).await {
            Ok(session) => session,
            Err(e) => return self.settle(commits, replies, Err(e)),
        };
        let mut opened = session.open(&commits).await;
        let clean = loop {
            let decided = match opened {
                Ok(decided) => decided,
                Err(e) => {
                    self.settle(commits, replies, Err(e));
                    break false;
                }
            };
            let next = self.take(false);
            let mut failed = false;
            let reopened = session
                .close(decided, next.as_ref().map(|(c, _)| c.as_slice()), |closed| {
                    failed = closed.is_err();
                    self.settle(commits, replies, closed);
                })
                .await;
            match (next, reopened) {
                (Some((c, r)), Some(o)) => {
                    (commits, replies, opened) = (c, r, o);
                }
                _ => break !failed,
            }
        };
        drop(session);
        // After a failure the transaction may still be open: end it, or never hand the
        // connection out again.
        if !clean && client.batch_execute("ROLLBACK").await.is_err() {
            drop(deadpool_postgres::Object::take(client));
        }
    }

    /// Send each commit of a batch its answer. Commits the batch left undecided (their
    /// occurrence had no row), and a batch the database refused as a whole (so that one
    /// commit's trouble does not become the others'), are applied again on their own, by a
    /// task of their own: the caller may hold the next batch's locks.
    fn settle(&self, commits: Vec<Commit>, replies: Vec<Reply>, result: Result<Answers, CallError>) {
        let n = commits.len();
        let mut retry: Vec<(Commit, Reply)> = Vec::new();
        match result {
            Ok(answers) if answers.len() == n => {
                for ((commit, reply), answer) in commits.into_iter().zip(replies).zip(answers) {
                    match answer {
                        Answer::Done(r) => {
                            let _ = reply.send(r);
                        }
                        Answer::Deferred => retry.push((commit, reply)),
                    }
                }
            }
            Ok(answers) => {
                let e = format!("a batch of {n} commits got {} answers", answers.len());
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Internal(e.clone()).into()));
                }
            }
            Err(CallError::Db(e)) if n > 1 && e.as_db_error().is_some_and(|db| !transient(db)) => {
                retry.extend(commits.into_iter().zip(replies));
            }
            Err(e) => {
                for (reply, answer) in replies.into_iter().zip(e.answers(n)) {
                    let _ = reply.send(answer);
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            for (commit, reply) in retry {
                let answer = store.call_apply(std::slice::from_ref(&commit)).await;
                let answer = match answer {
                    Ok(a) if a.len() == 1 => a.into_iter().map(Answer::done).next(),
                    Ok(_) => None,
                    Err(e) => e.answers(1).into_iter().next(),
                };
                let _ = reply
                    .send(answer.unwrap_or_else(|| Err(StoreError::Internal("a commit got no answer".into()).into())));
            }
        });
    }

    /// [`apply_batch`] on a pooled connection. A connection whose transaction could not be
    /// ended after a failure is never handed out again.
    async fn call_apply(&self, commits: &[Commit]) -> Result<Answers, CallError> {
        let client = self.pool.get().await.map_err(CallError::Pool)?;
        let result = apply_batch(&client, &self.sql, &self.configs, commits).await;
        if result.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
            drop(deadpool_postgres::Object::take(client));
        }
        result
    }
}

/// Whether a server error is about the server or the session, not the commit: the
/// connection was terminated (a `FATAL` or `PANIC` report, such as an administrator's
/// `pg_terminate_backend` or a shutdown), or its SQLSTATE class is one of connection
/// exception (`08`), transaction rollback (`40`), insufficient resources (`53`), object not
/// in prerequisite state (`55`, a lock not available), operator intervention (`57`, a
/// cancelled statement, a shutdown) or system error (`58`), or it is a read-only transaction
/// (`25006`, a standby after a failover). Retrying such a commit may succeed.
fn transient(db: &tokio_postgres::error::DbError) -> bool {
    let code = db.code().code();
    matches!(db.severity(), "FATAL" | "PANIC")
        || ["08", "40", "53", "55", "57", "58"].iter().any(|class| code.starts_with(class))
        || code == "25006"
}

/// Why a batch failed as a whole.
#[derive(Debug)]
enum CallError {
    /// No connection could be had.
    Pool(deadpool_postgres::PoolError),
    /// A statement failed before the batch's `COMMIT`: refused by the database (nothing of
    /// the batch applied), or the connection was lost.
    Db(tokio_postgres::Error),
    /// The `COMMIT` was sent and its answer lost: the batch may or may not be applied.
    Unknown(tokio_postgres::Error),
    /// What the database answered could not be read.
    Store(StoreError),
}

impl CallError {
    /// The answer for a lone commit. A statement the server refused for the commit's sake
    /// (a constraint, say: not the server's or the session's trouble) means the commit is
    /// malformed for this schema; anything else is the connection.
    /// The answer for each of `n` commits of a batch that failed as a whole with `self`. A
    /// statement the server refused for the commits' sake (a constraint, say: not the
    /// server's or the session's trouble) means a commit is malformed for this schema;
    /// anything else is the connection, and each commit may or may not have been applied.
    fn answers(self, n: usize) -> Vec<Result<Committed, CommitError>> {
        let each = |e: fn(String) -> CommitError, why: String| (0..n).map(|_| Err(e(why.clone()))).collect();
        match self {
            Self::Db(e) => match e.as_db_error() {
                Some(db) if !transient(db) => {
                    each(CommitError::Invalid, format!("the database refused the commit: {db}"))
                }
                _ => Self::Db(e).shared(n),
            },
            Self::Store(StoreError::Corrupt(why)) => each(|w| StoreError::Corrupt(w).into(), why),
            Self::Store(StoreError::Internal(why)) => each(|w| StoreError::Internal(w).into(), why),
            other => other.shared(n),
        }
    }

    fn shared(self, n: usize) -> Vec<Result<Committed, CommitError>> {
        let shared = Arc::new(self);
        (0..n).map(|_| Err(StoreError::Unavailable(Box::new(SharedError(shared.clone()))).into())).collect()
    }
}

/// One failure reported to every commit of a batch.
#[derive(Debug)]
struct SharedError(Arc<CallError>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            CallError::Pool(e) => write!(f, "no connection: {e}"),
            CallError::Db(e) | CallError::Unknown(e) => fmt::Display::fmt(e, f),
            CallError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            CallError::Pool(e) => Some(e),
            CallError::Db(e) | CallError::Unknown(e) => Some(e),
            CallError::Store(e) => Some(e),
        }
    }
}

fn due_from_row(row: &tokio_postgres::Row) -> Result<Due, StoreError> {
    let occ: &str = get(row, 0)?;
    let occ_key = OccKey::new(occ).map_err(|e| StoreError::Corrupt(format!("occ_key {occ:?}: {e}")))?;
    let (_, record) = record_from_row(row, 1)?;
    Ok(Due { occ_key, record })
}

impl AsyncStore for PostgresStore {
    async fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        let kinds: Vec<&str> = keys.iter().map(|k| k.kind().as_str()).collect();
        let ids: Vec<String> = keys.iter().map(RecordKey::id).collect();
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.load).await.map_err(store_error)?;
        let rows = client.query(&stmt, &[&occ_key.as_str(), &kinds, &ids]).await.map_err(store_error)?;
        let mut snap = Snapshot { occurrence: None, records: vec![None; keys.len()] };
        for row in &rows {
            let kind: &str = get(row, 0)?;
            if kind.is_empty() {
                snap.occurrence = Some(occurrence_from_row(row, occ_key)?);
                continue;
            }
            let (key, record) = record_from_row(row, 0)?;
            match keys.iter().position(|k| k == &key) {
                Some(i) => snap.records[i] = Some(record),
                None => return Err(StoreError::Corrupt(format!("load returned {key}, not asked for"))),
            }
        }
        Ok(snap)
    }

    async fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = nanos::of(now);
        let limit = limit_of(limit);
        let client = self.client().await?;
        let rows = match occ_key {
            Some(k) => {
                let stmt = client.prepare_cached(&self.sql.due_of_occ).await.map_err(store_error)?;
                client.query(&stmt, &[&k.as_str(), &now, &limit]).await.map_err(store_error)?
            }
            None => {
                let stmt = client.prepare_cached(&self.sql.due_claim).await.map_err(store_error)?;
                let mut rows =
                    client.query(&stmt, &[&now, &limit, &self.sweeper, &self.lease_ms]).await.map_err(store_error)?;
                // UPDATE ... RETURNING does not keep the batch's order: oldest first again.
                rows.sort_by_cached_key(|r| r.try_get::<_, i64>(5).unwrap_or(i64::MAX));
                rows
            }
        };
        rows.iter().map(due_from_row).collect()
    }

    async fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after: Option<String> = after.map(RecordKey::id);
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.scan).await.map_err(store_error)?;
        let rows = client
            .query(&stmt, &[&occ_key.as_str(), &kind.as_str(), &after, &limit_of(limit)])
            .await
            .map_err(store_error)?;
        rows.iter().map(|r| record_from_row(r, 1).map(|(_, v)| v)).collect()
    }

    async fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.map_or("", OccKey::as_str);
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.occurrences).await.map_err(store_error)?;
        let rows = client.query(&stmt, &[&after, &limit_of(limit)]).await.map_err(store_error)?;
        rows.iter()
            .map(|r| {
                let k: &str = get(r, 0)?;
                OccKey::new(k).map_err(|e| StoreError::Corrupt(format!("occ_key {k:?}: {e}")))
            })
            .collect()
    }

    /// Queued, and sent with the other commits of the same occurrence waiting at the same
    /// moment in one transaction (two round trips and one WAL flush for all of them), each
    /// commit still decided and answered on its own.
    async fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        validate_commit(&commit).map_err(CommitError::Invalid)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending { commit, reply };
        let start = {
            let mut q = self.combiner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.pending.push(pending);
            let start = q.sending < IN_FLIGHT;
            if start {
                q.sending += 1;
            }
            start
        };
        if start {
            tokio::spawn(self.clone().drain());
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the commit task ended without an answer; the commit may or may not be applied".into(),
            )
            .into())
        })
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.pending).await.map_err(store_error)?;
        let rows = client.query(&stmt, &[&limit_of(limit)]).await.map_err(store_error)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Ids past i64::MAX were never issued by this store: nothing to delete for them.
        let ids: Vec<i64> = ids.iter().filter_map(|id| i64::try_from(id.0).ok()).collect();
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.ack).await.map_err(store_error)?;
        client.execute(&stmt, &[&ids]).await.map_err(store_error)?;
        Ok(())
    }
}
