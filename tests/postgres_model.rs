//! The model-based property test (`common/model.rs`) on `PostgresStore`: a shorter run (20
//! cases) against a real server, each case on a fresh schema. Needs `SEATHOLD_PG_URL` (see
//! `postgres_support`); without it the test prints a loud skip message and passes (and
//! fails under `CI`).

use crate::common;
use crate::model_support as model;
use crate::postgres_support;

use std::future::Future;

use seathold::store::postgres::PostgresStore;

/// Drives the engine's futures on a tokio runtime (the store's pool lives on it).
struct Tokio(tokio::runtime::Runtime);

impl model::Exec for Tokio {
    fn run<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
}

#[test]
fn postgres_engine_matches_reference_model() {
    let Some(url) = postgres_support::pg_url("postgres_engine_matches_reference_model") else { return };
    let rt = Tokio(tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));
    let params = model::Params {
        label: "model (postgres)",
        cases: 20,
        max_ops: 300,
        min_steps: 500,
        check_coverage: false,
        read_cache: Some(10_000),
    };
    let fresh = || -> PostgresStore { rt.0.block_on(postgres_support::fresh_store(&url, "model", 2)) };
    model::run_model(&params, &rt, fresh);
}

/// At an occurrence with the rejection alarm, a `paid` result whose money differs from a live
/// hold's is `Rejected` and leaves a record (its `payment_rejected` alarm is raised once).
/// The next `paid` delivery for the same (ref, actor, provider ref) loads that record — and
/// `PostgresStore` could not read it back (`RecordKind::parse` did not know `"rejection"`):
/// the correct payment answered `Store(Corrupt("record kind \"rejection\""))` instead of
/// confirming the hold. Found by the model on PostgreSQL.
#[test]
fn postgres_a_correct_payment_after_a_rejected_one_confirms() {
    use seathold::catalogue::OccurrenceConfig;
    use seathold::contract::{ActorId, Amount, Currency, Money, OccKey, PaymentResult, Ref};
    use seathold::holds::{HoldRequest, RequestOutcome};
    use seathold::settlement::Settlement;
    use seathold::{AsyncEngine, ManualClock};

    let Some(url) = postgres_support::pg_url("postgres_a_correct_payment_after_a_rejected_one_confirms") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = postgres_support::fresh_store(&url, "model_rejected", 2).await;
        let engine = AsyncEngine::with_clock(store, ManualClock::new(common::start()));
        let gig = OccKey::new("gig").unwrap();
        engine.open(&gig, OccurrenceConfig::new(1, 60).unwrap().with_rejection_alarm(true)).await.unwrap();
        let (ann, r1) = (ActorId::new("ann").unwrap(), Ref::new("r1").unwrap());
        let req = HoldRequest::new(gig.clone(), ann.clone(), r1.clone(), Money::parse("25.00", "EUR").unwrap());
        assert!(matches!(engine.request(&req).await, Ok(RequestOutcome::AwaitingPayment { .. })));
        let paid = |amount: &str| {
            PaymentResult::paid(gig.clone(), ann.clone(), r1.clone())
                .with_money(Amount::parse(amount).unwrap(), Currency::parse("EUR").unwrap())
        };
        let wrong = engine.settle(&paid("24.00")).await.unwrap();
        assert!(matches!(wrong, Settlement::Rejected { .. }), "{wrong:?}");
        let right = engine.settle(&paid("25.00")).await;
        assert!(matches!(right, Ok(Settlement::Confirmed { replayed: false })), "the correct payment: {right:?}");
    });
}
