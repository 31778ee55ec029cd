//! The background runner (feature `tokio`): the sweep expires lapsed holds without being
//! asked, the relay publishes every committed event in order and acknowledges it, retries
//! after a publisher fails (at-least-once, nothing lost), and both stop gracefully.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use seathold::background::{Background, PublishError, Publisher};
use seathold::catalogue::OccurrenceConfig;
use seathold::contract::{ActorId, EventId, Money, OccKey, OutboxEvent, Ref};
use seathold::holds::HoldRequest;
use seathold::{AsyncEngine, ManualClock, MemoryStore};
use time::Duration;
use time::macros::datetime;

/// Collects what it is given; fails its first `fail` calls.
#[derive(Clone, Default)]
struct Collect {
    got: Arc<Mutex<Vec<OutboxEvent>>>,
    calls: Arc<AtomicUsize>,
    fail: usize,
}

impl Publisher for Collect {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(PublishError::new("broker down"));
        }
        self.got.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_and_relay_run_in_the_background_and_stop_gracefully() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
    let engine = Arc::new(AsyncEngine::with_clock(MemoryStore::new(), clock.clone()));
    let gig = OccKey::new("gig").unwrap();
    engine.open(&gig, OccurrenceConfig::new(10, 60).unwrap()).await.unwrap();
    for i in 0..5 {
        let req = HoldRequest::new(
            gig.clone(),
            ActorId::new(format!("a{i}")).unwrap(),
            Ref::new(format!("r{i}")).unwrap(),
            Money::parse("5.00", "EUR").unwrap(),
        );
        engine.request(&req).await.unwrap();
    }
    // The first two publishes fail: the relay backs off and offers the same events again.
    let publisher = Collect { fail: 2, ..Collect::default() };
    let handle = Background::new(engine.clone())
        .sweep_every(StdDuration::from_millis(20))
        .relay(publisher.clone(), StdDuration::from_millis(20))
        .max_backoff(StdDuration::from_millis(100))
        .spawn();
    wait_until("the five hold_placed events are published", || publisher.got.lock().unwrap().len() == 5).await;
    // The holds lapse: the sweep expires them unasked, and the relay publishes that too.
    clock.advance(Duration::seconds(61));
    wait_until("the five hold_expired events are published", || publisher.got.lock().unwrap().len() == 10).await;
    let stats = handle.shutdown().await;
    assert_eq!(stats.expired, 5, "the sweep expired every lapsed hold: {stats:?}");
    assert_eq!(stats.published, 10, "{stats:?}");
    assert!(stats.errors >= 2, "the failed publishes were counted: {stats:?}");
    let got = publisher.got.lock().unwrap().clone();
    let ids: Vec<EventId> = got.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "published in order, each once");
    let kinds: Vec<&str> = got.iter().map(|e| e.event.kind.type_str()).collect();
    assert_eq!(&kinds[..5], ["hold_placed"; 5]);
    assert_eq!(&kinds[5..], ["hold_expired"; 5]);
    assert!(engine.pending_events(10).await.unwrap().is_empty(), "every published event was acknowledged");
}
