//! Pure settlement: applying one payment result to the booking it names.
//!
//! Owns: the settlement truth table ([`decide_settlement`]; the README lists it row by
//! row), its outcomes
//! ([`Settlement`]), refund signals ([`Refund`]), and the [`PaymentRecord`] that makes a
//! `paid` result count exactly once.
//!
//! May not touch: storage, the clock, or any I/O. Depends on [`contract`](crate::contract),
//! [`holds`](crate::holds) and the [`waitlist`] (a release frees seats).
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
//! # Exactly once
//!
//! The first delivery of a `paid` result for (occ_key, actor, ref) inserts its
//! [`PaymentRecord`] — confirmation or refund — in the same commit as its effect, and that
//! commit also checks the version (or the absence) of every record it decided from: the
//! booking the ref names, the actor's summary, the record itself. Whatever the
//! interleaving, one of the racing deliveries wins and every other one, retried, meets the
//! record and replays it. A delivery is the same payment when it has the same (occ_key,
//! actor, ref) and, if both carry one, the same `provider_ref`; a different `provider_ref`
//! for an accounted ref is a second charge: `PaidButNoHold(duplicate_payment)`, recorded
//! under its own key so that its redeliveries replay it.
//!
//! A payment accounted without a `provider_ref` is named by the first redelivery that
//! carries one: that `provider_ref` is recorded (the redelivery still answers the first
//! answer, replayed), and from then on a delivery naming another `provider_ref` is a
//! second charge. Without this, two different charges would both be answered as replays of
//! one delivery that named neither.
//!
//! # Which hold a result names
//!
//! At an occurrence without `max_per_actor` (one booking per actor, Part 1) the hold is the
//! actor's *current* one — its latest — and the table applies as written: a ref other than
//! the current hold's is `R' != R`. With `max_per_actor` (repeat purchases) the booking is
//! located by (occ_key, ref) only; a ref naming no booking of the actor is `no_hold`.
//!
//! Choices where the truth table leaves room, and why:
//! - Money is checked only when a hold is about to be confirmed (a live one, or a revived
//!   one): a `paid` whose `currency` or `amount` differs is [`Settlement::Rejected`],
//!   accounts nothing, confirms nothing and changes nothing — unless the occurrence was
//!   opened `with_rejection_alarm`: then a `payment_rejected` event raises the alarm in the
//!   outbox, once per (ref, actor, provider_ref) (a [`Rejection`] record remembers it).
//!   A replay is answered before any money check.
//! - A hold met lapsed by a settlement is expired in the same commit (it gets its
//!   `hold_expired` event), whatever the result says — except for a replay or a rejection.
//! - For a released or expired hold under another ref the reason is `ref_mismatch` (the
//!   table allows `no_hold` too): the actor has a hold, and the ref is not its.
//! - With `late_payment: revive`, a `paid` for a lapsed, expired or released booking
//!   confirms it (event `hold_confirmed` with `revived: true`) if every capacity it touches
//!   has room now (lapsed holds and offers counted out, the waiting list's offers counted
//!   in), the actor's limits allow it, and the actor has no other current booking at a
//!   one-booking occurrence; otherwise it is the refund signal the table says.
//! - A refund signal carries the amount to refund: the result's, else the price of the
//!   actor's booking under that ref, else none (a payment naming nothing, without amount).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::catalogue::LatePayment;
use crate::contract::{
    ActorId, Amount, Currency, DomainEvent, EventKind, Money, NoHoldReason, OccKey, PaymentResult, PaymentStatus,
    ProviderRef, Ref,
};
use crate::holds::{Hold, HoldState, HoldView, Need, Room, make_room};
use crate::records::{Change, Loaded, LoadedExt, Record, RecordKey, Step, UsageDelta, nanos};
use crate::waitlist;

/// A refund signal: money was taken that must go back. The caller must refund it (with
/// `provider_ref`, when known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The occurrence the payment was for.
    pub occ_key: OccKey,
    /// Who paid.
    pub actor: ActorId,
    /// The ref the payment came under.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// Why it cannot be kept.
    pub reason: NoHoldReason,
    /// The amount to refund: the result's, else the price of the booking it names, else
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// The currency of `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// The provider's payment id, if the result carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
}

impl Refund {
    fn event(&self, at: OffsetDateTime) -> DomainEvent {
        DomainEvent {
            occ_key: self.occ_key.clone(),
            actor: self.actor.clone(),
            hold_ref: Some(self.hold_ref.clone()),
            at,
            kind: EventKind::RefundRequired {
                reason: self.reason,
                amount: self.amount,
                currency: self.currency,
                provider_ref: self.provider_ref.clone(),
            },
            metadata: None,
        }
    }
}

/// Why a `paid` result was refused. Nothing was confirmed or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[must_use = "a PaidButNoHold outcome is a refund the caller must make"]
#[non_exhaustive]
pub enum Settlement {
    /// The hold is paid and its seats sold. `replayed`: this payment had already confirmed it.
    Confirmed {
        /// Whether this is a redelivery of a result already applied.
        replayed: bool,
    },
    /// The payment failed or expired and the hold's seats were freed.
    Released,
    /// Nothing to do (a failure for a hold that is gone, paid, lapsed or another attempt's;
    /// a redelivered failure; or a `pending` status from a provider).
    Noop,
    /// Money arrived that must go back: refund it. `replayed`: this signal was already given
    /// for this payment (do not refund twice).
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
        #[serde(flatten)]
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

    /// Whether this answer repeats an earlier one for the same payment.
    pub fn is_replay(&self) -> bool {
        matches!(self, Self::Confirmed { replayed: true } | Self::PaidButNoHold { replayed: true, .. })
    }
}

/// How a `paid` result was accounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaidOutcome {
    /// It confirmed the booking (`revived`: a late payment, under `late_payment: revive`).
    Confirmed {
        /// Whether it revived a hold that had lapsed or ended.
        #[serde(default)]
        revived: bool,
    },
    /// It was answered with this refund signal.
    Refund(Refund),
}

/// The durable record that a `paid` result was accounted — one per payment, inserted only if
/// absent, in the same commit as its effect. It answers every redelivery (invariants 3 and
/// 5) and is the payment side of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The payer.
    pub actor: ActorId,
    /// The ref the payment came under.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// The provider's payment id, if the result carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// Whether this is a second, different payment for an accounted ref (keyed by its
    /// provider ref).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The money received: the result's amount, else the booking's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// Its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// How it was accounted.
    pub outcome: PaidOutcome,
    /// When.
    #[serde(with = "nanos")]
    pub settled_at: OffsetDateTime,
}

impl PaymentRecord {
    /// Its key.
    pub fn key(&self) -> RecordKey {
        RecordKey::Payment {
            hold_ref: self.hold_ref.clone(),
            actor: self.actor.clone(),
            provider_ref: if self.duplicate { self.provider_ref.clone() } else { None },
        }
    }

    /// What a redelivery of this payment answers.
    pub fn replay(&self) -> Settlement {
        match &self.outcome {
            PaidOutcome::Confirmed { .. } => Settlement::Confirmed { replayed: true },
            PaidOutcome::Refund(refund) => Settlement::PaidButNoHold { refund: refund.clone(), replayed: true },
        }
    }
}

/// The record that a `paid` result was refused for its money: its `payment_rejected` alarm
/// was raised (once per (ref, actor, provider ref)). Not an accounting: the money is still
/// with the provider, and a later, correct payment under the ref is judged on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The occurrence.
    pub occ_key: OccKey,
    /// The payer.
    pub actor: ActorId,
    /// The ref the payment came under.
    #[serde(rename = "ref")]
    pub hold_ref: Ref,
    /// The provider's payment id, if the result carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// Why (`amount_mismatch`, `currency_mismatch`).
    pub reason: String,
    /// When first refused.
    #[serde(with = "nanos")]
    pub at: OffsetDateTime,
}

impl Rejection {
    /// Its key.
    pub fn key(&self) -> RecordKey {
        RecordKey::Rejection {
            hold_ref: self.hold_ref.clone(),
            actor: self.actor.clone(),
            provider_ref: self.provider_ref.clone(),
        }
    }
}

fn rejection_key(result: &PaymentResult) -> RecordKey {
    RecordKey::Rejection {
        hold_ref: result.hold_ref.clone(),
        actor: result.actor.clone(),
        provider_ref: result.provider_ref.clone(),
    }
}

/// The keys settling `result` loads first.
pub(crate) fn settle_keys(result: &PaymentResult) -> crate::records::Keys {
    let mut keys = crate::records::Keys::new();
    keys.push(RecordKey::Booking(result.hold_ref.clone()));
    keys.push(RecordKey::Actor(result.actor.clone()));
    if result.status == PaymentStatus::Paid {
        keys.push(first_key(result));
        if let Some(p) = &result.provider_ref {
            keys.push(RecordKey::Payment {
                hold_ref: result.hold_ref.clone(),
                actor: result.actor.clone(),
                provider_ref: Some(p.clone()),
            });
        }
        if result.amount.is_some() || result.currency.is_some() {
            keys.push(rejection_key(result));
        }
    }
    keys.push(RecordKey::Waitlist);
    keys
}

fn first_key(result: &PaymentResult) -> RecordKey {
    RecordKey::Payment { hold_ref: result.hold_ref.clone(), actor: result.actor.clone(), provider_ref: None }
}

/// Decide how a payment result settles: by the truth table in this module's docs, with
/// replays and second payments answered from the [`PaymentRecord`]s first.
pub fn decide_settlement(view: &impl Loaded, result: &PaymentResult, now: OffsetDateTime) -> Step<Settlement> {
    // The actor's booking under this ref (another actor's booking is none of theirs).
    let named = view.booking(&result.hold_ref).filter(|b| b.actor == result.actor);
    match result.status {
        PaymentStatus::Failed | PaymentStatus::Expired => match named {
            Some(_) => match crate::holds::ops_release(view, &result.hold_ref, now) {
                Step::Write(c, crate::holds::AbandonOutcome::Released) => Step::Write(c, Settlement::Released),
                Step::Write(c, _) => Step::Write(c, Settlement::Noop),
                _ => Step::Answer(Settlement::Noop),
            },
            None => Step::Answer(Settlement::Noop),
        },
        PaymentStatus::Paid => decide_paid(view, result, named, now),
    }
}

fn decide_paid(
    view: &impl Loaded,
    result: &PaymentResult,
    named: Option<&Hold>,
    now: OffsetDateTime,
) -> Step<Settlement> {
    // A second payment recorded under its own provider ref replays, whatever became of the
    // first (retention may have pruned it).
    let dup_key = result.provider_ref.as_ref().map(|p| RecordKey::Payment {
        hold_ref: result.hold_ref.clone(),
        actor: result.actor.clone(),
        provider_ref: Some(p.clone()),
    });
    if let Some(dup) = dup_key.as_ref().and_then(|k| view.payment(k)) {
        return Step::Answer(dup.replay());
    }
    if let Some(first) = view.payment(&first_key(result)) {
        match (&first.provider_ref, &result.provider_ref) {
            (Some(a), Some(b)) if a != b => {}
            // The first delivery named no provider ref and this one does: the same payment,
            // now named. Record the name, so that a later delivery naming another one is a
            // second payment (a provider ref names one charge), and answer the first answer.
            (None, Some(p)) => {
                let mut named_now = first.clone();
                named_now.provider_ref = Some(p.clone());
                let mut change = Change::default();
                change.put(Record::Payment(named_now));
                return Step::Write(change, first.replay());
            }
            _ => return Step::Answer(first.replay()),
        }
        // A second, different charge for an accounted checkout: refund it.
        // Completed from the first payment's money, else from the booking's price.
        let recorded = match (first.amount, first.currency) {
            (Some(amount), Some(currency)) => Some(Money { amount, currency }),
            _ => None,
        };
        let (amount, currency) = [recorded, named.map(|b| b.price)]
            .into_iter()
            .flatten()
            .map(|m| refund_money(result, Some(m)))
            .find(|(a, c)| a.is_some() && c.is_some())
            .unwrap_or_else(|| refund_money(result, None));
        let refund = refund_of(result, NoHoldReason::DuplicatePayment, amount, currency);
        let mut change = Change::default();
        change.events.push(refund.event(now));
        let mut rec = record(result, amount, currency, PaidOutcome::Refund(refund.clone()), now);
        rec.duplicate = true;
        change.put(Record::Payment(rec));
        return Step::Write(change, Settlement::PaidButNoHold { refund, replayed: false });
    }

    let mut change = Change::default();
    let Some(occ) = view.occurrence() else {
        return refund_step(change, result, NoHoldReason::NoHold, None, now);
    };
    let cfg = &occ.config;
    let actor = view.actor(&result.actor);
    // At a one-booking occurrence the table reads the actor's current hold.
    let one_booking = cfg.max_per_actor().is_none();
    let hold = match named {
        Some(b) if one_booking && actor.and_then(|a| a.current.as_ref()) != Some(&b.hold_ref) => None,
        other => other,
    };
    let Some(hold) = hold else {
        let reason = match actor {
            Some(a) if one_booking && a.live.is_some() => NoHoldReason::RefMismatch,
            Some(a) if one_booking && a.confirmed_ref.is_some() => NoHoldReason::AlreadyPaid,
            Some(a) if one_booking && a.current.is_some() => NoHoldReason::RefMismatch,
            _ => NoHoldReason::NoHold,
        };
        // The table read the actor's current hold: if it lapsed, this commit (it writes the
        // refund) is the first writing operation to meet it, and expires it (invariant 7).
        if let Some(lapsed) = actor.and_then(|a| a.live.as_ref()).filter(|l| one_booking && l.expires_at <= now) {
            let key = RecordKey::Booking(lapsed.hold_ref.clone());
            if !view.is_loaded(&key) {
                return Step::Load(vec![key]);
            }
            if let Some(Record::Booking(current)) = view.get(&key) {
                if let Some((expired, freed, event)) = current.lapse(cfg, now) {
                    change.deltas.extend(&freed);
                    change.put(Record::Booking(expired));
                    change.events.push(event);
                    // Offers before the verdict: a writing operation that meets a lapsed
                    // hold makes them before it decides (the engine would only after).
                    waitlist::settle_waitlist(occ, view.waitlist(), &mut change, now, None);
                }
            }
        }
        return refund_step(change, result, reason, named, now);
    };

    let view_now = hold.view(now);
    if view_now == HoldView::Live {
        if let Some(reason) = money_mismatch(hold, result) {
            return reject(view, result, reason, cfg.rejection_alarm(), now);
        }
        let (confirmed, deltas) = hold.confirm(cfg, now, false, &mut change.events);
        change.deltas.extend(&deltas);
        if let Some(a) = actor {
            change.put(Record::Actor(a.confirmed(&hold.hold_ref, hold.quantity)));
        }
        change.put(Record::Booking(confirmed));
        change.put(Record::Payment(record(
            result,
            result.amount.or(Some(hold.price.amount)),
            result.currency.or(Some(hold.price.currency)),
            PaidOutcome::Confirmed { revived: false },
            now,
        )));
        return Step::Write(change, Settlement::Confirmed { replayed: false });
    }

    let reason = match view_now {
        HoldView::Lapsed | HoldView::Expired => NoHoldReason::Expired,
        HoldView::Released => NoHoldReason::Released,
        HoldView::Cancelled => NoHoldReason::Cancelled,
        // Confirmed with no payment record: a free booking (or one whose record was pruned).
        _ => NoHoldReason::AlreadyPaid,
    };
    if matches!(view_now, HoldView::Lapsed | HoldView::Expired | HoldView::Released)
        && cfg.late_payment() == LatePayment::Revive
        && money_mismatch(hold, result).is_none()
    {
        // No room, or the actor may not have it: the refund below.
        if let Some(step) = revive(view, result, hold, now) {
            return step;
        }
    }
    // A lapsed hold met here ends here.
    if let Some((expired, freed, event)) = hold.lapse(cfg, now) {
        change.deltas.extend(&freed);
        change.put(Record::Booking(expired));
        change.events.push(event);
        // Offers before the verdict (as above).
        waitlist::settle_waitlist(occ, view.waitlist(), &mut change, now, None);
    }
    refund_step(change, result, reason, Some(hold), now)
}

/// Confirm a lapsed or ended hold after all, if there is room and the actor may have it.
/// `None`: refund instead.
fn revive(view: &impl Loaded, result: &PaymentResult, hold: &Hold, now: OffsetDateTime) -> Option<Step<Settlement>> {
    let occ = view.occurrence()?;
    let cfg = &occ.config;
    let actor = view.actor(&result.actor);
    let others_live = actor.and_then(|a| a.live_at(now)).filter(|l| l.hold_ref != hold.hold_ref);
    match cfg.max_per_actor() {
        None if others_live.is_some() || actor.is_some_and(|a| a.confirmed_ref.is_some()) => return None,
        Some(max) => {
            let have =
                u64::from(actor.map_or(0, |a| a.confirmed_seats)) + others_live.map_or(0, |l| u64::from(l.quantity));
            if have + u64::from(hold.quantity) > u64::from(max) {
                return None;
            }
        }
        None => {}
    }
    // A seated hold revives only onto its own seats, all of them still free.
    if !hold.seat_ids.is_empty() {
        let map = cfg.seating()?;
        let owner = crate::seating::Owner::Hold(hold.hold_ref.clone());
        match crate::seating::all_free_for(view, map, &hold.seat_ids.to_vec(), &owner, now) {
            Err(keys) => return Some(Step::Load(keys)),
            Ok(false) => return None,
            Ok(true) => {}
        }
    }
    let mut change = Change::default();
    // A hold still held (lapsed) gives its held seats back first; the booking then takes
    // them, or others, as sold seats.
    if hold.state == HoldState::Held {
        change.deltas.extend(&hold.deltas(cfg, UsageDelta::held(1).negated()));
    }
    let mut as_ended = hold.clone();
    as_ended.state = HoldState::Expired;
    change.put(Record::Booking(as_ended.clone()));
    // Seats the waiting list is owed are offered before the late payment is judged: a
    // walk-in never takes them, and neither does a payment that came too late (whether or
    // not a sweep got to the lapsed hold first).
    waitlist::settle_waitlist(occ, view.waitlist(), &mut change, now, Some(&result.actor));
    let needs: Vec<Need> = if hold.lines.is_empty() {
        vec![(smallvec::smallvec![crate::catalogue::Dim::Total], UsageDelta::confirmed(hold.quantity))]
    } else {
        hold.lines.iter().map(|l| (cfg.seat_dims(Some(&l.tier)), UsageDelta::confirmed(l.quantity))).collect()
    };
    match make_room(view, occ, &mut change, &needs, Some(&result.actor), now) {
        Room::Fits => {}
        Room::NeedDue(n) => return Some(Step::LoadDue(n)),
        Room::Full { .. } => return None,
    }
    let (confirmed, _) = as_ended.confirm(cfg, now, true, &mut change.events);
    change.put(Record::Booking(confirmed));
    let summary =
        actor.cloned().unwrap_or_else(|| crate::holds::ActorRecord::new(hold.occ_key.clone(), hold.actor.clone()));
    change.put(Record::Actor(summary.confirmed(&hold.hold_ref, hold.quantity)));
    change.put(Record::Payment(record(
        result,
        result.amount.or(Some(hold.price.amount)),
        result.currency.or(Some(hold.price.currency)),
        PaidOutcome::Confirmed { revived: true },
        now,
    )));
    Some(Step::Write(change, Settlement::Confirmed { replayed: false }))
}

/// `Rejected`: nothing changes — unless the occurrence asked for the alarm, raised the first
/// time this payment is refused.
fn reject(
    view: &impl Loaded,
    result: &PaymentResult,
    reason: RejectReason,
    alarm: bool,
    now: OffsetDateTime,
) -> Step<Settlement> {
    let answer = Settlement::Rejected { reason };
    if !alarm || view.get(&rejection_key(result)).is_some() {
        return Step::Answer(answer);
    }
    let mut change = Change::default();
    change.events.push(DomainEvent {
        occ_key: result.occ_key.clone(),
        actor: result.actor.clone(),
        hold_ref: Some(result.hold_ref.clone()),
        at: now,
        kind: EventKind::PaymentRejected {
            reason: reason.as_str().to_owned(),
            amount: result.amount,
            currency: result.currency,
            provider_ref: result.provider_ref.clone(),
        },
        metadata: None,
    });
    change.put(Record::Rejection(Rejection {
        occ_key: result.occ_key.clone(),
        actor: result.actor.clone(),
        hold_ref: result.hold_ref.clone(),
        provider_ref: result.provider_ref.clone(),
        reason: reason.as_str().to_owned(),
        at: now,
    }));
    Step::Write(change, answer)
}

fn refund_step(
    mut change: Change,
    result: &PaymentResult,
    reason: NoHoldReason,
    named: Option<&Hold>,
    now: OffsetDateTime,
) -> Step<Settlement> {
    let (amount, currency) = refund_money(result, named.map(|h| h.price));
    let refund = refund_of(result, reason, amount, currency);
    change.events.push(refund.event(now));
    change.put(Record::Payment(record(result, amount, currency, PaidOutcome::Refund(refund.clone()), now)));
    Step::Write(change, Settlement::PaidButNoHold { refund, replayed: false })
}

/// The money a refund signal carries: the result's, completed from the booking's price
/// where the result left a part out (an amount without a currency takes the booking's
/// currency; a currency without an amount takes the booking's amount if it is the
/// booking's currency).
fn refund_money(result: &PaymentResult, booked: Option<Money>) -> (Option<Amount>, Option<Currency>) {
    match (result.amount, result.currency, booked) {
        (None, None, Some(m)) => (Some(m.amount), Some(m.currency)),
        (Some(a), None, Some(m)) => (Some(a), Some(m.currency)),
        (None, Some(c), Some(m)) if c == m.currency => (Some(m.amount), Some(c)),
        (a, c, _) => (a, c),
    }
}

fn refund_of(
    result: &PaymentResult,
    reason: NoHoldReason,
    amount: Option<Amount>,
    currency: Option<Currency>,
) -> Refund {
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

fn record(
    result: &PaymentResult,
    amount: Option<Amount>,
    currency: Option<Currency>,
    outcome: PaidOutcome,
    now: OffsetDateTime,
) -> PaymentRecord {
    PaymentRecord {
        occ_key: result.occ_key.clone(),
        actor: result.actor.clone(),
        hold_ref: result.hold_ref.clone(),
        provider_ref: result.provider_ref.clone(),
        duplicate: false,
        amount,
        currency,
        outcome,
        settled_at: now,
    }
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

/// A payment record is stored under (ref, actor), and a further, different payment under
/// its provider ref as well.
impl crate::records::RecordBody for PaymentRecord {
    fn key(&self) -> RecordKey {
        PaymentRecord::key(self)
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        match key {
            RecordKey::Payment { hold_ref, actor, provider_ref } => {
                *hold_ref == self.hold_ref
                    && *actor == self.actor
                    && provider_ref.as_ref() == if self.duplicate { self.provider_ref.as_ref() } else { None }
            }
            _ => false,
        }
    }
}

/// A rejection is stored under (ref, actor, provider ref).
impl crate::records::RecordBody for Rejection {
    fn key(&self) -> RecordKey {
        Rejection::key(self)
    }
    fn has_key(&self, key: &RecordKey) -> bool {
        matches!(key, RecordKey::Rejection { hold_ref, actor, provider_ref }
            if *hold_ref == self.hold_ref && *actor == self.actor && *provider_ref == self.provider_ref)
    }
}

/// Settle a payment result ([`AsyncEngine::settle`](crate::AsyncEngine::settle)): the
/// operation around [`decide_settlement`]. Never refused.
#[derive(Debug, Clone, Copy)]
pub struct Settle<'a>(pub &'a PaymentResult);

impl crate::operation::sealed::Sealed for Settle<'_> {}

impl crate::operation::Operation for Settle<'_> {
    type Output = Settlement;
    type Refusal = crate::Never;
    fn occ_key(&self) -> &OccKey {
        &self.0.occ_key
    }
    fn keys(&self) -> crate::records::Keys {
        settle_keys(self.0)
    }
    fn decide<L: Loaded>(&self, view: &L, now: OffsetDateTime) -> Result<Step<Settlement>, crate::Never> {
        Ok(decide_settlement(view, self.0, now))
    }
}
