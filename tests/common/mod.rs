//! Helpers shared by the model, stress and fault tests: a tiny seeded RNG, the test clock's
//! start, amount formatting, and [`Ledger`], an independent consumer of the outbox that checks
//! the event-level invariants (3, every paid result accounted exactly once, and 7, every hold
//! ending in exactly one terminal event) as events arrive — for Part 1 occurrences by default,
//! and with [`Ledger::part2`] for the events Part 2 adds (revived confirmations, free orders,
//! extensions, cancellations, tickets, check-ins, waiting-list offers, payment alarms).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use seathold::contract::{EventKind, NoHoldReason, OutboxEvent};
use time::OffsetDateTime;
use time::macros::datetime;

/// Where every test clock starts (as in the scenario runner).
pub(crate) fn start() -> OffsetDateTime {
    datetime!(2026-01-01 00:00:00 UTC)
}

pub(crate) use crate::rng::Rng;

/// `cents` as a decimal string, written in one of several equivalent ways (`form`): all of
/// them must compare equal as amounts ("25.0" == "25.00").
pub(crate) fn fmt_amount(cents: u64, form: u8) -> String {
    let (units, frac) = (cents / 100, cents % 100);
    match form % 6 {
        1 if frac % 10 == 0 => format!("{units}.{}", frac / 10),
        2 if frac == 0 => format!("{units}"),
        3 => format!("{units}.{frac:02}0"),
        4 => format!("{units}.{frac:02}0000000"),
        5 => format!("0{units}.{frac:02}"),
        _ => format!("{units}.{frac:02}"),
    }
}

/// Identity of one accounted payment, as invariant 3 counts it: (occ_key, actor, ref), plus
/// the provider ref for a second, different payment under an already accounted ref (a
/// `duplicate_payment` refund, which is an accounting of its own). `None` for the first
/// payment accounted under (occ_key, actor, ref).
pub(crate) type PaidKey = (String, String, String, Option<String>);

/// The key of the first payment accounted under (occ, actor, ref).
pub(crate) fn paid_key(occ: &str, actor: &str, r: &str) -> PaidKey {
    (occ.to_owned(), actor.to_owned(), r.to_owned(), None)
}

/// A hold the ledger has seen placed and not yet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenHold {
    pub hold_ref: String,
    pub quantity: u32,
    pub expires_at: OffsetDateTime,
    /// A tiered order priced zero: confirmed at once, without a payment to account.
    pub free: bool,
}

/// A confirmed booking as the outbox has shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BookingSeen {
    pub actor: String,
    /// Tickets still to be issued (right after its confirmation).
    pub tickets_due: u32,
    /// Seats not cancelled.
    pub standing: u32,
    pub ticketed: bool,
    /// Tickets cancelled whose cancellation's refund has not come yet.
    pub cancelling: u32,
}

/// A ticket as the outbox has shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketSeen {
    Valid,
    CheckedIn,
    Cancelled,
}

/// An independent outbox consumer for Part 1 occurrences. Feed it every event once, in id
/// order; it fails on: a repeated id, ids not increasing within an occurrence, an event
/// without a ref, a hold placed while the actor's previous one is still open, a terminal
/// event for a hold that is not open (or under another ref or quantity), a second accounting
/// event (`hold_confirmed` / `refund_required`) for one (occ, actor, ref), and a
/// `duplicate_payment` refund that is not a second payment: one whose (occ, actor, ref) has
/// no accounting yet, whose provider ref is missing or is the first payment's, or that
/// repeats an earlier duplicate's provider ref. A `payment_rejected` alarm (a paid result
/// refused for its money) accounts nothing.
///
/// In Part 2 mode ([`Ledger::part2`]) it also accepts, and checks: a free order's
/// confirmation (not an accounting); a revived confirmation (`revived: true`) only for a
/// hold that is still open or ended by `hold_expired`/`hold_released`, once, accounted like
/// any payment; `hold_extended` only for the open hold, only later; `refund_required` with
/// reason `cancelled` only for a confirmed booking (not an accounting of a paid result); a
/// `ticket_issued` id only once and only right for a booking confirmed in the same batch;
/// `checked_in` and `ticket_cancelled` only for a valid issued ticket (so a ticket is
/// admitted at most once, and never after it was cancelled); `waitlist_offered` (the only
/// event without a ref).
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Accept and check the Part 2 events (see above).
    pub part2: bool,
    /// Holds ended by `hold_expired` / `hold_released`, by (occ, ref): what a revived
    /// confirmation may name (once).
    ended_holds: HashMap<(String, String), (String, u32)>,
    /// Confirmed bookings, by (occ, ref).
    pub bookings: HashMap<(String, String), BookingSeen>,
    /// Every ticket issued, by (occ, ticket id).
    pub tickets: HashMap<(String, String), TicketSeen>,
    pub revived_events: u64,
    pub cancel_refunds: u64,
    pub offers: u64,
    pub check_ins: u64,
    pub rejected_alarms: u64,
    seen: HashSet<u64>,
    last_id: HashMap<String, u64>,
    pub open: HashMap<(String, String), OpenHold>,
    pub accounted: HashMap<PaidKey, &'static str>,
    /// The provider ref of the first accounting of (occ, actor, ref): `Some(p)` when its
    /// event says (a refund carries the result's provider ref, or none), `None` when it does
    /// not (a confirmation).
    first_provider: HashMap<PaidKey, Option<Option<String>>>,
    pub confirmed_seats: HashMap<String, u64>,
    pub placed: u64,
    pub ended: u64,
    pub confirmed_events: u64,
    pub refund_events: u64,
    pub duplicate_refunds: u64,
    pub expired_events: u64,
    pub released_events: u64,
}

impl BookingSeen {
    fn new(actor: &str, seats: u32) -> Self {
        Self { actor: actor.to_owned(), tickets_due: seats, standing: seats, ticketed: false, cancelling: 0 }
    }
}

impl Ledger {
    /// A consumer that also accepts and checks the Part 2 events.
    pub(crate) fn part2() -> Self {
        Self { part2: true, ..Self::default() }
    }

    pub(crate) fn absorb(&mut self, e: &OutboxEvent) -> Result<(), String> {
        let id = e.id.0;
        if !self.seen.insert(id) {
            return Err(format!("event id {id} delivered twice: {e:?}"));
        }
        let occ = e.event.occ_key.as_str().to_owned();
        let actor = e.event.actor.as_str().to_owned();
        let last = self.last_id.entry(occ.clone()).or_insert(0);
        if id <= *last {
            return Err(format!("event ids of {occ} not increasing: {id} after {last}"));
        }
        *last = id;
        let Some(r) = e.event.hold_ref.as_ref().map(|r| r.as_str().to_owned()) else {
            if self.part2 && matches!(e.event.kind, EventKind::WaitlistOffered { .. }) {
                self.offers += 1;
                return Ok(());
            }
            return Err(format!("event {id} has no ref: {e:?}"));
        };
        if self.part2 && self.absorb_part2(e, &occ, &actor, &r)? {
            return Ok(());
        }
        let key = (occ.clone(), actor.clone());
        let end = |ledger: &mut Self, quantity: u32, what: &str| -> Result<(), String> {
            match ledger.open.remove(&key) {
                Some(h) if h.hold_ref == r && h.quantity == quantity => {
                    ledger.ended += 1;
                    Ok(())
                }
                other => Err(format!("{what} for {key:?} ref {r} qty {quantity}, but the open hold is {other:?}")),
            }
        };
        match &e.event.kind {
            EventKind::HoldPlaced { quantity, expires_at, .. } => {
                if let Some(prev) = self.open.get(&key) {
                    return Err(format!("hold_placed for {key:?} ref {r} while {prev:?} is still open"));
                }
                let free = match &e.event.kind {
                    EventKind::HoldPlaced { price, lines, .. } => !lines.is_empty() && price.amount.is_zero(),
                    _ => false,
                };
                self.open.insert(key, OpenHold { hold_ref: r, quantity: *quantity, expires_at: *expires_at, free });
                self.placed += 1;
            }
            EventKind::HoldConfirmed { quantity, revived } => {
                if *revived {
                    return Err(format!(
                        "revived confirmation for {key:?} ref {r} at a late_payment: refund occurrence"
                    ));
                }
                let free = self.open.get(&key).is_some_and(|h| h.hold_ref == r && h.free);
                end(self, *quantity, "hold_confirmed")?;
                self.confirmed_events += 1;
                *self.confirmed_seats.entry(occ.clone()).or_insert(0) += u64::from(*quantity);
                if self.part2 {
                    self.bookings.insert((occ.clone(), r.clone()), BookingSeen::new(&actor, *quantity));
                }
                if !free {
                    self.account(paid_key(&occ, &actor, &r), None, "hold_confirmed")?;
                }
            }
            EventKind::HoldReleased { quantity } => {
                end(self, *quantity, "hold_released")?;
                self.released_events += 1;
                if self.part2 {
                    self.ended_holds.insert((occ.clone(), r.clone()), (actor.clone(), *quantity));
                }
            }
            EventKind::HoldExpired { quantity } => {
                end(self, *quantity, "hold_expired")?;
                self.expired_events += 1;
                if self.part2 {
                    self.ended_holds.insert((occ.clone(), r.clone()), (actor.clone(), *quantity));
                }
            }
            EventKind::RefundRequired { reason: NoHoldReason::DuplicatePayment, provider_ref, .. } => {
                self.refund_events += 1;
                self.duplicate_refunds += 1;
                let first = paid_key(&occ, &actor, &r);
                let Some(first_provider) = self.first_provider.get(&first) else {
                    return Err(format!("duplicate_payment refund for {first:?}, which has no accounting yet"));
                };
                let Some(p) = provider_ref.as_ref().map(|p| p.as_str().to_owned()) else {
                    return Err(format!("duplicate_payment refund for {first:?} without a provider ref"));
                };
                // A first payment accounted without a provider ref is named by its first
                // redelivery that carries one (`seathold::settlement`; no event says which), so a
                // second charge is possible then too: `account` below still refuses two
                // refunds for one provider ref.
                match first_provider {
                    Some(Some(f)) if *f == p => {
                        return Err(format!("duplicate_payment refund for {first:?} under the first payment's {p}"));
                    }
                    _ => {}
                }
                self.account((occ, actor, r, Some(p)), None, "duplicate_payment refund")?;
            }
            EventKind::RefundRequired { reason: NoHoldReason::Cancelled, .. } => {
                return Err(format!("unexpected cancellation refund {e:?}"));
            }
            // The library's alarm for a paid result refused for its money (once per payment):
            // nothing is accounted.
            EventKind::PaymentRejected { .. } => self.rejected_alarms += 1,
            EventKind::RefundRequired { provider_ref, .. } => {
                self.refund_events += 1;
                let p = provider_ref.as_ref().map(|p| p.as_str().to_owned());
                self.account(paid_key(&occ, &actor, &r), Some(p), "refund_required")?;
            }
            other => return Err(format!("unexpected event kind {other:?}")),
        }
        Ok(())
    }

    /// The Part 2 events; `true` when the event was handled here.
    fn absorb_part2(&mut self, e: &OutboxEvent, occ: &str, actor: &str, r: &str) -> Result<bool, String> {
        let key = (occ.to_owned(), actor.to_owned());
        let booking = (occ.to_owned(), r.to_owned());
        match &e.event.kind {
            EventKind::HoldConfirmed { quantity, revived: true } => {
                match self.open.get(&key) {
                    Some(h) if h.hold_ref == r && h.quantity == *quantity => {
                        self.open.remove(&key);
                        self.ended += 1;
                    }
                    _ => match self.ended_holds.remove(&booking) {
                        Some((a, q)) if a == actor && q == *quantity => {}
                        other => {
                            return Err(format!(
                                "revived confirmation of {booking:?} by {actor} qty {quantity}: it is neither open \
                                 nor ended unrevived ({other:?})"
                            ));
                        }
                    },
                }
                self.confirmed_events += 1;
                self.revived_events += 1;
                *self.confirmed_seats.entry(occ.to_owned()).or_insert(0) += u64::from(*quantity);
                self.bookings.insert(booking, BookingSeen::new(actor, *quantity));
                self.account(paid_key(occ, actor, r), None, "revived hold_confirmed")?;
            }
            EventKind::HoldExtended { expires_at } => match self.open.get_mut(&key) {
                Some(h) if h.hold_ref == r && *expires_at > h.expires_at => h.expires_at = *expires_at,
                other => return Err(format!("hold_extended of {booking:?} to {expires_at}, open hold {other:?}")),
            },
            EventKind::RefundRequired { reason: NoHoldReason::Cancelled, provider_ref, .. } => {
                // A cancellation's refund (after its tickets' `ticket_cancelled`, or for a
                // booking without tickets, all of it), or a payment for a booking cancelled
                // whole: accounted like any refund signal.
                match self.bookings.get_mut(&booking).filter(|b| b.actor == actor) {
                    Some(b) if b.cancelling > 0 => b.cancelling = 0,
                    Some(b) if !b.ticketed && b.standing > 0 => b.standing = 0,
                    _ => {
                        self.refund_events += 1;
                        let p = provider_ref.as_ref().map(|p| p.as_str().to_owned());
                        self.account(paid_key(occ, actor, r), Some(p), "refund_required (cancelled)")?;
                        return Ok(true);
                    }
                }
                self.cancel_refunds += 1;
            }
            EventKind::TicketIssued { ticket, .. } => {
                let Some(b) = self.bookings.get_mut(&booking).filter(|b| b.actor == actor && b.tickets_due > 0) else {
                    return Err(format!("ticket_issued {ticket} for {booking:?}, which has no ticket due"));
                };
                b.tickets_due -= 1;
                b.ticketed = true;
                if !ticket.starts_with(&format!("{r}#")) {
                    return Err(format!("ticket {ticket} does not name its booking {r}"));
                }
                if self.tickets.insert((occ.to_owned(), ticket.clone()), TicketSeen::Valid).is_some() {
                    return Err(format!("ticket {ticket} of {occ} issued twice"));
                }
            }
            EventKind::TicketCancelled { ticket } | EventKind::CheckedIn { ticket } => {
                let cancel = matches!(e.event.kind, EventKind::TicketCancelled { .. });
                match self.tickets.get_mut(&(occ.to_owned(), ticket.clone())) {
                    Some(s) if *s == TicketSeen::Valid => {
                        *s = if cancel { TicketSeen::Cancelled } else { TicketSeen::CheckedIn };
                    }
                    other => return Err(format!("{e:?} for a ticket that is {other:?}")),
                }
                if cancel {
                    let Some(b) = self.bookings.get_mut(&booking).filter(|b| b.actor == actor && b.standing > 0) else {
                        return Err(format!("ticket_cancelled {ticket} for {booking:?}, which has no seat standing"));
                    };
                    b.standing -= 1;
                    b.cancelling += 1;
                } else {
                    self.check_ins += 1;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tickets of `occ` issued and not cancelled (valid or checked in).
    pub(crate) fn standing_tickets(&self, occ: &str) -> u64 {
        self.tickets.iter().filter(|((o, _), s)| o == occ && **s != TicketSeen::Cancelled).count() as u64
    }

    fn account(&mut self, key: PaidKey, provider: Option<Option<String>>, what: &'static str) -> Result<(), String> {
        if let Some(first) = self.accounted.insert(key.clone(), what) {
            return Err(format!("paid result {key:?} accounted twice: {first} then {what}"));
        }
        if key.3.is_none() {
            self.first_provider.insert(key, provider);
        }
        Ok(())
    }

    pub(crate) fn absorb_all(&mut self, events: &[OutboxEvent]) -> Result<(), String> {
        events.iter().try_for_each(|e| self.absorb(e))
    }

    /// Seats in holds still open (placed, no terminal event) that are live at `now`.
    pub(crate) fn live_held(&self, occ: &str, now: OffsetDateTime) -> u64 {
        self.open.iter().filter(|((o, _), h)| o == occ && h.expires_at > now).map(|(_, h)| u64::from(h.quantity)).sum()
    }

    pub(crate) fn confirmed(&self, occ: &str) -> u64 {
        self.confirmed_seats.get(occ).copied().unwrap_or(0)
    }
}
