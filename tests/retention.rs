//! Retention: `prune` forgets ended state older than a horizon, exactly as documented on
//! `AsyncEngine::prune`, and within the horizon every payment is still accounted exactly
//! once (a property test with pruning running throughout).

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, NoHoldReason, OccKey, PaymentResult, ProviderRef, Ref};
use seathold::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use seathold::settlement::Settlement;
use seathold::{Engine, ManualClock, MemoryStore, OpError, Pruned};
use time::Duration;
use time::macros::datetime;

type E = Engine<MemoryStore, Arc<ManualClock>>;

fn setup(capacity: u32) -> (E, Arc<ManualClock>, OccKey) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let engine = Engine::with_clock(MemoryStore::new(), clock.clone());
    let gig = OccKey::new("gig").unwrap();
    engine.open(&gig, OccurrenceConfig::new(capacity, 60).unwrap()).unwrap();
    (engine, clock, gig)
}

fn req(gig: &OccKey, who: &str, r: &str) -> HoldRequest {
    HoldRequest::new(
        gig.clone(),
        ActorId::new(who).unwrap(),
        Ref::new(r).unwrap(),
        Money::parse("5.00", "EUR").unwrap(),
    )
}

fn paid(gig: &OccKey, who: &str, r: &str, p: &str) -> PaymentResult {
    PaymentResult::paid(gig.clone(), ActorId::new(who).unwrap(), Ref::new(r).unwrap())
        .with_provider_ref(ProviderRef::new(p).unwrap())
}

#[test]
fn prune_forgets_exactly_what_its_docs_say() {
    let (e, clock, gig) = setup(10);
    // ann pays (kept), bob's hold is released, cat's expires, zed pays for nothing (refund).
    e.request(&req(&gig, "ann", "a1")).unwrap();
    assert_eq!(e.settle(&paid(&gig, "ann", "a1", "pi_a")).unwrap(), Settlement::Confirmed { replayed: false });
    e.request(&req(&gig, "bob", "b1")).unwrap();
    let failed = PaymentResult::failed(gig.clone(), ActorId::new("bob").unwrap(), Ref::new("b1").unwrap());
    assert_eq!(e.settle(&failed).unwrap(), Settlement::Released);
    e.request(&req(&gig, "cat", "c1")).unwrap();
    let refund = e.settle(&paid(&gig, "zed", "z1", "pi_z")).unwrap();
    assert!(matches!(refund, Settlement::PaidButNoHold { replayed: false, .. }));
    clock.advance(Duration::seconds(61));
    assert_eq!(e.expire_due(10).unwrap(), 1);

    // Nothing is old enough yet: nothing is pruned, everything replays.
    let now = clock.as_ref().now_for_test();
    assert_eq!(e.prune(&gig, now - Duration::days(1)).unwrap(), Pruned::default());
    assert!(e.settle(&paid(&gig, "zed", "z1", "pi_z")).unwrap().is_replay());

    clock.advance(Duration::days(2));
    let horizon = clock.as_ref().now_for_test() - Duration::days(1);
    let pruned = e.prune(&gig, horizon).unwrap();
    assert_eq!(pruned, Pruned { bookings: 2, payments: 1, rejections: 0, op_keys: 0 }, "b1, c1 and zed's refund");
    // Kept: the sale still replays, and ann still holds her booking.
    assert_eq!(e.settle(&paid(&gig, "ann", "a1", "pi_a")).unwrap(), Settlement::Confirmed { replayed: true });
    assert!(e.booking(&gig, &Ref::new("a1").unwrap()).unwrap().is_some());
    // Forgotten: a pruned hold's ref is free again; a redelivery of a pruned refund is judged
    // afresh — a second refund signal (hence: choose a horizon past the provider's retries).
    assert!(e.booking(&gig, &Ref::new("b1").unwrap()).unwrap().is_none());
    assert!(matches!(e.request(&req(&gig, "dan", "b1")).unwrap(), RequestOutcome::AwaitingPayment { .. }));
    match e.settle(&paid(&gig, "zed", "z1", "pi_z")).unwrap() {
        Settlement::PaidButNoHold { refund, replayed: false } => assert_eq!(refund.reason, NoHoldReason::NoHold),
        other => panic!("past the horizon a redelivered refund is a new signal: {other:?}"),
    }
    // The ledger keeps the accounting of what was kept.
    assert!(e.ledger(&gig).unwrap().entries.iter().any(|l| l.hold_ref.as_str() == "a1"));
}

trait NowForTest {
    fn now_for_test(&self) -> time::OffsetDateTime;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> time::OffsetDateTime {
        seathold::Clock::now(self)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Request(u8, u8),
    Pay(u8, u8, u8),
    Fail(u8, u8),
    /// Redeliver the n-th payment sent so far (if it is within the horizon).
    Redeliver(usize),
    Advance(u16),
    Sweep,
    Prune,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..30).prop_map(|(a, r)| Op::Request(a, r)),
        4 => (0u8..6, 0u8..30, 0u8..2).prop_map(|(a, r, p)| Op::Pay(a, r, p)),
        2 => (0u8..6, 0u8..30).prop_map(|(a, r)| Op::Fail(a, r)),
        4 => (0usize..64).prop_map(Op::Redeliver),
        2 => (1u16..400).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => Just(Op::Prune),
    ]
}

/// Within the horizon, pruning changes nothing of invariant 3: every payment redelivered
/// within `HORIZON` of its first delivery is answered as a replay of the first answer.
#[test]
fn within_the_horizon_every_payment_is_accounted_once() {
    const HORIZON_SECS: i64 = 600;
    let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
    let steps = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(op(), 1..200), |ops| {
            let (e, clock, gig) = setup(4);
            // payment identity -> (first answer, when first answered)
            let mut sent: Vec<(String, String, String)> = Vec::new();
            let mut first: BTreeMap<(String, String, String), (Settlement, time::OffsetDateTime)> = BTreeMap::new();
            for op in ops {
                steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let now = seathold::Clock::now(clock.as_ref());
                match op {
                    Op::Request(a, r) => match e.request(&req(&gig, &format!("a{a}"), &format!("r{r}"))) {
                        Ok(_) | Err(OpError::Refused(RequestRefusal::RefUsed | RequestRefusal::RequestChanged)) => {}
                        Err(err) => prop_assert!(false, "request: {err}"),
                    },
                    Op::Pay(a, r, p) => {
                        let id = (format!("a{a}"), format!("r{r}"), format!("pi_{r}_{p}"));
                        let s = e.settle(&paid(&gig, &id.0, &id.1, &id.2)).unwrap();
                        match first.get(&id) {
                            Some((f, at)) if now - *at <= Duration::seconds(HORIZON_SECS) => {
                                prop_assert!(s.is_replay() && same(&s, f), "{id:?}: {s:?} after {f:?}");
                            }
                            Some(_) => {
                                // Past the horizon: allowed to be judged afresh (documented).
                                // A replay still counts from the record's first accounting.
                                if !s.is_replay() {
                                    first.insert(id.clone(), (s, now));
                                }
                            }
                            None => {
                                prop_assert!(!s.is_replay(), "{id:?}: a first delivery replayed {s:?}");
                                first.insert(id.clone(), (s, now));
                                sent.push(id);
                            }
                        }
                    }
                    Op::Fail(a, r) => {
                        // Any answer: failures account nothing (invariant 3 is about `paid`).
                        let _ = e
                            .settle(&PaymentResult::failed(
                                gig.clone(),
                                ActorId::new(format!("a{a}")).unwrap(),
                                Ref::new(format!("r{r}")).unwrap(),
                            ))
                            .unwrap();
                    }
                    Op::Redeliver(n) => {
                        if let Some(id) = sent.get(n % sent.len().max(1)).cloned() {
                            let (f, at) = first[&id].clone();
                            if now - at <= Duration::seconds(HORIZON_SECS) {
                                let s = e.settle(&paid(&gig, &id.0, &id.1, &id.2)).unwrap();
                                prop_assert!(s.is_replay() && same(&s, &f), "{id:?}: {s:?} after {f:?}");
                            }
                        }
                    }
                    Op::Advance(secs) => clock.advance(Duration::seconds(i64::from(secs))),
                    Op::Sweep => {
                        e.expire_due(100).unwrap();
                    }
                    Op::Prune => {
                        e.prune(&gig, now - Duration::seconds(HORIZON_SECS)).unwrap();
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let steps = steps.into_inner();
    println!("retention property: {steps} steps");
    assert!(steps > 10_000);
}

fn same(a: &Settlement, b: &Settlement) -> bool {
    match (a, b) {
        (Settlement::Confirmed { .. }, Settlement::Confirmed { .. }) => true,
        (Settlement::PaidButNoHold { refund: x, .. }, Settlement::PaidButNoHold { refund: y, .. }) => {
            x.reason == y.reason
        }
        _ => false,
    }
}
