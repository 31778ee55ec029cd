//! Finding room for seats: by the counters, or — when they say no — by expiring the lapsed
//! holds and passing on the lapsed offers that still count (invariant 2: nothing lapsed ever
//! blocks). Seats freed this way go to the waiting list before anyone else.

use time::OffsetDateTime;

use crate::catalogue::{Dim, Dims};
use crate::contract::ActorId;
use crate::records::{Change, Deltas, Loaded, LoadedExt, Occurrence, Record, RecordKey, UsageDelta};
use crate::waitlist;

/// Seats to admit: these dimensions, by this change each.
pub(crate) type Need = (Dims, UsageDelta);

/// Whether the needs fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Room {
    /// They fit; their changes are now in the change (and the capacity guard is on).
    Fits,
    /// They do not fit, even with every lapsed hold and offer counted out. `need` is the
    /// first one that does not fit; `offered` says whether freed seats went to the waiting
    /// list (then the change is worth committing even though the answer is no).
    Full {
        /// The first need that does not fit, in order.
        need: usize,
        /// The first of its dimensions without room for it.
        dim: Dim,
        /// Whether offers were made.
        offered: bool,
    },
    /// Load up to this many of the occurrence's due records and decide again.
    NeedDue(usize),
}

/// The first need that does not fit on top of `base`, adding them in order, and the first of
/// its dimensions without room.
fn first_failing(occ: &Occurrence, base: &Deltas, needs: &[Need]) -> Option<(usize, Dim)> {
    let mut d = base.clone();
    for (i, (dims, u)) in needs.iter().enumerate() {
        d.add(dims, *u);
        if let Some(dim) = occ.first_over(dims, &d) {
            return Some((i, dim));
        }
    }
    None
}

fn with_needs(base: &Deltas, needs: &[Need]) -> Deltas {
    let mut d = base.clone();
    for (dims, u) in needs {
        d.add(dims, *u);
    }
    d
}

fn admit(change: &mut Change, needs: &[Need]) {
    for (dims, _) in needs {
        change.admit(dims);
    }
}

/// How many due records the step below reads at first.
const OFFER_BATCH: usize = 64;

/// Where someone waits, the first step of every decision that admits seats: expire every
/// lapsed hold and pass on every lapsed offer, then offer the free seats down the list —
/// before the decision looks at room for itself. The rule: a writing operation that meets a
/// lapsed hold makes the offers before it decides, so a walk-in never takes seats the list
/// is owed, also when the counters (still counting the lapsed holds) say it fits as it is,
/// and no sweep has run. Nobody is skipped: a requester first in line gets the offer, and
/// its request then takes it. `Ok(offered)`: whether offers were made (then a refusal is
/// worth committing); `Err(n)`: load up to `n` due records first.
pub(crate) fn offer_before_deciding(
    view: &impl Loaded,
    occ: &Occurrence,
    change: &mut Change,
    now: OffsetDateTime,
) -> Result<bool, usize> {
    let Some(wl) = view.waitlist() else { return Ok(false) };
    if !wl.entries.iter().any(|e| e.offer.is_none()) {
        return Ok(false);
    }
    // One batch of the oldest due records (O(1) store work per request, however many holds
    // lapsed): lapsed holds not in it still count as held, so a decision after this step
    // can take none of their seats either; the sweep, or a later write, frees them. A
    // decision that finds no room asks for more through `make_room`.
    let Some((due, _)) = view.due() else { return Err(OFFER_BATCH) };
    for rec in due {
        let Record::Booking(h) = rec else { continue };
        if change.put_of(&RecordKey::Booking(h.hold_ref.clone())).is_some() {
            continue;
        }
        if let Some((expired, freed, event)) = h.lapse(&occ.config, now) {
            change.deltas.extend(&freed);
            change.put(Record::Booking(expired));
            change.events.push(event);
        }
    }
    Ok(waitlist::settle_waitlist(occ, Some(wl), change, now, None))
}

/// Make room for `needs` on top of `change`. On [`Room::Fits`] their seat changes are added
/// to `change` and their dimensions to `change.admits`; on the other answers `change` may hold expired
/// holds and waiting-list moves (commit them only if `offered`).
pub(crate) fn make_room(
    view: &impl Loaded,
    occ: &Occurrence,
    change: &mut Change,
    needs: &[Need],
    requester: Option<&ActorId>,
    now: OffsetDateTime,
) -> Room {
    // The usual case, in one pass: the needs only add seats, so if every one fits with all of
    // them counted, each fits where it comes (which one fails first matters only below).
    let after = with_needs(&change.deltas, needs);
    if needs.iter().all(|(dims, _)| occ.first_over(dims, &after).is_none()) {
        change.deltas = after;
        admit(change, needs);
        return Room::Fits;
    }
    let Some((due, complete)) = view.due() else {
        let after = with_needs(&change.deltas, needs);
        let short: i128 = after.iter().filter_map(|(d, _)| occ.room(d, &after)).filter(|r| *r < 0).map(|r| -r).sum();
        return Room::NeedDue(usize::try_from(short).unwrap_or(usize::MAX).max(8));
    };
    // With people waiting, every lapsed hold is expired: its seats are theirs first.
    let waiting = view.waitlist().is_some_and(|w| w.entries.iter().any(|e| e.offer.is_none()));
    for rec in due {
        let Record::Booking(h) = rec else { continue };
        if change.put_of(&RecordKey::Booking(h.hold_ref.clone())).is_some() {
            continue;
        }
        let Some((expired, freed, event)) = h.lapse(&occ.config, now) else { continue };
        if !waiting {
            let after = with_needs(&change.deltas, needs);
            let helps = freed.iter().any(|(d, u)| u.net() < 0 && occ.room(d, &after).is_some_and(|r| r < 0));
            if !helps {
                continue;
            }
        }
        change.deltas.extend(&freed);
        change.put(Record::Booking(expired));
        change.events.push(event);
        if !waiting && first_failing(occ, &change.deltas, needs).is_none() {
            break;
        }
    }
    let offered = waitlist::settle_waitlist(occ, view.waitlist(), change, now, requester);
    match first_failing(occ, &change.deltas, needs) {
        None => {
            change.deltas = with_needs(&change.deltas, needs);
            admit(change, needs);
            Room::Fits
        }
        Some(_) if !complete => Room::NeedDue(due.len().saturating_mul(2).saturating_add(16)),
        Some((need, dim)) => Room::Full { need, dim, offered },
    }
}
