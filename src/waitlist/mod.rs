//! The waiting list: who waits for seats of a sold-out occurrence, and the offers made to
//! them when seats free up.
//!
//! Owns: the [`Waitlist`] record (entries in arrival order, each with the [`Offer`] it may
//! hold), joining and leaving ([`decide_join`], [`decide_leave`]), and the two moves every
//! seat-freeing decision makes through this module: offers that lapsed pass on, and free
//! seats go to the first entries that fit, in the same commit that freed them.
//!
//! May not touch: holds, payments, storage, the clock. Offered seats count like a live hold
//! on every dimension their tier touches ([`Usage::offered`](crate::records::Usage)), so a
//! walk-in request cannot take them; only the offered actor's next request does.

use crate::kind::{Classify, ErrorKind};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::catalogue::Dim;
use crate::contract::{ActorId, DomainEvent, EventKind, MAX_QUANTITY, OccKey, TierName};
use crate::records::{Change, Deltas, Loaded, LoadedExt, Occurrence, Record, RecordKey, Step, UsageDelta, nanos};

/// The most entries one waiting list may hold.
pub const MAX_WAITLIST: usize = 10_000;

/// Seats set aside for one entry until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Seats set aside.
    pub seats: u32,
    /// When the offer lapses and passes on.
    #[serde(with = "nanos")]
    pub expires_at: OffsetDateTime,
}

/// One actor waiting for seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEntry {
    /// Arrival order.
    pub seq: u64,
    /// Who waits.
    pub actor: ActorId,
    /// For which tier (`None`: any seat of the occurrence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// How many seats.
    pub seats: u32,
    /// When they joined.
    #[serde(with = "nanos")]
    pub joined_at: OffsetDateTime,
    /// The seats set aside for them, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

/// An occurrence's waiting list (one record per occurrence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waitlist {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The next arrival number.
    pub next_seq: u64,
    /// Entries in arrival order. Shared: reading or copying a waiting list (every operation
    /// at its occurrence loads it) costs a reference count, not a copy of every entry; a
    /// write copies them once (`Arc::make_mut`).
    pub entries: Arc<Vec<WaitEntry>>,
}

impl Waitlist {
    /// An empty waiting list.
    pub fn new(occ_key: OccKey) -> Self {
        Self { occ_key, next_seq: 1, entries: Arc::default() }
    }

    /// When the sweep should meet it: its first offer's expiry.
    pub fn due(&self) -> Option<OffsetDateTime> {
        self.entries.iter().filter_map(|e| e.offer.as_ref().map(|o| o.expires_at)).min()
    }

    /// The 1-based position of `actor`'s entry on `tier`'s list (a full tier has its own
    /// waiting list): one plus the entries for the same tier that arrived before it. The
    /// lists share one record, and an entry for another tier is never ahead of it.
    pub fn position(&self, actor: &ActorId, tier: Option<&TierName>) -> Option<usize> {
        let i = self.index_of(actor, tier)?;
        Some(self.entries[..i].iter().filter(|e| e.tier.as_ref() == tier).count() + 1)
    }

    /// Where `actor`'s entry for `tier` is in the record (arrival order over every tier).
    fn index_of(&self, actor: &ActorId, tier: Option<&TierName>) -> Option<usize> {
        self.entries.iter().position(|e| &e.actor == actor && e.tier.as_ref() == tier)
    }

    /// Seats offered and not lapsed at `now`, and seats in offers that lapsed.
    pub fn offered_seats(&self, now: OffsetDateTime) -> (u64, u64) {
        let mut live = 0;
        let mut lapsed = 0;
        for o in self.entries.iter().filter_map(|e| e.offer.as_ref()) {
            if o.expires_at > now {
                live += u64::from(o.seats);
            } else {
                lapsed += u64::from(o.seats);
            }
        }
        (live, lapsed)
    }
}

/// Drop the entries whose offers lapsed at `now` (they had their turn), freeing their
/// seats in `change`. Returns whether any lapsed.
pub(crate) fn lapse_offers(occ: &Occurrence, wl: &mut Waitlist, change: &mut Change, now: OffsetDateTime) -> bool {
    if !wl.entries.iter().any(|e| e.offer.as_ref().is_some_and(|o| o.expires_at <= now)) {
        return false;
    }
    let mut any = false;
    Arc::make_mut(&mut wl.entries).retain(|e| match &e.offer {
        Some(o) if o.expires_at <= now => {
            let mut d = Deltas::new();
            d.add(&occ.config.seat_dims(e.tier.as_ref()), UsageDelta::offered(o.seats).negated());
            change.deltas.extend(&d);
            any = true;
            false
        }
        _ => true,
    });
    any
}

/// Give free seats (by the counters after `change`) to the waiting entries that fit, in
/// arrival order, skipping `skip`'s entries: each gets an offer for its seats, counted as
/// offered, with a `waitlist_offered` event. Returns whether any offer was made.
pub(crate) fn offer_free_seats(
    occ: &Occurrence,
    wl: &mut Waitlist,
    change: &mut Change,
    now: OffsetDateTime,
    skip: Option<&ActorId>,
) -> bool {
    // Whether this change frees seats: then whoever is left waiting was judged not to fit on
    // the counters read, and a seat another commit frees meanwhile must make this one decide
    // again (two releases that each free one seat must not both conclude that a two-seat
    // entry does not fit). Commits that only take seats cannot make an entry fit.
    let frees = change.deltas.iter().any(|(_, d)| d.net() < 0);
    let mut any = false;
    let expires_at = now.saturating_add(occ.config.offer_ttl());
    // Seats left in the total: an entry wanting more is skipped without trying its tier, and
    // once none are left nobody else can fit (a long queue at a sold-out show costs O(1)).
    let mut total_room = occ.room(&Dim::Total, &change.deltas).unwrap_or(i128::MAX);
    for i in 0..wl.entries.len() {
        if total_room <= 0 {
            break;
        }
        let e = &wl.entries[i];
        if e.offer.is_some() || Some(&e.actor) == skip || i128::from(e.seats) > total_room {
            continue;
        }
        let dims = occ.config.seat_dims(e.tier.as_ref());
        let mut trial = change.deltas.clone();
        trial.add(&dims, UsageDelta::offered(e.seats));
        if occ.first_over(&dims, &trial).is_some() {
            continue;
        }
        change.deltas = trial;
        change.admit(&dims);
        total_room -= i128::from(e.seats);
        let e = &mut Arc::make_mut(&mut wl.entries)[i];
        e.offer = Some(Offer { seats: e.seats, expires_at });
        change.events.push(DomainEvent {
            occ_key: occ.key.clone(),
            actor: e.actor.clone(),
            hold_ref: None,
            at: now,
            kind: EventKind::WaitlistOffered { tier: e.tier.clone(), seats: e.seats, expires_at },
            metadata: None,
        });
        any = true;
    }
    if frees {
        guard_room(occ, wl, change);
    }
    any
}

/// For every entry still waiting without an offer, guard each dimension it needs against a
/// seat freed there since `occ` was read ([`Change::at_least`]: seats taken, as read). Seats
/// taken meanwhile do not conflict; seats freed do, and the commit decides again.
fn guard_room(occ: &Occurrence, wl: &Waitlist, change: &mut Change) {
    // The tiers waited for, each once (a long queue names few tiers).
    let mut tiers: Vec<Option<&TierName>> = Vec::new();
    for e in wl.entries.iter().filter(|e| e.offer.is_none()) {
        if !tiers.contains(&e.tier.as_ref()) {
            tiers.push(e.tier.as_ref());
        }
    }
    for tier in tiers {
        for d in occ.config.seat_dims(tier) {
            if !change.at_least.iter().any(|(x, _)| *x == d) {
                let taken = occ.counters.get(&d).total();
                change.at_least.push((d, taken));
            }
        }
    }
}

/// Take `actor`'s live offer, if any: its entry leaves the list and its seats are freed in
/// `change` (the request that takes it then holds them like any other seats).
pub(crate) fn take_offer(
    occ: &Occurrence,
    wl: &mut Waitlist,
    change: &mut Change,
    actor: &ActorId,
    now: OffsetDateTime,
) -> Option<u32> {
    let i =
        wl.entries.iter().position(|e| &e.actor == actor && e.offer.as_ref().is_some_and(|o| o.expires_at > now))?;
    let e = Arc::make_mut(&mut wl.entries).remove(i);
    let seats = e.offer.as_ref().map_or(0, |o| o.seats);
    let mut d = Deltas::new();
    d.add(&occ.config.seat_dims(e.tier.as_ref()), UsageDelta::offered(seats).negated());
    change.deltas.extend(&d);
    Some(seats)
}

/// `actor` was just placed a hold of `tiers` (none: plain seats): its entries still waiting
/// without an offer for one of them, or for any seat, leave the list in `change`.
pub(crate) fn leave_on_placement(wl: Option<&Waitlist>, change: &mut Change, actor: &ActorId, tiers: &[TierName]) {
    let Some(loaded) = wl else { return };
    let mut next = match change.put_of(&RecordKey::Waitlist) {
        Some(Record::Waitlist(w)) => w.clone(),
        _ => loaded.clone(),
    };
    let leaves =
        |e: &WaitEntry| &e.actor == actor && e.offer.is_none() && e.tier.as_ref().is_none_or(|t| tiers.contains(t));
    if next.entries.iter().any(leaves) {
        Arc::make_mut(&mut next.entries).retain(|e| !leaves(e));
        change.put(Record::Waitlist(next));
    }
}

/// Run the waiting list's part of a seat-freeing decision: offers that lapsed pass on and
/// free seats go to the entries that fit. Puts the waiting list in `change` if it moved.
/// `wl` is the loaded waiting list (or `None` if there is none).
pub(crate) fn settle_waitlist(
    occ: &Occurrence,
    wl: Option<&Waitlist>,
    change: &mut Change,
    now: OffsetDateTime,
    skip: Option<&ActorId>,
) -> bool {
    change.waitlist_settled = true;
    let Some(wl) = wl else { return false };
    let mut next = match change.put_of(&RecordKey::Waitlist) {
        Some(Record::Waitlist(w)) => w.clone(),
        _ => wl.clone(),
    };
    let lapsed = lapse_offers(occ, &mut next, change, now);
    let offered = offer_free_seats(occ, &mut next, change, now, skip);
    if lapsed || offered {
        change.put(Record::Waitlist(next));
    }
    offered
}

/// The waiting list's claim on freed seats, for a change its decision made: if the change
/// frees seats (a dimension's net delta below zero) and the decision did not settle the list
/// itself, settle it now, in the same change (lapsed offers pass on, free seats go to the
/// entries that fit, in order; their events follow the decision's). Applied by
/// [`finish`](crate::finish) to every change, so no seat-freeing decision has to remember it.
/// Two kinds of decision settle the list themselves: those that must serve it *before* they
/// decide (a request, a late payment meeting a lapsed hold), and a new configuration, whose
/// larger capacity frees seats no delta shows.
///
/// `Err(key)`: the waiting list was not loaded; load it and decide again.
pub(crate) fn claim_freed(view: &impl Loaded, change: &mut Change, now: OffsetDateTime) -> Result<(), RecordKey> {
    if change.waitlist_settled || !change.deltas.iter().any(|(_, d)| d.net() < 0) {
        return Ok(());
    }
    let Some(occ) = view.occurrence() else { return Ok(()) };
    if !view.is_loaded(&RecordKey::Waitlist) {
        return Err(RecordKey::Waitlist);
    }
    // Seats freed under a configuration this change also replaces are judged by the new one.
    match &change.config {
        Some(config) => {
            let next = Occurrence { config: config.clone(), ..occ.clone() };
            settle_waitlist(&next, view.waitlist(), change, now, None);
        }
        None => {
            settle_waitlist(occ, view.waitlist(), change, now, None);
        }
    }
    Ok(())
}

/// A waiting list as a shop shows it ([`AsyncEngine::waitlist_of`](crate::AsyncEngine::waitlist_of)):
/// who waits, in order, and who holds a live offer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WaitlistView {
    /// The entries waiting without an offer, in arrival order.
    pub entries: Vec<Waiting>,
    /// The live offers, in arrival order of their entries.
    pub offers: Vec<Offered>,
}

/// One entry waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Who.
    pub actor: ActorId,
    /// For which tier (`None`: any seat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// How many seats.
    pub seats: u32,
    /// Its 1-based place on its tier's list (as [`Joined::position`] answered).
    pub position: usize,
}

/// One live offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    /// Who.
    pub actor: ActorId,
    /// Of which tier (`None`: any seat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// Seats set aside.
    pub seats: u32,
    /// Until when (the actor's next request before then takes them).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The waiting list `wl` as at `now`. An offer that lapsed is shown nowhere: its entry had
/// its turn, and the next write passes its seats on (see
/// [`Availability`](crate::catalogue::Availability) for the seats it still sets aside).
pub fn view(wl: Option<&Waitlist>, now: OffsetDateTime) -> WaitlistView {
    let mut out = WaitlistView::default();
    let Some(wl) = wl else { return out };
    for e in wl.entries.iter() {
        match &e.offer {
            None => out.entries.push(Waiting {
                actor: e.actor.clone(),
                tier: e.tier.clone(),
                seats: e.seats,
                position: out.entries.iter().filter(|w| w.tier == e.tier).count() + 1,
            }),
            Some(o) if o.expires_at > now => out.offers.push(Offered {
                actor: e.actor.clone(),
                tier: e.tier.clone(),
                seats: o.seats,
                expires_at: o.expires_at,
            }),
            Some(_) => {}
        }
    }
    out
}

/// What joining answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The entry's 1-based position in the list.
    pub position: usize,
    /// Whether seats were offered at once (there was room).
    pub offered: bool,
}

/// Why joining or leaving was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WaitlistRefusal {
    /// No occurrence has this key.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// The occurrence does not sell this tier.
    #[error("unknown tier {0}")]
    UnknownTier(TierName),
    /// Zero seats, or more than [`MAX_QUANTITY`].
    #[error("seats must be from 1 to {max}")]
    BadSeats {
        /// The maximum.
        max: u32,
    },
    /// The list holds [`MAX_WAITLIST`] entries already.
    #[error("the waiting list is full ({max} entries)")]
    ListFull {
        /// [`MAX_WAITLIST`].
        max: usize,
    },
    /// The tier is sold as places of the seat map: waiting lists for seated tiers are not
    /// offered in this version (an offer would have to name seats). Point buyers at best
    /// available instead.
    #[error("tier {0} is seated: it has no waiting list")]
    SeatedTier(TierName),
}

impl Classify for WaitlistRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence => ErrorKind::NotFound,
            Self::BadSeats { .. } => ErrorKind::BadRequest,
            Self::ListFull { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// Decide `actor` joining the waiting list for `seats` seats (of `tier`). Joining again for
/// the same tier answers the existing entry's position. If seats are free at once, the new
/// entry is offered them in the same commit.
///
/// # Errors
/// [`WaitlistRefusal`].
pub fn decide_join(
    view: &impl Loaded,
    actor: &ActorId,
    tier: Option<&TierName>,
    seats: u32,
    now: OffsetDateTime,
) -> Result<Step<Joined>, WaitlistRefusal> {
    let occ = view.occurrence().ok_or(WaitlistRefusal::UnknownOccurrence)?;
    if !(1..=MAX_QUANTITY).contains(&seats) {
        return Err(WaitlistRefusal::BadSeats { max: MAX_QUANTITY });
    }
    if let Some(t) = tier {
        if occ.config.tier(t).is_none() {
            return Err(WaitlistRefusal::UnknownTier(t.clone()));
        }
        if occ.config.is_seated(t) {
            return Err(WaitlistRefusal::SeatedTier(t.clone()));
        }
    }
    let mut wl = view.waitlist().cloned().unwrap_or_else(|| Waitlist::new(occ.key.clone()));
    if let (Some(i), Some(position)) = (wl.index_of(actor, tier), wl.position(actor, tier)) {
        let offered = wl.entries[i].offer.is_some();
        return Ok(Step::Answer(Joined { position, offered }));
    }
    if wl.entries.len() >= MAX_WAITLIST {
        return Err(WaitlistRefusal::ListFull { max: MAX_WAITLIST });
    }
    Arc::make_mut(&mut wl.entries).push(WaitEntry {
        seq: wl.next_seq,
        actor: actor.clone(),
        tier: tier.cloned(),
        seats,
        joined_at: now,
        offer: None,
    });
    wl.next_seq += 1;
    let mut change = Change { waitlist_settled: true, ..Change::default() };
    lapse_offers(occ, &mut wl, &mut change, now);
    offer_free_seats(occ, &mut wl, &mut change, now, None);
    let offered = wl.index_of(actor, tier).is_some_and(|i| wl.entries[i].offer.is_some());
    if !offered {
        // "No room" must not commit past a release this decision did not see.
        guard_room(occ, &wl, &mut change);
    }
    let position = wl.position(actor, tier).unwrap_or(wl.entries.len());
    change.put(Record::Waitlist(wl));
    Ok(Step::Write(change, Joined { position, offered }))
}

/// Decide `actor` leaving the waiting list (its entry for `tier`); an offer it held passes
/// on in the same commit. Answers whether there was an entry.
///
/// # Errors
/// [`WaitlistRefusal::UnknownOccurrence`].
pub fn decide_leave(
    view: &impl Loaded,
    actor: &ActorId,
    tier: Option<&TierName>,
    now: OffsetDateTime,
) -> Result<Step<bool>, WaitlistRefusal> {
    let occ = view.occurrence().ok_or(WaitlistRefusal::UnknownOccurrence)?;
    let Some(wl) = view.waitlist() else { return Ok(Step::Answer(false)) };
    let Some(i) = wl.index_of(actor, tier) else { return Ok(Step::Answer(false)) };
    let mut next = wl.clone();
    let e = Arc::make_mut(&mut next.entries).remove(i);
    let mut change = Change { waitlist_settled: true, ..Change::default() };
    if let Some(o) = &e.offer {
        let mut d = Deltas::new();
        d.add(&occ.config.seat_dims(e.tier.as_ref()), UsageDelta::offered(o.seats).negated());
        change.deltas.extend(&d);
    }
    lapse_offers(occ, &mut next, &mut change, now);
    offer_free_seats(occ, &mut next, &mut change, now, None);
    change.put(Record::Waitlist(next));
    Ok(Step::Write(change, true))
}

/// The waiting list is one record per occurrence, due for the sweep at its first offer's
/// expiry.
impl crate::records::RecordBody for Waitlist {
    fn key(&self) -> RecordKey {
        RecordKey::Waitlist
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::Waitlist)
    }
    fn due(&self) -> Option<OffsetDateTime> {
        Waitlist::due(self)
    }
}

/// Join the waiting list ([`AsyncEngine::join_waitlist`](crate::AsyncEngine::join_waitlist)):
/// the operation around [`decide_join`].
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// Who joins.
    pub actor: &'a ActorId,
    /// For which tier (`None`: plain seats).
    pub tier: Option<&'a TierName>,
    /// How many seats.
    pub seats: u32,
}

/// Leave the waiting list
/// ([`AsyncEngine::leave_waitlist`](crate::AsyncEngine::leave_waitlist)): the operation
/// around [`decide_leave`]. Answers whether there was an entry.
#[derive(Debug, Clone, Copy)]
pub struct Leave<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// Who leaves.
    pub actor: &'a ActorId,
    /// The entry's tier (`None`: plain seats).
    pub tier: Option<&'a TierName>,
}

impl crate::operation::sealed::Sealed for Join<'_> {}
impl crate::operation::sealed::Sealed for Leave<'_> {}

impl crate::operation::Command for Join<'_> {
    fn command(&self) -> String {
        format!("join {} tier={:?} x{}", self.actor, self.tier, self.seats)
    }
}

impl crate::operation::Command for Leave<'_> {
    fn command(&self) -> String {
        format!("leave {} tier={:?}", self.actor, self.tier)
    }
}

impl crate::operation::Operation for Join<'_> {
    type Output = Joined;
    type Refusal = WaitlistRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        smallvec::smallvec![RecordKey::Waitlist]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<Joined>, WaitlistRefusal> {
        decide_join(view, self.actor, self.tier, self.seats, now)
    }
}

impl crate::operation::Operation for Leave<'_> {
    type Output = bool;
    type Refusal = WaitlistRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        smallvec::smallvec![RecordKey::Waitlist]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<bool>, WaitlistRefusal> {
        decide_leave(view, self.actor, self.tier, now)
    }
}
