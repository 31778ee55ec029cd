//! Background work on a tokio runtime (cargo feature `tokio`): the sweep and the outbox
//! relay, each a task with batching, backoff on errors and graceful shutdown — what every
//! service would otherwise write as its own interval loop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use seathold::background::{Background, Publisher, PublishError};
//! use seathold::contract::OutboxEvent;
//! use seathold::{AsyncEngine, MemoryStore};
//!
//! struct Log;
//! impl Publisher for Log {
//!     async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
//!         for e in events {
//!             println!("{}", e.to_json()); // or POST it, signed, to a consumer
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let engine = Arc::new(AsyncEngine::new(MemoryStore::new()));
//! let handle = Background::new(engine.clone())
//!     .sweep_every(Duration::from_secs(1))
//!     .relay(Log, Duration::from_millis(200))
//!     .spawn();
//! // … serve requests …
//! let stats = handle.shutdown().await; // finishes the batch in hand, then stops
//! println!("{stats:?}");
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AsyncEngine;
use crate::clock::Clock;
use crate::contract::{EventId, OutboxEvent};
use crate::store::AsyncStore;

/// Where the relay sends committed events: a message broker, a webhook, a log.
pub trait Publisher: Send + Sync + 'static {
    /// Publish `events` (in order). On `Ok` they are acknowledged and never offered again;
    /// on `Err` the same events are offered again after a backoff (at-least-once: consumers
    /// deduplicate on the event id).
    fn publish(&self, events: &[OutboxEvent]) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A publisher's failure. The events are offered again after a backoff.
#[derive(Debug, Error)]
#[error("publishing failed: {0}")]
pub struct PublishError(#[source] pub Box<dyn StdError + Send + Sync>);

impl PublishError {
    /// Wrap any error.
    pub fn new(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

/// What the background tasks did, returned by [`BackgroundHandle::shutdown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Holds the sweep expired.
    pub expired: usize,
    /// Events published and acknowledged.
    pub published: usize,
    /// Errors met (store or publisher), each followed by a backoff.
    pub errors: usize,
}

type BoxedPublish = Arc<
    dyn Fn(Vec<OutboxEvent>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>> + Send + Sync,
>;

/// The background tasks of one engine, configured then spawned.
pub struct Background<S, C> {
    engine: Arc<AsyncEngine<S, C>>,
    sweep: Option<(Duration, usize)>,
    relay: Option<(BoxedPublish, Duration, usize)>,
    max_backoff: Duration,
}

impl<S: AsyncStore + 'static, C: Clock + 'static> Background<S, C> {
    /// Nothing configured yet.
    pub fn new(engine: Arc<AsyncEngine<S, C>>) -> Self {
        Self { engine, sweep: None, relay: None, max_backoff: Duration::from_secs(30) }
    }

    /// Sweep every `every`, in batches of 500 until nothing is due.
    pub fn sweep_every(mut self, every: Duration) -> Self {
        self.sweep = Some((every, 500));
        self
    }

    /// Relay the outbox to `publisher`, in batches of 100, looking for new events every
    /// `every` once the outbox is empty.
    pub fn relay<P: Publisher>(mut self, publisher: P, every: Duration) -> Self {
        let publisher = Arc::new(publisher);
        let publish: BoxedPublish = Arc::new(move |events: Vec<OutboxEvent>| {
            let p = publisher.clone();
            Box::pin(async move { p.publish(&events).await })
        });
        self.relay = Some((publish, every, 100));
        self
    }

    /// The longest wait after repeated errors (the backoff doubles from 50 ms up to it).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Start the tasks on the current tokio runtime.
    pub fn spawn(self) -> BackgroundHandle {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some((every, batch)) = self.sweep {
            let (engine, stopped, max) = (self.engine.clone(), stopped.clone(), self.max_backoff);
            tasks.push(tokio::spawn(sweep_loop(engine, every, batch, max, stopped)));
        }
        if let Some((publish, every, batch)) = self.relay {
            let (engine, stopped, max) = (self.engine.clone(), stopped.clone(), self.max_backoff);
            tasks.push(tokio::spawn(relay_loop(engine, publish, every, batch, max, stopped)));
        }
        BackgroundHandle { stop, tasks }
    }
}

/// The running tasks.
#[derive(Debug)]
pub struct BackgroundHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Stats>>,
}

impl BackgroundHandle {
    /// Ask the tasks to stop, wait until they have (each finishes the batch in hand), and
    /// return what they did.
    pub async fn shutdown(self) -> Stats {
        let _ = self.stop.send(true);
        let mut total = Stats::default();
        for t in self.tasks {
            if let Ok(s) = t.await {
                total.expired += s.expired;
                total.published += s.published;
                total.errors += s.errors;
            }
        }
        total
    }
}

/// Wait `d`, or less if asked to stop; `true` if asked to stop.
async fn pause(d: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

fn next_backoff(current: Duration, max: Duration) -> Duration {
    (current * 2).clamp(Duration::from_millis(50), max)
}

async fn sweep_loop<S: AsyncStore, C: Clock>(
    engine: Arc<AsyncEngine<S, C>>,
    every: Duration,
    batch: usize,
    max_backoff: Duration,
    mut stopped: watch::Receiver<bool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut backoff = Duration::ZERO;
    loop {
        match engine.expire_due(batch).await {
            Ok(n) => {
                stats.expired += n;
                backoff = Duration::ZERO;
                if n == batch && !*stopped.borrow() {
                    continue; // more may be due
                }
                if pause(every, &mut stopped).await {
                    return stats;
                }
            }
            Err(e) => {
                stats.errors += 1;
                let crate::SweepError::Store { expired, .. } = e;
                stats.expired += expired;
                backoff = next_backoff(backoff, max_backoff);
                if pause(backoff, &mut stopped).await {
                    return stats;
                }
            }
        }
    }
}

async fn relay_loop<S: AsyncStore, C: Clock>(
    engine: Arc<AsyncEngine<S, C>>,
    publish: BoxedPublish,
    every: Duration,
    batch: usize,
    max_backoff: Duration,
    mut stopped: watch::Receiver<bool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut backoff = Duration::ZERO;
    loop {
        let failed = match engine.pending_events(batch).await {
            Ok(events) if events.is_empty() => {
                if pause(every, &mut stopped).await {
                    // A last look: events committed just before the stop go out too.
                    if let Ok(events) = engine.pending_events(batch).await {
                        if !events.is_empty() {
                            continue;
                        }
                    }
                    return stats;
                }
                continue;
            }
            Ok(events) => {
                let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                match publish(events).await {
                    Ok(()) => match engine.ack_events(&ids).await {
                        Ok(()) => {
                            stats.published += ids.len();
                            backoff = Duration::ZERO;
                            false
                        }
                        Err(_) => true,
                    },
                    Err(_) => true,
                }
            }
            Err(_) => true,
        };
        if failed {
            stats.errors += 1;
            backoff = next_backoff(backoff, max_backoff);
            if pause(backoff, &mut stopped).await {
                return stats;
            }
        }
        // Asked to stop: keep relaying while there are events and publishing works, so what
        // was committed before the stop goes out (a failure ends it: the next start resumes).
    }
}
