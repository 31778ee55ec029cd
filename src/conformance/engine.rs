//! Clause 6, and the rules end to end: the engine over the store under test — capacity,
//! lapse and sweep, a retry after a lost acknowledgement, and the exactly-once sequences.

use std::sync::atomic::AtomicU32;

use time::Duration;

use super::fixtures::*;
use super::proxy::{LoseAcks, Plain, Proxy};
use crate::AsyncEngine;
use crate::catalogue::OccurrenceConfig;
use crate::clock::ManualClock;
use crate::contract::{EventKind, NoHoldReason, OccKey, PaymentResult, ProviderRef};
use crate::engine::OpError;
use crate::holds::{HoldRequest, RequestOutcome, RequestRefusal};
use crate::settlement::Settlement;
use crate::store::AsyncStore;

const CLAUSE: &str = "store contract 6 (the engine on this store)";

pub(crate) type TestEngine<'a, S, H> = AsyncEngine<Proxy<'a, S, H>, &'a ManualClock>;

pub(crate) fn engine<'a, S: AsyncStore>(store: &'a S, clock: &'a ManualClock) -> TestEngine<'a, S, Plain> {
    AsyncEngine::with_clock(Proxy { inner: store, hook: Plain }, clock)
}

pub(crate) fn req(o: &OccKey, who: &str, hr: &str, quantity: u32) -> HoldRequest {
    HoldRequest::new(o.clone(), actor(who), r(hr), eur("10.00")).with_quantity(quantity)
}

pub(crate) fn paid(o: &OccKey, who: &str, hr: &str, provider: &str) -> PaymentResult {
    PaymentResult::paid(o.clone(), actor(who), r(hr))
        .with_provider_ref(ProviderRef::new(provider).unwrap_or_else(|e| panic!("{e}")))
}

async fn open<S: AsyncStore>(e: &TestEngine<'_, S, Plain>, o: &OccKey, cfg: OccurrenceConfig) {
    e.open(o, cfg).await.unwrap_or_else(|err| panic!("{CLAUSE}: open: {err}"));
}

fn placed(outcome: &RequestOutcome) -> bool {
    matches!(outcome, RequestOutcome::AwaitingPayment { replayed: false, .. })
}

/// Holds fill the capacity and no more; payment confirms; a lowered capacity refuses new
/// holds but revokes nothing.
pub async fn check_engine_capacity<S: AsyncStore>(s: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(s, &clock);
    let o = occ("gig");
    open(&e, &o, config(2)).await;
    let mut answers = Vec::new();
    for (who, hr) in [("ann", "r1"), ("bob", "r2"), ("cat", "r3")] {
        answers.push(e.request(&req(&o, who, hr, 1)).await.unwrap_or_else(|err| panic!("{CLAUSE}: {err}")));
    }
    assert!(placed(&answers[0]) && placed(&answers[1]), "{CLAUSE}: two seats, two holds");
    assert!(matches!(answers[2], RequestOutcome::Full { capacity: 2, .. }), "{CLAUSE}: the third must be Full");
    let s1 = e.settle(&paid(&o, "ann", "r1", "pi_1")).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(s1, Settlement::Confirmed { replayed: false }, "{CLAUSE}: paying a live hold confirms it");
    open(&e, &o, config(1)).await;
    let a = e.availability(&o).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!((a.held, a.confirmed, a.available), (1, 1, 0), "{CLAUSE}: lowering revokes nothing");
    let again = e.request(&req(&o, "dan", "r4", 1)).await.unwrap_or_else(|err| panic!("{err}"));
    assert!(matches!(again, RequestOutcome::Full { .. }), "{CLAUSE}: over a lowered capacity, Full");
    let f =
        e.settle(&PaymentResult::failed(o.clone(), actor("bob"), r("r2"))).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(f, Settlement::Released, "{CLAUSE}: a failed payment releases the live hold");
    let still = e.request(&req(&o, "dan", "r5", 1)).await.unwrap_or_else(|err| panic!("{err}"));
    assert!(matches!(still, RequestOutcome::Full { .. }), "{CLAUSE}: one sold, capacity one: Full");
}

/// A lapsed hold blocks nothing and shows nowhere before any sweep; it ends exactly once,
/// whoever meets it first.
pub async fn check_engine_lapse_and_sweep<S: AsyncStore>(s: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(s, &clock);
    let o = occ("slot");
    open(&e, &o, config(1)).await;
    let first = e.request(&req(&o, "ann", "a1", 1)).await.unwrap_or_else(|err| panic!("{err}"));
    assert!(placed(&first), "{CLAUSE}: the first hold");
    clock.advance(Duration::seconds(600));
    let a = e.availability(&o).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!((a.held, a.available), (0, 1), "{CLAUSE}: a lapsed hold never shows");
    let second = e.request(&req(&o, "bob", "b1", 1)).await.unwrap_or_else(|err| panic!("{err}"));
    assert!(placed(&second), "{CLAUSE}: a lapsed hold never blocks");
    clock.advance(Duration::seconds(600));
    let n = e.expire_due(100).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(n, 1, "{CLAUSE}: the sweep expires the one hold still held");
    assert_eq!(e.expire_due(100).await.unwrap_or_else(|err| panic!("{err}")), 0, "{CLAUSE}: and only once");
    let events = e.drain_events(100).await.unwrap_or_else(|err| panic!("{err}"));
    for who in ["ann", "bob"] {
        let ends = events.iter().filter(|ev| ev.event.actor == actor(who) && ev.event.kind.is_terminal()).count();
        assert_eq!(ends, 1, "{CLAUSE}: {who}'s hold must end in exactly one terminal event");
    }
}

/// A commit applied whose acknowledgement was lost: retrying the operation answers the
/// committed outcome (a replay), and writes nothing twice.
pub async fn check_engine_retry_after_lost_ack<S: AsyncStore>(s: &S) {
    let clock = ManualClock::new(T0);
    let o = occ("gig");
    open(&engine(s, &clock), &o, config(3)).await;
    let lossy = AsyncEngine::with_clock(Proxy { inner: s, hook: LoseAcks(AtomicU32::new(1)) }, &clock);
    let rq = req(&o, "ann", "r1", 2);
    assert!(lossy.request(&rq).await.is_err(), "{CLAUSE}: the lost ack must surface as an error");
    let retry = lossy.request(&rq).await.unwrap_or_else(|err| panic!("{CLAUSE}: retry: {err}"));
    assert!(
        matches!(retry, RequestOutcome::AwaitingPayment { replayed: true, .. }),
        "{CLAUSE}: the retried request must answer the committed hold as a replay, got {retry:?}"
    );
    let lossy = AsyncEngine::with_clock(Proxy { inner: s, hook: LoseAcks(AtomicU32::new(1)) }, &clock);
    let p = paid(&o, "ann", "r1", "pi_1");
    assert!(lossy.settle(&p).await.is_err(), "{CLAUSE}: the lost ack must surface as an error");
    let again = lossy.settle(&p).await.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(again, Settlement::Confirmed { replayed: true }, "{CLAUSE}: the retried payment replays");
    let events = engine(s, &clock).drain_events(100).await.unwrap_or_else(|err| panic!("{err}"));
    let kinds: Vec<&str> = events.iter().map(|ev| ev.event.kind.type_str()).collect();
    assert_eq!(kinds, vec!["hold_placed", "hold_confirmed"], "{CLAUSE}: nothing written twice");
}

/// The exactly-once sequences, one at a time: refs are single-use whatever
/// happened to them (the ABA reuse), a redelivered failure never releases a newer hold, a
/// second, different payment is a refund signal of its own, and every redelivery replays.
pub async fn check_engine_exactly_once_sequences<S: AsyncStore>(s: &S) {
    let clock = ManualClock::new(T0);
    let e = engine(s, &clock);
    let o = occ("aba");
    open(&e, &o, config(5)).await;
    let settle = |p: PaymentResult| {
        let e = &e;
        async move { e.settle(&p).await.unwrap_or_else(|err| panic!("{CLAUSE}: settle: {err}")) }
    };
    let failed = |hr: &str| PaymentResult::failed(o.clone(), actor("ann"), r(hr));
    assert!(placed(&e.request(&req(&o, "ann", "r1", 1)).await.unwrap_or_else(|err| panic!("{err}"))));
    assert_eq!(settle(failed("r1")).await, Settlement::Released);
    assert!(placed(&e.request(&req(&o, "ann", "r2", 1)).await.unwrap_or_else(|err| panic!("{err}"))));
    assert_eq!(settle(failed("r2")).await, Settlement::Released);
    match e.request(&req(&o, "ann", "r1", 1)).await {
        Err(OpError::Refused(RequestRefusal::RefUsed)) => {}
        other => panic!("{CLAUSE}: reusing an ended hold's ref must be refused (single-use refs), got {other:?}"),
    }
    match e.request(&req(&o, "bob", "r2", 1)).await {
        Err(OpError::Refused(RequestRefusal::RefUsed)) => {}
        other => panic!("{CLAUSE}: another actor reusing a ref must be refused, got {other:?}"),
    }
    assert!(placed(&e.request(&req(&o, "ann", "r3", 1)).await.unwrap_or_else(|err| panic!("{err}"))));
    assert_eq!(settle(failed("r1")).await, Settlement::Noop, "{CLAUSE}: a redelivered failure is a Noop");
    let late = settle(paid(&o, "ann", "r1", "pi_1")).await;
    assert!(
        matches!(&late, Settlement::PaidButNoHold { refund, replayed: false } if refund.reason == NoHoldReason::RefMismatch),
        "{CLAUSE}: a late payment of an old attempt is a refund, never the new hold's: {late:?}"
    );
    assert_eq!(settle(paid(&o, "ann", "r3", "pi_3")).await, Settlement::Confirmed { replayed: false });
    let second = settle(paid(&o, "ann", "r3", "pi_4")).await;
    assert!(
        matches!(&second, Settlement::PaidButNoHold { refund, replayed: false } if refund.reason == NoHoldReason::DuplicatePayment),
        "{CLAUSE}: a second, different payment must be a refund signal: {second:?}"
    );
    // Every redelivery replays what it answered first — whatever else its body says (an
    // amount is checked only when a live hold is about to be confirmed).
    assert_eq!(settle(paid(&o, "ann", "r3", "pi_3")).await, Settlement::Confirmed { replayed: true });
    let with_amount = paid(&o, "ann", "r3", "pi_3").with_money(eur("99.00").amount, eur("99.00").currency);
    assert_eq!(
        settle(with_amount).await,
        Settlement::Confirmed { replayed: true },
        "{CLAUSE}: a redelivery with another amount replays"
    );
    assert_eq!(
        settle(PaymentResult::paid(o.clone(), actor("ann"), r("r3"))).await,
        Settlement::Confirmed { replayed: true }
    );
    let again = settle(paid(&o, "ann", "r3", "pi_4")).await;
    assert!(
        matches!(&again, Settlement::PaidButNoHold { replayed: true, .. }),
        "{CLAUSE}: the duplicate replays: {again:?}"
    );
    let late_again = settle(paid(&o, "ann", "r1", "pi_1")).await;
    assert!(matches!(&late_again, Settlement::PaidButNoHold { replayed: true, .. }), "{CLAUSE}: the refund replays");
    let events = e.drain_events(100).await.unwrap_or_else(|err| panic!("{err}"));
    let confirmed = events.iter().filter(|ev| matches!(ev.event.kind, EventKind::HoldConfirmed { .. })).count();
    let refunds = events.iter().filter(|ev| matches!(ev.event.kind, EventKind::RefundRequired { .. })).count();
    assert_eq!((confirmed, refunds), (1, 2), "{CLAUSE}: one confirmation, two refunds, nothing twice");
}
