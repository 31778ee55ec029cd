//! Shared by the PostgreSQL tests: where the server is, and a fresh schema per test.
//!
//! The tests read `SEATHOLD_PG_URL`. Without it they fail when `CI` is set, and otherwise
//! print a loud skip message and pass; `scripts/with-postgres.sh cargo test --all-features`
//! runs them against a throwaway server.
#![allow(dead_code, unreachable_pub)]

pub mod audit;
pub mod race;
pub mod server;
pub mod sharded;

use seathold::store::postgres::{PostgresOptions, PostgresStore};

/// The server's URL, or `None` (after a loud message) when the test must be skipped.
///
/// # Panics
/// When `SEATHOLD_PG_URL` is missing and `CI` is set: CI must run these tests.
pub fn pg_url(test: &str) -> Option<String> {
    if let Some(url) = std::env::var("SEATHOLD_PG_URL").ok().filter(|u| !u.trim().is_empty()) {
        return Some(url);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "{test}: SEATHOLD_PG_URL is not set, and CI is: the PostgreSQL tests must run in CI. \
             Run them as `scripts/with-postgres.sh cargo test --all-features`."
        );
    }
    eprintln!(
        "\n\
         ************************************************************************\n\
         *  SKIPPED {test}: SEATHOLD_PG_URL is not set, so this PostgreSQL test\n\
         *  did NOT run. Run: scripts/with-postgres.sh cargo test --all-features\n\
         ************************************************************************\n"
    );
    None
}

/// A schema name no other test uses: `prefix` and 12 random hex digits.
pub fn fresh_schema(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A store on a fresh, migrated schema.
pub async fn fresh_store(url: &str, prefix: &str, pool_size: usize) -> PostgresStore {
    store_in(url, &fresh_schema(prefix), pool_size).await
}

/// `url` with asynchronous commit for its sessions: a commit is acknowledged before its WAL
/// flush. For tests of logic that run thousands of commits one after another (every ordering
/// of a race), where the flush would be most of the time and proves nothing: what a crash
/// keeps is the crash test's subject (`tests/postgres_crash.rs`), with synchronous commit on.
pub fn without_waiting_for_flush(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20synchronous_commit%3Doff")
    } else {
        format!("{url} options='-c synchronous_commit=off'")
    }
}

/// A store on `schema`, migrated.
pub async fn store_in(url: &str, schema: &str, pool_size: usize) -> PostgresStore {
    store_with(url, PostgresOptions::new(schema).with_pool_size(pool_size)).await
}

/// A store with these options, migrated.
pub async fn store_with(url: &str, options: PostgresOptions) -> PostgresStore {
    let schema = options.schema.clone();
    let store = PostgresStore::connect(url, options).await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    store.migrate().await.unwrap_or_else(|e| panic!("migrate {schema}: {e}"));
    store
}

/// `url` with `application_name` set, so a test can find (and kill) its own connections.
pub fn with_app_name(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}
