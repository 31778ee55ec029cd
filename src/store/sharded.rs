//! `ShardedStore`: occurrences spread over several stores (several PostgreSQL servers or
//! databases with the same schema), routed by occurrence key.
//!
//! Occurrences are independent — the consistency boundary is one occurrence — so they shard
//! without any cross-shard transaction: every load and commit goes to the one shard its
//! occurrence lives on, and keeps that shard's guarantees. What spans occurrences is merged:
//! the sweep asks every shard for its due records and takes the oldest; the outbox merges
//! the shards' pending events; occurrence listings merge in key order. A basket across
//! occurrences on different shards is the saga it already is (each part placed, settled and
//! released on its own).
//!
//! Routing is a fixed function of the key (FNV-1a, 64 bits, modulo the number of shards): it
//! must never change for a deployment — adding a shard moves occurrences, which this type
//! does not do. Event ids are made unique across shards by interleaving: a shard's id `i`
//! becomes `i * N + shard`, so within one occurrence ids still increase in commit order.

use std::future::Future;

use time::OffsetDateTime;

use super::{AsyncStore, Commit, CommitError, Committed, Due, Snapshot, StoreError};
use crate::contract::{EventId, OccKey, OutboxEvent};
use crate::records::{Record, RecordKey, RecordKind, Versioned};

/// A store made of several stores, each holding the occurrences routed to it.
#[derive(Debug, Clone)]
pub struct ShardedStore<S> {
    shards: Vec<S>,
}

/// Why a sharded store could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sharded store needs at least one shard")]
pub struct NoShards;

impl<S: AsyncStore> ShardedStore<S> {
    /// A store over `shards`, in a fixed order (the order is part of the routing).
    ///
    /// # Errors
    /// [`NoShards`] if there is none.
    pub fn new(shards: Vec<S>) -> Result<Self, NoShards> {
        if shards.is_empty() {
            return Err(NoShards);
        }
        Ok(Self { shards })
    }

    /// The shards, in routing order.
    pub fn shards(&self) -> &[S] {
        &self.shards
    }

    /// The index of the shard `occ_key` lives on.
    pub fn shard_of(&self, occ_key: &OccKey) -> usize {
        // FNV-1a: stable across builds and platforms, unlike the standard library's hashers.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in occ_key.as_str().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % self.shards.len() as u64) as usize
    }

    fn on(&self, occ_key: &OccKey) -> &S {
        &self.shards[self.shard_of(occ_key)]
    }

    fn n(&self) -> u64 {
        self.shards.len() as u64
    }

    /// A shard's event id as this store's.
    fn global(&self, shard: usize, id: EventId) -> EventId {
        EventId(id.0.saturating_mul(self.n()).saturating_add(shard as u64))
    }
}

impl<S: AsyncStore> AsyncStore for ShardedStore<S> {
    fn load(&self, occ_key: &OccKey, keys: &[RecordKey]) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        self.on(occ_key).load(occ_key, keys)
    }

    async fn due(&self, occ_key: Option<&OccKey>, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
        if let Some(k) = occ_key {
            return self.on(k).due(Some(k), now, limit).await;
        }
        let mut all = Vec::new();
        for s in &self.shards {
            all.extend(s.due(None, now, limit).await?);
        }
        all.sort_by_key(|d| d.record.value.due());
        // The shards leased what they returned; what is cut here comes free when the lease
        // runs out (or at once, for a store without leases).
        all.truncate(limit);
        Ok(all)
    }

    fn scan(
        &self,
        occ_key: &OccKey,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Versioned<Record>>, StoreError>> + Send {
        self.on(occ_key).scan(occ_key, kind, after, limit)
    }

    async fn occurrences(&self, after: Option<&OccKey>, limit: usize) -> Result<Vec<OccKey>, StoreError> {
        let mut all = Vec::new();
        for s in &self.shards {
            all.extend(s.occurrences(after, limit).await?);
        }
        all.sort();
        all.truncate(limit);
        Ok(all)
    }

    fn commit(&self, commit: Commit) -> impl Future<Output = Result<Committed, CommitError>> + Send {
        let shard = self.shard_of(&commit.occ_key);
        self.shards[shard].commit(commit)
    }

    async fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut all = Vec::new();
        for (i, s) in self.shards.iter().enumerate() {
            for mut e in s.pending_events(limit).await? {
                e.id = self.global(i, e.id);
                all.push(e);
            }
        }
        all.sort_by_key(|e| e.id);
        all.truncate(limit);
        Ok(all)
    }

    async fn ack_events(&self, ids: &[EventId]) -> Result<(), StoreError> {
        for (i, s) in self.shards.iter().enumerate() {
            let mine: Vec<EventId> =
                ids.iter().filter(|id| id.0 % self.n() == i as u64).map(|id| EventId(id.0 / self.n())).collect();
            if !mine.is_empty() {
                s.ack_events(&mine).await?;
            }
        }
        Ok(())
    }
}
