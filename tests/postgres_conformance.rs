//! `PostgresStore` passes the same generic conformance suite as `MemoryStore`, each check on
//! a fresh, empty schema of one live server (`SEATHOLD_PG_URL`).

mod postgres_support;

use postgres_support::{fresh_store, pg_url};
use seathold::store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(url) = pg_url("postgres_store_passes_the_conformance_suite") else {
        return;
    };
    let mut made = Vec::new();
    conformance::run_all(async || {
        let store = fresh_store(&url, "conf", 4).await;
        made.push(store.clone());
        store
    })
    .await;
    for store in made {
        store.drop_schema().await.expect("drop the test schema");
    }
}
