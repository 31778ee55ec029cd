//! Cancelling a confirmed booking, or some of its tickets: the one way a paid seat is
//! released (invariant 4 as amended).

use crate::kind::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use super::HoldState;
use crate::contract::{ActorId, Amount, EventKind, Money, NoHoldReason, OccKey, ProviderRef, Ref};
use crate::records::{Change, Loaded, LoadedExt, Record, RecordKey, Step, UsageDelta, nanos};
use crate::tickets::{TicketState, ticket_id};

/// The record of one cancellation: what was cancelled and what must be refunded. Part of
/// the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The occurrence.
    pub occ_key: OccKey,
    /// Whose booking.
    pub actor: ActorId,
    /// The booking.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Which cancellation of the booking (from 1).
    pub n: u32,
    /// Seats cancelled.
    pub seats: u32,
    /// The cancelled seats' share of what was paid (the most the shop could refund), when
    /// the shop refunds less than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Money>,
    /// The tickets voided (seat indices), if tickets were issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<u32>,
    /// The refund given: the shop's, or by default the whole share.
    pub refund: Money,
    /// The payment to refund, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// When.
    #[serde(with = "nanos")]
    pub at: OffsetDateTime,
}

/// What a cancellation answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelOutcome {
    /// Seats freed and tickets voided; refund `refund` (a `refund_required` event with reason
    /// `cancelled` says the same).
    Cancelled {
        /// The refund given: the shop's (see [`decide_cancel`]), or by default the cancelled
        /// seats' whole share.
        #[serde(flatten)]
        refund: Money,
        /// Seats cancelled.
        seats: u32,
        /// The payment to refund against, if the provider named it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_ref: Option<ProviderRef>,
    },
    /// Nothing left to cancel (already cancelled, or the hold never was a booking).
    Noop,
    /// Refused whole: this ticket is checked in.
    CheckedIn {
        /// The checked-in ticket.
        ticket: String,
    },
}

/// Why a cancellation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CancelRefusal {
    /// No occurrence has this key.
    #[error("unknown occurrence")]
    UnknownOccurrence,
    /// No booking has this ref here.
    #[error("no booking has this ref")]
    UnknownBooking,
    /// The hold is not paid yet: the buyer should abandon the checkout instead.
    #[error("the hold is not confirmed; abandon the checkout instead")]
    NotConfirmed,
    /// A ticket index is out of range or repeated.
    #[error("no ticket {index} in this booking")]
    BadTicket {
        /// The index.
        index: u32,
    },
    /// Some tickets were named, but the booking has none (its occurrence issues no tickets):
    /// cancel the whole booking.
    #[error("the booking has no tickets; cancel it whole")]
    NoTickets,
    /// The refund is more than the cancelled seats' share of what was paid: refund at most
    /// `max`.
    #[error("a refund of at most {max} is due for these seats")]
    RefundTooLarge {
        /// The share: the most that may be refunded.
        max: Money,
    },
    /// The refund is in another currency than the booking was paid in, or has more decimals
    /// than that currency allows: give it in `currency`.
    #[error("the refund must be in {currency} with at most its decimals")]
    RefundCurrency {
        /// The booking's currency.
        currency: crate::contract::Currency,
    },
}

impl Classify for CancelRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownOccurrence | Self::UnknownBooking => ErrorKind::NotFound,
            Self::NotConfirmed => ErrorKind::Conflict,
            Self::BadTicket { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Unprocessable,
        }
    }
}

/// Decide cancelling booking `hold_ref` — all of it, or the seats `tickets` names (ticket
/// indices). Seats are freed in the same commit (and offered to the waiting list), tickets
/// voided, and `refund_required { reason: cancelled }` emitted with the refund.
///
/// The cancelled seats' *share* of what was paid is the unit prices of the seats for a
/// tiered booking; for a plain one, its share of the total (rounded down to the amount's
/// decimals, the last cancellation taking the rest of what was paid, whatever earlier ones
/// refunded). `refund` is what the shop pays back under its own policy (say 50% within 24
/// hours): at most the share, in the booking's currency with no more decimals than it
/// allows; by default the whole share. The answer, the event, the cancellation record and so
/// the ledger carry the refund given.
///
/// Idempotent: seats already cancelled are skipped, and nothing left answers `Noop`.
///
/// # Errors
/// [`CancelRefusal`].
pub fn decide_cancel(
    view: &impl Loaded,
    hold_ref: &Ref,
    tickets: Option<&[u32]>,
    refund: Option<Money>,
    now: OffsetDateTime,
) -> Result<Step<CancelOutcome>, CancelRefusal> {
    let occ = view.occurrence().ok_or(CancelRefusal::UnknownOccurrence)?;
    let hold = view.booking(hold_ref).ok_or(CancelRefusal::UnknownBooking)?;
    match hold.state {
        HoldState::Held => return Err(CancelRefusal::NotConfirmed),
        HoldState::Confirmed => {}
        _ => return Ok(Step::Answer(CancelOutcome::Noop)),
    }
    let paid_key = RecordKey::Payment { hold_ref: hold_ref.clone(), actor: hold.actor.clone(), provider_ref: None };
    let record_key = RecordKey::Cancellation { hold_ref: hold_ref.clone(), n: hold.cancellations.saturating_add(1) };
    let keys: Vec<RecordKey> = [RecordKey::Actor(hold.actor.clone()), paid_key.clone(), record_key]
        .into_iter()
        .filter(|k| !view.is_loaded(k))
        .collect();
    if !keys.is_empty() {
        return Ok(Step::Load(keys));
    }

    let all: Vec<u32> = (0..hold.quantity).collect();
    let targets: Vec<u32> = if hold.tickets.is_empty() {
        if tickets.is_some() {
            return Err(CancelRefusal::NoTickets);
        }
        if hold.cancelled_seats >= hold.quantity {
            return Ok(Step::Answer(CancelOutcome::Noop));
        }
        all
    } else {
        let named = tickets.unwrap_or(&all);
        for (i, &t) in named.iter().enumerate() {
            if t >= hold.quantity || named[..i].contains(&t) {
                return Err(CancelRefusal::BadTicket { index: t });
            }
        }
        if let Some(&t) = named.iter().find(|&&t| matches!(hold.tickets[t as usize], TicketState::CheckedIn { .. })) {
            return Ok(Step::Answer(CancelOutcome::CheckedIn { ticket: ticket_id(hold_ref, t) }));
        }
        named.iter().copied().filter(|&t| hold.tickets[t as usize] == TicketState::Valid).collect()
    };
    if targets.is_empty() {
        return Ok(Step::Answer(CancelOutcome::Noop));
    }
    let seats = u32::try_from(targets.len()).unwrap_or(u32::MAX);
    let completes = hold.cancelled_seats.saturating_add(seats) >= hold.quantity;
    let refunded = hold.refunded.unwrap_or(Amount::ZERO);
    let amount = if !hold.lines.is_empty() {
        targets
            .iter()
            .filter_map(|&t| hold.seat_tier_price(t))
            .try_fold(Amount::ZERO, |a, p| a.checked_add(p))
            .unwrap_or(Amount::ZERO)
    } else if completes {
        hold.price.amount.checked_sub(refunded).unwrap_or(Amount::ZERO)
    } else {
        hold.price.amount.share(seats, hold.quantity, hold.price.amount.scale()).unwrap_or(Amount::ZERO)
    };
    let share = Money { amount, currency: hold.price.currency };
    let refund = match refund {
        None => share,
        Some(r) if r.currency != share.currency || r.currency.minor_unit().is_some_and(|m| r.amount.scale() > m) => {
            return Err(CancelRefusal::RefundCurrency { currency: share.currency });
        }
        Some(r) if r.amount > share.amount => return Err(CancelRefusal::RefundTooLarge { max: share }),
        Some(r) => r,
    };

    let mut next = hold.clone();
    for &t in &targets {
        if let Some(s) = next.tickets.get_mut(t as usize) {
            *s = TicketState::Cancelled { at: now };
        }
    }
    next.cancelled_seats = next.cancelled_seats.saturating_add(seats);
    next.cancellations = next.cancellations.saturating_add(1);
    next.refunded = refunded.checked_add(amount).or(Some(refunded));
    if completes {
        next.state = HoldState::Cancelled;
        next.ended_at = Some(now);
    }
    let provider_ref = view.payment(&paid_key).and_then(|p| p.provider_ref.clone());

    let mut change = Change::default();
    change.deltas.extend(&hold.seat_deltas(&occ.config, UsageDelta::confirmed(1).negated(), &targets));
    if !hold.tickets.is_empty() {
        for &t in &targets {
            change.events.push(hold.event(now, EventKind::TicketCancelled { ticket: ticket_id(hold_ref, t) }));
        }
    }
    change.events.push(hold.event(
        now,
        EventKind::RefundRequired {
            reason: NoHoldReason::Cancelled,
            amount: Some(refund.amount),
            currency: Some(refund.currency),
            provider_ref: provider_ref.clone(),
        },
    ));
    if let Some(a) = view.actor(&hold.actor) {
        let mut a = a.clone();
        a.confirmed_seats = a.confirmed_seats.saturating_sub(seats);
        if completes && a.confirmed_ref.as_ref() == Some(hold_ref) {
            a.confirmed_ref = None;
        }
        change.put(Record::Actor(a));
    }
    change.put(Record::Cancellation(Cancellation {
        occ_key: hold.occ_key.clone(),
        actor: hold.actor.clone(),
        hold_ref: hold_ref.clone(),
        n: next.cancellations,
        seats,
        share: (refund != share).then_some(share),
        tickets: if hold.tickets.is_empty() { Vec::new() } else { targets },
        refund,
        provider_ref: provider_ref.clone(),
        at: now,
    }));
    change.put(Record::Booking(next));
    Ok(Step::Write(change, CancelOutcome::Cancelled { refund, seats, provider_ref }))
}

/// A cancellation is stored under its booking and its number.
impl crate::records::RecordBody for Cancellation {
    fn key(&self) -> RecordKey {
        RecordKey::Cancellation { hold_ref: self.hold_ref.clone(), n: self.n }
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::Cancellation { hold_ref, n } if *hold_ref == self.hold_ref && *n == self.n)
    }
}

/// Cancel a confirmed booking or some of its tickets
/// ([`AsyncEngine::cancel`](crate::AsyncEngine::cancel)): the operation around
/// [`decide_cancel`].
#[derive(Debug, Clone, Copy)]
pub struct Cancel<'a> {
    /// The occurrence.
    pub occ_key: &'a OccKey,
    /// The booking.
    pub hold_ref: &'a Ref,
    /// Which tickets (`None`: all).
    pub tickets: Option<&'a [u32]>,
    /// The refund under the shop's own policy (`None`: the cancelled seats' whole share).
    pub refund: Option<Money>,
}

impl crate::operation::sealed::Sealed for Cancel<'_> {}

impl crate::operation::Command for Cancel<'_> {
    fn command(&self) -> String {
        let refund = self.refund.map(|m| m.to_string());
        format!("cancel {} tickets={:?} refund={refund:?}", self.hold_ref, self.tickets)
    }
}

impl crate::operation::Operation for Cancel<'_> {
    type Output = CancelOutcome;
    type Refusal = CancelRefusal;
    fn occ_key(&self) -> &OccKey {
        self.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        smallvec::smallvec![RecordKey::Booking(self.hold_ref.clone()), RecordKey::Waitlist]
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<CancelOutcome>, CancelRefusal> {
        decide_cancel(view, self.hold_ref, self.tickets, self.refund, now)
    }
}
