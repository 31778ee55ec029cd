//! Pure settlement: applying one payment result to the payer's hold.
//!
//! Owns: the settlement truth table of DESIGN.md ([`decide_settlement`]), its outcomes
//! ([`Settlement`]), refund signals ([`Refund`]), and the [`SettlementRecord`] that makes a
//! `paid` result count exactly once.
//!
//! May not touch: storage, the clock, or any I/O. Depends on [`contract`](crate::contract)
//! and [`holds`](crate::holds).
//!
//! | hold state | paid, R'=R | paid, R'!=R | failed/expired, R'=R | failed/expired, R'!=R |
//! | --- | --- | --- | --- | --- |
//! | none / unknown occurrence | PaidButNoHold(no_hold) | PaidButNoHold(no_hold) | Noop | Noop |
//! | Held, live | Confirmed | PaidButNoHold(ref_mismatch), hold unchanged | Released | Noop |
//! | Held, lapsed | PaidButNoHold(expired) | PaidButNoHold(ref_mismatch) | Noop (it lapsed) | Noop |
//! | Confirmed under R | Confirmed (replay, no new event) | PaidButNoHold(already_paid) | Noop | Noop |
//! | Released | PaidButNoHold(released) | PaidButNoHold(ref_mismatch) | Noop | Noop |
//! | Expired | PaidButNoHold(expired) | PaidButNoHold(ref_mismatch) | Noop | Noop |
//!
//! Choices where DESIGN.md leaves room, and why:
//! - A redelivered `paid` is answered from its [`SettlementRecord`] (the first outcome, marked
//!   `replayed`) and writes nothing, so a caller never refunds twice.
//! - Money is checked before anything else, and only against a hold carrying the same ref (a
//!   hold under another ref has another price): a `paid` result whose `currency` or `amount`
//!   differs from that hold's is [`Settlement::Rejected`], records nothing and changes nothing.
//!   A redelivery of it is rejected again. The money is still at the provider: alert.
//! - A hold met lapsed by a settlement is expired in the same commit (it gets its
//!   `hold_expired` event), whatever the result says — except for a rejected result or a
//!   replay, which write nothing.
//! - For a released or expired hold under another ref the reason is `ref_mismatch` (the table
//!   allows `no_hold` too): the actor's record exists, the ref is not its.

use thiserror::Error;
use time::OffsetDateTime;

use crate::contract::{
    ActorId, Amount, Currency, DomainEvent, EventKind, NoHoldReason, OccKey, PaymentResult, PaymentStatus, ProviderRef,
    Ref,
};
use crate::holds::{Hold, HoldView, SeatDelta};

/// A refund signal: money was taken for a seat that is not the payer's. The caller must
/// refund it (with `provider_ref`, when the result carried one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The occurrence the payment was for.
    pub occ_key: OccKey,
    /// Who paid.
    pub actor: ActorId,
    /// The ref the payment came under.
    pub hold_ref: Ref,
    /// Why it cannot be booked.
    pub reason: NoHoldReason,
    /// The amount to refund: the result's, else the price of the hold it names, else unknown.
    pub amount: Option<Amount>,
    /// The currency of `amount`.
    pub currency: Option<Currency>,
    /// The provider's payment id, if the result carried one.
    pub provider_ref: Option<ProviderRef>,
}

impl Refund {
    fn event(&self, at: OffsetDateTime) -> DomainEvent {
        DomainEvent {
            occ_key: self.occ_key.clone(),
            actor: self.actor.clone(),
            hold_ref: self.hold_ref.clone(),
            at,
            kind: EventKind::RefundRequired {
                reason: self.reason,
                amount: self.amount,
                currency: self.currency,
                provider_ref: self.provider_ref.clone(),
            },
        }
    }
}

/// Why a `paid` result was refused. Nothing was changed or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// The result's amount differs from the hold's price (compared as decimals). Wire value
    /// `amount_mismatch`.
    #[error("paid amount {paid} differs from the hold's price {expected}")]
    AmountMismatch {
        /// The hold's price.
        expected: Amount,
        /// What the result says was paid.
        paid: Amount,
    },
    /// The result's currency differs from the hold's. Wire value `currency_mismatch`.
    #[error("paid currency {paid} differs from the hold's currency {expected}")]
    CurrencyMismatch {
        /// The hold's currency.
        expected: Currency,
        /// What the result says was paid in.
        paid: Currency,
    },
}

impl RejectReason {
    /// The wire value (`amount_mismatch`, `currency_mismatch`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }
}

/// The outcome of settling one payment result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a PaidButNoHold outcome is a refund the caller must make"]
pub enum Settlement {
    /// The hold is paid and its seats sold. `replayed`: this result had already confirmed it.
    Confirmed {
        /// Whether this is a redelivery of a result already applied.
        replayed: bool,
    },
    /// The payment failed or expired and the hold's seats were freed.
    Released,
    /// Nothing to do (a failure for a hold that is gone, paid, lapsed or another attempt's; or
    /// a redelivered failure).
    Noop,
    /// Money arrived for a seat that is gone: refund it. `replayed`: this signal was already
    /// given for this result (do not refund twice).
    PaidButNoHold {
        /// What to refund, and why.
        refund: Refund,
        /// Whether this is a redelivery of a result already answered with this signal.
        replayed: bool,
    },
    /// The result's money does not match the hold: nothing changed. Investigate and alert;
    /// the money is with the provider.
    Rejected {
        /// What did not match.
        reason: RejectReason,
    },
}

impl Settlement {
    /// The outcome's wire name (`confirmed`, `released`, `noop`, `paid_but_no_hold`,
    /// `rejected`).
    pub fn status_str(&self) -> &'static str {
        match self {
            Self::Confirmed { .. } => "confirmed",
            Self::Released => "released",
            Self::Noop => "noop",
            Self::PaidButNoHold { .. } => "paid_but_no_hold",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// Whether this answer repeats an earlier one for the same result.
    pub fn is_replay(&self) -> bool {
        matches!(self, Self::Confirmed { replayed: true } | Self::PaidButNoHold { replayed: true, .. })
    }
}

/// How a `paid` result was accounted: exactly one of these per (occurrence, actor, ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidOutcome {
    /// It confirmed the hold.
    Confirmed,
    /// It was answered with this refund signal.
    Refund(Refund),
}

/// The durable record that a `paid` result for (occ_key, actor, ref) was answered with a
/// refund signal. A store keeps at most one per key (insert-if-absent), so a redelivery,
/// however reordered or raced, answers the same signal as a replay (invariant 3).
///
/// The engine writes records for refunds only: a confirmation's record is the hold itself,
/// confirmed under that ref, which no operation ever changes again. Stores must still store
/// and return [`PaidOutcome::Confirmed`] records faithfully (the conformance suite checks it),
/// so a store or a future version may record confirmations too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRecord {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The payer.
    pub actor: ActorId,
    /// The ref the payment came under.
    pub hold_ref: Ref,
    /// How it was accounted.
    pub outcome: PaidOutcome,
    /// When.
    pub settled_at: OffsetDateTime,
}

impl SettlementRecord {
    fn answer(&self) -> Settlement {
        match &self.outcome {
            PaidOutcome::Confirmed => Settlement::Confirmed { replayed: true },
            PaidOutcome::Refund(refund) => Settlement::PaidButNoHold { refund: refund.clone(), replayed: true },
        }
    }
}

/// What settling writes, as one atomic change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SettlementWrite {
    /// The payer's hold in its new state, if it changes.
    pub hold: Option<Hold>,
    /// The change to the occurrence's counters.
    pub seats: SeatDelta,
    /// The record of a `paid` result, inserted only if absent.
    pub record: Option<SettlementRecord>,
    /// Events, in order.
    pub events: Vec<DomainEvent>,
}

/// What [`decide_settlement`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementDecision {
    /// The answer once committed.
    pub outcome: Settlement,
    /// What to commit; `None` when nothing changes.
    pub write: Option<SettlementWrite>,
}

/// Decide how a payment result settles, by the truth table in this module's docs.
///
/// `hold` is the payer's hold record at `result.occ_key` (`None` if there is none, or no such
/// occurrence); `record` is the settlement record for (occ_key, actor, ref), if any.
pub fn decide_settlement(
    hold: Option<&Hold>,
    record: Option<&SettlementRecord>,
    result: &PaymentResult,
    now: OffsetDateTime,
) -> SettlementDecision {
    let same_ref = hold.filter(|h| h.hold_ref == result.hold_ref);
    if result.status == PaymentStatus::Paid {
        if let Some(reason) = same_ref.and_then(|h| money_mismatch(h, result)) {
            return SettlementDecision { outcome: Settlement::Rejected { reason }, write: None };
        }
        if let Some(record) = record {
            return SettlementDecision { outcome: record.answer(), write: None };
        }
    }

    let mut write = SettlementWrite { events: Vec::with_capacity(2), ..SettlementWrite::default() };
    // A lapsed hold met here ends here (invariant 7), whatever the result says.
    if let Some((expired, delta, event)) = hold.and_then(|h| h.lapse(now)) {
        write.hold = Some(expired);
        write.seats = delta;
        write.events.push(event);
    }

    let outcome = match result.status {
        PaymentStatus::Paid => {
            let verdict = match hold {
                None => Err(NoHoldReason::NoHold),
                Some(h) => match (h.view(now), h.hold_ref == result.hold_ref) {
                    (HoldView::Live, true) => Ok(h),
                    (HoldView::Confirmed, true) => {
                        // Confirmed under this ref but no record: cannot happen with a
                        // conforming store (the record is committed with the confirmation);
                        // answer as the replay it is and write nothing.
                        return SettlementDecision { outcome: Settlement::Confirmed { replayed: true }, write: None };
                    }
                    (HoldView::Confirmed, false) => Err(NoHoldReason::AlreadyPaid),
                    (HoldView::Lapsed | HoldView::Expired, true) => Err(NoHoldReason::Expired),
                    (HoldView::Released, true) => Err(NoHoldReason::Released),
                    (_, false) => Err(NoHoldReason::RefMismatch),
                },
            };
            match verdict {
                Ok(h) => {
                    let (confirmed, delta, event) = h.confirm(now);
                    write.hold = Some(confirmed);
                    write.seats = write.seats.plus(delta);
                    write.events.push(event);
                    // No settlement record: the hold, confirmed under this ref, is the record.
                    // It never changes again, and it answers every redelivery as a replay.
                    Settlement::Confirmed { replayed: false }
                }
                Err(reason) => {
                    let refund = refund_for(result, reason, same_ref);
                    write.events.push(refund.event(now));
                    write.record = Some(record_for(result, PaidOutcome::Refund(refund.clone()), now));
                    Settlement::PaidButNoHold { refund, replayed: false }
                }
            }
        }
        PaymentStatus::Failed | PaymentStatus::Expired => match same_ref {
            Some(h) if h.view(now) == HoldView::Live => {
                let (released, delta, event) = h.release(now);
                write.hold = Some(released);
                write.seats = write.seats.plus(delta);
                write.events.push(event);
                Settlement::Released
            }
            _ => Settlement::Noop,
        },
    };
    let write = (!write.events.is_empty()).then_some(write);
    SettlementDecision { outcome, write }
}

fn money_mismatch(hold: &Hold, result: &PaymentResult) -> Option<RejectReason> {
    if let Some(paid) = result.currency.filter(|c| *c != hold.price.currency) {
        return Some(RejectReason::CurrencyMismatch { expected: hold.price.currency, paid });
    }
    if let Some(paid) = result.amount.filter(|a| *a != hold.price.amount) {
        return Some(RejectReason::AmountMismatch { expected: hold.price.amount, paid });
    }
    None
}

fn refund_for(result: &PaymentResult, reason: NoHoldReason, same_ref: Option<&Hold>) -> Refund {
    let (amount, currency) = match (result.amount, result.currency, same_ref) {
        (None, None, Some(h)) => (Some(h.price.amount), Some(h.price.currency)),
        (amount, currency, _) => (amount, currency),
    };
    Refund {
        occ_key: result.occ_key.clone(),
        actor: result.actor.clone(),
        hold_ref: result.hold_ref.clone(),
        reason,
        amount,
        currency,
        provider_ref: result.provider_ref.clone(),
    }
}

fn record_for(result: &PaymentResult, outcome: PaidOutcome, now: OffsetDateTime) -> SettlementRecord {
    SettlementRecord {
        occ_key: result.occ_key.clone(),
        actor: result.actor.clone(),
        hold_ref: result.hold_ref.clone(),
        outcome,
        settled_at: now,
    }
}
