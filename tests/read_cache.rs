//! The read cache never changes an outcome, even stale: the same random sequence of
//! operations is run (a) through three engines with read caches taking turns over one store
//! — so each engine's cache goes stale whenever another engine writes — and (b) through one
//! engine without a cache over another store. Every answer, and the whole outbox (ids
//! included), must be the same; and the caches must have been both hit and missed.
//! (`tests/model.rs` runs the reference model through one cached engine as well.)

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use seathold::catalogue::{Line, OccurrenceConfig, Tier};
use seathold::contract::{ActorId, Money, OccKey, PaymentResult, ProviderRef, Ref, TierName};
use seathold::holds::HoldRequest;
use seathold::{Engine, ManualClock, MemoryStore};
use time::Duration;
use time::macros::datetime;

#[derive(Debug, Clone)]
enum Op {
    Request { occ: usize, actor: usize, r: usize, qty: u32 },
    Pay { occ: usize, actor: usize, r: usize, pi: usize },
    Fail { occ: usize, actor: usize, r: usize },
    Cancel { occ: usize, r: usize },
    Join { occ: usize, actor: usize },
    Abandon { occ: usize, actor: usize, r: usize },
    Advance(i64),
    Sweep,
    Reopen { occ: usize, capacity: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    let occ = 0..3usize;
    prop_oneof![
        4 => (occ.clone(), 0..4usize, 0..6usize, 1..3u32).prop_map(|(occ, actor, r, qty)| Op::Request { occ, actor, r, qty }),
        4 => (occ.clone(), 0..4usize, 0..6usize, 0..2usize).prop_map(|(occ, actor, r, pi)| Op::Pay { occ, actor, r, pi }),
        1 => (occ.clone(), 0..4usize, 0..6usize).prop_map(|(occ, actor, r)| Op::Fail { occ, actor, r }),
        1 => (occ.clone(), 0..6usize).prop_map(|(occ, r)| Op::Cancel { occ, r }),
        1 => (occ.clone(), 0..4usize).prop_map(|(occ, actor)| Op::Join { occ, actor }),
        1 => (occ.clone(), 0..4usize, 0..6usize).prop_map(|(occ, actor, r)| Op::Abandon { occ, actor, r }),
        1 => (1..40i64).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => (occ, 1..6u32).prop_map(|(occ, capacity)| Op::Reopen { occ, capacity }),
    ]
}

fn key(occ: usize) -> OccKey {
    OccKey::new(format!("show-{occ}")).unwrap()
}

/// Occurrence 0 is Part 1; 1 allows repeat purchases with a waiting list; 2 has tiers.
fn config(occ: usize, capacity: u32) -> OccurrenceConfig {
    let base = OccurrenceConfig::new(capacity, 30).unwrap();
    match occ {
        0 => base,
        1 => base.with_max_per_actor(4).with_offer_ttl_secs(20).unwrap(),
        _ => base.with_tiers(vec![Tier::new(TierName::new("std").unwrap(), Money::parse("10.00", "EUR").unwrap())]),
    }
}

type Eng = Engine<Arc<MemoryStore>, Arc<ManualClock>>;

/// One operation, its answer as text.
fn perform(e: &Eng, clock: &ManualClock, op: &Op) -> String {
    let actor = |a: usize| ActorId::new(format!("a{a}")).unwrap();
    let r = |occ: usize, r: usize| Ref::new(format!("r{occ}-{r}")).unwrap();
    match op {
        Op::Request { occ, actor: a, r: n, qty } => {
            let req = if *occ == 2 {
                HoldRequest::lines(
                    key(*occ),
                    actor(*a),
                    r(*occ, *n),
                    vec![Line { tier: TierName::new("std").unwrap(), quantity: *qty }],
                )
            } else {
                HoldRequest::new(key(*occ), actor(*a), r(*occ, *n), Money::parse("25.00", "EUR").unwrap())
                    .with_quantity(*qty)
            };
            format!("{:?}", e.request(&req))
        }
        Op::Pay { occ, actor: a, r: n, pi } => {
            let p = PaymentResult::paid(key(*occ), actor(*a), r(*occ, *n))
                .with_provider_ref(ProviderRef::new(format!("pi-{pi}")).unwrap());
            format!("{:?}", e.settle(&p))
        }
        Op::Fail { occ, actor: a, r: n } => {
            format!("{:?}", e.settle(&PaymentResult::failed(key(*occ), actor(*a), r(*occ, *n))))
        }
        Op::Cancel { occ, r: n } => format!("{:?}", e.cancel(&key(*occ), &r(*occ, *n), None)),
        Op::Join { occ, actor: a } => format!("{:?}", e.join_waitlist(&key(*occ), &actor(*a), None, 1)),
        Op::Abandon { occ, actor: a, r: n } => format!("{:?}", e.abandon(&key(*occ), &actor(*a), &r(*occ, *n))),
        Op::Advance(s) => {
            clock.advance(Duration::seconds(*s));
            String::new()
        }
        // How many the sweep found left to expire depends on who met the lapsed holds first
        // (see the end of the test); that it worked is the answer compared.
        Op::Sweep => format!("{:?}", e.expire_due(usize::MAX).map(|_| "swept")),
        Op::Reopen { occ, capacity } => format!("{:?}", e.open(&key(*occ), config(*occ, *capacity))),
    }
}

#[test]
fn stale_read_caches_change_no_outcome() {
    let mut runner = TestRunner::new(Config { cases: 1000, failure_persistence: None, ..Config::default() });
    let (hits, misses) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    runner
        .run(&prop::collection::vec((0..3usize, op()), 1..120), |ops| {
            let t0 = datetime!(2026-12-01 19:00 UTC);
            let (cached_clock, plain_clock) = (Arc::new(ManualClock::new(t0)), Arc::new(ManualClock::new(t0)));
            let shared = Arc::new(MemoryStore::new());
            let cached: Vec<Eng> = (0..3)
                .map(|_| Engine::with_clock(shared.clone(), cached_clock.clone()).with_read_cache(1_000))
                .collect();
            let plain: Eng = Engine::with_clock(Arc::new(MemoryStore::new()), plain_clock.clone());
            for (occ, e) in cached.iter().enumerate() {
                let open = Op::Reopen { occ, capacity: 3 };
                prop_assert_eq!(perform(e, &cached_clock, &open), perform(&plain, &plain_clock, &open));
            }
            for (step, (who, op)) in ops.iter().enumerate() {
                let got = perform(&cached[*who], &cached_clock, op);
                let want = perform(&plain, &plain_clock, op);
                prop_assert_eq!(got, want, "step {} ({:?} through engine {})", step, op, who);
            }
            // Let everything lapse and be swept, then compare what happened to whom. Not the
            // event order: who meets a lapsed hold first and expires it (a request that
            // needed its seats, or the sweep) may differ — a cached view, which counts no
            // seats, never needs to — and a lapsed hold is expired by whatever meets it first.
            let finish = Op::Advance(10_000);
            perform(&cached[0], &cached_clock, &finish);
            perform(&plain, &plain_clock, &finish);
            prop_assert_eq!(perform(&cached[1], &cached_clock, &Op::Sweep), perform(&plain, &plain_clock, &Op::Sweep));
            let happened = |e: &Eng| -> Vec<String> {
                let mut v: Vec<String> = e
                    .pending_events(usize::MAX)
                    .unwrap()
                    .iter()
                    .map(|ev| {
                        let j: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
                        format!("{} {} {} {} {}", j["type"], j["occ_key"], j["actor"], j["ref"], j["reason"])
                    })
                    .collect();
                v.sort();
                v
            };
            prop_assert_eq!(happened(&cached[2]), happened(&plain), "different things happened");
            for occ in 0..3 {
                let a = cached[0].availability(&key(occ)).unwrap();
                let b = plain.availability(&key(occ)).unwrap();
                prop_assert_eq!(a, b, "occurrence {} ends differently", occ);
            }
            for e in &cached {
                let st = e.read_cache_stats().expect("a cache");
                hits.set(hits.get() + st.hits);
                misses.set(misses.get() + st.misses);
            }
            Ok(())
        })
        .unwrap();
    let (hits, misses) = (hits.get(), misses.get());
    assert!(hits > 100 && misses > 100, "the caches were not exercised both ways: {hits} hits, {misses} misses");
    eprintln!("read caches: {hits} hits, {misses} misses");
}
