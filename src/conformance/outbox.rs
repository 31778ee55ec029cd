//! Clause 5: the outbox yields committed events oldest first, with ids that never repeat and
//! increase within an occurrence, until they are acknowledged.

use super::fixtures::*;
use crate::contract::EventId;
use crate::store::{AsyncStore, Commit};

const CLAUSE: &str = "store contract 5 (ordered outbox)";

/// Unique ids, increasing within an occurrence in commit order, oldest first, `limit`.
pub async fn check_outbox_order<S: AsyncStore>(s: &S) {
    let (a, b) = (occ("a"), occ("b"));
    for (o, q) in [(&a, 1), (&b, 2), (&a, 3), (&a, 4), (&b, 5)] {
        let c =
            Commit { events: vec![event(o, "x", "r", q), event(o, "x", "r", q * 10)].into(), ..Commit::new(o.clone()) };
        commit_ok(s, c, CLAUSE).await;
    }
    let all = s.pending_events(100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 10, "{CLAUSE}: every committed event is pending");
    let mut ids: Vec<EventId> = all.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{CLAUSE}: pending_events must be in id order");
    ids.dedup();
    assert_eq!(ids.len(), 10, "{CLAUSE}: ids must not repeat");
    let quantities = |o: &crate::contract::OccKey| -> Vec<u32> {
        all.iter()
            .filter(|e| &e.event.occ_key == o)
            .map(|e| match e.event.kind {
                crate::contract::EventKind::HoldReleased { quantity } => quantity,
                _ => 0,
            })
            .collect()
    };
    assert_eq!(quantities(&a), vec![1, 10, 3, 30, 4, 40], "{CLAUSE}: per occurrence, commit order");
    assert_eq!(quantities(&b), vec![2, 20, 5, 50], "{CLAUSE}: per occurrence, commit order");
    let two = s.pending_events(2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(two, all[..2].to_vec(), "{CLAUSE}: limit takes the oldest");
}

/// `ack_events` removes exactly the acknowledged ids (in any order), ignores unknown ones,
/// and an acknowledged event is never yielded again.
pub async fn check_outbox_ack<S: AsyncStore>(s: &S) {
    let o = occ("a");
    for q in 1..=5 {
        commit_ok(s, Commit { events: vec![event(&o, "x", "r", q)].into(), ..Commit::new(o.clone()) }, CLAUSE).await;
    }
    let all = s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}"));
    let ack = [all[3].id, all[0].id, EventId(u64::MAX), EventId(987_654_321)];
    s.ack_events(&ack).await.unwrap_or_else(|e| panic!("{e}"));
    let left: Vec<EventId> =
        s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}")).iter().map(|e| e.id).collect();
    assert_eq!(left, vec![all[1].id, all[2].id, all[4].id], "{CLAUSE}: ack must remove exactly the acked ids");
    s.ack_events(&[all[1].id, all[2].id, all[4].id]).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}")).is_empty(), "{CLAUSE}: all acked");
    s.ack_events(&[]).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Ids never repeat, also once the events that had them are acknowledged (a consumer that
/// deduplicates by id would drop a reused one): new events of the same occurrence get ids
/// above every id it had, and another occurrence's never reuse an acknowledged id.
pub async fn check_event_ids_never_repeat_after_ack<S: AsyncStore>(s: &S) {
    let (a, b) = (occ("a"), occ("b"));
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..3u32 {
        for q in 1..=3 {
            commit_ok(
                s,
                Commit { events: vec![event(&a, "x", "r", round * 10 + q)].into(), ..Commit::new(a.clone()) },
                CLAUSE,
            )
            .await;
        }
        let batch = s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.len(), 3, "{CLAUSE}: the round's three events are pending");
        for e in &batch {
            assert!(seen.insert(e.id), "{CLAUSE}: event id {} given again after it was acknowledged", e.id.0);
            assert!(
                seen.range(e.id..).count() == 1,
                "{CLAUSE}: event id {} of occurrence a is below an id it had before",
                e.id.0
            );
        }
        let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
        s.ack_events(&ids).await.unwrap_or_else(|e| panic!("{e}"));
    }
    commit_ok(s, Commit { events: vec![event(&b, "y", "r", 1)].into(), ..Commit::new(b.clone()) }, CLAUSE).await;
    let other = s.pending_events(10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.len(), 1, "{CLAUSE}: one pending event");
    assert!(!seen.contains(&other[0].id), "{CLAUSE}: another occurrence reused acknowledged id {}", other[0].id.0);
}
