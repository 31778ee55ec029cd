//! One actor's summary at one occurrence: what "one live hold per actor", `Already` and
//! `max_per_actor` are decided from, in O(1).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::contract::{ActorId, OccKey, Ref};
use crate::records::nanos;

/// The actor's hold in state `Held`, as the summary knows it. It may have lapsed since (the
/// summary is not rewritten when a hold lapses or is swept: time alone ends it), and it is
/// cleared when the hold is confirmed, released or abandoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveHold {
    /// Its ref.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Its seats.
    pub quantity: u32,
    /// When it lapses.
    #[serde(with = "nanos")]
    pub expires_at: OffsetDateTime,
}

/// An actor's summary at one occurrence, written with every change to the actor's bookings
/// except a hold lapsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRecord {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The actor.
    pub actor: ActorId,
    /// The ref of the actor's latest hold, whatever its state: the hold Part 1 locates a
    /// payment result by.
    #[serde(default, rename = "current", skip_serializing_if = "Option::is_none")]
    pub current: Option<Ref>,
    /// The actor's hold in state `Held`, if any (at most one at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveHold>,
    /// The latest confirmed booking not cancelled: what `Already` answers at an occurrence
    /// without `max_per_actor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_ref: Option<Ref>,
    /// Seats in confirmed bookings, cancelled ones excluded.
    #[serde(default)]
    pub confirmed_seats: u32,
    /// Holds placed, ever.
    #[serde(default)]
    pub holds: u32,
}

impl ActorRecord {
    /// A summary with nothing in it.
    pub fn new(occ_key: OccKey, actor: ActorId) -> Self {
        Self { occ_key, actor, current: None, live: None, confirmed_ref: None, confirmed_seats: 0, holds: 0 }
    }

    /// The live hold as the summary knows it, if it has not lapsed at `now`.
    pub fn live_at(&self, now: OffsetDateTime) -> Option<&LiveHold> {
        self.live.as_ref().filter(|l| l.expires_at > now)
    }

    /// The summary after `hold_ref` (of `quantity` seats) left state `Held`.
    pub(crate) fn without_live(&self, hold_ref: &Ref) -> Self {
        let mut next = self.clone();
        if next.live.as_ref().is_some_and(|l| &l.hold_ref == hold_ref) {
            next.live = None;
        }
        next
    }

    /// The summary after `hold_ref` was confirmed with `quantity` seats.
    pub(crate) fn confirmed(&self, hold_ref: &Ref, quantity: u32) -> Self {
        let mut next = self.without_live(hold_ref);
        next.confirmed_ref = Some(hold_ref.clone());
        next.confirmed_seats = next.confirmed_seats.saturating_add(quantity);
        next
    }
}

/// An actor's summary is stored under the actor.
impl crate::records::RecordBody for ActorRecord {
    fn key(&self) -> crate::records::RecordKey {
        crate::records::RecordKey::Actor(self.actor.clone())
    }
    fn has_key(&self, key: &crate::records::RecordKey) -> bool {
        matches!(key, crate::records::RecordKey::Actor(a) if *a == self.actor)
    }
}
