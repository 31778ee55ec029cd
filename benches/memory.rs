//! Memory per live hold and per outbox event on `MemoryStore`, counted by a wrapping global
//! allocator (bytes allocated minus bytes freed: what the process holds, allocator overhead
//! per block not included).
//!
//! ```text
//! cargo bench --bench memory                          # 1,000,000 live holds
//! SEATHOLD_BENCH_QUICK=1 cargo bench --bench memory   # 100,000, the CI smoke run
//! ```
//!
//! 1. Open one occurrence; place N holds through `Engine::request` (distinct actors and refs,
//!    built before counting and dropped after, so the ids' own allocations are charged to the
//!    store only where it keeps them). Live bytes grown / N = **bytes per live hold with its
//!    unacknowledged `hold_placed` event**.
//! 2. Drain and acknowledge every event. Bytes freed / N = **bytes per acknowledged event**
//!    given back (the outbox must return what it held).
//! 3. Confirm every hold (`settle(paid)`), acknowledge again, and report the bytes per
//!    confirmed booking with its payment record (what a sold seat costs to remember, since
//!    payment records answer redeliveries).
//!
//! Exit status is non-zero only if the counts are inconsistent (say, events not freed at
//! all); a missed target prints FAIL and exits 0, as in `benches/engine.rs`.

use std::sync::Arc;

use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, Money, OccKey, PaymentResult, Ref};
use seathold::holds::{HoldRequest, RequestOutcome};
use seathold::settlement::Settlement;
use seathold::{Engine, ManualClock, MemoryStore};
use time::macros::datetime;

#[path = "support/live_bytes.rs"]
mod live_bytes;
use live_bytes::live;

fn drain(e: &Engine<MemoryStore, Arc<ManualClock>>) -> usize {
    let mut n = 0;
    loop {
        let batch = e.pending_events(10_000).expect("pending");
        if batch.is_empty() {
            return n;
        }
        n += batch.len();
        let ids: Vec<_> = batch.iter().map(|ev| ev.id).collect();
        drop(batch);
        e.ack_events(&ids).expect("ack");
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("SEATHOLD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let n: usize = if quick { 100_000 } else { 1_000_000 };
    println!("command: {}cargo bench --bench memory", if quick { "SEATHOLD_BENCH_QUICK=1 " } else { "" });
    println!("live holds: {n}");

    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 19:00 UTC)));
    let engine = Engine::with_clock(MemoryStore::new(), clock);
    let gig = OccKey::new("gig").expect("key");
    engine.open(&gig, OccurrenceConfig::new(u32::try_from(n).expect("n"), 600).expect("config")).expect("open");
    let price = Money::parse("25.00", "EUR").expect("price");

    // Build every id first: the caller's copies are not the store's.
    let work: Vec<(HoldRequest, PaymentResult)> = (0..n)
        .map(|i| {
            let actor = ActorId::new(format!("user-{i:07}")).expect("actor");
            let r = Ref::new(format!("r-{i:07}-checkout")).expect("ref");
            (HoldRequest::new(gig.clone(), actor.clone(), r.clone(), price), PaymentResult::paid(gig.clone(), actor, r))
        })
        .collect();
    let id_bytes: usize = work.iter().map(|(q, _)| q.actor.as_str().len() + q.hold_ref.as_str().len()).sum();

    let before = live();
    for (q, _) in &work {
        match engine.request(q).expect("request") {
            RequestOutcome::AwaitingPayment { .. } => {}
            other => panic!("expected a hold, got {other:?}"),
        }
    }
    let with_events = live();
    let events = drain(&engine);
    let acked = live();
    assert_eq!(events, n, "one hold_placed per hold");
    for (_, p) in &work {
        assert_eq!(engine.settle(p).expect("settle"), Settlement::Confirmed { replayed: false });
    }
    let _ = drain(&engine);
    let confirmed = live();
    // The ids are shared with the store (reference counted): count what the caller's copies
    // hold so the figures below can say what the store would hold if the caller dropped them.
    drop(work);
    let after_drop = live();

    let per = |bytes: i64| bytes as f64 / n as f64;
    let per_hold = per(with_events - before);
    let per_event = per(with_events - acked);
    let per_live_acked = per(acked - before);
    let per_booking = per(confirmed - before);
    let ids_kept = per(after_drop - confirmed).abs();
    println!();
    println!("{:<62} {:>10}", "measure", "bytes");
    println!("{}", "-".repeat(74));
    println!("{:<62} {:>10.0}", "per live hold, with its unacknowledged hold_placed event", per_hold);
    println!("{:<62} {:>10.0}", "given back per acknowledged event", per_event);
    println!("{:<62} {:>10.0}", "per live hold, events acknowledged", per_live_acked);
    println!("{:<62} {:>10.0}", "per confirmed booking with its payment record, acknowledged", per_booking);
    println!("{:<62} {:>10.0}", "(the caller's ids, shared with the store; freed when both drop)", ids_kept);
    println!("(ids in this run: {:.0} bytes of text per hold)", id_bytes as f64 / n as f64);
    println!();
    let target = 250.0;
    println!(
        "target: <= {target:.0} B per live hold incl. its event: {:.0} B -> {}",
        per_hold,
        if per_hold <= target { "PASS" } else { "FAIL" }
    );
    println!(
        "target: acknowledged events give their memory back: {:.0} B of {:.0} B -> {}",
        per_event,
        per_hold - per_live_acked,
        if per_event > 0.0 { "PASS" } else { "FAIL" }
    );
    assert!(per_event > 0.0, "acknowledging events freed nothing");
}
