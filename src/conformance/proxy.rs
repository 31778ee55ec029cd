//! Store wrappers the checks drive the engine through: lend a store without giving it away,
//! lose acknowledgements, or hold every call at a gate until a scheduler lets it pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use time::OffsetDateTime;

use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Record, RecordKey, RecordKind, Versioned};
use crate::store::{AsyncStore, Commit, CommitError, Committed, Due, Snapshot, StoreError};

/// What a proxy does before each call, and after a commit.
pub(crate) trait Hook: Send + Sync {
    /// Wait until the call may go on.
    fn before(&self) -> impl Future<Output = ()> + Send;
    /// Turn a commit's answer into the one the caller sees.
    fn after_commit(&self, r: Result<Committed, CommitError>) -> Result<Committed, CommitError> {
        r
    }
}

/// A store lent to an engine, with a hook around every call.
pub(crate) struct Proxy<'a, S, H> {
    pub(crate) inner: &'a S,
    pub(crate) hook: H,
}

/// No hook: just lend the store.
pub(crate) struct Plain;

impl Hook for Plain {
    async fn before(&self) {}
}

/// Apply commits, then report the first `n` of them as failed (a lost acknowledgement).
pub(crate) struct LoseAcks(pub(crate) AtomicU32);

impl Hook for LoseAcks {
    async fn before(&self) {}
    fn after_commit(&self, r: Result<Committed, CommitError>) -> Result<Committed, CommitError> {
        match r {
            Ok(_) if self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() => {
                Err(StoreError::Unavailable("connection lost after the commit (conformance: lost ack)".into()).into())
            }
            r => r,
        }
    }
}

impl<S: AsyncStore, H: Hook> AsyncStore for Proxy<'_, S, H> {
    async fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> Result<Snapshot, StoreError> {
        self.hook.before().await;
        self.inner.load(occ_key, keys).await
    }
    async fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.hook.before().await;
        self.inner.due(occ_key, now, limit).await
    }
    async fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Versioned<Record>>, StoreError> {
        self.hook.before().await;
        self.inner.scan(occ_key, kind, after, limit).await
    }
    async fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        self.hook.before().await;
        self.inner.occurrences(after, limit).await
    }
    async fn commit(&self, commit: Commit) -> Result<Committed, CommitError> {
        self.hook.before().await;
        let r = self.inner.commit(commit).await;
        self.hook.after_commit(r)
    }
    async fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.hook.before().await;
        self.inner.pending_events(limit).await
    }
    async fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        self.hook.before().await;
        self.inner.ack_events(ids).await
    }
}

/// Where the racers of an interleaving stand: which are waiting at the gate, and which one
/// may pass.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<Vec<Slot>>,
    /// While set, every call passes at once (warming the racers' read caches before the
    /// race; not part of the schedule).
    open: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    waiting: bool,
    granted: bool,
}

impl Gate {
    pub(crate) fn new(racers: usize) -> Self {
        Self { state: Mutex::new(vec![Slot::default(); racers]), open: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Let every call through without a grant (`true`) or not.
    pub(crate) fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Slot>) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Whether racer `i` waits at the gate.
    pub(crate) fn is_waiting(&self, i: usize) -> bool {
        self.with(|s| s[i].waiting)
    }

    /// Let racer `i`'s waiting call pass.
    pub(crate) fn grant(&self, i: usize) {
        self.with(|s| s[i].granted = true);
    }
}

/// Racer `i`'s hook: every store call waits at the gate until granted.
pub(crate) struct AtGate<'g> {
    pub(crate) gate: &'g Gate,
    pub(crate) racer: usize,
}

impl Hook for AtGate<'_> {
    fn before(&self) -> impl Future<Output = ()> + Send {
        Pass { gate: self.gate, racer: self.racer }
    }
}

struct Pass<'g> {
    gate: &'g Gate,
    racer: usize,
}

impl Future for Pass<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // The scheduler polls racers itself after a grant, so no waker is kept.
        if self.gate.open.load(std::sync::atomic::Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.gate.with(|s| {
            let slot = &mut s[self.racer];
            if slot.granted {
                *slot = Slot::default();
                Poll::Ready(())
            } else {
                slot.waiting = true;
                Poll::Pending
            }
        })
    }
}
