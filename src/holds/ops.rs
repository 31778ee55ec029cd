//! What happens to a hold besides a request and a payment: the sweep meeting it lapsed,
//! the buyer abandoning it, the buyer getting more time.

use crate::kind::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use super::HoldView;
use crate::contract::{ActorId, CheckoutRequest, EventKind, OccKey, Ref};
use crate::operation::{Command, Never, Operation, sealed::Sealed};
use crate::records::{Change, Keys, Loaded, LoadedExt, Record, RecordKey, Step};
use crate::waitlist;

/// Decide what the sweep does with a due record it found (the expiry index's `key`): a
/// lapsed hold is expired, a waiting list's lapsed offers pass on; freed seats go to the
/// waiting list in the same commit. Answers how many holds it expired (0 or 1).
pub fn decide_expiry(view: &impl Loaded, key: &RecordKey, now: OffsetDateTime) -> Step<u32> {
    let Some(occ) = view.occurrence() else { return Step::Answer(0) };
    let mut change = Change::default();
    let mut expired = 0;
    if let RecordKey::Booking(r) = key {
        let Some((hold, freed, event)) = view.booking(r).and_then(|h| h.lapse(&occ.config, now)) else {
            return Step::Answer(0);
        };
        change.deltas.extend(&freed);
        change.put(Record::Booking(hold));
        change.events.push(event);
        expired = 1;
    } else {
        // The waiting list's own expiry: its lapsed offers pass on.
        waitlist::settle_waitlist(occ, view.waitlist(), &mut change, now, None);
    }
    if change.is_empty() { Step::Answer(0) } else { Step::Write(change, expired) }
}

/// What abandoning a checkout answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonOutcome {
    /// The live hold was released; its seats are free.
    Released,
    /// Nothing to release (not live, not this actor's, or no such hold).
    Noop,
}

/// Release `hold_ref`'s live hold (the buyer abandoned the checkout, or its payment failed).
/// A lapsed hold met here is expired instead and the answer is `Noop`. Freed seats go to the
/// waiting list in the same commit.
pub(crate) fn release(view: &impl Loaded, hold_ref: &Ref, now: OffsetDateTime) -> Step<AbandonOutcome> {
    let (Some(occ), Some(hold)) = (view.occurrence(), view.booking(hold_ref)) else {
        return Step::Answer(AbandonOutcome::Noop);
    };
    let mut change = Change::default();
    let outcome = match hold.view(now) {
        HoldView::Live => {
            let (released, freed, event) = hold.release(&occ.config, now);
            change.deltas.extend(&freed);
            change.put(Record::Booking(released));
            change.events.push(event);
            if let Some(a) = view.actor(&hold.actor) {
                change.put(Record::Actor(a.without_live(hold_ref)));
            }
            AbandonOutcome::Released
        }
        HoldView::Lapsed => {
            if let Some((expired, freed, event)) = hold.lapse(&occ.config, now) {
                change.deltas.extend(&freed);
                change.put(Record::Booking(expired));
                change.events.push(event);
            }
            AbandonOutcome::Noop
        }
        _ => return Step::Answer(AbandonOutcome::Noop),
    };
    Step::Write(change, outcome)
}

/// Decide `actor` abandoning the checkout of `hold_ref` (a buyer leaving the payment page):
/// the live hold is released without forging a payment result.
pub fn decide_abandon(
    view: &impl Loaded,
    actor: &crate::contract::ActorId,
    hold_ref: &Ref,
    now: OffsetDateTime,
) -> Step<AbandonOutcome> {
    match view.booking(hold_ref) {
        Some(h) if &h.actor == actor => release(view, hold_ref, now),
        _ => Step::Answer(AbandonOutcome::Noop),
    }
}

/// Why a hold could not be extended. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExtendRefusal {
    /// No occurrence has this key.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// No hold has this ref here.
    #[error("no hold has this ref")]
    UnknownHold,
    /// The hold is not live (lapsed, paid or ended): it cannot get more time.
    #[error("the hold is not live")]
    NotLive,
    /// The occurrence allows no extensions (`max_extension` is 0), or the duration is not
    /// positive.
    #[error("no extension allowed")]
    NotAllowed,
}

impl Classify for ExtendRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::UnknownHold => ErrorKind::NotFound,
            Self::NotLive => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// Decide extending the live hold `hold_ref` by `by`, never past its first expiry plus the
/// occurrence's `max_extension`. Answers the checkout request with the new expiry (send it
/// to the payment side). At the cap already, nothing is written and the same expiry comes
/// back.
///
/// # Errors
/// [`ExtendRefusal`].
pub fn decide_extend(
    view: &impl Loaded,
    hold_ref: &Ref,
    by: Duration,
    now: OffsetDateTime,
) -> Result<Step<CheckoutRequest>, ExtendRefusal> {
    let occ = view.occurrence().ok_or(ExtendRefusal::UnknownOccurrence)?;
    let hold = view.booking(hold_ref).ok_or(ExtendRefusal::UnknownHold)?;
    if !hold.is_live(now) {
        return Err(ExtendRefusal::NotLive);
    }
    let max = occ.config.max_extension();
    if max <= Duration::ZERO || by <= Duration::ZERO {
        return Err(ExtendRefusal::NotAllowed);
    }
    let actor_key = RecordKey::Actor(hold.actor.clone());
    if !view.is_loaded(&actor_key) {
        return Ok(Step::Load(vec![actor_key]));
    }
    let first = hold.first_expires_at.unwrap_or(hold.expires_at);
    let expires_at = hold.expires_at.saturating_add(by).min(first.saturating_add(max));
    if expires_at <= hold.expires_at {
        return Ok(Step::Answer(hold.checkout_request()));
    }
    let mut next = hold.clone();
    next.first_expires_at = Some(first);
    next.expires_at = expires_at;
    let mut change = Change::default();
    change.events.push(hold.event(now, EventKind::HoldExtended { expires_at }));
    if let Some(a) = view.actor(&hold.actor) {
        let mut a = a.clone();
        if let Some(l) = a.live.as_mut().filter(|l| &l.hold_ref == hold_ref) {
            l.expires_at = expires_at;
        }
        change.put(Record::Actor(a));
    }
    let checkout = next.checkout_request();
    change.put(Record::Booking(next));
    Ok(Step::Write(change, checkout))
}

/// Expire one due record (a lapsed hold, a lapsed waiting-list offer): the sweep's
/// operation ([`AsyncEngine::expire_due`](crate::AsyncEngine::expire_due)) around
/// [`decide_expiry`]. Answers how many holds it moved to `Expired`.
#[derive(Debug, Clone, Copy)]
pub struct Expire<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The due record's key.
    pub key: &'a RecordKey,
}

impl Sealed for Expire<'_> {}

impl Operation for Expire<'_> {
    type Output = u32;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        let mut keys = smallvec::smallvec![self.key.clone()];
        if self.key != &RecordKey::Waitlist {
            keys.push(RecordKey::Waitlist);
        }
        keys
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<u32>, Never> {
        Ok(decide_expiry(view, self.key, now))
    }
}

/// Give a live hold more time ([`AsyncEngine::extend`](crate::AsyncEngine::extend)): the
/// operation around [`decide_extend`].
#[derive(Debug, Clone, Copy)]
pub struct Extend<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The hold.
    pub hold_ref: &'a Ref,
    /// How much more time.
    pub by: Duration,
}

impl Sealed for Extend<'_> {}

impl Command for Extend<'_> {
    fn command(&self) -> String {
        format!("extend {} by={}", self.hold_ref, self.by)
    }
}

impl Operation for Extend<'_> {
    type Output = CheckoutRequest;
    type Refusal = ExtendRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![RecordKey::Booking(self.hold_ref.clone())]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<CheckoutRequest>, ExtendRefusal> {
        decide_extend(view, self.hold_ref, self.by, now)
    }
}

/// The buyer abandons a checkout ([`AsyncEngine::abandon`](crate::AsyncEngine::abandon)):
/// the operation around [`decide_abandon`].
#[derive(Debug, Clone, Copy)]
pub struct Abandon<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The buyer.
    pub actor: &'a ActorId,
    /// The hold.
    pub hold_ref: &'a Ref,
}

impl Sealed for Abandon<'_> {}

impl Command for Abandon<'_> {
    fn command(&self) -> String {
        format!("abandon {} {}", self.actor, self.hold_ref)
    }
}

impl Operation for Abandon<'_> {
    type Output = AbandonOutcome;
    type Refusal = Never;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> Keys {
        smallvec::smallvec![
            RecordKey::Booking(self.hold_ref.clone()),
            RecordKey::Actor(self.actor.clone()),
            RecordKey::Waitlist
        ]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<AbandonOutcome>, Never> {
        Ok(decide_abandon(view, self.actor, self.hold_ref, now))
    }
}
