//! Named regression tests for the exactly-once holes of seathold 0.1 (issue: "a paid result
//! can be both confirmed and refunded, a reused ref defeats fencing, a second charge is
//! kept"), each on MemoryStore and, with `SEATHOLD_PG_URL`, on PostgreSQL. The orderings are
//! forced through the conformance suite's gated store (`seathold::conformance::interleave`),
//! which also checks every invariant after them.

#[cfg(feature = "postgres")]
use crate::postgres_support;

use seathold::MemoryStore;
use seathold::conformance::{self, block_on, interleave};
use seathold::store::AsyncStore;

fn scenario(name: &str) -> interleave::Scenario {
    interleave::scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no standard scenario {name}"))
}

/// 2a: a `paid` for a ref that leaked before its request committed is decided as a refund
/// (no hold yet) and paused; the request commits; a redelivery confirms; the paused refund
/// then must not commit: it replays the confirmation. (0.1 answered both.)
async fn leaked_ref_refund_cannot_commit_after_the_confirmation<S: AsyncStore>(store: &S) {
    // Racers: 0 request(ann,r1), 1 paid(ann,r1,pi_1), 2 paid(ann,r1,pi_1).
    // paid#1 loads; request loads and commits; paid#2 loads and commits (confirms); paid#1's
    // stale refund commits — and must lose.
    let order = [1, 0, 0, 2, 2, 1];
    let answers = interleave::run_ordering(store, &scenario("leaked-ref"), 0, &order).await;
    assert!(answers[0].starts_with("AwaitingPayment"), "request: {}", answers[0]);
    assert_eq!(answers[2], "Confirmed { replayed: false }", "the redelivery confirms");
    assert_eq!(answers[1], "Confirmed { replayed: true }", "the paused refund replays the confirmation");
}

/// 1: ABA ref reuse is refused; a redelivered failure of the first attempt is a `Noop`; a
/// late payment of the first attempt is a refund, never the newer hold's; a second, different
/// payment is a refund signal of its own (3).
async fn aba_reuse_and_second_payments<S: AsyncStore>(store: &S) {
    conformance::check_engine_exactly_once_sequences(store).await;
}

/// 2b: the ABA interleaving: the reused ref's request, the old attempt's redelivered failure
/// and a payment under that ref race in every order; none may touch a newer hold or count
/// twice.
async fn aba_race_every_ordering<S: AsyncStore>(store: &S) {
    let report = interleave::explore(store, &scenario("aba-reuse"), None).await;
    assert!(report.exhaustive && report.schedules > 1, "{report:?}");
}

#[test]
fn memory_leaked_ref_refund_cannot_commit_after_the_confirmation() {
    block_on(leaked_ref_refund_cannot_commit_after_the_confirmation(&MemoryStore::new()));
}

#[test]
fn memory_aba_reuse_and_second_payments() {
    block_on(aba_reuse_and_second_payments(&MemoryStore::new()));
}

#[test]
fn memory_aba_race_every_ordering() {
    block_on(aba_race_every_ordering(&MemoryStore::new()));
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::postgres_support::{fresh_store, pg_url};
    use super::*;

    async fn on_postgres<F>(test: &str, f: impl AsyncFnOnce(&seathold::store::postgres::PostgresStore) -> F) {
        let Some(url) = pg_url(test) else { return };
        let store = fresh_store(&url, "once", 4).await;
        f(&store).await;
        store.drop_schema().await.expect("drop the test schema");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_leaked_ref_refund_cannot_commit_after_the_confirmation() {
        on_postgres("postgres_leaked_ref", async |s| leaked_ref_refund_cannot_commit_after_the_confirmation(s).await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_aba_reuse_and_second_payments() {
        on_postgres("postgres_aba_reuse", async |s| aba_reuse_and_second_payments(s).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_aba_race_every_ordering() {
        on_postgres("postgres_aba_race", async |s| aba_race_every_ordering(s).await).await;
    }
}
