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
//! - **One round trip per commit, one transaction per batch.** `migrate()` creates a
//!   PL/pgSQL function, `seathold_commit`, that applies whole [`Commit`]s in one statement,
//!   so in one transaction. The commits of one occurrence that wait at the same moment are
//!   sent together (a lone one alone): every commit of an occurrence writes its counters row,
//!   and a row lock is held until the WAL flush, so one commit per transaction would cap a hot
//!   occurrence at one commit per flush. Each commit of a batch is still applied or refused
//!   on its own: its guards are checked first, on rows it has locked, and only then does it
//!   write. A failed guard answers a custom code (`SH001`..`SH004`, mapped to
//!   [`CommitError::Conflict`]); a connection or I/O failure is [`StoreError::Unavailable`]
//!   (the commit may or may not have been applied; retrying the whole operation is safe).
//!   [`load`](AsyncStore::load) is one query (LEFT JOINs of the occurrence, the hold and the
//!   settlement record).
//! - **Guards on O(1) rows, at write time.** The occurrence row carries the counters; a
//!   commit locks it and applies `held + dh`, `confirmed + dc`, refusing one that admits seats
//!   ([`Commit::admits_seats`]: a positive net change, or a hold placed) unless
//!   `held + confirmed + dh + dc <= capacity`; a hold row is written only at the version the
//!   commit expects (an INSERT for a new one, refused if it exists); a settlement record is
//!   inserted only if absent on its key (occ_key, actor, ref); events go to an outbox with a
//!   `bigserial` id. No operation reads a whole occurrence.
//! - **READ COMMITTED is enough** (the store sets it on each connection, whatever the
//!   server's default): every guard is checked on rows the commit has locked (`FOR UPDATE`),
//!   and a locking read in READ COMMITTED returns the newest committed version of the row
//!   after waiting for its lock. A guard can therefore never pass against a stale row, and
//!   there are no serialization failures to retry.
//! - **A fixed lock order**: the occurrence row first, whenever counters or holds are
//!   written (so the commits of one occurrence queue on one row, for microseconds), then the
//!   holds in actor order. The sweep's claim never waits (`SKIP LOCKED`). No deadlocks.
//! - **Expiry index.** Partial indexes on held holds only, by `(expires_at)` and by
//!   `(occ_key, expires_at)`. [`lapsed_holds`](AsyncStore::lapsed_holds) for the sweep
//!   (`occ_key: None`) claims its batch with `FOR UPDATE SKIP LOCKED` and a short lease
//!   (`sweep_claimed_until`, not part of the hold's version), so several sweepers — one per
//!   service instance — take disjoint batches; a store sees its own claims again, so a sweep
//!   retried after an error finds what it had.
//! - **Outbox order.** Event ids are drawn while the occurrence row is locked, so within one
//!   occurrence they increase in commit order.
//! - **Exact time.** Timestamps are stored as `bigint` nanoseconds since the epoch, so a
//!   hold's `expires_at` round-trips exactly and the store's idea of "lapsed" is the rules'.
//!   The range is 1677 to 2262; a commit with a time outside it is refused with
//!   [`StoreError::Corrupt`] before anything is sent.
//!
//! Schema: `migrate()` creates, in the schema named by [`PostgresOptions::schema`], the tables
//! `occurrences`, `holds`, `settlements`, `outbox` and `seathold_meta`, the function
//! `seathold_commit`, and a view `holds_readable` with the times as `timestamptz`. Give each
//! test its own schema on one server for isolation.

mod codec;
mod schema;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

use self::codec::{CommitParams, event_from_row, get, hold_from_row, lapsed_from_row, to_ns};
use self::schema::{
    SQLSTATE_CAPACITY, SQLSTATE_HOLD_CHANGED, SQLSTATE_SETTLEMENT_EXISTS, SQLSTATE_UNKNOWN_OCCURRENCE, Statements,
    schema_sql, valid_schema_name,
};
use super::{AsyncStore, Commit, CommitError, Conflict, LoadRequest, Snapshot, StoreError, Versioned};
use crate::contract::{ActorId, EventId, OccKey, OutboxEvent};
use crate::holds::Hold;

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
    /// How long the sweep's claim on a batch of lapsed holds keeps other sweepers off it.
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
}

/// Commits waiting to be sent, by occurrence. An occurrence has an entry while a task is
/// sending its commits (one batch at a time: they would queue on its row lock anyway).
#[derive(Debug, Default)]
struct Combiner {
    queues: Mutex<HashMap<String, Vec<Pending>>>,
}

#[derive(Debug)]
struct Pending {
    params: CommitParams,
    reply: oneshot::Sender<Result<(), CommitError>>,
}

/// The most commits sent in one `seathold_commit` call.
const MAX_BATCH: usize = 64;

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

/// A database error as a store error; for a commit, a failed guard as its conflict.
fn commit_error(e: tokio_postgres::Error) -> CommitError {
    let Some(db) = e.as_db_error() else {
        return unavailable(e).into();
    };
    let conflict = match db.code().code() {
        SQLSTATE_CAPACITY => Conflict::Capacity,
        SQLSTATE_HOLD_CHANGED => match db.detail().map(ActorId::new) {
            Some(Ok(actor)) => Conflict::HoldChanged { actor },
            _ => return StoreError::Corrupt(format!("hold conflict without an actor: {db}")).into(),
        },
        SQLSTATE_SETTLEMENT_EXISTS => Conflict::SettlementExists,
        SQLSTATE_UNKNOWN_OCCURRENCE => Conflict::UnknownOccurrence,
        _ => return unavailable(e).into(),
    };
    conflict.into()
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
        })
    }

    /// Create the schema, tables, indexes and the commit function if absent, and replace the
    /// function with this version's. Idempotent, and safe to run from several instances at
    /// once (they take turns on an advisory lock).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database failed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
            &[&format!("seathold.migrate.{}", self.schema)],
        )
        .await
        .map_err(store_error)?;
        tx.batch_execute(&schema_sql(&self.schema)).await.map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// Drop this store's schema and everything in it (for tests).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database failed.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.schema)).await.map_err(store_error)
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

    /// Send one occurrence's queued commits, a batch at a time, until none is left. Runs as
    /// its own task, so a caller that stops waiting never strands the others' commits.
    async fn drain(self, occ: String, first: Pending) {
        let mut batch = vec![first];
        loop {
            self.send_batch(batch).await;
            let mut queues = self.combiner.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(pending) = queues.get_mut(&occ) else { return };
            if pending.is_empty() {
                queues.remove(&occ);
                return;
            }
            let n = pending.len().min(MAX_BATCH);
            batch = pending.drain(..n).collect();
        }
    }

    /// One `seathold_commit` call for the batch; every commit gets its own answer.
    async fn send_batch(&self, mut batch: Vec<Pending>) {
        let merged;
        let params = if batch.len() == 1 {
            &batch[0].params
        } else {
            let mut m = CommitParams::default();
            for p in &batch {
                m.append(&p.params);
            }
            merged = m;
            &merged
        };
        match self.call_commit(params).await {
            Ok(answers) if answers.len() == batch.len() => {
                for (p, answer) in batch.into_iter().zip(answers) {
                    let _ = p.reply.send(answer);
                }
            }
            Ok(answers) => {
                let e = format!("seathold_commit answered {} codes for {} commits", answers.len(), batch.len());
                for p in batch {
                    let _ = p.reply.send(Err(StoreError::Corrupt(e.clone()).into()));
                }
            }
            // The database refused the statement, so nothing of the batch was applied: one
            // commit's trouble must not become the others', so send them one by one.
            Err(CallError::Db(e)) if batch.len() > 1 && e.as_db_error().is_some() => {
                for p in batch {
                    let answer = match self.call_commit(&p.params).await {
                        Ok(mut a) if a.len() == 1 => a.remove(0),
                        Ok(_) => Err(StoreError::Corrupt("seathold_commit answered no code".into()).into()),
                        Err(CallError::Db(e)) => Err(commit_error(e)),
                        Err(CallError::Pool(e)) => Err(unavailable(e).into()),
                    };
                    let _ = p.reply.send(answer);
                }
            }
            Err(CallError::Db(e)) if batch.len() == 1 => {
                let _ = batch.remove(0).reply.send(Err(commit_error(e)));
            }
            // Lost connection and the like: each commit may or may not have been applied.
            Err(e) => {
                let shared = Arc::new(e);
                for p in batch {
                    let _ = p.reply.send(Err(StoreError::Unavailable(Box::new(SharedError(shared.clone()))).into()));
                }
            }
        }
    }

    async fn call_commit(&self, params: &CommitParams) -> Result<Vec<Result<(), CommitError>>, CallError> {
        let client = self.pool.get().await.map_err(CallError::Pool)?;
        let stmt = client.prepare_cached(&self.sql.commit).await.map_err(CallError::Db)?;
        let row = client.query_one(&stmt, &params.as_params()).await.map_err(CallError::Db)?;
        let codes: Vec<String> = row.try_get(0).map_err(CallError::Db)?;
        Ok(codes.iter().map(|code| answer_of(code)).collect())
    }
}

/// Why a `seathold_commit` call failed.
#[derive(Debug)]
enum CallError {
    /// No connection could be had.
    Pool(deadpool_postgres::PoolError),
    /// The call failed: refused by the database, or the connection was lost.
    Db(tokio_postgres::Error),
}

/// A commit's answer from its code in `seathold_commit`'s result.
fn answer_of(code: &str) -> Result<(), CommitError> {
    let (state, detail) = match code.split_once(':') {
        Some((s, d)) => (s, Some(d)),
        None => (code, None),
    };
    let conflict = match state {
        "" => return Ok(()),
        SQLSTATE_CAPACITY => Conflict::Capacity,
        SQLSTATE_HOLD_CHANGED => match detail.map(ActorId::new) {
            Some(Ok(actor)) => Conflict::HoldChanged { actor },
            _ => return Err(StoreError::Corrupt(format!("hold conflict without an actor: {code:?}")).into()),
        },
        SQLSTATE_SETTLEMENT_EXISTS => Conflict::SettlementExists,
        SQLSTATE_UNKNOWN_OCCURRENCE => Conflict::UnknownOccurrence,
        other => return Err(StoreError::Corrupt(format!("unknown commit code {other:?}")).into()),
    };
    Err(conflict.into())
}

/// One failure reported to every commit of a batch.
#[derive(Debug)]
struct SharedError(Arc<CallError>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            CallError::Pool(e) => write!(f, "no connection: {e}"),
            CallError::Db(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            CallError::Pool(e) => Some(e),
            CallError::Db(e) => Some(e),
        }
    }
}

impl AsyncStore for PostgresStore {
    async fn load(&self, req: LoadRequest<'_>) -> Result<Snapshot, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.load).await.map_err(store_error)?;
        let actor = req.actor.map(ActorId::as_str);
        let settlement_ref = req.actor.and(req.settlement_ref).map(|r| r.as_str());
        let row =
            client.query_one(&stmt, &[&req.occ_key.as_str(), &actor, &settlement_ref]).await.map_err(store_error)?;
        let occurrence = codec::occurrence_from_row(&row, 0, req.occ_key)?;
        let hold = hold_from_row(&row, 4, req.occ_key)?;
        let settlement = match (req.actor, req.settlement_ref) {
            (Some(a), Some(r)) => codec::settlement_from_row(&row, 15, req.occ_key, a, r)?,
            _ => None,
        };
        Ok(Snapshot { occurrence, hold, settlement })
    }

    async fn lapsed_holds(
        &self,
        occ_key: Option<&OccKey>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Versioned<Hold>>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = to_ns(now)?;
        let limit = limit_of(limit);
        let client = self.client().await?;
        let rows = match occ_key {
            Some(k) => {
                let stmt = client.prepare_cached(&self.sql.lapsed_of_occ).await.map_err(store_error)?;
                client.query(&stmt, &[&k.as_str(), &now, &limit]).await.map_err(store_error)?
            }
            None => {
                let stmt = client.prepare_cached(&self.sql.lapsed_claim).await.map_err(store_error)?;
                let mut rows =
                    client.query(&stmt, &[&now, &limit, &self.sweeper, &self.lease_ms]).await.map_err(store_error)?;
                // UPDATE ... RETURNING does not keep the batch's order: oldest first again.
                rows.sort_by_cached_key(|r| r.try_get::<_, i64>(9).unwrap_or(i64::MAX));
                rows
            }
        };
        rows.iter().map(lapsed_from_row).collect()
    }

    async fn lapsed_seats(&self, occ_key: &OccKey, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = to_ns(now)?;
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.lapsed_seats).await.map_err(store_error)?;
        let row = client.query_one(&stmt, &[&occ_key.as_str(), &now]).await.map_err(store_error)?;
        let seats: i64 = get(&row, 0)?;
        u64::try_from(seats).map_err(|_| StoreError::Corrupt(format!("lapsed seats {seats}")))
    }

    /// Queued, and sent with the other commits waiting at the same moment in one
    /// `seathold_commit` call (one round trip, one transaction, one WAL flush for all of
    /// them), each commit still applied or refused on its own.
    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let params = CommitParams::new(&commit)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending { params, reply };
        let first = {
            let mut queues = self.combiner.queues.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.entry(commit.occ_key.as_str().to_owned()) {
                Entry::Occupied(mut e) => {
                    e.get_mut().push(pending);
                    None
                }
                Entry::Vacant(e) => {
                    e.insert(Vec::new());
                    Some(pending)
                }
            }
        };
        if let Some(first) = first {
            tokio::spawn(self.clone().drain(commit.occ_key.as_str().to_owned(), first));
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
